// The CUDA MoE layer's routing and row bookkeeping on the CPU: the per-token choice (model/moe_route.h, which moe.cu's
// kernel and the CPU executor run) and the host
// grouping of routed rows by expert (cuda/model/moe_plan.cc), composed as cuda_moe.cc composes them (gather, each
// expert's GEMMs over its rows, SiLU·mul, the weighted combine through src_row / src_w), against a direct
// per-token MoE in double precision: softmax or sigmoid scores (choice bias, expert groups, routed scale), top-k,
// renormalisation, a shared expert, experts added in ascending order; gpt-oss's router logit bias (the choice it
// moves, weights as GptOssTopKRouter's softmax over the top k) with its expert biases and clamped SwiGLU; Llama 4's
// sigmoid routing without a choice bias whose weights scale the routed experts' inputs (moe_scale_rows, paired with
// the rows through src_row / src_w) while the outputs are added whole. Also: each
// expert's rows keep token order with their adapter entries, ties go to the lower expert, and a bad id is refused.
// Plain host code: built with g++ by test/unit/cuda-moe-host.test.ts. Prints "N cases, 0 failed".
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/moe_route.h"
#include "cuda/model/moe_plan.h"

using weft::cuda::plan_moe_rows;
using weft::moe::route_token;
using weft::moe::RouteParams;

static int cases = 0, failed = 0;
static void check(bool ok, const std::string& what) {
  ++cases;
  if (!ok) ++failed;
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
}

struct Shape {
  int T, E, k, H, I;
  bool renorm;
  bool sigmoid = false;
  int groups = 1, topk_groups = 1;
  float scale = 1.0f;
  bool shared = false, group_max = false;  // group_max: softmax groups ranked by their best probability (DeepSeek-V2)
  bool choice_bias = false;  // softmax ranked with a bias, renormalised by max(sum, renorm_min) (ERNIE 4.5 MoE)
  float renorm_min = 0.0f;
  // gpt-oss: the router's logit bias (the router GEMM's epilogue), experts' up and down biases, the clamped SwiGLU.
  bool gpt_oss = false;
  // Llama 4 (moe_scale_input): sigmoid routing with no choice bias; a routed expert reads its rows times their weights
  // and its output counts whole (the shared expert: unscaled, weight 1).
  bool scale_input = false;
  // Phi-3.5-MoE's sparsemixer: per stage the largest remaining logit, weighted by its softmax over the remaining
  // experts within mixer_threshold of it (relatively); not renormalised.
  bool sparsemixer = false;
  float mixer_threshold = 0.0f;
};

static double silu(double v) { return v / (1.0 + std::exp(-v)); }
// The experts' activation: SiLU·mul, or gpt-oss's clamped SwiGLU (cpu::clamped_swiglu; alpha 1.702, limit 7).
static double gated(const Shape& s, double g, double u) {
  if (!s.gpt_oss) return silu(g) * u;
  constexpr double kAlpha = 1.702, kLimit = 7.0;
  g = std::min(g, kLimit);
  u = std::clamp(u, -kLimit, kLimit);
  return g / (1.0 + std::exp(-kAlpha * g)) * (u + 1.0);
}

