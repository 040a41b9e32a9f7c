// SGMV shrink on tensor cores (h = x·Aᵀ over segments of rows sharing an adapter; bf16/fp16 in, fp32 out): the
// body of one thread of one block, written against the Ops interface of prefill_mma_body.h (sync(), mma(),
// copy16()) plus, for a cluster of more than one block, cluster_sync() and peer(p, rank) (the same shared
// address in block `rank` of the cluster, as in lora_bgmv_fused_body.h), so the CUDA kernel (lora.cu) and the
// host warp emulator (test/emulated/lora_shrink_mma_emu.cc) run the same code.
//
// Why tensor cores: the CUDA-core shrink gives each warp one rank and re-reads the row tile of x from L1/L2
// once per rank (8 % of the copy rate at 512 prefill tokens on an H100). Here a block owns a 16-row tile of one
// segment, one slice and up to 64 ranks, and runs m16n8k16 MMAs with fragments loaded straight from global
// memory (x rows are the A operand, A's rows the B operand: both row-major with `in` contiguous, the layout
// mma.sync wants), so x is read once per rank chunk.
// Why a cluster: one block per (rank chunk, tile, slice) is 32 blocks at 512 rows × 1 adapter — a few SMs of
// 132 busy, each warp walking a quarter of `in` one memory round trip after another (~35 µs at in 4096 on an
// H100, where reading x takes 1.4). On sm_90 kCluster blocks of a thread-block cluster split `in` between
// them; each sums its warps' partials in shared memory, and after a cluster barrier each block adds a share of
// the tile's outputs over the cluster's blocks through distributed shared memory. kCluster = 1 (sm_80..89) is
// one block per tile, no cluster.
// Determinism (batch invariance): how `in` is split depends on `in` and kCluster only, never on the rows,
// segments or tokens of the step; each part is summed by one warp in column order, the warps' partials in warp
// order, the blocks' in cluster-rank order. No atomics, so an h row does not depend on timing or on what else
// is in the step.
// Loads: a warp takes 32 columns (two k-steps) at a time, each lane 8 consecutive values of each of its rows
// (one 16-byte load where aligned): lane t's columns 8t..8t+7 serve as k = 2t, 2t+1, 2t+8, 2t+9 of the first
// step and of the second. The same permutation of k on both operands leaves the dot products as they are, and
// a warp's load covers 64 contiguous bytes of each of 8 rows instead of 16 scattered bytes per 32-bit load.
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
constexpr int kUnit = 32;        // columns of `in` a warp takes at a time
constexpr int kMaxCluster = 8;   // the portable cluster size limit

// 16-bit storage, `in` a whole number of k-steps, 32-bit aligned rows of x.
inline bool supports(const LoraArgs& a) {
  return (a.dtype == DType::kBF16 || a.dtype == DType::kF16) && a.in % 16 == 0 && a.x_stride % 2 == 0 &&
         (reinterpret_cast<uintptr_t>(a.x) & 3u) == 0;
}
// Shared memory: the warps' partial sums [kWarps][kRows][kRankChunk] fp32 (warp 0's later the block's).
constexpr size_t smem_bytes() { return sizeof(float) * kWarps * kRows * kRankChunk; }

// Row tiles the grid needs.
inline int64_t row_tiles(const LoraArgs& a) { return sgmv::row_tiles(a, kRows); }

// The 32-column units [u0, u1) of `in` that block c of a cluster of `cluster` blocks takes (the last unit is 16
// columns when `in` is an odd number of 16s): a function of `in` and the cluster size alone.
struct Units {
  int u0, u1;
};
WEFT_MMA_HD Units units_of(int64_t in, int cluster, int c) {
  const int units = static_cast<int>((in + kUnit - 1) / kUnit), per = (units + cluster - 1) / cluster;
  const int u0 = c * per < units ? c * per : units;
  return {u0, u0 + per < units ? u0 + per : units};
}

WEFT_MMA_HD int alignment(const void* p) {
  const uintptr_t v = reinterpret_cast<uintptr_t>(p);
  return (v & 15u) == 0 ? 16 : (v & 3u) == 0 ? 4 : 2;
}

