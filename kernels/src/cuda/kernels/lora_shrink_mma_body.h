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
// A unit's loads are all issued before its MMAs, and at ranks up to 16 the next unit's too (whole_units).
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

// What a lane reads: its two x rows (xv: inside the tile) and, for column tile n, A's row k_lane + 8n.
struct Span {
  const uint16_t *x0, *x1;
  bool xv0, xv1;
  const uint16_t* A;
  int64_t in;
  int rank, k_lane, ntiles;
};

// One unit's operands in registers: the lane's x words (rows g, g + 8) and A words for kT column tiles.
template <int kT> struct Operands {
  uint32_t x0[4], x1[4], b[kT][4];
};

// Lane (g, t) loads columns 8t..8t+7 of unit u of its rows; words 0, 1 are k = (2t, 2t+1), (2t+8, 2t+9) of the
// first k-step, words 2, 3 the same of the second.
template <class Ops, int kT>
WEFT_MMA_HD void load_unit(const Span& s, int u, int t, int xa, int aa, Operands<kT>& o) {
  const int col = u * kUnit + 8 * t;
  for (int e = 0; e < 4; ++e) o.x0[e] = o.x1[e] = 0u;
  if (s.xv0) load8<Ops>(s.x0 + col, xa, o.x0);
  if (s.xv1) load8<Ops>(s.x1 + col, xa, o.x1);
  WEFT_UNROLL
  for (int n = 0; n < kT; ++n) {
    const int k = s.k_lane + 8 * n;
    for (int e = 0; e < 4; ++e) o.b[n][e] = 0u;
    if (n < s.ntiles && k < s.rank) load8<Ops>(s.A + static_cast<int64_t>(k) * s.in + col, aa, o.b[n]);
  }
}

template <class Ops, int kT>
WEFT_MMA_HD void multiply_unit(const Span& s, const Operands<kT>& o, float (&acc)[kNT][4]) {
  const uint32_t fa0[4] = {o.x0[0], o.x1[0], o.x0[1], o.x1[1]}, fa1[4] = {o.x0[2], o.x1[2], o.x0[3], o.x1[3]};
  WEFT_UNROLL
  for (int n = 0; n < kT; ++n) {
    if (n >= s.ntiles) break;  // warp-uniform
    const uint32_t fb0[2] = {o.b[n][0], o.b[n][1]}, fb1[2] = {o.b[n][2], o.b[n][3]};
    Ops::mma(acc[n], fa0, fb0);
    Ops::mma(acc[n], fa1, fb1);
  }
}

// The lane's share of units [u, end), every kWarps-th, all of a unit's loads issued before its first MMA (an
// MMA waiting for an operand stalls the warp). kT: column tiles (A rows) loaded per unit. With kT = 2 (ranks up
// to 16, the usual ones: 4 loads per unit) the next unit's loads are issued before this one's MMAs too, so a
// warp walks its part of `in` in half as many memory round trips; kT = 8 has 10 loads per unit in flight
// already, and double-buffering its operands took ~40 more registers per thread (126 -> 165: 3 blocks per SM,
// not 4).
// kAligned: 16-byte loads known at compile time (no alignment branches between the loads); else x_align /
// a_align decide.
template <class Ops, int kT, bool kAligned>
WEFT_MMA_HD void whole_units(const Span& s, int u, int end, int t, float (&acc)[kNT][4], int x_align, int a_align) {
  const int xa = kAligned ? 16 : x_align, aa = kAligned ? 16 : a_align;
  if constexpr (kT <= 2) {
    if (u >= end) return;
    Operands<kT> cur, next;
    load_unit<Ops>(s, u, t, xa, aa, cur);
    for (; u < end; u += kWarps) {
      const bool more = u + kWarps < end;
      if (more) load_unit<Ops>(s, u + kWarps, t, xa, aa, next);
      multiply_unit<Ops>(s, cur, acc);
      if (more) cur = next;
    }
  } else {
    for (; u < end; u += kWarps) {
      Operands<kT> o;
      load_unit<Ops>(s, u, t, xa, aa, o);
      multiply_unit<Ops>(s, o, acc);
    }
  }
}

// Block (x = rank chunk · kCluster + rank in the cluster, y = row tile, z = slice).
template <class Ops, int kCluster>
WEFT_MMA_HD void block(const LoraArgs& a, const prefill_mma::BlockIndex& ix, float* red) {
  static_assert(kCluster >= 1 && kCluster <= kMaxCluster, "cluster size");
  const sgmv::Tile w = sgmv::tile_of(a, ix.y, kRows);
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

  // Whole 32-column units, warp w taking units u0 + w, u0 + w + 4, ...; all 16-byte aligned (the usual case)
  // or not and ranks up to 16 or more, decided once per block.
  const Units my = units_of(a.in, kCluster, c);
  const int whole = static_cast<int>(a.in / kUnit), end = my.u1 < whole ? my.u1 : whole;
  const Span span{xr[0], xr[1], xv[0], xv[1], A, a.in, rank, k0 + g, ntiles};
  const bool aligned = x_align == 16 && a_align == 16;
  const int u0 = my.u0 + warp;
  if (ntiles <= 2 && aligned) whole_units<Ops, 2, true>(span, u0, end, t, acc, 16, 16);
  else if (aligned) whole_units<Ops, kNT, true>(span, u0, end, t, acc, 16, 16);
  else whole_units<Ops, kNT, false>(span, u0, end, t, acc, x_align, a_align);
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