static void run(const Shape& s, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  auto draw = [&](size_t n, float scale) { std::vector<float> v(n); for (auto& x : v) x = nd(rng) * scale; return v; };
  const auto x = draw(size_t(s.T) * s.H, 1.0f), wr = draw(size_t(s.E) * s.H, 0.5f);
  const int held = s.E + (s.shared ? 1 : 0);
  const auto wup = draw(size_t(held) * 2 * s.I * s.H, 0.2f), wdown = draw(size_t(held) * s.H * s.I, 0.2f);
  std::vector<int32_t> entry(s.T);
  for (int t = 0; t < s.T; ++t) entry[t] = t < s.T / 3 ? -1 : t < 2 * s.T / 3 ? 1 : 0;  // three adapter runs

  // The router logits (float, as the GEMM's output; gpt-oss's bias added before its one rounding, as the GEMM's
  // epilogue adds it), then the kernel body per token. The logit bias, as large as the logits, moves the choice:
  // `unbiased` keeps the logits without it, to show it did.
  const auto logit_bias = s.gpt_oss ? draw(size_t(s.E), 2.0f) : std::vector<float>(size_t(s.E), 0.0f);
  std::vector<float> logits(size_t(s.T) * s.E), unbiased(logits.size());
  for (int t = 0; t < s.T; ++t)
    for (int e = 0; e < s.E; ++e) {
      double a = 0;
      for (int c = 0; c < s.H; ++c) a += double(x[t * s.H + c]) * wr[e * s.H + c];
      logits[t * s.E + e] = float(a + logit_bias[e]);
      unbiased[t * s.E + e] = float(a);
    }
  RouteParams rp;
  rp.experts = s.E, rp.k = s.k, rp.renormalize = s.renorm, rp.sigmoid = s.sigmoid, rp.shared = s.shared;
  rp.groups = s.groups, rp.topk_groups = s.topk_groups, rp.routed_scale = s.scale, rp.group_max = s.group_max;
  rp.choice_bias = s.choice_bias, rp.renorm_min = s.renorm_min;
  rp.sparsemixer = s.sparsemixer, rp.mixer_threshold = s.mixer_threshold;
  const int K = s.k + (s.shared ? 1 : 0), EH = s.E + (s.shared ? 1 : 0);  // experts run per token, experts held
  const auto bias = draw(size_t(s.E), 0.3f);
  const bool has_bias = (s.sigmoid && !s.scale_input) || s.choice_bias;  // router_has_bias: not Llama 4's
  // Up biases of N(0, 4): some gate and up values pass the clamp's limit of 7.
  const auto up_bias = s.gpt_oss ? draw(size_t(held) * 2 * s.I, 4.0f) : std::vector<float>(size_t(held) * 2 * s.I, 0.0f);
  const auto down_bias = s.gpt_oss ? draw(size_t(held) * s.H, 1.0f) : std::vector<float>(size_t(held) * s.H, 0.0f);
  std::vector<float> weights(size_t(s.T) * K);
  std::vector<int32_t> ids(size_t(s.T) * K);
  for (int t = 0; t < s.T; ++t)
    route_token([&](int e) { return logits[t * s.E + e]; }, [&](int e) { return has_bias ? bias[e] : 0.0f; }, rp,
                &ids[t * K], &weights[t * K]);

  // cuda_moe.cc's composition.
  const int64_t N = int64_t(s.T) * K;
  std::vector<int32_t> rows(N), entries(N), src_row(N), src_w(N);
  const std::vector<int64_t> off = plan_moe_rows(ids.data(), s.T, K, EH, entry.data(), rows.data(), entries.data(),
                                                 src_row.data(), src_w.data());
  // Llama 4: moe_scale_rows' pairing of each routed row with its weight (the shared expert's weight is 1).
  std::vector<double> row_scale(N, 1.0);
  if (s.scale_input)
    for (int64_t i = 0; i < N; ++i) row_scale[src_row[i]] = weights[src_w[i]];
  std::vector<double> y(size_t(N) * s.H, 0.0);
  for (int e = 0; e < EH; ++e)
    for (int64_t r = off[e]; r < off[e + 1]; ++r) {
      std::vector<double> xr(s.H);
      for (int c = 0; c < s.H; ++c) xr[c] = double(x[size_t(rows[r]) * s.H + c]) * row_scale[r];
      std::vector<double> act(s.I);
      for (int i = 0; i < s.I; ++i) {
        double g = up_bias[size_t(e) * 2 * s.I + i], u = up_bias[size_t(e) * 2 * s.I + s.I + i];  // the GEMM's bias
        for (int c = 0; c < s.H; ++c) {
          g += xr[c] * wup[(size_t(e) * 2 * s.I + i) * s.H + c];
          u += xr[c] * wup[(size_t(e) * 2 * s.I + s.I + i) * s.H + c];
        }
        act[i] = gated(s, g, u);
      }
      for (int c = 0; c < s.H; ++c) {
        double d = down_bias[size_t(e) * s.H + c];  // rank 0's down GEMM adds it (one rank here)
        for (int i = 0; i < s.I; ++i) d += act[i] * wdown[(size_t(e) * s.H + c) * s.I + i];
        y[size_t(r) * s.H + c] = d;
      }
    }
  std::vector<double> out(size_t(s.T) * s.H, 0.0);
  for (int t = 0; t < s.T; ++t)
    for (int j = 0; j < K; ++j)
      for (int c = 0; c < s.H; ++c)  // Llama 4: moe_combine without weights
        out[t * s.H + c] += (s.scale_input ? 1.0 : weights[src_w[t * K + j]]) * y[size_t(src_row[t * K + j]) * s.H + c];

  // The direct MoE, per token.
  double worst = 0, worst_w = 0;
  bool order_ok = true, grouping_ok = true, bias_moved = false, mask_mattered = false;
  for (int t = 0; t < s.T; ++t) {
    // transformers' routing in double: scores, choice values, the group mask, then the top k by choice value.
    std::vector<double> score(s.E), choice(s.E);
    double mx = -INFINITY, sum = 0;
    for (int e = 0; e < s.E; ++e) mx = std::max(mx, double(logits[t * s.E + e]));
    for (int e = 0; e < s.E; ++e) sum += std::exp(logits[t * s.E + e] - mx);
    for (int e = 0; e < s.E; ++e) {
      const double l = logits[t * s.E + e];
      score[e] = s.sigmoid ? 1.0 / (1.0 + std::exp(-l)) : std::exp(l - mx) / sum;
      choice[e] = has_bias ? score[e] + bias[e] : score[e];
    }
    if (s.groups > 1) {
      const int per = s.E / s.groups;
      std::vector<double> gs(s.groups);
      for (int g = 0; g < s.groups; ++g) {
        std::vector<double> v(choice.begin() + g * per, choice.begin() + (g + 1) * per);
        std::sort(v.rbegin(), v.rend());
        gs[g] = s.group_max ? v[0] : v[0] + v[1];
      }
      std::vector<int> gi(s.groups);
      std::iota(gi.begin(), gi.end(), 0);
      std::stable_sort(gi.begin(), gi.end(), [&](int a, int b) { return gs[a] > gs[b]; });
      std::vector<bool> on(s.groups, false);
      for (int i = 0; i < s.topk_groups; ++i) on[gi[i]] = true;
      for (int e = 0; e < s.E; ++e) if (!on[e / per]) choice[e] = -INFINITY;
    }
    std::vector<int> idx(s.E);
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return choice[a] > choice[b]; });
    double top = 0, top_exp = 0;
    for (int j = 0; j < s.k; ++j) top += score[idx[j]], top_exp += std::exp(logits[t * s.E + idx[j]] - mx);
    // sparsemixer (transformers' sparsemixer, eval): stage j's expert idx[j] (the k largest logits are its choices),
    // weighted by exp(0) / the sum of exp(l - m) over the experts not chosen before whose (m - l) / max(|l|, m) is
    // not above the threshold.
    std::vector<double> mixer_w(s.E, 0.0);
    for (int j = 0; s.sparsemixer && j < s.k; ++j) {
      const double m = logits[t * s.E + idx[j]];
      double sm = 0;
      int kept = 0;
      for (int jj = j; jj < s.E; ++jj) {
        const double l = logits[t * s.E + idx[jj]];
        if ((m - l) / std::max(std::abs(l), m) <= s.mixer_threshold) sm += std::exp(l - m), ++kept;
      }
      mixer_w[idx[j]] = 1.0 / sm;
      mask_mattered = mask_mattered || (kept > 1 && kept < s.E - j);
    }
    auto want_w = [&](int e) {
      if (s.sparsemixer) return mixer_w[e];
      // gpt-oss (GptOssTopKRouter): the top k of the biased logits, then a softmax over those k alone.
      if (s.gpt_oss) return std::exp(logits[t * s.E + e] - mx) / top_exp;
      const double w = s.renorm ? score[e] / (s.sigmoid ? top + 1e-20 : s.renorm_min > 0 ? std::max(top, double(s.renorm_min)) : top)
                                : score[e];
      return w * s.scale;
    };
    if (s.gpt_oss) {  // the choice the logits without their bias would make
      std::vector<int> plain(s.E);
      std::iota(plain.begin(), plain.end(), 0);
      std::stable_sort(plain.begin(), plain.end(), [&](int a, int b) { return unbiased[t * s.E + a] > unbiased[t * s.E + b]; });
      std::sort(plain.begin(), plain.begin() + s.k);
      std::vector<int> biased(idx.begin(), idx.begin() + s.k);
      std::sort(biased.begin(), biased.end());
      bias_moved = bias_moved || !std::equal(biased.begin(), biased.end(), plain.begin());
    }
    for (int j = 0; j < s.k; ++j) {
      order_ok = order_ok && ids[t * K + j] == idx[j];
      worst_w = std::max(worst_w, std::abs(weights[t * K + j] - want_w(idx[j])));
    }
    if (s.shared) order_ok = order_ok && ids[t * K + s.k] == s.E && weights[t * K + s.k] == 1.0f;
    std::vector<int> chosen(idx.begin(), idx.begin() + s.k);
    std::sort(chosen.begin(), chosen.end());
    if (s.shared) chosen.push_back(s.E);  // added last, weight 1
    for (int c = 0; c < s.H; ++c) {
      double ref = 0;
      for (int e : chosen) {
        const double w = e == s.E ? 1.0 : want_w(e);
        const double in_scale = s.scale_input ? w : 1.0, out_w = s.scale_input ? 1.0 : w;  // Llama 4: on the input
        std::vector<double> act(s.I);
        for (int i = 0; i < s.I; ++i) {
          double g = up_bias[size_t(e) * 2 * s.I + i], u = up_bias[size_t(e) * 2 * s.I + s.I + i];
          for (int cc = 0; cc < s.H; ++cc) {
            g += double(x[t * s.H + cc]) * in_scale * wup[(size_t(e) * 2 * s.I + i) * s.H + cc];
            u += double(x[t * s.H + cc]) * in_scale * wup[(size_t(e) * 2 * s.I + s.I + i) * s.H + cc];
          }
          act[i] = gated(s, g, u);
        }
        double d = down_bias[size_t(e) * s.H + c];  // the expert's output, bias included, times its weight
        for (int i = 0; i < s.I; ++i) d += act[i] * wdown[(size_t(e) * s.H + c) * s.I + i];
        ref += out_w * d;
      }
      worst = std::max(worst, std::abs(out[t * s.H + c] - ref));
    }
    // src_row of the token's j-th (ascending) expert lies in that expert's rows and copies this token
    for (int j = 0; j < K; ++j) {
      const int r = src_row[t * K + j];
      grouping_ok = grouping_ok && rows[r] == t && r >= off[chosen[j]] && r < off[chosen[j] + 1] &&
                    ids[src_w[t * K + j]] == chosen[j];
    }
  }
  for (int e = 0; e < EH; ++e)
    for (int64_t r = off[e]; r < off[e + 1]; ++r) {
      grouping_ok = grouping_ok && entries[r] == entry[rows[r]];
      if (r > off[e]) grouping_ok = grouping_ok && rows[r] > rows[r - 1];  // token order inside an expert
    }
  const std::string name = "T=" + std::to_string(s.T) + " E=" + std::to_string(s.E) + " k=" + std::to_string(s.k) +
                           (s.renorm ? " renormalised" : "") + (s.sigmoid ? " sigmoid" : "") +
                           (s.group_max ? " group-max" : "") + (s.groups > 1 ? " groups " + std::to_string(s.topk_groups) + "/" + std::to_string(s.groups) : "") +
                           (s.shared ? " shared" : "") + (s.choice_bias ? " choice-bias" : "") +
                           (s.renorm_min > 0 ? " renorm-min " + std::to_string(s.renorm_min) : "") +
                           (s.gpt_oss ? " gpt-oss (logit and expert biases, clamped SwiGLU)" : "") +
                           (s.scale_input ? " Llama 4 (sigmoid without a bias, input-scaled experts)" : "") +
                           (s.sparsemixer ? " sparsemixer " + std::to_string(s.mixer_threshold) : "");
  check(order_ok, name + ": experts in descending probability");
  if (s.sparsemixer) check(mask_mattered, name + ": the threshold kept some experts and masked others");
  if (s.gpt_oss) check(bias_moved, name + ": the logit bias moved some token's experts");
  // float32 weights times routed_scale: an error relative to the scale
  check(worst_w < 1e-6 * std::max(1.0f, s.scale), name + ": weights (max err " + std::to_string(worst_w) + ")");
  check(grouping_ok && off[EH] == N, name + ": rows grouped by expert, in token order, with their entries");
  check(worst < 1e-5, name + ": combined output vs the direct MoE (max err " + std::to_string(worst) + ")");
}