// Eight consecutive 16-bit values from p as four words (the lower column in the low half): one 16-byte load
// when p is 16-byte aligned, else 32-bit or 16-bit loads. The same words either way: alignment never changes a
// result, only the speed.
template <class Ops>
WEFT_MMA_HD void load8(const uint16_t* p, int align, uint32_t (&w)[4]) {
  if (align == 16) {
    alignas(16) uint32_t v[4];
    Ops::copy16(reinterpret_cast<uint16_t*>(v), p);
    WEFT_UNROLL
    for (int i = 0; i < 4; ++i) w[i] = v[i];
  } else if (align == 4) {
    WEFT_UNROLL
    for (int i = 0; i < 4; ++i) w[i] = prefill_mma::word_at(p + 2 * i);
  } else {
    WEFT_UNROLL
    for (int i = 0; i < 4; ++i) w[i] = prefill_mma::halves(p[2 * i], p[2 * i + 1]);
  }
}
WEFT_MMA_HD uint32_t load2(const uint16_t* p, int align) {
  return align >= 4 ? prefill_mma::word_at(p) : prefill_mma::halves(p[0], p[1]);
}

// Block (x = rank chunk · kCluster + rank in the cluster, y = row tile, z = slice).
template <class Ops, int kCluster>
WEFT_MMA_HD void block(const LoraArgs& a, const prefill_mma::BlockIndex& ix, float* red) {
  static_assert(kCluster >= 1 && kCluster <= kMaxCluster, "cluster size");
  const sgmv::Tile w = sgmv::tile_of(a.seg_starts, a.num_entries, ix.y, kRows);
  // The early returns below are the same for every block of a cluster (same tile, slice and rank chunk), so
  // none leaves a peer waiting at a cluster barrier; and they come before the block barrier.
  if (w.r1 <= w.r0) return;
  const int slice = ix.z, chunk = ix.x / kCluster, c = ix.x % kCluster;
  const int64_t ei = static_cast<int64_t>(slice) * a.num_entries + w.entry;
  const int rank = a.rank[ei], k0 = chunk * kRankChunk;
  if (!sgmv::live(a, ei) || k0 >= rank) return;
  const uint16_t* A = static_cast<const uint16_t*>(a.a[ei]);
  const uint16_t* x = static_cast<const uint16_t*>(a.x);
  // Block-uniform load widths. A caller may hand any 2-byte aligned A; x rows are 4-byte aligned (supports).
  const int a_align = alignment(A), x_align = a.x_stride % 8 == 0 ? alignment(x) : 4;

  const int warp = ix.thread / 32, lane = ix.thread % 32, g = lane / 4, t = lane % 4;
  // This thread's two x rows and, per column tile, its A row (rank); rows past the tile / ranks past the
  // adapter's rank read nothing and contribute zeros.
  const uint16_t* xr[2];
  bool xv[2];
  for (int i = 0; i < 2; ++i) {
    const int row = w.r0 + g + 8 * i;
    xv[i] = row < w.r1;
    xr[i] = x + static_cast<int64_t>(xv[i] ? row : w.r0) * a.x_stride;
  }
  float acc[kNT][4];
  for (int n = 0; n < kNT; ++n)
    for (int e = 0; e < 4; ++e) acc[n][e] = 0.0f;
  const int ntiles = (rank - k0 + 7) / 8 < kNT ? (rank - k0 + 7) / 8 : kNT;

  // Whole 32-column units, warp w taking units u0 + w, u0 + w + 4, ...: lane (g, t) loads columns 8t..8t+7;
  // words 0, 1 are k = (2t, 2t+1), (2t+8, 2t+9) of the first k-step, words 2, 3 the same of the second.
  const Units my = units_of(a.in, kCluster, c);
  const int whole = static_cast<int>(a.in / kUnit), end = my.u1 < whole ? my.u1 : whole;
#ifdef __CUDACC__
#pragma unroll 2  // the next unit's loads in flight while this one multiplies
#endif
  for (int u = my.u0 + warp; u < end; u += kWarps) {
    const int col = u * kUnit + 8 * t;
    uint32_t x0[4] = {0u, 0u, 0u, 0u}, x1[4] = {0u, 0u, 0u, 0u};
    if (xv[0]) load8<Ops>(xr[0] + col, x_align, x0);
    if (xv[1]) load8<Ops>(xr[1] + col, x_align, x1);
    const uint32_t fa0[4] = {x0[0], x1[0], x0[1], x1[1]}, fa1[4] = {x0[2], x1[2], x0[3], x1[3]};
    WEFT_UNROLL
    for (int n = 0; n < kNT; ++n) {
      if (n >= ntiles) break;  // warp-uniform
      const int k = k0 + n * 8 + g;
      uint32_t b[4] = {0u, 0u, 0u, 0u};
      if (k < rank) load8<Ops>(A + static_cast<int64_t>(k) * a.in + col, a_align, b);
      const uint32_t fb0[2] = {b[0], b[1]}, fb1[2] = {b[2], b[3]};
      Ops::mma(acc[n], fa0, fb0);
      Ops::mma(acc[n], fa1, fb1);
    }
  }
  // A last 16-column unit (`in` an odd number of 16s), taken by the warp whose turn it is: the plain fragment
  // layout, 32-bit loads.
  if (whole * kUnit < a.in && whole >= my.u0 && whole < my.u1 && (whole - my.u0) % kWarps == warp) {
    const int col = whole * kUnit + 2 * t;
    const uint32_t fa[4] = {xv[0] ? prefill_mma::word_at(xr[0] + col) : 0u, xv[1] ? prefill_mma::word_at(xr[1] + col) : 0u,
                            xv[0] ? prefill_mma::word_at(xr[0] + col + 8) : 0u,
                            xv[1] ? prefill_mma::word_at(xr[1] + col + 8) : 0u};
    for (int n = 0; n < ntiles; ++n) {
      const int k = k0 + n * 8 + g;
      const uint16_t* ar = A + static_cast<int64_t>(k < rank ? k : 0) * a.in + col;
      const uint32_t fb[2] = {k < rank ? load2(ar, a_align) : 0u, k < rank ? load2(ar + 8, a_align) : 0u};
      Ops::mma(acc[n], fa, fb);
    }
  }

  // The warps' partial sums, added in warp order: the tile's [rows][nk] outputs, flat index i.
  for (int n = 0; n < ntiles; ++n)
    for (int e = 0; e < 4; ++e) red[(warp * kRows + g + 8 * (e >> 1)) * kRankChunk + n * 8 + 2 * t + (e & 1)] = acc[n][e];
  Ops::sync();
  const int nk = rank - k0 < kRankChunk ? rank - k0 : kRankChunk, outputs = (w.r1 - w.r0) * nk;
  float* const h = a.h + (static_cast<int64_t>(slice) * a.tokens + w.r0) * a.max_rank + k0;
  if constexpr (kCluster == 1) {
    for (int i = ix.thread; i < outputs; i += kThreads) {
      const int at = i / nk * kRankChunk + i % nk;
      float sum = 0.0f;
      for (int wp = 0; wp < kWarps; ++wp) sum += red[wp * kRows * kRankChunk + at];
      h[static_cast<int64_t>(i / nk) * a.max_rank + i % nk] = sum;
    }
  } else {
    // The block's partial, in place of warp 0's (each entry read and written by one thread).
    for (int i = ix.thread; i < outputs; i += kThreads) {
      const int at = i / nk * kRankChunk + i % nk;
      float sum = 0.0f;
      for (int wp = 0; wp < kWarps; ++wp) sum += red[wp * kRows * kRankChunk + at];
      red[at] = sum;
    }
    Ops::cluster_sync();  // every block's partial is written
    // Block c sums a share of the outputs over the cluster's blocks, in cluster-rank order (which block sums an
    // output does not change its value).
    const int per = (outputs + kCluster - 1) / kCluster, i1 = (c + 1) * per < outputs ? (c + 1) * per : outputs;
    for (int i = c * per + ix.thread; i < i1; i += kThreads) {
      const int at = i / nk * kRankChunk + i % nk;
      float v[kCluster];
      WEFT_UNROLL
      for (int q = 0; q < kCluster; ++q) v[q] = Ops::peer(red, q)[at];  // all loads in flight, then the sum
      float sum = 0.0f;
      WEFT_UNROLL
      for (int q = 0; q < kCluster; ++q) sum += v[q];
      h[static_cast<int64_t>(i / nk) * a.max_rank + i % nk] = sum;
    }
    Ops::cluster_sync();  // no block leaves while a peer may still read its shared memory
  }
}

}  // namespace weft::cuda::shrink_mma
