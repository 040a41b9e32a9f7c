// LoRA shrink (x A^T -> rank) and expand (-> B^T, scaled, added into the base output) for one segment.
#include <cstddef>
#include <vector>

#include "cpu/ops.h"

namespace weft::cpu {

void lora_shrink_expand(const float* x, int64_t t0, int64_t t1, int64_t in, const float* a, const float* b,
                        int64_t rank, int64_t out_len, float scale, float* y, int64_t y_stride, int64_t out_offset) {
  std::vector<float> h(static_cast<size_t>(rank));
  for (int64_t t = t0; t < t1; ++t) {
    const float* xr = x + t * in;
    for (int64_t r = 0; r < rank; ++r) h[r] = dot(xr, a + r * in, in);
    float* yr = y + t * y_stride + out_offset;
    for (int64_t o = 0; o < out_len; ++o) yr[o] += scale * dot(b + o * rank, h.data(), rank);
  }
}

}  // namespace weft::cpu
