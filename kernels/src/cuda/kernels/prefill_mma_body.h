// Tensor-core prefill attention (flash-attention-2 layout on mma.sync m16n8k16, bf16/fp16 in, fp32 accumulate):
// the body of one thread of one block, written against a small `Ops` interface (barrier, lane shuffle, the MMA,
// 16-bit conversions) so the same code runs as the CUDA kernel (attention_prefill_mma.cu) and under the host
// warp emulator that checks it against cpu::paged_attention on machines without a GPU
// (test/emulated/prefill_mma_emu.cc). Keep it free of CUDA-only syntax.
//
// Work split: a block owns kRows = 64 consecutive "virtual rows" of one (sequence, kv head) — virtual row vr is
// query token vr / group with q head kv_head·group + vr % group, so the K/V tiles a block loads serve the whole
// GQA group. Warp w holds rows [16w, 16w + 16). Per 64-key tile: K and V go to shared memory (gathered through the
// block table, keys past the block's last visible key zero-filled), S = Q·Kᵀ on tensor cores (Q's A-fragments
// stay in registers for the whole block), causal (or bidirectional; or Gemma 3's image spans)/sliding-window/chunk mask and online softmax on the S accumulators
// (a row lives in the 4 lanes of a quad: two xor-shuffles reduce it), then P (re-packed in registers from the
// accumulator layout into the A-operand layout) times V on tensor cores into the O accumulators.
//
// PTX fragment layouts used (mma.m16n8k16, g = lane / 4, t = lane % 4):
//   A 16×16 (4 regs of 2 halves): reg0 (row g, cols 2t, 2t+1), reg1 (row g+8, same cols), reg2 (row g, cols
//     2t+8, 2t+9), reg3 (row g+8, cols 2t+8, 2t+9); the lower 16 bits hold the lower column.
//   B 16×8 (2 regs): reg0 (rows k = 2t, 2t+1, col n = g), reg1 (rows 2t+8, 2t+9, col g).
//   C/D 16×8 fp32 (4 floats): c0, c1 (row g, cols 2t, 2t+1), c2, c3 (row g+8, same cols).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "kernels.h"

#ifdef __CUDACC__
#define WEFT_MMA_HD __device__ __forceinline__
#define WEFT_UNROLL _Pragma("unroll")
#else
#define WEFT_MMA_HD inline
#define WEFT_UNROLL
#endif

