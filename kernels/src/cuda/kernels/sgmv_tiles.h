// SGMV work split (and the entry liveness test) shared by every LoRA kernel that walks segments (lora.cu's CUDA-core kernels, the
// tensor-core shrink, the 16-byte expand): row tiles counted segment by segment, so a block never spans two
// adapters. Portable (host + device) so the host warp emulator runs it too.
#pragma once
#include <cstdint>

#include "kernels.h"
#include "prefill_mma_body.h"  // WEFT_MMA_HD

namespace weft::cuda::sgmv {

struct Tile {
  int entry, r0, r1;  // rows [r0, r1) use entry; r1 <= r0: nothing to do
};

// The segments of an SGMV launch: compact (seg_entries set: segment k of num_segments belongs to entry
// seg_entries[k], so a step with a few adapters walks a few segments however many slots there are), or one per
// entry (seg_entries null: segment e is entry e's, possibly empty).
#ifdef __CUDACC__
__host__ __device__
#endif
inline int segment_count(const LoraArgs& a) { return a.seg_entries ? a.num_segments : a.num_entries; }

// The tile-th `rows`-row tile, counting segment by segment.
WEFT_MMA_HD Tile tile_of(const LoraArgs& a, int tile, int rows) {
  const int32_t* seg = a.seg_starts;
  const int n_seg = segment_count(a);
  int base = 0;
  for (int k = 0; k < n_seg; ++k) {
    const int s0 = seg[k], s1 = seg[k + 1], n = s1 > s0 ? (s1 - s0 + rows - 1) / rows : 0;
    if (tile < base + n) {
      const int r0 = s0 + (tile - base) * rows;
      return {a.seg_entries ? a.seg_entries[k] : k, r0, r0 + rows < s1 ? r0 + rows : s1};
    }
    base += n;
  }
  return {0, 0, 0};
}

// Whether entry ei (slice · num_entries + entry) has an adapter to apply. Every shrink and expand kernel
// uses this one test, so an expand never reads an h row a shrink skipped.
WEFT_MMA_HD bool live(const LoraArgs& a, int64_t ei) {
  const int rank = a.rank[ei];
  return a.a[ei] != nullptr && a.b[ei] != nullptr && rank > 0 && rank <= a.max_rank;
}

// Tiles a grid needs: at most ceil(tokens / rows) + one partial tile per segment.
inline int64_t row_tiles(const LoraArgs& a, int rows) { return (a.tokens + rows - 1) / rows + segment_count(a); }

}  // namespace weft::cuda::sgmv
