// A decode step's LoRA for one module group in one launch: shrink (h = x·Aᵀ) and expand (y += scale·h·Bᵀ) of
// the BGMV rows (one row per token, each with its own adapter entry), by a thread-block cluster (sm_90) per
// (token, slice). Each of the kCluster blocks shrinks a quarter of `in` into a partial h in its shared memory;
// after a cluster barrier every block sums the kCluster partials (read through distributed shared memory, in
// cluster-rank order, so the sum does not depend on timing) and expands a quarter of the slice's outputs.
//
// Why: on an H100 the two-launch path (lora.cu's BGMV shrink, then expand) costs 8-16 µs per kernel for at
// most 22 MB each (Nsight Compute, Llama-2-7B, batch 32 × 32 adapters: 88 µs of LoRA per layer where the bytes
// take 26), i.e. launch, ramp and dependent round trips, not bandwidth. One launch drops a kernel boundary per
// module group, and the expand's B rows and y values (which do not depend on h) are loaded before the
// barrier, so they travel while the shrink's partial sums are exchanged.
//
// Written against the Ops interface of prefill_mma_body.h (shfl_xor, to_f, from_f, copy16) plus
// cluster_sync() and peer(p, rank) (the same shared address in block `rank` of the cluster), so lora.cu's
// kernel and the host emulator (test/emulated/lora_bgmv_fused_emu.cc) run the same code. Opt-in
// (WEFT_LORA_FUSED=1) until measured on a GPU: see kernels.h.
#pragma once
#include <cstdint>

#include "kernels.h"
#include "prefill_mma_body.h"
#include "sgmv_tiles.h"

