// One token's expert choice (moe.cu's route kernel), host- and device-compilable so the CPU checks the same code
// (test/emulated/moe_host.cc): softmax in fp32 over all experts' router logits, the k largest probabilities by
// repeated selection (k is small; a tie goes to the lower index, as in model/moe.cc), renormalised to sum 1 when
// asked. ids and weights are the token's k outputs, in descending probability.
#pragma once
#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define WEFT_MOE_HD __host__ __device__
#else
#define WEFT_MOE_HD
#endif

namespace weft::cuda::moe {

constexpr int kMaxExperts = 512, kMaxTopK = 16;

// load(e): the token's router logit for expert e, as float.
template <class Load>
WEFT_MOE_HD inline void route_token(Load load, int experts, int k, bool renormalize, int32_t* ids, float* weights) {
  float mx = -INFINITY;
  for (int e = 0; e < experts; ++e) mx = fmaxf(mx, load(e));
  float sum = 0.0f;
  for (int e = 0; e < experts; ++e) sum += expf(load(e) - mx);
  int32_t chosen[kMaxTopK];
  float prob[kMaxTopK], top = 0.0f;
  for (int j = 0; j < k; ++j) {
    int best = -1;
    float bv = -1.0f;
    for (int e = 0; e < experts; ++e) {
      bool taken = false;
      for (int i = 0; i < j; ++i) taken = taken || chosen[i] == e;
      if (taken) continue;
      const float p = expf(load(e) - mx) / sum;
      if (p > bv) bv = p, best = e;  // strict: the lower index wins a tie
    }
    chosen[j] = best, prob[j] = bv, top += bv;
  }
  for (int j = 0; j < k; ++j) {
    ids[j] = chosen[j];
    weights[j] = renormalize ? prob[j] / top : prob[j];
  }
}

}  // namespace weft::cuda::moe
