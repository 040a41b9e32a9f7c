// CudaModel::sample_on_device: the step's logits never leave the GPU. One host-to-device copy of the rows'
// sampling parameters (and repetition-penalty tokens), then logits_process and either argmax_rows (every row
// greedy, no top-n: no sort) or sample_rows (device radix sort, top-k/top-p, seeded draw — the CPU's exact
// rules, see sampling.cu), and one device-to-host copy of tokens, logprobs and top-n. Structured-output masks
// (vocab/8 bytes per constrained row) and the tokens that frequency / presence penalties and logit biases change
// (LogitAdjust, one per token) go up with the parameters and are applied by logits_process. Rows that ask for
// typical_p, or bias one token twice, copy their logits row back and are sampled by cpu::sample_token.
#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <map>
#include <unordered_set>
#include <vector>

#include "cuda/model/cuda_model.h"
#include "cuda/runtime/check.h"

namespace weft::cuda {

namespace {

// Rows the GPU sampler does not handle: sampled on the host from their copied-back logits. Typical-p ranks by
// surprise, not by value; a token biased twice adds its biases one by one on the CPU (a LogitAdjust holds one).
bool host_row(const cpu::SamplingParams& q) {
  if (q.typical_p < 1.0f || q.min_p > 0.0f) return true;  // typical-p and min-p rows are sampled on the host
  std::unordered_set<int32_t> biased;
  for (const auto& [t, b] : q.logit_bias)
    if (!biased.insert(t).second) return true;
  return false;
}

// A row's tokens that the additive rules change, each once, flagged as cpu::sample_token treats them: counts of
// the generated tokens (the last draw_index of the history) when a frequency / presence penalty is on, the bias,
// and whether the repetition penalty applies first (the token is in the history).
std::vector<LogitAdjust> adjustments_of(const RowSampling& s, int64_t vocab) {
  const cpu::SamplingParams& q = s.params;
  std::map<int32_t, LogitAdjust> by_token;
  const auto entry = [&](int32_t t) -> LogitAdjust& { return by_token.try_emplace(t, LogitAdjust{t, 0, 0.0f, 0}).first->second; };
  const int64_t n = static_cast<int64_t>(s.penalty_tokens.size());
  if (q.frequency_penalty != 0.0f || q.presence_penalty != 0.0f) {
    for (int64_t i = n - std::min<int64_t>(static_cast<int64_t>(q.draw_index), n); i < n; ++i) {
      const int32_t t = s.penalty_tokens[i];
      if (t >= 0 && t < vocab) ++entry(t).count;
    }
  }
  for (const auto& [t, b] : q.logit_bias) {
    if (t < 0 || t >= vocab) continue;
    LogitAdjust& e = entry(t);
    e.bias = b;
    e.flags |= kAdjustBias;
  }
  if (q.repetition_penalty != 1.0f && !by_token.empty()) {
    const std::unordered_set<int32_t> seen(s.penalty_tokens.begin(), s.penalty_tokens.end());
    for (auto& [t, e] : by_token)
      if (seen.count(t)) e.flags |= kAdjustRepetition;
  }
  std::vector<LogitAdjust> out;
  out.reserve(by_token.size());
  for (const auto& [t, e] : by_token) out.push_back(e);
  return out;
}

// The parts of one packed buffer, each 256-byte aligned: the same layout is filled on the host, copied whole,
// and read on the other side, so the offsets are worked out once.
class Packed {
 public:
  explicit Packed(std::initializer_list<size_t> sizes) {
    for (size_t n : sizes) {
      at_.push_back(bytes_);
      bytes_ += round_up(n, 256);
    }
  }
  size_t bytes() const { return bytes_; }
  template <class T> T* part(void* base, size_t i) const {
    return reinterpret_cast<T*>(static_cast<char*>(base) + at_[i]);
  }

