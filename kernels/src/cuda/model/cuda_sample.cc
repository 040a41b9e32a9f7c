// CudaModel::sample_on_device: the step's logits never leave the GPU. One host-to-device copy of the rows'
// sampling parameters (and repetition-penalty tokens), then logits_process and either argmax_rows (every row
// greedy, no top-n: no sort) or sample_rows (device radix sort, top-k/top-p, seeded draw — the CPU's exact
// rules, see sampling.cu), and one device-to-host copy of tokens, logprobs and top-n. Rows that ask for
// typical_p (not done on the GPU) copy their logits row back and are sampled by cpu::sample_token.
#include <algorithm>
#include <cstring>

#include "cuda/model/cuda_model.h"
#include "cuda/runtime/check.h"

namespace weft::cuda {

namespace {
size_t align256(size_t n) { return round_up(n, 256); }
}  // namespace

std::vector<cpu::SampleResult> CudaModel::sample_on_device(const StepPlan& p, const std::vector<RowSampling>& rows) {
  const int64_t R = p.wanted_logits, V = cfg_.vocab;
  const float* logits = logits_f32();
  if (R == 0) {
    WEFT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return {};
  }
  bool greedy_only = true, penalties = false;
  int32_t top_n = 0;
  size_t pen_total = 0;
  for (int64_t r = 0; r < R; ++r) {
    const RowSampling& s = rows[r];
    if (s.params.typical_p < 1.0f) continue;  // host row
    greedy_only = greedy_only && !(s.params.do_sample && s.params.temperature > 0.0f);
    if (s.params.repetition_penalty != 1.0f) penalties = true, pen_total += s.penalty_tokens.size();
    top_n = std::max<int32_t>(top_n, static_cast<int32_t>(std::min<int64_t>(s.top_n, V)));
  }

  // Inputs: SampleRow[R] | int32 offsets[R + 1] | int32 penalty tokens.
  const size_t params_b = align256(sizeof(SampleRow) * R), off_b = align256(sizeof(int32_t) * (R + 1));
  const size_t in_b = params_b + off_b + sizeof(int32_t) * std::max<size_t>(pen_total, 1);
  sbuf_.host_in.ensure(in_b);
  sbuf_.in.ensure(in_b);
  char* hin = sbuf_.host_in.as<char>();
  auto* hp = reinterpret_cast<SampleRow*>(hin);
  auto* hoff = reinterpret_cast<int32_t*>(hin + params_b);
  auto* htok = reinterpret_cast<int32_t*>(hin + params_b + off_b);
  hoff[0] = 0;
  for (int64_t r = 0; r < R; ++r) {
    const cpu::SamplingParams& q = rows[r].params;
    const bool host = q.typical_p < 1.0f;
    hp[r] = SampleRow{q.temperature, q.top_k, q.top_p, host ? 1.0f : q.repetition_penalty,
                      host ? 0 : static_cast<int32_t>(q.do_sample), 0, q.seed, q.draw_index};
    int32_t n = 0;
    if (!host && q.repetition_penalty != 1.0f) {
      n = static_cast<int32_t>(rows[r].penalty_tokens.size());
      std::memcpy(htok + hoff[r], rows[r].penalty_tokens.data(), sizeof(int32_t) * n);
    }
    hoff[r + 1] = hoff[r] + n;
  }
  char* din = sbuf_.in.as<char>();
  const auto* dp = reinterpret_cast<const SampleRow*>(din);
  const auto* doff = reinterpret_cast<const int32_t*>(din + params_b);
  const auto* dtok = reinterpret_cast<const int32_t*>(din + params_b + off_b);
  WEFT_CUDA_CHECK(cudaMemcpyAsync(din, hin, in_b, cudaMemcpyHostToDevice, stream_));

  // Outputs: int32 token[R] | float logprob[R] | int32 top_ids[R * top_n] | float top_lp[R * top_n].
  const size_t tok_b = align256(sizeof(int32_t) * R), lp_b = align256(sizeof(float) * R);
  const size_t tid_b = align256(sizeof(int32_t) * R * top_n), out_b = tok_b + lp_b + 2 * tid_b;
  sbuf_.out.ensure(out_b);
  sbuf_.host_out.ensure(out_b);
  char* dout = sbuf_.out.as<char>();
  auto* d_token = reinterpret_cast<int32_t*>(dout);
  auto* d_lp = reinterpret_cast<float*>(dout + tok_b);
  auto* d_top_ids = reinterpret_cast<int32_t*>(dout + tok_b + lp_b);
  auto* d_top_lp = reinterpret_cast<float*>(dout + tok_b + lp_b + tid_b);

  const float* src = logits;
  const bool argmax_only = greedy_only && top_n == 0;
  // sample_rows needs processed rows (-0 -> +0 for the sort), argmax only when penalties change the values.
  if (penalties || !argmax_only) {
    sbuf_.processed.ensure(sizeof(float) * R * V);
    WEFT_CUDA_CHECK(logits_process(logits, DType::kF32, R, V, V, dp, penalties ? doff : nullptr, dtok,
                                   sbuf_.processed.as<float>(), stream_));
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
  char* hout = sbuf_.host_out.as<char>();
  WEFT_CUDA_CHECK(cudaMemcpyAsync(hout, dout, out_b, cudaMemcpyDeviceToHost, stream_));
  std::vector<std::vector<float>> host_logits(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r) {
    if (rows[r].params.typical_p >= 1.0f) continue;
    host_logits[r].resize(static_cast<size_t>(V));
    WEFT_CUDA_CHECK(cudaMemcpyAsync(host_logits[r].data(), logits + r * V, sizeof(float) * V, cudaMemcpyDeviceToHost,
                                    stream_));
  }
  WEFT_CUDA_CHECK(cudaStreamSynchronize(stream_));

  const auto* token = reinterpret_cast<const int32_t*>(hout);
  const auto* lp = reinterpret_cast<const float*>(hout + tok_b);
  const auto* top_ids = reinterpret_cast<const int32_t*>(hout + tok_b + lp_b);
  const auto* top_lp = reinterpret_cast<const float*>(hout + tok_b + lp_b + tid_b);
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
