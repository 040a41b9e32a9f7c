// Pipelined tensor-core prefill attention: the algorithm of prefill_mma_body.h (flash-attention-2 on mma.sync
// m16n8k16, 64 virtual rows per block, 64-key tiles, online softmax in registers, bf16 P as a hi + lo pair) with
// the data movement the H100 measurements asked for (that kernel reached 48.9 TFLOP/s at 2,048 tokens):
// - K/V tiles are copied with cp.async into two shared-memory stages: tile i + 1 is in flight while tile i is
//   multiplied (the first kernel loaded through registers and stalled on every tile);
// - the B fragments come from shared memory by ldmatrix (x4: two MMAs' worth per instruction; V through
//   .trans), where the first kernel issued 2 (K) and 4 (V) scalar shared loads per MMA;
// - tiles every row of a warp sees whole skip the causal/window/chunk mask, and a warp skips the key columns past its
//   last row's last key (causal: its position, the diagonal tile);
// - the launcher starts the row tiles with the most keys first (attention_prefill_mma.cu).
// Same Ops interface as prefill_mma_body.h plus ldmatrix_x4<trans>(regs, row address), cp_async16(dst, src),
// cp_async_commit(), cp_async_wait<n>(); the host warp emulator (test/emulated/warp_emu.h) defers cp.async copies
// to the wait, so a read of a stage before its wait fails the emulated test. Keep it free of CUDA-only syntax.
//
// ldmatrix (PTX m8n8.x4.b16): lane l gives the address of row l % 8 of matrix l / 8; register m of lane l gets
// matrix m's (row l / 4, cols 2(l % 4), +1) — or, with .trans, (rows 2(l % 4), +1 of col l / 4). With K stored
// [key][dim] the plain form yields Q·Kᵀ's B fragments; with V stored [key][dim] the transposed form yields P·V's.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels.h"
#include "prefill_mma_body.h"