 private:
  std::vector<size_t> at_;
  size_t bytes_ = 0;
};

}  // namespace

std::vector<cpu::SampleResult> CudaModel::sample_on_device(const StepPlan& p, const std::vector<RowSampling>& rows) {
  ops_.mark("sample", stream_);
  const int64_t R = p.wanted_logits, V = cfg_.vocab;
  const float* logits = logits_f32();
  if (R == 0) {
    WEFT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return {};
  }
  bool greedy_only = true, penalties = false;
  int32_t top_n = 0;
  size_t pen_total = 0;
  int32_t num_masks = 0;
  const int64_t mask_bytes = (V + 7) / 8;
  std::vector<std::vector<LogitAdjust>> adjust(static_cast<size_t>(R));
  size_t adjust_total = 0;
  // Which rows the host samples, decided once (host_row builds a set of a row's biased tokens).
  std::vector<bool> host(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r) host[r] = host_row(rows[r].params);
  for (int64_t r = 0; r < R; ++r) {
    const RowSampling& s = rows[r];
    if (host[r]) continue;
    if (!s.params.allowed_mask.empty()) ++num_masks;
    adjust[r] = adjustments_of(s, V);
    adjust_total += adjust[r].size();
    greedy_only = greedy_only && !(s.params.do_sample && s.params.temperature > 0.0f);
    if (s.params.repetition_penalty != 1.0f) penalties = true, pen_total += s.penalty_tokens.size();
    top_n = std::max<int32_t>(top_n, static_cast<int32_t>(std::min<int64_t>(s.top_n, V)));
  }

  // Inputs: SampleRow[R] | int32 offsets[R + 1] | int32 penalty tokens | uint8 masks[num_masks][mask_bytes] |
  // int32 adjust offsets[R + 1] | LogitAdjust[adjust_total].
  const Packed in{sizeof(SampleRow) * R, sizeof(int32_t) * (R + 1), sizeof(int32_t) * std::max<size_t>(pen_total, 1),
                  static_cast<size_t>(std::max<int64_t>(num_masks * mask_bytes, 1)), sizeof(int32_t) * (R + 1),
                  sizeof(LogitAdjust) * std::max<size_t>(adjust_total, 1)};
  sbuf_.host_in.ensure(in.bytes());
  sbuf_.in.ensure(in.bytes());
  void* hin = sbuf_.host_in.as<void>();
  auto* hp = in.part<SampleRow>(hin, 0);
  auto* hoff = in.part<int32_t>(hin, 1);
  auto* htok = in.part<int32_t>(hin, 2);
  auto* hmask = in.part<uint8_t>(hin, 3);
  auto* hadj_off = in.part<int32_t>(hin, 4);
  auto* hadj = in.part<LogitAdjust>(hin, 5);
  hoff[0] = 0;
  hadj_off[0] = 0;
  int32_t next_mask = 0;
  for (int64_t r = 0; r < R; ++r) {
    const cpu::SamplingParams& q = rows[r].params;
    const bool on_host = host[r];
    int32_t mask_index = -1;
    if (!on_host && !q.allowed_mask.empty()) {
      mask_index = next_mask++;
      uint8_t* m = hmask + static_cast<int64_t>(mask_index) * mask_bytes;
      const size_t n = std::min<size_t>(q.allowed_mask.size(), static_cast<size_t>(mask_bytes));
      std::memcpy(m, q.allowed_mask.data(), n);
      std::memset(m + n, 0, static_cast<size_t>(mask_bytes) - n);  // tokens past the mask are not allowed
    }
    hp[r] = SampleRow{q.temperature, q.top_k, q.top_p, on_host ? 1.0f : q.repetition_penalty,
                      on_host ? 0 : static_cast<int32_t>(q.do_sample), mask_index, q.seed, q.draw_index,
                      on_host ? 0.0f : q.frequency_penalty, on_host ? 0.0f : q.presence_penalty};
    std::copy(adjust[r].begin(), adjust[r].end(), hadj + hadj_off[r]);
    hadj_off[r + 1] = hadj_off[r] + static_cast<int32_t>(adjust[r].size());
    int32_t n = 0;
    if (!on_host && q.repetition_penalty != 1.0f) {
      n = static_cast<int32_t>(rows[r].penalty_tokens.size());
      std::memcpy(htok + hoff[r], rows[r].penalty_tokens.data(), sizeof(int32_t) * n);
    }
    hoff[r + 1] = hoff[r] + n;
  }
  void* din = sbuf_.in.get();
  const auto* dp = in.part<const SampleRow>(din, 0);
  const auto* doff = in.part<const int32_t>(din, 1);
  const auto* dtok = in.part<const int32_t>(din, 2);
  LogitsExtras extras;
  if (num_masks > 0) extras.masks = in.part<const uint8_t>(din, 3), extras.mask_bytes = mask_bytes;
  if (adjust_total > 0) extras.adjust_offsets = in.part<const int32_t>(din, 4), extras.adjustments = in.part<const LogitAdjust>(din, 5);
  WEFT_CUDA_CHECK(cudaMemcpyAsync(din, hin, in.bytes(), cudaMemcpyHostToDevice, stream_));

  // Outputs: int32 token[R] | float logprob[R] | int32 top_ids[R * top_n] | float top_lp[R * top_n].
  const size_t tops = static_cast<size_t>(R) * top_n;
  const Packed out_layout{sizeof(int32_t) * R, sizeof(float) * R, sizeof(int32_t) * tops, sizeof(float) * tops};
  sbuf_.out.ensure(out_layout.bytes());
  sbuf_.host_out.ensure(out_layout.bytes());
  void* dout = sbuf_.out.get();
  auto* d_token = out_layout.part<int32_t>(dout, 0);
  auto* d_lp = out_layout.part<float>(dout, 1);
  auto* d_top_ids = out_layout.part<int32_t>(dout, 2);
  auto* d_top_lp = out_layout.part<float>(dout, 3);

  const float* src = logits;
  const bool argmax_only = greedy_only && top_n == 0;
  // sample_rows needs processed rows (-0 -> +0 for the sort), argmax only when penalties, adjustments or masks
  // change the values.
  if (penalties || num_masks > 0 || adjust_total > 0 || !argmax_only) {
    sbuf_.processed.ensure(sizeof(float) * R * V);
    WEFT_CUDA_CHECK(logits_process(logits, DType::kF32, R, V, V, dp, penalties ? doff : nullptr, dtok,
                                   sbuf_.processed.as<float>(), stream_, &extras));
    src = sbuf_.processed.as<float>();
  }
  if (argmax_only) {
    WEFT_CUDA_CHECK(argmax_rows(src, DType::kF32, R, V, V, d_token, d_lp, stream_));
  } else {
    size_t ws = 0;
    WEFT_CUDA_CHECK(sample_workspace_bytes(R, V, &ws));
    sbuf_.workspace.ensure(ws);
    WEFT_CUDA_CHECK(sample_rows(src, R, V, dp, sbuf_.workspace.get(), sbuf_.workspace.bytes(), d_token, d_lp, top_n,
                                d_top_ids, d_top_lp, stream_));
  }
  void* hout = sbuf_.host_out.as<void>();
  WEFT_CUDA_CHECK(cudaMemcpyAsync(hout, dout, out_layout.bytes(), cudaMemcpyDeviceToHost, stream_));
  std::vector<std::vector<float>> host_logits(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r) {
    if (!host[r]) continue;
    host_logits[r].resize(static_cast<size_t>(V));
    WEFT_CUDA_CHECK(cudaMemcpyAsync(host_logits[r].data(), logits + r * V, sizeof(float) * V, cudaMemcpyDeviceToHost,
                                    stream_));
  }
  WEFT_CUDA_CHECK(cudaStreamSynchronize(stream_));

  const auto* token = out_layout.part<const int32_t>(hout, 0);
  const auto* lp = out_layout.part<const float>(hout, 1);
  const auto* top_ids = out_layout.part<const int32_t>(hout, 2);
  const auto* top_lp = out_layout.part<const float>(hout, 3);
  std::vector<cpu::SampleResult> out(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r) {
    const RowSampling& s = rows[r];
    if (!host_logits[r].empty()) {
      out[r] = cpu::sample_token(host_logits[r].data(), V, s.params, s.penalty_tokens.data(),
                                 static_cast<int64_t>(s.penalty_tokens.size()), s.top_n);
      continue;
    }
    out[r].token = token[r];
    out[r].logprob = lp[r];
    const int64_t n = std::min<int64_t>(s.top_n, V);
    for (int64_t i = 0; i < n; ++i) out[r].top.emplace_back(top_ids[r * top_n + i], top_lp[r * top_n + i]);
  }
  return out;
}

}  // namespace weft::cuda
