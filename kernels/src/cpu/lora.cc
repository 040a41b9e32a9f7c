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

}  // namespace weft::cpu