namespace weft::cuda::prefill_pipelined {

namespace pm = prefill_mma;
constexpr int kWarps = pm::kWarps;
constexpr int kThreads = pm::kThreads;
constexpr int kRows = pm::kRows;  // virtual rows per block
constexpr int kKeys = pm::kKeys;  // keys per tile
constexpr int kPad = pm::kPad;
constexpr int kStages = 2;

inline bool supports(const PagedAttention& a) { return pm::supports(a); }
// Dynamic shared memory: kStages × (K tile, V tile), padded rows.
constexpr size_t smem_bytes(int head_dim) { return kStages * pm::smem_bytes(head_dim); }

// Issues the cp.async copies of keys [t0, t0 + kKeys) into one stage (keys past `hi` are zero-filled with plain
// stores: a masked score must never meet a NaN in P·V), and commits them as one group.
template <class Ops, int D>
WEFT_MMA_HD void load_tile(const PagedAttention& a, int tid, int t0, int hi, const uint16_t* kc, const uint16_t* vc,
                           const int32_t* bt, int64_t kv_dim, uint16_t* ks, uint16_t* vs) {
  constexpr int KS = D + kPad, CH = D / 8;
  constexpr int KPP = kThreads / CH;  // keys per pass; threads past KPP·CH idle (head sizes 48, 80, 96, 112)
  // A thread copies one 16-byte chunk c of every KPP-th key, so it walks the block table incrementally instead
  // of dividing by the block size per chunk (that index arithmetic was most of the old loop).
  const int c = tid % CH, k_first = tid / CH;
  if (k_first < KPP) {
    int j = t0 + k_first, blk = j / a.block_size, off = j % a.block_size;
    for (int kk = k_first; kk < kKeys; kk += KPP, j += KPP) {
      if (j <= hi) {
        const int64_t slot = static_cast<int64_t>(bt[blk]) * a.block_size + off;
        Ops::cp_async16(ks + kk * KS + c * 8, kc + slot * kv_dim + c * 8);
        Ops::cp_async16(vs + kk * KS + c * 8, vc + slot * kv_dim + c * 8);
      } else {
        Ops::zero16(ks + kk * KS + c * 8);
        Ops::zero16(vs + kk * KS + c * 8);
      }
      for (off += KPP; off >= a.block_size; off -= a.block_size) ++blk;
    }
  }
  Ops::cp_async_commit();
}

template <class Ops, int D>
WEFT_MMA_HD void block(const PagedAttention& a, const pm::BlockIndex& ix, uint16_t* smem) {
  constexpr int KS = D + kPad;     // shared-memory row stride, elements
  constexpr int NT = kKeys / 8;    // 8-key column tiles of S
  constexpr int QK = D / 16;       // k-steps of Q·Kᵀ
  constexpr int DT = D / 8;        // 8-dim column tiles of O (even: D is a multiple of 16)
  constexpr int PK = kKeys / 16;   // k-steps of P·V
  constexpr int STAGE = 2 * kKeys * KS;

  const int s = ix.y, kvh = ix.z, group = a.heads / a.kv_heads;
  const int q0 = a.cu_seqlens_q[s], nq = a.cu_seqlens_q[s + 1] - q0, ctx = a.context_lens[s];
  const int vr0 = ix.x * kRows, vr_end = vr0 + kRows < nq * group ? vr0 + kRows : nq * group;
  if (vr0 >= vr_end) return;  // block-uniform, before any barrier
  const int hi = pm::last_key(a, s, ctx - nq + (vr_end - 1) / group, ctx);  // last key any row of the block sees
  const int lo = pm::first_key(a, ctx - nq + vr0 / group);  // first key any row sees

  const int warp = ix.thread / 32, lane = ix.thread % 32, g = lane / 4, t = lane % 4;
  const int wr0 = vr0 + warp * 16;  // the warp's first virtual row
  int first[2], last[2];            // this thread's rows g and g + 8: first and last visible key
  for (int i = 0; i < 2; ++i) {
    const int vr = wr0 + g + 8 * i;
    const int pos = vr < vr_end ? ctx - nq + vr / group : -1;  // -1: padding row, sees nothing
    first[i] = pm::first_key(a, pos);
    last[i] = pm::last_key(a, s, pos, ctx);
  }
  // The warp's real rows (warp-uniform): keys past w_last are nobody's in this warp; keys in
  // [w_full_lo, w_full_hi] are everybody's (no mask needed there).
  const int wr_last = (wr0 + 15 < vr_end ? wr0 + 15 : vr_end - 1);
  const bool w_any = wr0 < vr_end;
  const int w_last_pos = w_any ? ctx - nq + wr_last / group : -1, w_first_pos = w_any ? ctx - nq + wr0 / group : -1;
  // first_key and last_key are non-decreasing in the position: the warp's last row starts and ends latest, its first
  // row earliest. A warp across a chunk boundary has w_full_lo > w_full_hi: no tile is whole for it.
  const int w_last = pm::last_key(a, s, w_last_pos, ctx);
  const int w_full_hi = pm::last_key(a, s, w_first_pos, ctx);
  const int w_full_lo = w_any ? pm::first_key(a, w_last_pos) : 0;
  const int w_first = w_any ? pm::first_key(a, w_first_pos) : 0;  // no row sees a key before it

  uint32_t qa[QK][4];
  pm::load_q<D>(a, qa, wr0, vr_end, q0, group, kvh, g, t);

  const float scale = a.scale * pm::kLog2e;
  float o[DT][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  for (int dt = 0; dt < DT; ++dt)
    for (int e = 0; e < 4; ++e) o[dt][e] = 0.0f;

  const int64_t kv_dim = static_cast<int64_t>(a.kv_heads) * D;
  const uint16_t* kc = static_cast<const uint16_t*>(a.k_cache) + kvh * D;
  const uint16_t* vc = static_cast<const uint16_t*>(a.v_cache) + kvh * D;
  const int32_t* bt = a.block_tables + static_cast<int64_t>(s) * a.block_table_stride;

  // ldmatrix row addresses of this lane, relative to a stage's K / V tile (see the header comment):
  // K: matrix l / 8 = (n-tile + (l / 16), dims + ((l / 8) & 1) · 8); V: (keys + ((l / 8) & 1) · 8, dim tile + l / 16).
  const int k_lane = ((lane / 16) * 8 + lane % 8) * KS + ((lane / 8) & 1) * 8;
  const int v_lane = (((lane / 8) & 1) * 8 + lane % 8) * KS + (lane / 16) * 8;

  load_tile<Ops, D>(a, ix.thread, lo, hi, kc, vc, bt, kv_dim, smem, smem + kKeys * KS);
  int stage = 0;
  for (int t0 = lo; t0 <= hi; t0 += kKeys, stage ^= 1) {
    uint16_t* ks = smem + stage * STAGE;
    uint16_t* vs = ks + kKeys * KS;
    if (t0 + kKeys <= hi) {  // the next tile into the other stage (free: the barrier ending the last tile)
      uint16_t* nk = smem + (stage ^ 1) * STAGE;
      load_tile<Ops, D>(a, ix.thread, t0 + kKeys, hi, kc, vc, bt, kv_dim, nk, nk + kKeys * KS);
      Ops::template cp_async_wait<1>();  // this tile's group is done, the next may still be in flight
    } else {
      Ops::template cp_async_wait<0>();
    }
    Ops::sync();  // every thread's copies of this tile are visible

    // Columns of this tile the warp's rows can see: [0, kv_cols). Warp-uniform, so the guards below branch
    // together; a warp whose rows all precede the tile, whose windows all start past it, or that holds only
    // padding rows just joins the barriers.
    const int kv_cols = w_last - t0 + 1 < kKeys ? w_last - t0 + 1 : kKeys;
    if (kv_cols > 0 && t0 + kKeys > w_first) {
      const int nv = (kv_cols + 7) / 8, pv = (kv_cols + 15) / 16;
      const bool full = t0 >= w_full_lo && t0 + kKeys - 1 <= w_full_hi;

      // S = Q·Kᵀ; one ldmatrix.x4 gives the B fragments of two column tiles for one k-step.
      float sc[NT][4];
      for (int n = 0; n < NT; ++n)
        for (int e = 0; e < 4; ++e) sc[n][e] = 0.0f;
      WEFT_UNROLL
      for (int kk = 0; kk < QK; ++kk) {
        WEFT_UNROLL
        for (int n = 0; n < NT; n += 2) {
          if (n >= nv) break;
          uint32_t b[4];
          Ops::template ldmatrix_x4<false>(b, ks + n * 8 * KS + kk * 16 + k_lane);
          const uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
          Ops::mma(sc[n], qa[kk], b0);
          Ops::mma(sc[n + 1], qa[kk], b1);
        }
      }

      // Mask (only where some row of the warp cannot see some key), then the online softmax.
      float mx[2] = {-INFINITY, -INFINITY};
      for (int n = 0; n < NT; ++n) {
        for (int e = 0; e < 4; ++e) {
          const int i = e >> 1, j = t0 + n * 8 + 2 * t + (e & 1);
          const bool vis = full || (j <= last[i] && j >= first[i]);  // columns >= nv: past every row, masked
          sc[n][e] = !vis ? -INFINITY : a.softcap > 0.0f ? pm::softcap_score(sc[n][e] * a.scale, a.softcap) * pm::kLog2e
                                                         : sc[n][e] * scale;
          mx[i] = fmaxf(mx[i], sc[n][e]);
        }
      }
      pm::rescale_rows<Ops, DT>(mx, m, l, o);
      uint32_t pa[PK][4], pl[Ops::kSplitP ? PK : 1][4];  // P as bf16 hi + lo (prefill_mma_body.h's pack_p)
      pm::pack_p<Ops>(sc, m, l, pa, pl);

      // O += P·V; one ldmatrix.x4.trans gives the B fragments of two dim tiles for one 16-key step.
      WEFT_UNROLL
      for (int kk = 0; kk < PK; ++kk) {
        if (kk >= pv) break;
        WEFT_UNROLL
        for (int dt = 0; dt < DT; dt += 2) {
          uint32_t b[4];
          Ops::template ldmatrix_x4<true>(b, vs + kk * 16 * KS + dt * 8 + v_lane);
          const uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
          Ops::mma(o[dt], pa[kk], b0);
          Ops::mma(o[dt + 1], pa[kk], b1);
          if constexpr (Ops::kSplitP) {
            Ops::mma(o[dt], pl[kk], b0);
            Ops::mma(o[dt + 1], pl[kk], b1);
          }
        }
      }
    }
    Ops::sync();  // every warp is done with this stage before the next iteration's copies overwrite it
  }

  pm::store_rows<Ops, D>(a, o, m, l, wr0, vr_end, q0, group, kvh, g, t);
}

}  // namespace weft::cuda::prefill_pipelined
