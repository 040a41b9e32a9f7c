// BGMV shrink with `in` split across a block (h[t, k] = x[t]·A[k] for a decode step, one row per token): the body
// of one thread of one block, written against the Ops interface of prefill_mma_body.h (sync, shfl_xor, to_f,
// copy16) so lora.cu's kernel and the host warp emulator (test/emulated/lora_shrink_split_emu.cc) run the same
// code.
//
// Why: a decode step's LoRA is latency-bound, not bandwidth-bound (H100, 2026-11-23: batch 1 with one rank-16
// adapter cost 1.34 ms per Llama-2-7B step for 0.08 GB of adapter weights). The first BGMV shrink gives each
// warp one rank row and walks `in` with it: 16 dependent rounds of loads at in 4096 (4 after unrolling) and 43
// (11) at in 11008 (the down projection), each a full memory round trip. Here the block's 128 threads split
// `in` 8 elements apiece (1,024 per pass: 4 passes at 4096, 11 at 11008) and a block covers kRanks ranks, so a
// thread's loads of all passes are independent and issue together: about one round trip, then a fixed-order
// reduction (lanes by shuffles, warps through shared memory). The sum's order depends on `in` and the rank
// chunk only, never on the batch: a token's h is the same whatever else is in the step.
// Measured on an H100 (2026-11-23, WEFT_BGMV_SHRINK=split vs the first kernel): -1.0 to +2.4 % per Llama-2-7B
// decode step over batch 1..128 — noise. The shrink's serial loads were not what a decode step's LoRA waits
// on; it stays opt-in (see cuda_lora.cc for what was tried next).
#pragma once
#include <cstdint>

#include "kernels.h"
#include "prefill_mma_body.h"
#include "sgmv_tiles.h"

namespace weft::cuda::shrink_split {

constexpr int kThreads = 128;               // 4 warps
constexpr int kWarps = kThreads / 32;
constexpr int kPer = 8;                     // consecutive `in` elements per thread per pass: one 16-byte load
constexpr int kRanks = 4;                   // rank rows per block (blockIdx.x = chunk of kRanks ranks)
constexpr int kRedFloats = kWarps * kRanks; // shared memory: one partial sum per warp and rank

// 16-bit data (fp32 models keep the CUDA-core kernel).
inline bool supports(const LoraArgs& a) { return a.dtype == DType::kBF16 || a.dtype == DType::kF16; }
inline int64_t rank_chunks(const LoraArgs& a) { return (a.max_rank + kRanks - 1) / kRanks; }

// Block (x = rank chunk, y = token, z = slice); red: shared [kWarps][kRanks] fp32.
template <class Ops>
WEFT_MMA_HD void block(const LoraArgs& a, const prefill_mma::BlockIndex& ix, float* red) {
  const int t = ix.y, slice = ix.z;
  const int e = a.token_entry[t];
  if (e < 0 || e >= a.num_entries) return;  // base-only token; block-uniform, before the barrier
  const int64_t ei = static_cast<int64_t>(slice) * a.num_entries + e;
  if (!sgmv::live(a, ei)) return;
  const int rank = a.rank[ei], k0 = ix.x * kRanks;
  if (k0 >= rank) return;
  const int nk = rank - k0 < kRanks ? rank - k0 : kRanks;
  const uint16_t* x = static_cast<const uint16_t*>(a.x) + static_cast<int64_t>(t) * a.x_stride;
  const uint16_t* A = static_cast<const uint16_t*>(a.a[ei]) + static_cast<int64_t>(k0) * a.in;
  const bool vec = a.in % kPer == 0 && a.x_stride % kPer == 0 && (reinterpret_cast<uintptr_t>(a.x) & 15u) == 0 &&
                   (reinterpret_cast<uintptr_t>(a.a[ei]) & 15u) == 0;
  float acc[kRanks];
  WEFT_UNROLL
  for (int k = 0; k < kRanks; ++k) acc[k] = 0.0f;
  if (vec) {
    // Independent passes: the compiler issues several passes' loads before the first product (unrolled by 4, at
    // most ~20 16-byte loads in flight per thread).
#if defined(__CUDACC__)
#pragma unroll 4
#endif
    for (int64_t c = static_cast<int64_t>(ix.thread) * kPer; c < a.in; c += kThreads * kPer) {
      alignas(16) uint16_t xw[kPer];
      alignas(16) uint16_t aw[kRanks][kPer];
      Ops::copy16(xw, x + c);
      WEFT_UNROLL
      for (int k = 0; k < kRanks; ++k)
        if (k < nk) Ops::copy16(aw[k], A + static_cast<int64_t>(k) * a.in + c);
      WEFT_UNROLL
      for (int k = 0; k < kRanks; ++k) {
        if (k >= nk) break;
        WEFT_UNROLL
        for (int j = 0; j < kPer; ++j) acc[k] += Ops::to_f(aw[k][j]) * Ops::to_f(xw[j]);
      }
    }
  } else {
    for (int64_t c = ix.thread; c < a.in; c += kThreads) {
      const float xv = Ops::to_f(x[c]);
      WEFT_UNROLL
      for (int k = 0; k < kRanks; ++k)
        if (k < nk) acc[k] += Ops::to_f(A[static_cast<int64_t>(k) * a.in + c]) * xv;
    }
  }
  // Lanes, then warps, each in a fixed order.
  WEFT_UNROLL
  for (int k = 0; k < kRanks; ++k)
    WEFT_UNROLL
    for (int o = 16; o > 0; o >>= 1) acc[k] += Ops::shfl_xor(acc[k], o);
  const int warp = ix.thread / 32, lane = ix.thread % 32;
  if (lane == 0) {
    WEFT_UNROLL
    for (int k = 0; k < kRanks; ++k) red[warp * kRanks + k] = acc[k];
  }
  Ops::sync();
  if (ix.thread < nk) {
    float s = 0.0f;
    WEFT_UNROLL
    for (int w = 0; w < kWarps; ++w) s += red[w * kRanks + ix.thread];
    a.h[(static_cast<int64_t>(slice) * a.tokens + t) * a.max_rank + k0 + ix.thread] = s;
  }
}

}  // namespace weft::cuda::shrink_split