int main() {
  run({7, 4, 2, 16, 8, true}, 1);
  run({13, 8, 3, 24, 12, false}, 2);
  run({1, 8, 8, 16, 4, true}, 3);      // every expert
  run({40, 128, 8, 32, 8, true}, 4);   // Qwen3-MoE's 128 experts, top 8
  run({9, 8, 2, 16, 8, true, true, 1, 1, 1.0f, true}, 5);     // GLM-4.5: sigmoid, bias, a shared expert
  run({11, 16, 3, 16, 8, true, true, 4, 2, 2.5f, true}, 6);   // DeepSeek-V3's groups and routed scale
  run({6, 8, 2, 16, 8, false, true, 2, 1, 1.0f, false}, 7);   // sigmoid, no renormalisation
  run({12, 16, 4, 16, 8, false, false, 4, 2, 16.0f, true, true}, 8);  // DeepSeek-V2: softmax in the 2 best of 4 groups
  run({10, 8, 2, 16, 8, true, false, 1, 1, 1.0f, true, false, true, 1e-12f}, 9);  // ERNIE 4.5 MoE: softmax + choice bias
  run({5, 8, 2, 16, 8, true, false, 1, 1, 1.0f, false, false, true, 0.9f}, 10);  // a renorm_min above the sum: divides by it
  run({12, 32, 4, 16, 8, true, false, 1, 1, 1.0f, false, false, false, 0.0f, true}, 11);  // gpt-oss-20b's 32 experts, top 4
  run({9, 16, 1, 16, 8, false, true, 1, 1, 1.0f, true, false, false, 0.0f, false, true}, 12);  // Llama 4 Scout: 16, top 1
  run({10, 8, 2, 16, 8, false, true, 1, 1, 1.0f, true, false, false, 0.0f, false, true}, 13);  // the golden's 8, top 2
  Shape phimoe{10, 8, 2, 16, 8, false};  // Phi-3.5-MoE: two sparsemixer stages (the golden's 8 experts)
  phimoe.sparsemixer = true, phimoe.mixer_threshold = 0.5f;
  run(phimoe, 14);
  Shape phimoe16{24, 16, 2, 16, 8, false};  // Phi-3.5-MoE's 16 experts
  phimoe16.sparsemixer = true, phimoe16.mixer_threshold = 0.2f;
  run(phimoe16, 15);
  // A tie goes to the lower index; the renormalised pair sums to 1.
  int32_t ids[2];
  float w[2];
  const float tie[4] = {0.5f, 2.0f, 2.0f, -1.0f};
  RouteParams tp;
  tp.experts = 4, tp.k = 2, tp.renormalize = true;
  route_token([&](int e) { return tie[e]; }, [](int) { return 0.0f; }, tp, ids, w);
  check(ids[0] == 1 && ids[1] == 2 && std::abs(w[0] - 0.5f) < 1e-7 && std::abs(w[1] - 0.5f) < 1e-7, "ties: lower index first");
  bool threw = false;
  try {
    const int32_t bad[2] = {0, 9};
    int32_t r[2], en[2], sr[2], sw[2];
    const int32_t entry[1] = {-1};
    plan_moe_rows(bad, 1, 2, 4, entry, r, en, sr, sw);
  } catch (const std::runtime_error&) {
    threw = true;
  }
  check(threw, "an expert id out of range is refused");
  std::printf("%d cases, %d failed\n", cases, failed);
  return failed == 0 ? 0 : 1;
}