namespace weft::cuda::bgmv_fused {

constexpr int kThreads = prefill_mma::kThreads;  // 128: 4 warps
constexpr int kWarps = kThreads / 32;
constexpr int kCluster = 4;                      // blocks per (token, slice)
constexpr int kMaxRank = 64;
constexpr int kRanksPerWarp = kMaxRank / kWarps;  // rows of A per warp at the largest rank
constexpr int kPrefetchRank = 16;                 // B of the first output group is loaded early up to this rank

// 16-bit data, ranks up to kMaxRank, BGMV rows; per-entry alignment is checked per block (scalar paths).
inline bool supports(const LoraArgs& a) {
  return (a.dtype == DType::kBF16 || a.dtype == DType::kF16) && a.max_rank > 0 && a.max_rank <= kMaxRank &&
         a.token_entry != nullptr && a.tokens <= 65535;
}

struct Shared {
  float partial[kMaxRank];  // this block's share of h (read by every block of the cluster)
  float h[kMaxRank];        // the whole h, summed in cluster-rank order
};

WEFT_MMA_HD bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Eight 16-bit values from p as floats: one 16-byte load when `vec`, else element by element (the first n).
template <class Ops>
WEFT_MMA_HD void load8(const uint16_t* p, bool vec, int n, float (&out)[8]) {
  alignas(16) uint16_t w[8];
  if (vec) {
    Ops::copy16(w, p);
  } else {
    WEFT_UNROLL
    for (int e = 0; e < 8; ++e) w[e] = e < n ? p[e] : 0;
  }
  WEFT_UNROLL
  for (int e = 0; e < 8; ++e) out[e] = Ops::to_f(w[e]);
}

// Block ix.x of the cluster for token ix.y, slice ix.z.
template <class Ops>
WEFT_MMA_HD void block(const LoraArgs& a, const prefill_mma::BlockIndex& ix, Shared& sh) {
  const int c = ix.x, t = ix.y, slice = ix.z;
  const int e = a.token_entry[t];
  // The same for every block of the cluster (same token and slice), so returning here skips no peer's barrier.
  if (e < 0 || e >= a.num_entries) return;
  const int64_t ei = static_cast<int64_t>(slice) * a.num_entries + e;
  if (!sgmv::live(a, ei)) return;
  const int rank = a.rank[ei];
  const int lane = ix.thread % 32, warp = ix.thread / 32;

  // The expand's share: 8-output groups [og0, og1) of the slice; B of the thread's first group and its y values
  // are loaded now, before the barriers (neither depends on h).
  const int out_len = a.out_len[slice], off = a.out_offset[slice];
  const int ogroups = (out_len + 7) / 8, oper = (ogroups + kCluster - 1) / kCluster;
  const int og0 = c * oper, og1 = og0 + oper < ogroups ? og0 + oper : ogroups;
  const uint16_t* B = static_cast<const uint16_t*>(a.b[ei]);
  uint16_t* y = static_cast<uint16_t*>(a.y) + static_cast<int64_t>(t) * a.y_stride + off;
  const bool vec_b = rank % 8 == 0 && aligned16(B);
  const bool vec_y = off % 8 == 0 && a.y_stride % 8 == 0 && aligned16(a.y);
  const int first = og0 + ix.thread;
  const bool prefetch = first < og1 && vec_b && rank <= kPrefetchRank && (first + 1) * 8 <= out_len;
  alignas(16) uint16_t pre_b[8][kPrefetchRank];
  alignas(16) uint16_t pre_y[8];
  if (prefetch) {
    WEFT_UNROLL
    for (int j = 0; j < 8; ++j)
      WEFT_UNROLL
      for (int k0 = 0; k0 < kPrefetchRank; k0 += 8)
        if (k0 < rank) Ops::copy16(&pre_b[j][k0], B + static_cast<int64_t>(first * 8 + j) * rank + k0);
    if (vec_y) Ops::copy16(pre_y, y + first * 8);
  }

  // Shrink: this block's quarter of `in` in 8-element groups; warp w takes ranks w, w + 4, ...; lanes stride.
  const int64_t groups = (a.in + 7) / 8, per = (groups + kCluster - 1) / kCluster;
  const int64_t g0 = c * per, g1 = g0 + per < groups ? g0 + per : groups;
  const uint16_t* x = static_cast<const uint16_t*>(a.x) + static_cast<int64_t>(t) * a.x_stride;
  const uint16_t* A = static_cast<const uint16_t*>(a.a[ei]);
  const bool vec_in = a.in % 8 == 0 && a.x_stride % 8 == 0 && aligned16(a.x) && aligned16(A);
  float acc[kRanksPerWarp];
  WEFT_UNROLL
  for (int j = 0; j < kRanksPerWarp; ++j) acc[j] = 0.0f;
  for (int64_t g = g0 + lane; g < g1; g += 32) {
    const int n = a.in - g * 8 < 8 ? static_cast<int>(a.in - g * 8) : 8;
    float xv[8];
    load8<Ops>(x + g * 8, vec_in, n, xv);
    WEFT_UNROLL
    for (int j = 0; j < kRanksPerWarp; ++j) {
      const int k = warp + j * kWarps;
      if (k >= rank) break;
      float av[8];
      load8<Ops>(A + static_cast<int64_t>(k) * a.in + g * 8, vec_in, n, av);
      WEFT_UNROLL
      for (int q = 0; q < 8; ++q) acc[j] += av[q] * xv[q];
    }
  }
  WEFT_UNROLL
  for (int j = 0; j < kRanksPerWarp; ++j) {
    const int k = warp + j * kWarps;
    if (k >= rank) break;  // warp-uniform
    float s = acc[j];
    WEFT_UNROLL
    for (int o = 16; o > 0; o /= 2) s += Ops::shfl_xor(s, o);
    if (lane == 0) sh.partial[k] = s;
  }
  Ops::cluster_sync();  // every block's partial is written
  for (int k = ix.thread; k < rank; k += kThreads) {
    float s = 0.0f;
    for (int q = 0; q < kCluster; ++q) s += Ops::peer(sh.partial, q)[k];
    sh.h[k] = s;
  }
  Ops::cluster_sync();  // h is whole in every block, and no block reads a peer's partial any more

  // Expand: thread's 8-output groups; y += scale · B[o]·h, every y load of a group before its store.
  const float scale = a.scale[ei];
  for (int og = first; og < og1; og += kThreads) {
    const int o0 = og * 8, n = out_len - o0 < 8 ? out_len - o0 : 8;
    float acc8[8];
    WEFT_UNROLL
    for (int j = 0; j < 8; ++j) acc8[j] = 0.0f;
    const bool early = prefetch && og == first;
    for (int k0 = 0; k0 < rank; k0 += 8) {
      const int kn = rank - k0 < 8 ? rank - k0 : 8;
      WEFT_UNROLL
      for (int j = 0; j < 8; ++j) {
        if (j >= n) break;
        float bv[8];
        if (early) {
          WEFT_UNROLL
          for (int q = 0; q < 8; ++q) bv[q] = Ops::to_f(pre_b[j][k0 + q]);
        } else {
          load8<Ops>(B + static_cast<int64_t>(o0 + j) * rank + k0, vec_b, kn, bv);
        }
        WEFT_UNROLL
        for (int q = 0; q < 8; ++q)
          if (q < kn) acc8[j] += bv[q] * sh.h[k0 + q];
      }
    }
    if (vec_y && n == 8) {
      alignas(16) uint16_t yw[8];
      if (early) {
        WEFT_UNROLL
        for (int j = 0; j < 8; ++j) yw[j] = pre_y[j];
      } else {
        Ops::copy16(yw, y + o0);
      }
      WEFT_UNROLL
      for (int j = 0; j < 8; ++j) yw[j] = Ops::from_f(Ops::to_f(yw[j]) + scale * acc8[j]);
      Ops::copy16(y + o0, yw);
    } else {
      WEFT_UNROLL
      for (int j = 0; j < 8; ++j)
        if (j < n) y[o0 + j] = Ops::from_f(Ops::to_f(y[o0 + j]) + scale * acc8[j]);
    }
  }
}

}  // namespace weft::cuda::bgmv_fused