namespace weft::cuda::prefill_mma {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kRows = 16 * kWarps;  // virtual rows per block
constexpr int kKeys = 64;           // keys per shared-memory tile
constexpr int kPad = 8;             // row padding (elements): conflict-free fragment reads, rows stay 16-B aligned
constexpr float kLog2e = 1.4426950408889634f;

// PagedAttention::softcap (Gemma 2's attention-logit cap) on a scaled score; every attention kernel and the CPU's
// paged_attention apply it the same way, before the mask and the softmax.
WEFT_MMA_HD float softcap_score(float x, float cap) { return cap > 0.0f ? tanhf(x / cap) * cap : x; }

// Shapes this kernel takes: 16-bit storage, head_dim a multiple of 16 up to 128 (the O accumulators of a
// 256-wide head would not fit in registers), 32-bit aligned output rows.
inline bool supports(const PagedAttention& a) {
  return (a.dtype == DType::kBF16 || a.dtype == DType::kF16) && a.head_dim % 16 == 0 && a.head_dim >= 16 &&
         a.head_dim <= 128 && a.out_stride % 2 == 0 && (reinterpret_cast<uintptr_t>(a.out) & 3u) == 0;
}
// Dynamic shared memory of one block: the K and V tiles, padded rows.
constexpr size_t smem_bytes(int head_dim) { return sizeof(uint16_t) * 2 * kKeys * (head_dim + kPad); }

WEFT_MMA_HD int window_start(int pos, int window) { return window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0; }
// The first key a query at position pos sees: its sliding window's start, or with Llama 4's chunked attention
// (PagedAttention::chunk > 0) its chunk's start when that is later. Non-decreasing in pos, so a block's first row
// has the smallest and its last row the largest; chunk 0 gives window_start's value. A padding row (pos -1) gets 0.
WEFT_MMA_HD int first_key(const PagedAttention& a, int pos) {
  const int lo = window_start(pos, a.sliding_window);
  const int chunk_lo = a.chunk > 0 ? pos - pos % a.chunk : 0;
  return chunk_lo > lo ? chunk_lo : lo;
}
// The last key a query of sequence s at position pos sees: its own (causal), or with Gemma 3's images
// (PagedAttention::image_spans) the last of the image it is in, [b, e) holding pos: e - 1 (at most ctx - 1); with
// PagedAttention::bidirectional the context's last, or its two-sided window's end when that is earlier.
// Non-decreasing in pos, like first_key (spans are disjoint: a row past an image ends at itself, later than any of
// the image's rows), so a block's or a warp's last row has the largest and its first row the smallest; a padding row
// (pos -1) gets -1, so it sees nothing.
WEFT_MMA_HD int last_key(const PagedAttention& a, int s, int pos, int ctx) {
  if (pos < 0) return pos;
  if (!a.bidirectional) {
    if (a.image_spans) {
      for (int k = a.span_offsets[s], n = a.span_offsets[s + 1]; k < n; ++k) {
        const int b = a.image_spans[2 * k], e = a.image_spans[2 * k + 1];
        if (pos < b) break;  // sorted: no later span holds pos
        if (pos < e) return e - 1 < ctx - 1 ? e - 1 : ctx - 1;
      }
    }
    return pos;
  }
  const int end = a.sliding_window > 0 ? pos + a.sliding_window - 1 : ctx - 1;
  return end < ctx - 1 ? end : ctx - 1;
}
WEFT_MMA_HD uint32_t word_at(const uint16_t* p) {
#ifndef __CUDACC__
  if ((reinterpret_cast<uintptr_t>(p) & 3u) != 0) std::abort();  // host emulation: a GPU would fault here
#endif
  return *reinterpret_cast<const uint32_t*>(p);
}
WEFT_MMA_HD uint32_t halves(uint16_t lo, uint16_t hi) {
  return static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
}

struct BlockIndex {
  int thread, x, y, z;  // threadIdx.x; blockIdx.x = row tile, .y = sequence, .z = kv head
};

// Per-tile steps both tensor-core kernels share (this one and prefill_pipelined_body.h). A thread holds rows g and
// g + 8 of its warp's 16: running max m, running sum l, O accumulators o.

// Q as A-fragments for every k-step, straight from global memory (read once per block): this thread's rows are
// virtual rows wr0 + g and wr0 + g + 8 (padding rows past vr_end are zeros).
template <int D>
WEFT_MMA_HD void load_q(const PagedAttention& a, uint32_t (&qa)[D / 16][4], int wr0, int vr_end, int q0, int group,
                        int kvh, int g, int t) {
  const uint16_t* q = static_cast<const uint16_t*>(a.q);
  for (int kk = 0; kk < D / 16; ++kk) {
    for (int r = 0; r < 4; ++r) {
      const int vr = wr0 + g + ((r & 1) ? 8 : 0), col = kk * 16 + 2 * t + ((r & 2) ? 8 : 0);
      qa[kk][r] = vr < vr_end ? word_at(q + static_cast<int64_t>(q0 + vr / group) * a.q_stride +
                                        static_cast<int64_t>(kvh * group + vr % group) * D + col)
                              : 0u;
    }
  }
}

// Online softmax: mx holds this tile's masked, scaled scores' row maxima over this thread's columns; reduce them
// over the quad, then rescale l and o to the new running max.
template <class Ops, int DT>
WEFT_MMA_HD void rescale_rows(float (&mx)[2], float (&m)[2], float (&l)[2], float (&o)[DT][4]) {
  float corr[2];
  for (int i = 0; i < 2; ++i) {
    mx[i] = fmaxf(mx[i], Ops::shfl_xor(mx[i], 1));
    mx[i] = fmaxf(mx[i], Ops::shfl_xor(mx[i], 2));
    const float mn = fmaxf(m[i], mx[i]);
    corr[i] = m[i] == -INFINITY ? 0.0f : Ops::exp2(m[i] - mn);
    m[i] = mn;
    l[i] *= corr[i];
  }
  for (int dt = 0; dt < DT; ++dt)
    for (int e = 0; e < 4; ++e) o[dt][e] *= corr[e >> 1];
}

// P = exp2(S - m) in the A-operand layout: S column tiles 2k and 2k+1 are exactly k-step k's registers. bf16 keeps
// only 8 bits of P (2^-9 relative per weight; on random data that alone reached ~0.9 % of the output's rms), so P
// goes in as two bf16 terms, hi = bf16(P) into pa and lo = bf16(P - hi) into pl: 16 bits, one more MMA per k-step,
// the accuracy of the fp32 kernel. fp16 keeps 11 bits and uses one term (pl unused). Adds P's row sums to l.
template <class Ops, int NT, int PK, int PL>
WEFT_MMA_HD void pack_p(const float (&sc)[NT][4], const float (&m)[2], float (&l)[2], uint32_t (&pa)[PK][4],
                        uint32_t (&pl)[PL][4]) {
  for (int n = 0; n < NT; ++n) {
    float p[4], r[4];
    for (int e = 0; e < 4; ++e) {
      p[e] = sc[n][e] == -INFINITY ? 0.0f : Ops::exp2(sc[n][e] - m[e >> 1]);
      r[e] = p[e] - Ops::round(p[e]);
      l[e >> 1] += Ops::kSplitP ? p[e] : Ops::round(p[e]);  // the weights the tensor cores will multiply
    }
    pa[n / 2][(n & 1) * 2 + 0] = Ops::pack(p[0], p[1]);
    pa[n / 2][(n & 1) * 2 + 1] = Ops::pack(p[2], p[3]);
    if constexpr (Ops::kSplitP) {
      pl[n / 2][(n & 1) * 2 + 0] = Ops::pack(r[0], r[1]);
      pl[n / 2][(n & 1) * 2 + 1] = Ops::pack(r[2], r[3]);
    }
  }
}

// Attention sinks (gpt-oss; PagedAttention::sinks): once a row's keys are done, with running max m and sum l, its
// head's sink joins the softmax as one more score with no value. Returns the factor that turns the row's unnormalised
// output into its result: c / (l·c + exp(sink − m')) with m' = max(m, sink), c = exp(m − m') (0 when m is -inf).
// exp: the kernel's exponential, in the units of m and sink.
template <class Exp> WEFT_MMA_HD float sink_factor(float m, float l, float sink, Exp exp) {
  const float mn = fmaxf(m, sink), c = m == -INFINITY ? 0.0f : exp(m - mn);
  return c / (l * c + exp(sink - mn));
}

// The quad's partial row sums, then O / l into the output rows this thread holds (virtual rows wr0 + g, + 8); with
// sinks, each row's sink folded in by its final max m (log2 units).
template <class Ops, int D>
WEFT_MMA_HD void store_rows(const PagedAttention& a, float (&o)[D / 8][4], const float (&m)[2], float (&l)[2], int wr0,
                            int vr_end, int q0, int group, int kvh, int g, int t) {
  uint16_t* out = static_cast<uint16_t*>(a.out);
  for (int i = 0; i < 2; ++i) {
    l[i] += Ops::shfl_xor(l[i], 1);
    l[i] += Ops::shfl_xor(l[i], 2);
    const int vr = wr0 + g + 8 * i;
    if (vr >= vr_end) continue;
    const int head = kvh * group + vr % group;
    const float inv = a.sinks ? sink_factor(m[i], l[i], a.sinks[head] * kLog2e, [](float x) { return Ops::exp2(x); })
                      : l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
    uint16_t* orow = out + static_cast<int64_t>(q0 + vr / group) * a.out_stride + static_cast<int64_t>(head) * D + 2 * t;
    for (int dt = 0; dt < D / 8; ++dt)
      *reinterpret_cast<uint32_t*>(orow + dt * 8) = Ops::pack(o[dt][2 * i] * inv, o[dt][2 * i + 1] * inv);
  }
}

// Ops<T> provides: sync() (block barrier), shfl_xor(float, int), mma(float(&)[4], const uint32_t(&)[4],
// const uint32_t(&)[2]) (D = A·B + C in place), pack(float lo, float hi) -> uint32_t (two rounded 16-bit
// values), round(float) -> float (through the 16-bit type), copy16(dst, src) / zero16(dst) (16 bytes),
// exp2(float), and kSplitP (multiply P as a hi + lo pair: true for bf16).
template <class Ops, int D>
WEFT_MMA_HD void block(const PagedAttention& a, const BlockIndex& ix, uint16_t* smem) {
  constexpr int KS = D + kPad;     // shared-memory row stride, elements
  constexpr int NT = kKeys / 8;    // 8-key column tiles of S
  constexpr int QK = D / 16;       // k-steps of Q·Kᵀ
  constexpr int DT = D / 8;        // 8-dim column tiles of O
  constexpr int PK = kKeys / 16;   // k-steps of P·V
  constexpr int CH = D / 8;        // 16-byte chunks per K/V row
  uint16_t* ks = smem;
  uint16_t* vs = smem + kKeys * KS;

  const int s = ix.y, kvh = ix.z, group = a.heads / a.kv_heads;
  const int q0 = a.cu_seqlens_q[s], nq = a.cu_seqlens_q[s + 1] - q0, ctx = a.context_lens[s];
  const int vr0 = ix.x * kRows, vr_end = vr0 + kRows < nq * group ? vr0 + kRows : nq * group;
  if (vr0 >= vr_end) return;  // block-uniform, before any barrier
  const int hi = last_key(a, s, ctx - nq + (vr_end - 1) / group, ctx);  // last key any row of the block sees
  const int lo = first_key(a, ctx - nq + vr0 / group);  // first key any row sees

  const int warp = ix.thread / 32, lane = ix.thread % 32, g = lane / 4, t = lane % 4;
  const int wr0 = vr0 + warp * 16;  // the warp's first virtual row
  int first[2], last[2];            // this thread's rows g and g + 8: first and last visible key
  for (int i = 0; i < 2; ++i) {
    const int vr = wr0 + g + 8 * i;
    const int pos = vr < vr_end ? ctx - nq + vr / group : -1;  // -1: padding row, sees nothing
    first[i] = first_key(a, pos);
    last[i] = last_key(a, s, pos, ctx);
  }

  uint32_t qa[QK][4];
  load_q<D>(a, qa, wr0, vr_end, q0, group, kvh, g, t);

  const float scale = a.scale * kLog2e;  // scores in log2 units: exp2 instead of exp
  float o[DT][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  for (int dt = 0; dt < DT; ++dt)
    for (int e = 0; e < 4; ++e) o[dt][e] = 0.0f;

  const int64_t kv_dim = static_cast<int64_t>(a.kv_heads) * D;
  const uint16_t* kc = static_cast<const uint16_t*>(a.k_cache) + kvh * D;
  const uint16_t* vc = static_cast<const uint16_t*>(a.v_cache) + kvh * D;
  const int32_t* bt = a.block_tables + static_cast<int64_t>(s) * a.block_table_stride;

  for (int t0 = lo; t0 <= hi; t0 += kKeys) {
    Ops::sync();  // every warp is done with the previous tile
    for (int idx = ix.thread; idx < kKeys * CH; idx += kThreads) {
      const int kk = idx / CH, c = idx % CH, j = t0 + kk;
      if (j <= hi) {
        const int64_t slot = static_cast<int64_t>(bt[j / a.block_size]) * a.block_size + j % a.block_size;
        Ops::copy16(ks + kk * KS + c * 8, kc + slot * kv_dim + c * 8);
        Ops::copy16(vs + kk * KS + c * 8, vc + slot * kv_dim + c * 8);
      } else {  // zeros, not stale data: a masked score must never meet a NaN in P·V
        Ops::zero16(ks + kk * KS + c * 8);
        Ops::zero16(vs + kk * KS + c * 8);
      }
    }
    Ops::sync();

    // S = Q·Kᵀ: B-fragment (k = dim, n = key) is a 32-bit word of K's row-major [key][dim] tile.
    float sc[NT][4];
    for (int n = 0; n < NT; ++n) {
      for (int e = 0; e < 4; ++e) sc[n][e] = 0.0f;
      const uint16_t* krow = ks + (n * 8 + g) * KS + 2 * t;
      for (int kk = 0; kk < QK; ++kk) {
        const uint32_t b[2] = {word_at(krow + kk * 16), word_at(krow + kk * 16 + 8)};
        Ops::mma(sc[n], qa[kk], b);
      }
    }

    // Mask, then the online softmax: a row's running max and the rescale of what O holds so far.
    float mx[2] = {-INFINITY, -INFINITY};
    for (int n = 0; n < NT; ++n) {
      for (int e = 0; e < 4; ++e) {
        const int i = e >> 1, j = t0 + n * 8 + 2 * t + (e & 1);
        const bool vis = j <= last[i] && j >= first[i];
        sc[n][e] = !vis ? -INFINITY : a.softcap > 0.0f ? softcap_score(sc[n][e] * a.scale, a.softcap) * kLog2e
                                                       : sc[n][e] * scale;
        mx[i] = fmaxf(mx[i], sc[n][e]);
      }
    }
    rescale_rows<Ops, DT>(mx, m, l, o);
    uint32_t pa[PK][4], pl[Ops::kSplitP ? PK : 1][4];
    pack_p<Ops>(sc, m, l, pa, pl);

    // O += P·V: B-fragment (k = key, n = dim) pairs two keys of one dim, two rows of V's [key][dim] tile.
    for (int kk = 0; kk < PK; ++kk) {
      const uint16_t* v0 = vs + (kk * 16 + 2 * t) * KS + g;
      for (int dt = 0; dt < DT; ++dt) {
        const uint16_t* v = v0 + dt * 8;
        const uint32_t b[2] = {halves(v[0], v[KS]), halves(v[8 * KS], v[9 * KS])};
        Ops::mma(o[dt], pa[kk], b);
        if constexpr (Ops::kSplitP) Ops::mma(o[dt], pl[kk], b);
      }
    }
  }

  store_rows<Ops, D>(a, o, m, l, wr0, vr_end, q0, group, kvh, g, t);
}

}  // namespace weft::cuda::prefill_mma
