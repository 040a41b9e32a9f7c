// LoRA shrink (x A^T -> rank) and expand (-> B^T, scaled, added into the base output) for one segment.
#include <algorithm>
#include <cstddef>
#include <vector>

#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace weft::cpu {

void lora_shrink_expand(const float* x, int64_t t0, int64_t t1, int64_t in, const float* a, const float* b,
                        int64_t rank, int64_t out_len, float scale, float* y, int64_t y_stride, int64_t out_offset) {
  // Token rows are independent (each adds into its own row of y): chunks of rows go to the pool's threads.
  const int64_t row_macs = rank * (in + out_len);
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 17) / std::max<int64_t>(1, row_macs));
  parallel_for(t1 - t0, grain, [&](int64_t c0, int64_t c1) {
    std::vector<float> h(static_cast<size_t>(rank));
    for (int64_t t = t0 + c0; t < t0 + c1; ++t) {
      const float* xr = x + t * in;
      for (int64_t r = 0; r < rank; ++r) h[r] = dot(xr, a + r * in, in);
      float* yr = y + t * y_stride + out_offset;
      for (int64_t o = 0; o < out_len; ++o) yr[o] += scale * dot(b + o * rank, h.data(), rank);
    }
  });
}

void lora_embedding_add(float* h, int64_t hidden, const int32_t* tokens, int64_t t0, int64_t t1, const float* a,
                        const float* b, int64_t rank, int64_t vocab, float scale) {
  std::vector<float> hk(static_cast<size_t>(rank));
  for (int64_t t = t0; t < t1; ++t) {
    for (int64_t k = 0; k < rank; ++k) hk[k] = a[k * vocab + tokens[t]];
    float* hr = h + t * hidden;
    for (int64_t o = 0; o < hidden; ++o) hr[o] += scale * dot(b + o * rank, hk.data(), rank);
  }
}

void dora_scale(float* y, int64_t t0, int64_t t1, int64_t y_stride, int64_t out_offset, int64_t out_len,
                const float* mag, const float* bias) {
  for (int64_t t = t0; t < t1; ++t) {
    float* yr = y + t * y_stride + out_offset;
    if (bias) {
      for (int64_t o = 0; o < out_len; ++o) yr[o] = mag[o] * (yr[o] - bias[o]) + bias[o];
    } else {
      for (int64_t o = 0; o < out_len; ++o) yr[o] *= mag[o];
    }
  }
}

void lora_weight_norms_sq(const float* w, int64_t rows, int64_t in, const float* a, const float* b, int64_t rank,
                          float scale, float* out) {
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, in * rank));
  parallel_for(rows, grain, [&](int64_t r0, int64_t r1) {
    std::vector<float> delta(static_cast<size_t>(in));
    for (int64_t o = r0; o < r1; ++o) {
      const float* wr = w + o * in;
      const float* br = b + o * rank;
      // (B·A)[o, :] in float, k outermost so each pass reads a row of A contiguously (the same sum order per
      // element as a k loop inside j); then W + scale·that, squared and summed in double.
      std::fill(delta.begin(), delta.end(), 0.0f);
      for (int64_t k = 0; k < rank; ++k) {
        const float bk = br[k];
        const float* ak = a + k * in;
        for (int64_t j = 0; j < in; ++j) delta[j] += bk * ak[j];
      }
      double acc = 0;
      for (int64_t j = 0; j < in; ++j) {
        const double v = static_cast<double>(wr[j] + scale * delta[j]);
        acc += v * v;
      }
      out[o] = static_cast<float>(acc);
    }
  });
}

}  // namespace weft::cpu
