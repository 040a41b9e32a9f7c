// One token's expert choice for a mixture-of-experts layer, shared by the CPU executor (model/moe.cc) and the CUDA
// route kernel (cuda/kernels/moe.cu), host- and device-compilable; checked on the CPU against a direct reference
// (test/emulated/moe_host.cc). As transformers routes:
//  - softmax (Mixtral, Qwen3-MoE): probabilities softmax(logits) in fp32 over all experts, the k largest chosen,
//    their probabilities the weights (renormalised to sum 1 when asked);
//  - sigmoid (GLM-4.5; DeepSeek-V3's scheme): scores sigmoid(logits); the choice ranks scores + bias[e]
//    (e_score_correction_bias), only within the topk_groups best of `groups` equal groups of experts (a group's
//    rank: the sum of its two best choice values); the weights are the chosen experts' scores, renormalised
//    (sum + 1e-20) when asked, times routed_scale;
//  - softmax with a choice bias (choice_bias, ERNIE 4.5 MoE): the choice ranks probabilities + bias[e], the weights
//    are the chosen probabilities renormalised by max(sum, renorm_min);
//  - softmax within groups (group_max, DeepSeek-V2's group_limited_greedy): the topk_groups groups whose best
//    probability is largest, the k largest probabilities among their experts, times routed_scale;
//  - sparsemixer (Phi-3.5-MoE, transformers' sparsemixer in eval mode): stage j picks the largest logit m among the
//    experts not chosen before; its weight is its softmax over those experts whose (m - logit(e)) / max(|logit(e)|, m)
//    is not above mixer_threshold (2 · router_jitter_noise) — 1 / Σ exp(logit(e) - m) over them. Never renormalised
//    (transformers runs two stages: k = 2).
// Ties go to the lower index. With `shared`, one more output follows the k: expert `experts` (the shared expert)
// with weight 1. ids and weights hold k (+ shared) values, the routed ones in descending rank.
#pragma once
#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define WEFT_MOE_HD __host__ __device__
#else
#define WEFT_MOE_HD
#endif

namespace weft::moe {

constexpr int kMaxExperts = 512, kMaxTopK = 16, kMaxGroups = 64;

struct RouteParams {
  int experts = 0, k = 0;
  bool renormalize = false, sigmoid = false, shared = false;
  bool group_max = false;  // softmax within groups ranked by their best probability (DeepSeek-V2)
  bool choice_bias = false;  // softmax with bias(e) added to the choice values (ERNIE 4.5 MoE's moe_statics)
  float renorm_min = 0.0f;   // > 0: renormalise by max(sum, renorm_min) (ERNIE 4.5 MoE's moe_norm_min)
  bool sparsemixer = false;  // Phi-3.5-MoE's masked softmax per stage, its mask by mixer_threshold
  float mixer_threshold = 0.0f;
  int groups = 1, topk_groups = 1;
  float routed_scale = 1.0f;
};

// logit(e): the token's router logit for expert e; bias(e): the choice bias (sigmoid routing only).
template <class Logit, class Bias>
WEFT_MOE_HD inline void route_token(Logit logit, Bias bias, const RouteParams& p, int32_t* ids, float* weights) {
  const int E = p.experts, k = p.k;
  if (p.sparsemixer) {
    for (int j = 0; j < k; ++j) {
      auto taken = [&](int e) {
        bool t = false;
        for (int i = 0; i < j; ++i) t = t || ids[i] == e;
        return t;
      };
      int best = -1;
      float m = -INFINITY;
      for (int e = 0; e < E; ++e)
        if (!taken(e) && (best < 0 || logit(e) > m)) m = logit(e), best = e;  // strict: the lower index wins a tie
      float s = 0.0f;
      for (int e = 0; e < E; ++e) {
        const float l = logit(e);
        if (!taken(e) && !((m - l) / fmaxf(fabsf(l), m) > p.mixer_threshold)) s += expf(l - m);
      }
      ids[j] = best;
      weights[j] = 1.0f / s;
    }
    if (p.shared) ids[k] = E, weights[k] = 1.0f;
    return;
  }
  float mx = -INFINITY, sum = 0.0f;
  if (!p.sigmoid) {
    for (int e = 0; e < E; ++e) mx = fmaxf(mx, logit(e));
    for (int e = 0; e < E; ++e) sum += expf(logit(e) - mx);
  }
  // The weight an expert gets if chosen, and the value the choice ranks it by.
  auto weight_of = [&](int e) { return p.sigmoid ? 1.0f / (1.0f + expf(-logit(e))) : expf(logit(e) - mx) / sum; };
  auto choice_of = [&](int e) { return p.sigmoid || p.choice_bias ? weight_of(e) + bias(e) : weight_of(e); };
  // Group limit: the topk_groups groups with the largest sum of their two best choice values (sigmoid), or with the
  // largest one (group_max).
  bool group_on[kMaxGroups];
  const int G = (p.sigmoid || p.group_max) && p.groups > 1 ? p.groups : 1, per = E / G;
  for (int g = 0; g < G; ++g) group_on[g] = G == 1;
  for (int pick = 0; G > 1 && pick < p.topk_groups; ++pick) {
    int best = -1;
    float bv = -INFINITY;
    for (int g = 0; g < G; ++g) {
      if (group_on[g]) continue;
      float a = -INFINITY, b = -INFINITY;  // the group's two best
      for (int e = g * per; e < (g + 1) * per; ++e) {
        const float c = choice_of(e);
        if (c > a) b = a, a = c;
        else if (c > b) b = c;
      }
      const float score = p.group_max ? a : a + b;
      if (score > bv || best < 0) bv = score, best = g;
    }
    group_on[best] = true;
  }
  int32_t chosen[kMaxTopK];
  float top = 0.0f;
  for (int j = 0; j < k; ++j) {
    int best = -1;
    float bv = -INFINITY;
    for (int e = 0; e < E; ++e) {
      if (!group_on[e / per]) continue;
      bool taken = false;
      for (int i = 0; i < j; ++i) taken = taken || chosen[i] == e;
      if (taken) continue;
      const float c = choice_of(e);
      if (best < 0 || c > bv) bv = c, best = e;  // strict: the lower index wins a tie
    }
    chosen[j] = best;
    ids[j] = best;
    weights[j] = weight_of(best);
    top += weights[j];
  }
  for (int j = 0; j < k; ++j) {
    if (p.renormalize)
      weights[j] = p.sigmoid ? weights[j] / (top + 1e-20f) : weights[j] / (p.renorm_min > 0.0f ? fmaxf(top, p.renorm_min) : top);
    weights[j] *= p.routed_scale;
  }
  if (p.shared) ids[k] = E, weights[k] = 1.0f;
}

}  // namespace weft::moe
