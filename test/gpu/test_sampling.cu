// Logits processing, greedy argmax and seeded sampling against cpu/sampling.cc: the GPU must pick the same
// token as cpu::sample_token for the same processed distribution (same RNG, same sorted order, same rules).
#include <set>

#include "harness.h"

namespace gt {
namespace {
namespace wc = weft::cuda;
namespace cpu = weft::cpu;

wc::SampleRow row_params(float temp, int top_k, float top_p, float rp, bool sample, uint64_t seed, uint64_t draw) {
  wc::SampleRow r{};
  r.temperature = temp;
  r.top_k = top_k;
  r.top_p = top_p;
  r.repetition_penalty = rp;
  r.do_sample = sample ? 1 : 0;
  r.seed = seed;
  r.draw_index = draw;
  return r;
}
cpu::SamplingParams cpu_params(const wc::SampleRow& r) {
  cpu::SamplingParams p;
  p.temperature = r.temperature;
  p.top_k = r.top_k;
  p.top_p = r.top_p;
  p.repetition_penalty = r.repetition_penalty;
  p.do_sample = r.do_sample != 0;
  p.seed = r.seed;
  p.draw_index = r.draw_index;
  return p;
}
// The processing half of cpu::sample_token (penalty on the set of seen tokens, then temperature when sampling).
std::vector<float> process_ref(const float* logits, int64_t vocab, const wc::SampleRow& p,
                               const std::vector<int32_t>& pen) {
  std::vector<double> s(logits, logits + vocab);
  if (p.repetition_penalty != 1.0f) {
    for (int32_t t : std::set<int32_t>(pen.begin(), pen.end()))
      if (t >= 0 && t < vocab) s[t] = s[t] < 0 ? s[t] * p.repetition_penalty : s[t] / p.repetition_penalty;
  }
  if (p.do_sample && p.temperature > 0 && p.temperature != 1.0f)
    for (double& v : s) v /= p.temperature;
  return std::vector<float>(s.begin(), s.end());
}

struct Sampled {
  std::vector<int32_t> token, top_ids;
  std::vector<float> logprob, top_lp;
};
Sampled gpu_sample(const DevBuf& processed, int64_t rows, int64_t vocab, const std::vector<wc::SampleRow>& params,
                   int top_n) {
  size_t ws_bytes = 0;
  CK(wc::sample_workspace_bytes(rows, vocab, &ws_bytes));
  DevBuf ws(ws_bytes), dp = upload_vec(params), tok(rows * 4), lp(rows * 4), tid(rows * top_n * 4 + 4),
      tlp(rows * top_n * 4 + 4);
  CK(wc::sample_rows(processed.as<float>(), rows, vocab, dp.as<wc::SampleRow>(), ws.get(), ws_bytes,
                     tok.as<int32_t>(), lp.as<float>(), top_n, tid.as<int32_t>(), tlp.as<float>(), nullptr));
  return {download_vec<int32_t>(tok.get(), rows), download_vec<int32_t>(tid.get(), rows * top_n),
          download_vec<float>(lp.get(), rows), download_vec<float>(tlp.get(), rows * top_n)};
}

void processing(std::mt19937& rng) {
  guard("logits_process bf16 strided", [&] {
    const int64_t R = 4, V = 5000, stride = 5008;
    const auto logits = randn(R * stride, rng, 3.0f, DType::kBF16);
    const std::vector<std::vector<int32_t>> pen = {{5, 5, 17, 4999, -3, 6000}, {}, {}, {}};
    std::vector<int32_t> p2;
    for (int i = 1; i <= 100; ++i) p2.push_back(i * 37 % V);
    const std::vector<wc::SampleRow> params = {row_params(1.0f, 0, 1.0f, 1.3f, false, 0, 0),
                                               row_params(0.7f, 0, 1.0f, 1.0f, true, 0, 0),
                                               row_params(1.5f, 0, 1.0f, 0.8f, true, 0, 0),
                                               row_params(0.5f, 0, 1.0f, 1.0f, false, 0, 0)};
    std::vector<int32_t> off = {0}, toks;
    std::vector<float> ref;
    for (int64_t r = 0; r < R; ++r) {
      const auto& pr = r == 2 ? p2 : pen[r];
      toks.insert(toks.end(), pr.begin(), pr.end());
      off.push_back(static_cast<int32_t>(toks.size()));
      const auto row = process_ref(&logits[r * stride], V, params[r], pr);
      ref.insert(ref.end(), row.begin(), row.end());
    }
    DevBuf dl = upload(logits, DType::kBF16), dp = upload_vec(params), doff = upload_vec(off),
           dt = upload_vec(toks), out(R * V * 4);
    CK(wc::logits_process(dl.get(), DType::kBF16, R, V, stride, dp.as<wc::SampleRow>(), doff.as<int32_t>(),
                          dt.as<int32_t>(), out.as<float>(), nullptr));
    expect_close("logits_process bf16 strided", download(out.get(), R * V, DType::kF32), ref, 1e-6);
  });
  guard("logits_process structured-output masks (+ penalties), then sampling == cpu::sample_token", [&] {
    // Rows 0 and 2 carry masks (indices 1 and 0: any order), row 1 none; row 0's penalty hits allowed and masked
    // tokens. The mask bytes are V/8 rounded up; the last row's mask is shorter than the vocab on the CPU side.
    const int64_t R = 3, V = 5003, MB = (V + 7) / 8;
    const auto logits = randn(R * V, rng, 3.0f, DType::kF32);
    std::vector<uint8_t> masks(2 * MB, 0);
    for (int64_t t = 0; t < V; ++t) {
      if (t % 3 == 0) masks[MB + t / 8] |= 1u << (t % 8);         // row 0: every third token
      if (t % 7 == 1 && t < 4000) masks[t / 8] |= 1u << (t % 8);   // row 2: every seventh, none past 4000
    }
    std::vector<wc::SampleRow> params = {row_params(1.0f, 0, 1.0f, 1.4f, false, 0, 0),
                                         row_params(0.9f, 0, 0.9f, 1.0f, true, 5, 2),
                                         row_params(1.2f, 20, 0.95f, 1.0f, true, 7, 3)};
    params[0].mask_index = 1;
    params[1].mask_index = -1;
    params[2].mask_index = 0;
    const std::vector<int32_t> pen = {0, 1, 2, 3, 3, 300, 301};
    const std::vector<int32_t> off = {0, static_cast<int32_t>(pen.size()), static_cast<int32_t>(pen.size()),
                                      static_cast<int32_t>(pen.size())};
    DevBuf dl = upload(logits, DType::kF32), dp = upload_vec(params), doff = upload_vec(off), dt = upload_vec(pen),
           dm = upload_vec(masks), out(R * V * 4);
    wc::LogitsExtras extras;
    extras.masks = dm.as<uint8_t>();
    extras.mask_bytes = MB;
    CK(wc::logits_process(dl.get(), DType::kF32, R, V, V, dp.as<wc::SampleRow>(), doff.as<int32_t>(), dt.as<int32_t>(),
                          out.as<float>(), nullptr, &extras));
    const auto got = download(out.get(), R * V, DType::kF32);
    bool masked_ok = true;
    std::vector<float> g, ref;
    for (int64_t r = 0; r < R; ++r) {
      const auto row = process_ref(&logits[r * V], V, params[r], r == 0 ? pen : std::vector<int32_t>{});
      const uint8_t* m = params[r].mask_index < 0 ? nullptr : &masks[params[r].mask_index * MB];
      for (int64_t t = 0; t < V; ++t) {
        const bool allowed = !m || ((m[t / 8] >> (t % 8)) & 1);
        if (allowed) g.push_back(got[r * V + t]), ref.push_back(row[t]);
        else masked_ok = masked_ok && got[r * V + t] == -INFINITY;
      }
    }
    expect("logits_process masks: masked-out tokens are -inf", masked_ok);
    expect_close("logits_process masks: allowed tokens processed as without a mask", g, ref, 1e-6);
    const Sampled s = gpu_sample(out, R, V, params, 3);
    bool same = true;
    char detail[200] = "";
    for (int64_t r = 0; r < R; ++r) {
      cpu::SamplingParams cp = cpu_params(params[r]);
      if (params[r].mask_index >= 0) {
        const auto* m = &masks[params[r].mask_index * MB];
        cp.allowed_mask.assign(m, m + (r == 2 ? 500 : MB));  // row 2: tokens past byte 500 count as not allowed
      }
      const auto want = cpu::sample_token(&logits[r * V], V, cp, r == 0 ? pen.data() : nullptr,
                                          r == 0 ? static_cast<int64_t>(pen.size()) : 0, 3);
      if (want.token != s.token[r] || std::fabs(want.logprob - s.logprob[r]) > 1e-4f) {
        same = false;
        std::snprintf(detail, sizeof detail, "row %ld: gpu %d (%g) cpu %d (%g)", static_cast<long>(r), s.token[r],
                      s.logprob[r], want.token, want.logprob);
      }
    }
    expect("masked rows: GPU sampling == cpu::sample_token with allowed_mask", same, detail);
  });
  guard("logits_process frequency / presence penalties and logit bias == cpu::sample_token", [&] {
    // Row 0: repetition 1.3 + frequency 0.7 / presence 0.4 on the generated tokens (the last 4 of the history)
    // + a bias; row 1: bias only (one token banned, one forced up), sampled; row 2: nothing.
    const int64_t R = 3, V = 3001;
    const auto logits = randn(R * V, rng, 3.0f, DType::kF32);
    const std::vector<int32_t> hist = {10, 11, 12, 11, 20, 11, 30};  // generated: 11, 20, 11, 30
    std::vector<wc::SampleRow> params = {row_params(1.0f, 0, 1.0f, 1.3f, false, 0, 4),
                                         row_params(0.9f, 0, 0.95f, 1.0f, true, 9, 2),
                                         row_params(1.0f, 0, 1.0f, 1.0f, false, 0, 0)};
    for (auto& q : params) q.mask_index = -1;
    params[0].frequency_penalty = 0.7f;
    params[0].presence_penalty = 0.4f;
    // Row 0: 11 x2 (in history), 20, 30 counted; 10 and 12 only repetition-penalised (pass 2); 500 biased.
    const std::vector<wc::LogitAdjust> adj = {
        {11, 2, 0.0f, wc::kAdjustRepetition}, {20, 1, 0.0f, wc::kAdjustRepetition}, {30, 1, 2.5f, wc::kAdjustRepetition | wc::kAdjustBias},
        {500, 0, -1.5f, wc::kAdjustBias},
        {7, 0, -100.0f, wc::kAdjustBias}, {8, 0, 100.0f, wc::kAdjustBias}};
    const std::vector<int32_t> adj_off = {0, 4, 6, 6};
    const std::vector<int32_t> off = {0, static_cast<int32_t>(hist.size()), static_cast<int32_t>(hist.size()),
                                      static_cast<int32_t>(hist.size())};
    DevBuf dl = upload(logits, DType::kF32), dp = upload_vec(params), doff = upload_vec(off), dt = upload_vec(hist),
           dao = upload_vec(adj_off), dadj = upload_vec(adj), out(R * V * 4);
    wc::LogitsExtras extras;
    extras.adjust_offsets = dao.as<int32_t>();
    extras.adjustments = dadj.as<wc::LogitAdjust>();
    CK(wc::logits_process(dl.get(), DType::kF32, R, V, V, dp.as<wc::SampleRow>(), doff.as<int32_t>(), dt.as<int32_t>(),
                          out.as<float>(), nullptr, &extras));
    const Sampled s = gpu_sample(out, R, V, params, 4);
    bool same = true;
    char detail[200] = "";
    for (int64_t r = 0; r < R; ++r) {
      cpu::SamplingParams cp = cpu_params(params[r]);
      cp.frequency_penalty = params[r].frequency_penalty;
      cp.presence_penalty = params[r].presence_penalty;
      if (r == 0) cp.logit_bias = {{30, 2.5f}, {500, -1.5f}};
      if (r == 1) cp.logit_bias = {{7, -100.0f}, {8, 100.0f}};
      const auto want = cpu::sample_token(&logits[r * V], V, cp, r == 0 ? hist.data() : nullptr,
                                          r == 0 ? static_cast<int64_t>(hist.size()) : 0, 4);
      std::vector<int32_t> want_top;
      for (const auto& [t, lp] : want.top) want_top.push_back(t);
      const std::vector<int32_t> got_top(s.top_ids.begin() + r * 4, s.top_ids.begin() + r * 4 + 4);
      if (want.token != s.token[r] || std::fabs(want.logprob - s.logprob[r]) > 1e-4f || want_top != got_top) {
        same = false;
        std::snprintf(detail, sizeof detail, "row %ld: gpu %d (%g) cpu %d (%g)", static_cast<long>(r), s.token[r],
                      s.logprob[r], want.token, want.logprob);
      }
    }
    expect("additive penalties and bias on the GPU == cpu::sample_token", same, detail);
  });
  for (DType d : {DType::kF32, DType::kBF16}) {
    const std::string name = std::string("argmax ties -> lowest id, logprob ") + dname(d);
    guard(name, [&] {
      const int64_t R = 3, V = 50000;
      auto logits = randn(R * V, rng, 2.0f, d);
      for (int64_t r = 0; r < R; ++r)
        for (int64_t id : {int64_t{40000}, int64_t{9}, int64_t{7} + r}) logits[r * V + id] = 20.0f;
      DevBuf dl = upload(logits, d), tok(R * 4), lp(R * 4);
      CK(wc::argmax_rows(dl.get(), d, R, V, V, tok.as<int32_t>(), lp.as<float>(), nullptr));
      const auto got = download_vec<int32_t>(tok.get(), R);
      const auto gl = download_vec<float>(lp.get(), R);
      bool ok = true;
      char detail[160] = "";
      for (int64_t r = 0; r < R; ++r) {
        const auto ref = cpu::sample_token(&logits[r * V], V, cpu::SamplingParams{}, nullptr, 0, 0);
        if (ref.token != got[r] || std::fabs(ref.logprob - gl[r]) > 1e-5f) {
          ok = false;
          std::snprintf(detail, sizeof detail, "row %ld: gpu %d (%g) cpu %d (%g)", static_cast<long>(r), got[r],
                        gl[r], ref.token, ref.logprob);
        }
      }
      expect(name, ok, detail);
    });
  }
}

// Processed logits straight to both sides: tokens must be identical, logprobs and top-n equal to float accuracy.
void sampling_vs_cpu(std::mt19937& rng) {
  const int64_t R = 48, V = 32000;
  const int top_ks[] = {0, 1, 40, 32000, 50000};
  const float top_ps[] = {1.0f, 0.9f, 0.5f, 0.0f};
  for (int round = 0; round < 4; ++round) {
    const std::string name = "sample_rows == cpu::sample_token, round " + std::to_string(round);
    guard(name, [&] {
      std::vector<float> logits(R * V);
      std::vector<wc::SampleRow> params(R);
      for (int64_t r = 0; r < R; ++r) {
        const float sc = r % 3 == 0 ? 0.5f : r % 3 == 1 ? 3.0f : 8.0f;  // flat, typical, peaky rows
        const auto row = randn(V, rng, sc);
        std::copy(row.begin(), row.end(), &logits[r * V]);
        if (r % 5 == 0)  // ties at the top: order must fall back to the lower id
          for (int64_t id : {int64_t{300}, int64_t{20}, int64_t{31999}, int64_t{21}}) logits[r * V + id] = 40.0f;
        params[r] = row_params(1.0f, top_ks[(r + round) % 5], top_ps[(r / 5 + round) % 4], 1.0f, r % 11 != 3,
                               rng(), static_cast<uint64_t>(round * 1000 + r));
      }
      DevBuf dl = upload(logits, DType::kF32);
      const int top_n = 5;
      const Sampled g = gpu_sample(dl, R, V, params, top_n);
      int same = 0;
      std::string first_diff;
      for (int64_t r = 0; r < R; ++r) {
        const auto ref = cpu::sample_token(&logits[r * V], V, cpu_params(params[r]), nullptr, 0, top_n);
        bool ok = ref.token == g.token[r] &&
                  std::fabs(ref.logprob - g.logprob[r]) <= 1e-5f * (1 + std::fabs(ref.logprob));
        for (int i = 0; i < top_n; ++i)
          ok = ok && ref.top[i].first == g.top_ids[r * top_n + i] &&
               std::fabs(ref.top[i].second - g.top_lp[r * top_n + i]) <= 1e-5f * (1 + std::fabs(ref.top[i].second));
        same += ok;
        if (!ok && first_diff.empty())
          first_diff = "row " + std::to_string(r) + ": gpu " + std::to_string(g.token[r]) + " cpu " +
                       std::to_string(ref.token);
      }
      expect(name, same == R, std::to_string(same) + "/" + std::to_string(R) + " rows equal " + first_diff);
    });
  }
}

// The whole GPU path (penalty + temperature in fp32, then sampling) against the CPU on raw logits (double).
void pipeline_vs_cpu(std::mt19937& rng) {
  guard("logits_process + sample_rows == cpu::sample_token on raw logits", [&] {
    const int64_t R = 16, V = 32000;
    std::vector<float> logits = randn(R * V, rng, 3.0f);
    std::vector<wc::SampleRow> params(R);
    std::vector<int32_t> off = {0}, toks;
    std::vector<std::vector<int32_t>> pen(R);
    for (int64_t r = 0; r < R; ++r) {
      for (int i = 0; i < 64; ++i) pen[r].push_back(static_cast<int32_t>(rng() % V));
      toks.insert(toks.end(), pen[r].begin(), pen[r].end());
      off.push_back(static_cast<int32_t>(toks.size()));
      params[r] = row_params(r % 2 ? 0.8f : 1.3f, r % 4 == 0 ? 0 : 50, r % 3 == 0 ? 0.95f : 1.0f, 1.2f, r != 5,
                             rng(), static_cast<uint64_t>(r));
    }
    DevBuf dl = upload(logits, DType::kF32), dp = upload_vec(params), doff = upload_vec(off), dt = upload_vec(toks),
           processed(R * V * 4);
    CK(wc::logits_process(dl.get(), DType::kF32, R, V, V, dp.as<wc::SampleRow>(), doff.as<int32_t>(),
                          dt.as<int32_t>(), processed.as<float>(), nullptr));
    const Sampled g = gpu_sample(processed, R, V, params, 0);
    int same = 0;
    for (int64_t r = 0; r < R; ++r) {
      const auto ref = cpu::sample_token(&logits[r * V], V, cpu_params(params[r]), pen[r].data(),
                                         static_cast<int64_t>(pen[r].size()), 0);
      same += ref.token == g.token[r];
    }
    expect("logits_process + sample_rows == cpu::sample_token on raw logits", same == R,
           std::to_string(same) + "/" + std::to_string(R) + " tokens equal");
  });
}

}  // namespace

void run_sampling_tests(std::mt19937& rng) {
  processing(rng);
  sampling_vs_cpu(rng);
  pipeline_vs_cpu(rng);
}

}  // namespace gt
