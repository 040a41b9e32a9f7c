// SGMV expand with 16-byte accesses (y[rows, off + o] += scale · h[rows]·B[o]ᵀ over segments; 16-bit y and B,
// fp32 h): the body of one thread of one block, written against the Ops interface of prefill_mma_body.h (sync,
// to_f, from_f, copy16) so lora.cu's kernel and the host warp emulator (test/emulated/lora_expand_vec_emu.cc)
// run the same code.
//
// Why: in prefill the expand is bound by y, which it reads and writes once per output ([T, out] 16-bit), and
// the CUDA-core expand gives each thread 4 outputs 256 apart, i.e. 2-byte y accesses (measured 26 % of the copy
// rate at 512 tokens on an H100). Here a thread owns 8 consecutive outputs of an 8-row tile: each row of y is
// one 16-byte load and one 16-byte store, all 8 rows' loads are issued before any store, and B's 8 rows for
// those outputs are contiguous (8·rank elements). Blocks whose slice, rank or B pointer do not allow 16-byte
// access take the same work element by element.
#pragma once
#include <cstdint>

#include "kernels.h"
#include "prefill_mma_body.h"
#include "sgmv_tiles.h"

namespace weft::cuda::expand_vec {

constexpr int kThreads = 128;
constexpr int kPer = 8;                   // consecutive outputs per thread: 16 bytes of a y row
constexpr int kCols = kThreads * kPer;    // outputs per block
constexpr int kRows = 8;                  // rows per block (an SGMV tile)

// 16-bit data; y's rows 16-byte aligned so a slice at a multiple-of-8 offset can use 16-byte accesses.
inline bool supports(const LoraArgs& a) {
  return (a.dtype == DType::kBF16 || a.dtype == DType::kF16) && a.y_stride % 8 == 0 &&
         (reinterpret_cast<uintptr_t>(a.y) & 15u) == 0 && a.max_rank <= 1024;
}
inline int64_t row_tiles(const LoraArgs& a) { return sgmv::row_tiles(a, kRows); }
inline int64_t col_blocks(const LoraArgs& a) { return (a.max_out_len + kCols - 1) / kCols; }
inline size_t smem_bytes(const LoraArgs& a) { return sizeof(float) * kRows * a.max_rank; }

// Block (x = column block, y = row tile, z = slice); hs: shared [kRows][rank] fp32. kEarlyY: the thread's y rows
// are loaded first, before h is staged (they do not depend on it: one memory round trip off the critical path,
// and y is what prefill's expand is bound by) — at the price of registers (126 -> 154 on sm_90a, 3 blocks per SM
// instead of 4). Opt-in (WEFT_SGMV_EXPAND_EARLY_Y=1) until measured on a GPU; the same arithmetic either way.
template <class Ops, bool kEarlyY = false>
WEFT_MMA_HD void block(const LoraArgs& a, const prefill_mma::BlockIndex& ix, float* hs) {
  const sgmv::Tile w = sgmv::tile_of(a, ix.y, kRows);
  if (w.r1 <= w.r0) return;  // block-uniform, before the barrier
  const int slice = ix.z;
  const int64_t ei = static_cast<int64_t>(slice) * a.num_entries + w.entry;
  if (!sgmv::live(a, ei)) return;
  const int rank = a.rank[ei];
  const int nrows = w.r1 - w.r0;
  const int out_len = a.out_len[slice], off = a.out_offset[slice];
  const int o0 = (ix.x * kThreads + ix.thread) * kPer;
  const int n = o0 < out_len ? (out_len - o0 < kPer ? out_len - o0 : kPer) : 0;  // 0: no outputs for this thread
  const bool vec = n == kPer && rank % 8 == 0 && off % 8 == 0 && (reinterpret_cast<uintptr_t>(a.b[ei]) & 15u) == 0;
  uint16_t* y = static_cast<uint16_t*>(a.y) + static_cast<int64_t>(w.r0) * a.y_stride + off + o0;
  alignas(16) uint16_t yw[kRows][kPer];  // every row's load before any store (the compiler cannot reorder them)
  auto load_y = [&] {
    WEFT_UNROLL
    for (int r = 0; r < kRows; ++r)
      if (r < nrows) Ops::copy16(yw[r], y + static_cast<int64_t>(r) * a.y_stride);
  };
  if (kEarlyY && vec) load_y();
  for (int i = ix.thread; i < kRows * rank; i += kThreads) {
    const int r = i / rank, k = i % rank;
    hs[i] = r < nrows ? a.h[(static_cast<int64_t>(slice) * a.tokens + w.r0 + r) * a.max_rank + k] : 0.0f;
  }
  Ops::sync();
  if (n == 0) return;  // no barrier follows
  const uint16_t* B = static_cast<const uint16_t*>(a.b[ei]) + static_cast<int64_t>(o0) * rank;
  const float scale = a.scale[ei];

  // Constant trip counts with guards inside, so the accumulators stay in registers once unrolled.
  float acc[kPer][kRows];
  WEFT_UNROLL
  for (int j = 0; j < kPer; ++j)
    WEFT_UNROLL
    for (int r = 0; r < kRows; ++r) acc[j][r] = 0.0f;
  for (int k0 = 0; k0 < rank; k0 += 8) {
    const int kn = rank - k0 < 8 ? rank - k0 : 8;
    WEFT_UNROLL
    for (int j = 0; j < kPer; ++j) {
      if (j >= n) break;
      alignas(16) uint16_t bw[8];  // copy16 moves 16-byte words
      if (vec) {
        Ops::copy16(bw, B + static_cast<int64_t>(j) * rank + k0);
      } else {
        WEFT_UNROLL
        for (int e = 0; e < 8; ++e) bw[e] = e < kn ? B[static_cast<int64_t>(j) * rank + k0 + e] : 0;
      }
      WEFT_UNROLL
      for (int e = 0; e < 8; ++e) {
        if (e >= kn) break;
        const float b = Ops::to_f(bw[e]);
        WEFT_UNROLL
        for (int r = 0; r < kRows; ++r) acc[j][r] += b * hs[r * rank + k0 + e];
      }
    }
  }

  if (vec) {
    if (!kEarlyY) load_y();
    WEFT_UNROLL
    for (int r = 0; r < kRows; ++r) {
      if (r >= nrows) break;
      WEFT_UNROLL
      for (int j = 0; j < kPer; ++j) yw[r][j] = Ops::from_f(Ops::to_f(yw[r][j]) + scale * acc[j][r]);
      Ops::copy16(y + static_cast<int64_t>(r) * a.y_stride, yw[r]);
    }
  } else {
    WEFT_UNROLL
    for (int r = 0; r < kRows; ++r) {
      if (r >= nrows) break;
      WEFT_UNROLL
      for (int j = 0; j < kPer; ++j) {
        if (j >= n) break;
        uint16_t* yp = y + static_cast<int64_t>(r) * a.y_stride + j;
        *yp = Ops::from_f(Ops::to_f(*yp) + scale * acc[j][r]);
      }
    }
  }
}

}  // namespace weft::cuda::expand_vec
