// Base-model matrix products on the CPU backend.
#include <algorithm>

#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace weft::cpu {

void gemm_xwt(const float* x, int64_t tokens, int64_t in, const float* w, int64_t out, const float* bias, float* y,
              bool accumulate) {
  // Tile over output rows so a block of W stays in cache while every token reads it; tiles go to the pool's
  // threads (each output element is one dot product, whoever computes it).
  constexpr int64_t kRowTile = 64;
  const int64_t tiles = (out + kRowTile - 1) / kRowTile;
  const int64_t tile_macs = kRowTile * tokens * in;
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(1, tile_macs));
  parallel_for(tiles, grain, [&](int64_t tile0, int64_t tile1) {
    for (int64_t o0 = tile0 * kRowTile; o0 < std::min(out, tile1 * kRowTile); o0 += kRowTile) {
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
  });
}

}  // namespace weft::cpu
