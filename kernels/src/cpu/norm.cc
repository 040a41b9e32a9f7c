// RMSNorm (Llama family) and LayerNorm (GPT-2), computed in fp32 like transformers does.
#include <cmath>

#include "cpu/ops.h"

namespace weft::cpu {

void rms_norm(const float* x, int64_t tokens, int64_t hidden, const float* weight, float eps, float* out) {
  for (int64_t t = 0; t < tokens; ++t) {
    const float* xr = x + t * hidden;
    float* yr = out + t * hidden;
    const float ms = dot(xr, xr, hidden) / static_cast<float>(hidden);
    const float inv = 1.0f / std::sqrt(ms + eps);
    for (int64_t i = 0; i < hidden; ++i) yr[i] = weight[i] * (xr[i] * inv);
  }
}

void layer_norm(const float* x, int64_t tokens, int64_t hidden, const float* weight, const float* bias, float eps,
                float* out) {
  for (int64_t t = 0; t < tokens; ++t) {
    const float* xr = x + t * hidden;
    float* yr = out + t * hidden;
    double mean = 0;
    for (int64_t i = 0; i < hidden; ++i) mean += xr[i];
    mean /= static_cast<double>(hidden);
    double var = 0;
    for (int64_t i = 0; i < hidden; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    var /= static_cast<double>(hidden);
    const double inv = 1.0 / std::sqrt(var + eps);
    for (int64_t i = 0; i < hidden; ++i) {
      const float n = static_cast<float>((xr[i] - mean) * inv);
      yr[i] = n * weight[i] + (bias ? bias[i] : 0.0f);
    }
  }
}

}  // namespace weft::cpu
