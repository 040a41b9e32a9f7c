// Decode-sized GEMM on tensor cores: y[M, N] = x[M, K]·W[N, K]ᵀ (+ bias) for M ≤ 32 rows, 16-bit x/W/y, fp32
// accumulation — the body of one thread of one block, written against the Ops interface of prefill_mma_body.h
// (sync, mma, copy16, to_f/from_f) so skinny_gemm.cu and the host warp emulator
// (test/emulated/skinny_gemm_emu.cc) run the same code.
//
// Why: a decode step only streams the weights, and on an H100 cuBLASLt's kernels for M = 32 read the o and down
// projections (N = 4096) at 2.0 TB/s where the copy rate is 3.0 (qkv and gate/up: 2.6), and batch 1 ran at 58 % of
// the bandwidth bound. Here the weights are the MMA's A operand ("swap AB": 16 rows of W per m16n8k16, the batch
// rows are its 8-wide n side, up to 4 n-tiles), each lane loads 16 bytes of two W rows and of each x row per
// 32-column chunk straight from memory — no shared-memory staging, every weight byte read once — and the k
// order inside a chunk is permuted identically on both operands (lane t's 8 columns 8t..8t+7 are its virtual k
// 2t, 2t+1, 2t+8, 2t+9 of two k-steps), which a sum does not notice.
//
// Work: block = 16 rows of W (one A tile) × all of K; its 4 warps take contiguous quarters of K's 32-column
// chunks, and their partial sums meet in shared memory in warp order. The split depends on K only, so a row's
// result does not depend on M or on what else is in the batch (batch-invariant across M ≤ 32).
#pragma once
#include <cstdint>

#include "kernels.h"
#include "prefill_mma_body.h"

namespace weft::cuda::skinny {

namespace pm = prefill_mma;
constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kRows = 16;    // rows of W (outputs) per block
constexpr int kChunk = 32;   // K columns per lane step: 8 per lane, two k-steps
constexpr int kUnroll = 4;   // chunks whose loads are issued before their MMAs
constexpr int kMaxM = 32;

// 16-bit data, M ≤ 32, K a whole number of chunks, 16-byte aligned rows (every load is one 16-byte word).
inline bool supports(const SkinnyGemmArgs& a) {
  const auto aligned = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; };
  return (a.dtype == DType::kBF16 || a.dtype == DType::kF16) && a.m >= 1 && a.m <= kMaxM && a.n >= 1 &&
         a.k >= kChunk && a.k % kChunk == 0 && aligned(a.x) && aligned(a.w) && a.x && a.w && a.y &&
         (reinterpret_cast<uintptr_t>(a.y) & 1u) == 0;
}
inline int64_t blocks(const SkinnyGemmArgs& a) { return (a.n + kRows - 1) / kRows; }
// Shared memory: the warps' partial sums [kWarps][kRows][NT·8] fp32 at the largest NT.
constexpr size_t smem_bytes() { return sizeof(float) * kWarps * kRows * kMaxM; }

