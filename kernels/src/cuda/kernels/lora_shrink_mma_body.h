// SGMV shrink on tensor cores (h = x·Aᵀ over segments of rows sharing an adapter; bf16/fp16 in, fp32 out): the
// body of one thread of one block, written against the Ops interface of prefill_mma_body.h (only sync() and
// mma() are used) so the CUDA kernel (lora.cu) and the host warp emulator (test/emulated/lora_shrink_mma_emu.cc)
// run the same code.
//
// Why: the CUDA-core shrink gives each warp one rank and re-reads the row tile of x from L1/L2 once per rank
// (measured 8 % of the copy rate at 512 prefill tokens on an H100). Here a block owns a 16-row tile of one
// segment, one slice and up to 64 ranks; its 4 warps split `in` into quarters and each runs m16n8k16 MMAs with
// fragments loaded straight from global memory (x rows are the A operand, A's rows the B operand: both are
// row-major with `in` contiguous, the layout mma.sync wants), so x is read once per rank chunk. The quarters'
// partial sums meet in shared memory in a fixed order (results do not depend on timing).
// Fragment layouts: see prefill_mma_body.h.
#pragma once
#include <cstdint>

#include "kernels.h"
#include "prefill_mma_body.h"
#include "sgmv_tiles.h"

namespace weft::cuda::shrink_mma {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kRows = 16;        // rows per block: one MMA tile
constexpr int kRankChunk = 64;   // ranks per block: 8 column tiles
constexpr int kNT = kRankChunk / 8;

// 16-bit storage, `in` a whole number of k-steps, 32-bit aligned rows of x.
inline bool supports(const LoraArgs& a) {
  return (a.dtype == DType::kBF16 || a.dtype == DType::kF16) && a.in % 16 == 0 && a.x_stride % 2 == 0 &&
         (reinterpret_cast<uintptr_t>(a.x) & 3u) == 0;
}
// Shared memory: the warps' partial sums [kWarps][kRows][kRankChunk] fp32.
constexpr size_t smem_bytes() { return sizeof(float) * kWarps * kRows * kRankChunk; }

// Row tiles the grid needs.
inline int64_t row_tiles(const LoraArgs& a) { return sgmv::row_tiles(a, kRows); }

// Block (x = rank chunk, y = row tile, z = slice).
template <class Ops>
WEFT_MMA_HD void block(const LoraArgs& a, const prefill_mma::BlockIndex& ix, float* red) {
  const sgmv::Tile w = sgmv::tile_of(a.seg_starts, a.num_entries, ix.y, kRows);
  if (w.r1 <= w.r0) return;  // block-uniform, before the barrier
  const int slice = ix.z;
  const int64_t ei = static_cast<int64_t>(slice) * a.num_entries + w.entry;
  const int rank = a.rank[ei], k0 = ix.x * kRankChunk;
  if (!sgmv::live(a, ei) || k0 >= rank) return;
  const uint16_t* A = static_cast<const uint16_t*>(a.a[ei]);
  const uint16_t* x = static_cast<const uint16_t*>(a.x);
  // Adapter weights are allocated aligned, but a caller may hand any 2-byte aligned A: then each 32-bit
  // fragment word is put together from two 16-bit loads (block-uniform choice).
  const bool a_words = (reinterpret_cast<uintptr_t>(A) & 3u) == 0;
  auto a_word = [&](const uint16_t* p) { return a_words ? prefill_mma::word_at(p) : prefill_mma::halves(p[0], p[1]); };

  const int warp = ix.thread / 32, lane = ix.thread % 32, g = lane / 4, t = lane % 4;
  const int steps = static_cast<int>(a.in / 16), per = (steps + kWarps - 1) / kWarps;
  const int s0 = warp * per, s1 = s0 + per < steps ? s0 + per : steps;
  // This thread's two x rows and, per column tile, its A row (rank); rows past the tile / ranks past the
  // adapter's rank read nothing and contribute zeros.
  const uint16_t* xr[2];
  bool xv[2];
  for (int i = 0; i < 2; ++i) {
    const int row = w.r0 + g + 8 * i;
    xv[i] = row < w.r1;
    xr[i] = x + static_cast<int64_t>(xv[i] ? row : w.r0) * a.x_stride + 2 * t;
  }
  float acc[kNT][4];
  for (int n = 0; n < kNT; ++n)
    for (int e = 0; e < 4; ++e) acc[n][e] = 0.0f;
  const int ntiles = (rank - k0 + 7) / 8 < kNT ? (rank - k0 + 7) / 8 : kNT;
#ifdef __CUDACC__
#pragma unroll 4  // loads of the next k-steps in flight while this one multiplies
#endif
  for (int s = s0; s < s1; ++s) {
    const int col = s * 16;
    const uint32_t fa[4] = {xv[0] ? prefill_mma::word_at(xr[0] + col) : 0u, xv[1] ? prefill_mma::word_at(xr[1] + col) : 0u,
                            xv[0] ? prefill_mma::word_at(xr[0] + col + 8) : 0u,
                            xv[1] ? prefill_mma::word_at(xr[1] + col + 8) : 0u};
    for (int n = 0; n < kNT; ++n) {
      if (n >= ntiles) break;  // warp-uniform
      const int k = k0 + n * 8 + g;
      const uint16_t* ar = A + static_cast<int64_t>(k < rank ? k : 0) * a.in + col + 2 * t;
      const uint32_t fb[2] = {k < rank ? a_word(ar) : 0u, k < rank ? a_word(ar + 8) : 0u};
      Ops::mma(acc[n], fa, fb);
    }
  }

  // Partial sums of the 4 quarters of `in`, added in warp order.
  for (int n = 0; n < kNT; ++n)
    for (int e = 0; e < 4; ++e) red[(warp * kRows + g + 8 * (e >> 1)) * kRankChunk + n * 8 + 2 * t + (e & 1)] = acc[n][e];
  Ops::sync();
  for (int i = ix.thread; i < kRows * kRankChunk; i += kThreads) {
    const int row = i / kRankChunk, k = k0 + i % kRankChunk;
    if (w.r0 + row >= w.r1 || k >= rank) continue;
    float sum = 0.0f;
    for (int wp = 0; wp < kWarps; ++wp) sum += red[wp * kRows * kRankChunk + i];
    a.h[(static_cast<int64_t>(slice) * a.tokens + w.r0 + row) * a.max_rank + k] = sum;
  }
}

}  // namespace weft::cuda::shrink_mma
