// Base-model matrix products on the CPU backend.
#include "cpu/ops.h"

namespace weft::cpu {

// Eight independent partial sums: lets the compiler vectorise without -ffast-math, and the summation
// order is fixed, so the same row always gives the same result.
float dot(const float* a, const float* b, int64_t n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) s[k] += a[i + k] * b[i + k];
  }
  float tail = 0;
  for (; i < n; ++i) tail += a[i] * b[i];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + tail;
}

void gemm_xwt(const float* x, int64_t tokens, int64_t in, const float* w, int64_t out, const float* bias, float* y,
              bool accumulate) {
  // Tile over output rows so a block of W stays in cache while every token reads it.
  constexpr int64_t kRowTile = 64;
  for (int64_t o0 = 0; o0 < out; o0 += kRowTile) {
    const int64_t o1 = o0 + kRowTile < out ? o0 + kRowTile : out;
    for (int64_t t = 0; t < tokens; ++t) {
      const float* xr = x + t * in;
      float* yr = y + t * out;
      for (int64_t o = o0; o < o1; ++o) {
        float v = dot(xr, w + o * in, in);
        if (bias) v += bias[o];
        yr[o] = accumulate ? yr[o] + v : v;
      }
    }
  }
}

}  // namespace weft::cpu