// NT = n-tiles of 8 batch rows (1, 2 or 4: M ≤ 8, 16, 32). Block x = row tile of W.
template <class Ops, int NT>
WEFT_MMA_HD void block(const SkinnyGemmArgs& a, const pm::BlockIndex& ix, float* red) {
  const int warp = ix.thread / 32, lane = ix.thread % 32, g = lane / 4, t = lane % 4;
  const int64_t n0 = static_cast<int64_t>(ix.x) * kRows;
  const int M = static_cast<int>(a.m);
  const int64_t K = a.k;
  const int chunks = static_cast<int>(K / kChunk), per = (chunks + kWarps - 1) / kWarps;
  const int c0 = warp * per, c1 = c0 + per < chunks ? c0 + per : chunks;

  // This lane's two W rows (A rows g and g + 8) and NT x rows (B column g of each n-tile); rows past N or M read
  // row 0 and are zeroed, so every load stays in bounds and the MMA sees zeros.
  const uint16_t* W = static_cast<const uint16_t*>(a.w);
  const uint16_t* X = static_cast<const uint16_t*>(a.x);
  const bool wv[2] = {n0 + g < a.n, n0 + g + 8 < a.n};
  const uint16_t* wr[2] = {W + (wv[0] ? n0 + g : 0) * K + 8 * t, W + (wv[1] ? n0 + g + 8 : 0) * K + 8 * t};
  bool xv[NT];
  const uint16_t* xr[NT];
  for (int j = 0; j < NT; ++j) {
    xv[j] = j * 8 + g < M;
    xr[j] = X + static_cast<int64_t>(xv[j] ? j * 8 + g : 0) * K + 8 * t;
  }

  float acc[NT][4];
  for (int j = 0; j < NT; ++j)
    for (int e = 0; e < 4; ++e) acc[j][e] = 0.0f;

  for (int cb = c0; cb < c1; cb += kUnroll) {
    // Every load of kUnroll chunks first, then their MMAs: the loads are in flight together.
    alignas(16) uint16_t wl[kUnroll][2][8];
    alignas(16) uint16_t xl[kUnroll][NT][8];
    WEFT_UNROLL
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t col = static_cast<int64_t>(cb + u) * kChunk;
      const bool live = cb + u < c1;
      for (int r = 0; r < 2; ++r) {
        if (live && wv[r]) Ops::stream16(wl[u][r], wr[r] + col);
        else Ops::zero16(wl[u][r]);
      }
      for (int j = 0; j < NT; ++j) {
        if (live && xv[j]) Ops::copy16(xl[u][j], xr[j] + col);
        else Ops::zero16(xl[u][j]);
      }
    }
    WEFT_UNROLL
    for (int u = 0; u < kUnroll; ++u) {
      if (cb + u >= c1) break;  // warp-uniform
      WEFT_UNROLL
      for (int s = 0; s < 2; ++s) {  // k-step s holds the lane's columns 8t + 4s .. 8t + 4s + 3
        const uint16_t* w0 = wl[u][0] + 4 * s;
        const uint16_t* w1 = wl[u][1] + 4 * s;
        const uint32_t fa[4] = {pm::halves(w0[0], w0[1]), pm::halves(w1[0], w1[1]), pm::halves(w0[2], w0[3]),
                                pm::halves(w1[2], w1[3])};
        WEFT_UNROLL
        for (int j = 0; j < NT; ++j) {
          const uint16_t* xs = xl[u][j] + 4 * s;
          const uint32_t fb[2] = {pm::halves(xs[0], xs[1]), pm::halves(xs[2], xs[3])};
          Ops::mma(acc[j], fa, fb);
        }
      }
    }
  }

  // D[W row][batch row]: c0, c1 = (row g, batch 2t, 2t + 1), c2, c3 = (row g + 8, same). Partial sums per warp,
  // then added in warp order, + bias, rounded once.
  constexpr int MW = NT * 8;
  for (int j = 0; j < NT; ++j)
    for (int e = 0; e < 4; ++e) red[(warp * kRows + g + 8 * (e >> 1)) * MW + j * 8 + 2 * t + (e & 1)] = acc[j][e];
  Ops::sync();
  const uint16_t* bias = static_cast<const uint16_t*>(a.bias);
  uint16_t* Y = static_cast<uint16_t*>(a.y);
  for (int i = ix.thread; i < kRows * MW; i += kThreads) {
    const int m = i / kRows, r = i % kRows;  // consecutive threads: consecutive outputs of one batch row
    const int64_t n = n0 + r;
    if (m >= M || n >= a.n) continue;
    float sum = 0.0f;
    for (int wp = 0; wp < kWarps; ++wp) sum += red[(wp * kRows + r) * MW + m];
    if (bias) sum += Ops::to_f(bias[n]);
    Y[static_cast<int64_t>(m) * a.y_stride + n] = Ops::from_f(sum);
  }
}

}  // namespace weft::cuda::skinny
