// Flash-decoding attention for decode rows over the paged KV cache (cpu::paged_attention's result): the body of
// one thread of one block, and of the merge of a row's partitions, written against a small `Ops` interface so the
// same code runs as the CUDA kernels (attention_decode.cu) and under the host warp emulator
// (test/emulated/decode_attention_emu.cc). Keep it free of CUDA-only syntax.
//
// Work split: block = (kv head × an HPB-head chunk of its group, query row, key partition). L lanes split
// head_dim into 8-element vectors and own one key at a time; the block's 128/L lane groups stride over the
// partition. Each lane keeps an fp32 online softmax per head; the lane groups of a warp merge by shuffles, the
// warps through shared memory. A row whose keys span several partitions writes each partition's (max, sum,
// unnormalized output) to the workspace and `merge` combines them; a row within one partition writes its output.
// gpt-oss's attention sinks join where a row's result is finished (that write, or `merge`), as one more partition.
//
// Loads in flight (the template depth D): a lane issues the K and V loads of the key D iterations ahead before it
// reduces the current one. D = 1 is the kernel measured on an H100 on 2026-11-23 (84 % of the KV-read bound at
// batch 32 × context 512, where a few thousand blocks keep the memory busy). With few blocks (batch 1: 32 heads ×
// 2 partitions = 64 blocks of 128 threads on 132 SMs) one load in flight per lane leaves each iteration waiting a
// full memory latency: 49 µs a layer for 8.6 MB of K/V, ~17× its bound. A deeper ring hides that. The arithmetic
// and its order do not depend on D (only when a load is issued does), so every D gives the same bits.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels.h"
#include "prefill_mma_body.h"  // WEFT_MMA_HD, WEFT_UNROLL, BlockIndex

#ifdef __CUDACC__
#define WEFT_DECODE_HHD __host__ __device__ __forceinline__  // also called by the host launcher
#else
#define WEFT_DECODE_HHD inline
#endif

namespace weft::cuda::decode_attention {

namespace pm = prefill_mma;
constexpr int kThreads = 128;  // 4 warps
constexpr int kWarps = kThreads / 32;
constexpr int kMaxHeadDim = 256;

// Keys per partition. It depends on the model's head shape only, never on the batch, so a row's result does
// not change with what else is batched. GQA serves up to 4 query heads per block, so it launches up to 4× fewer
// blocks per row than MHA: at short contexts too few loads were in flight (43 % of the copy rate at 32/8 heads,
// ctx 512, batch 32, where MHA reached 84 %), so GQA splits every 256 keys and gets twice the blocks.
WEFT_DECODE_HHD int partition(const PagedAttention& a) { return a.heads > a.kv_heads ? 256 : 512; }

// Sequence holding query row `row`: the largest s with cu[s] <= row (skips empty sequences).
WEFT_MMA_HD int find_seq(const int32_t* cu, int num_seqs, int row) {
  int lo = 0, hi = num_seqs - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (cu[mid] <= row) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
WEFT_MMA_HD int64_t slot_of(const int32_t* bt, int j, int block_size) {
  return static_cast<int64_t>(bt[j / block_size]) * block_size + j % block_size;
}

// Partitions wholly before a row's first key (its sliding window's or Llama 4's chunk's start, pm::first_key) are
// outside first..last: their blocks return at once and merge never reads their (unwritten) workspace slots.
struct Row {
  int seq, pos, first, last;  // keys [lo, pos] visible; partitions first..last cover them
  int lo;
};
WEFT_MMA_HD Row row_of(const PagedAttention& a, int row) {
  Row r;
  r.seq = find_seq(a.cu_seqlens_q, a.num_seqs, row);
  const int q0 = a.cu_seqlens_q[r.seq], nq = a.cu_seqlens_q[r.seq + 1] - q0;
  r.pos = a.context_lens[r.seq] - nq + (row - q0);
  r.lo = pm::first_key(a, r.pos);
  const int part = partition(a);
  r.first = r.lo / part;
  r.last = r.pos / part;
  return r;
}
// Partitions of the longest row: the grid's z extent and the workspace's stride per (row, head).
inline int64_t splits(const PagedAttention& a) {
  const int part = partition(a);
  return (static_cast<int64_t>(a.max_context_len > 0 ? a.max_context_len : 1) + part - 1) / part;
}

template <int HPB> struct Shared {
  float m[kWarps][HPB], l[kWarps][HPB];
  float acc[kWarps][HPB][kMaxHeadDim];
};

// exp(m - m_new) for online softmax, 0 when m is -inf (nothing accumulated yet).
template <class Ops> WEFT_MMA_HD float rescale(float m, float m_new) {
  return m == -INFINITY ? 0.0f : Ops::exp(m - m_new);
}
// Where a row's max over its partials starts: head h's sink (gpt-oss; PagedAttention::sinks), whose share e^{sink - M}
// then joins the denominator with no value, or -inf without sinks (the arithmetic of a model without them unchanged).
WEFT_MMA_HD float sink_max(const float* sinks, int h) { return sinks ? sinks[h] : -INFINITY; }

// Ops: Elem (storage type), Pack (8 raw elements) with load(const Elem*) (16-byte aligned) and
// unpack(const Pack&, float (&)[8]), from_f(float) -> Elem, shfl_xor(float, int), sync(), exp(float).
// Grid: (heads / HPB, rows, splits(a)); ix.thread in [0, kThreads).
template <class Ops, int HPB, int L, int D>
WEFT_MMA_HD void block(const PagedAttention& a, float* ws_ml, float* ws_acc, int max_splits, const pm::BlockIndex& ix,
                       Shared<HPB>& sm) {
  using Elem = typename Ops::Elem;
  using Pack = typename Ops::Pack;
  static_assert(D >= 1 && L >= 1 && L <= 32 && 32 % L == 0, "decode attention: bad depth or lanes per key");
  constexpr int kGroups = kThreads / L;

  const int row = ix.y, split = ix.z;
  const Row r = row_of(a, row);
  if (split < r.first || split > r.last) return;  // whole block: no barrier reached yet
  const int part = partition(a);
  const int j0 = r.lo > split * part ? r.lo : split * part;
  const int j1 = r.pos + 1 < (split + 1) * part ? r.pos + 1 : (split + 1) * part;
  const int group = a.heads / a.kv_heads, chunks = group / HPB;
  const int kvh = ix.x / chunks, h0 = kvh * group + (ix.x % chunks) * HPB;
  const int hd = a.head_dim, kv_dim = a.kv_heads * hd;
  const int sub = ix.thread % L, grp = ix.thread / L, d0 = sub * 8;
  const bool active = d0 < hd;

  float q[HPB][8], m[HPB], l[HPB], acc[HPB][8];
  const Elem* qp = static_cast<const Elem*>(a.q) + row * a.q_stride + static_cast<int64_t>(h0) * hd + d0;
  WEFT_UNROLL
  for (int h = 0; h < HPB; ++h) {
    WEFT_UNROLL
    for (int e = 0; e < 8; ++e) q[h][e] = acc[h][e] = 0.0f;
    if (active) Ops::unpack(Ops::load(qp + h * hd), q[h]);
    m[h] = -INFINITY;
    l[h] = 0.0f;
  }
  const Elem* kc = static_cast<const Elem*>(a.k_cache) + kvh * hd + d0;
  const Elem* vc = static_cast<const Elem*>(a.v_cache) + kvh * hd + d0;
  const int32_t* bt = a.block_tables + static_cast<int64_t>(r.seq) * a.block_table_stride;
  const int iters = (j1 - j0 + kGroups - 1) / kGroups;  // block-uniform, so every lane reaches the shuffles

  // The ring of D keys in flight. Zeroed: a lane past head_dim or a key past the partition keeps finite values
  // (its products meet q = 0 or are discarded below), never uninitialized registers that could hold NaN.
  Pack kr[D] = {}, vr[D] = {};
  const auto fetch = [&](int it, Pack& k, Pack& v) {
    const int j = j0 + it * kGroups + grp;
    if (active && j < j1) {
      const int64_t off = slot_of(bt, j, a.block_size) * kv_dim;
      k = Ops::load(kc + off);
      v = Ops::load(vc + off);
    }
  };
  const auto reduce = [&](int it, const Pack& kp, const Pack& vp) {
    float kf[8], sc[HPB];
    Ops::unpack(kp, kf);
    WEFT_UNROLL
    for (int h = 0; h < HPB; ++h) {
      float d = 0.0f;
      WEFT_UNROLL
      for (int e = 0; e < 8; ++e) d += q[h][e] * kf[e];
      sc[h] = d;
    }
    WEFT_UNROLL
    for (int o = L / 2; o > 0; o >>= 1) {
      WEFT_UNROLL
      for (int h = 0; h < HPB; ++h) sc[h] += Ops::shfl_xor(sc[h], o);
    }
    if (j0 + it * kGroups + grp < j1) {
      float vf[8];
      Ops::unpack(vp, vf);
      WEFT_UNROLL
      for (int h = 0; h < HPB; ++h) {
        const float x = pm::softcap_score(sc[h] * a.scale, a.softcap), mn = fmaxf(m[h], x), c = rescale<Ops>(m[h], mn),
                    p = Ops::exp(x - mn);
        l[h] = l[h] * c + p;
        WEFT_UNROLL
        for (int e = 0; e < 8; ++e) acc[h][e] = acc[h][e] * c + p * vf[e];
        m[h] = mn;
      }
    }
  };
  WEFT_UNROLL
  for (int s = 0; s < D; ++s) {
    if (s < iters) fetch(s, kr[s], vr[s]);
  }
  for (int base = 0; base < iters; base += D) {
    WEFT_UNROLL
    for (int s = 0; s < D; ++s) {  // slot s always holds iteration base + s: register indices stay static
      const int it = base + s;
      if (it < iters) {  // block-uniform
        const Pack kp = kr[s], vp = vr[s];
        if (it + D < iters) fetch(it + D, kr[s], vr[s]);
        reduce(it, kp, vp);
      }
    }
  }

  // Merge the lane groups of a warp that hold the same dims, then the warps through shared memory.
  WEFT_UNROLL
  for (int o = L; o < 32; o <<= 1) {
    WEFT_UNROLL
    for (int h = 0; h < HPB; ++h) {
      const float mo = Ops::shfl_xor(m[h], o), lo = Ops::shfl_xor(l[h], o), mn = fmaxf(m[h], mo);
      const float ca = rescale<Ops>(m[h], mn), cb = rescale<Ops>(mo, mn);
      l[h] = l[h] * ca + lo * cb;
      WEFT_UNROLL
      for (int e = 0; e < 8; ++e) acc[h][e] = acc[h][e] * ca + Ops::shfl_xor(acc[h][e], o) * cb;
      m[h] = mn;
    }
  }
  const int warp = ix.thread / 32, lane = ix.thread % 32;
  if (lane < L && active) {
    WEFT_UNROLL
    for (int h = 0; h < HPB; ++h) {
      WEFT_UNROLL
      for (int e = 0; e < 8; ++e) sm.acc[warp][h][d0 + e] = acc[h][e];
    }
  }
  if (lane == 0) {
    WEFT_UNROLL
    for (int h = 0; h < HPB; ++h) {
      sm.m[warp][h] = m[h];
      sm.l[warp][h] = l[h];
    }
  }
  Ops::sync();
  // A row within one partition takes its sink here; a row over several, once, in merge.
  const float* sinks = r.first == r.last ? a.sinks : nullptr;
  for (int idx = ix.thread; idx < HPB * hd; idx += kThreads) {
    const int h = idx / hd, d = idx % hd;
    float mx = sink_max(sinks, h0 + h), den = 0.0f, num = 0.0f;
    WEFT_UNROLL
    for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, sm.m[w][h]);
    WEFT_UNROLL
    for (int w = 0; w < kWarps; ++w) {
      const float c = rescale<Ops>(sm.m[w][h], mx);
      den += sm.l[w][h] * c;
      num += sm.acc[w][h][d] * c;
    }
    if (r.first == r.last) {
      if (sinks) den += Ops::exp(sinks[h0 + h] - mx);
      Elem* op = static_cast<Elem*>(a.out) + row * a.out_stride + static_cast<int64_t>(h0 + h) * hd;
      op[d] = Ops::from_f(num / den);
    } else {
      const int64_t slot = (static_cast<int64_t>(row) * a.heads + h0 + h) * max_splits + split;
      ws_acc[slot * hd + d] = num;
      if (d == 0) {
        ws_ml[slot * 2] = mx;
        ws_ml[slot * 2 + 1] = den;
      }
    }
  }
}

// Second pass for rows spanning several partitions, one (head, row) per block, `threads` threads striding over
// head_dim: out = Σ e^{m_p - M} acc_p / Σ e^{m_p - M} l_p. A sink is one more partition: m = the sink, l = 1, no acc.
template <class Ops>
WEFT_MMA_HD void merge(const PagedAttention& a, const float* ws_ml, const float* ws_acc, int max_splits, int h, int row,
                       int thread, int threads) {
  const Row r = row_of(a, row);
  if (r.first == r.last) return;
  const int64_t base = (static_cast<int64_t>(row) * a.heads + h) * max_splits;
  float mx = sink_max(a.sinks, h), den = 0.0f;
  for (int p = r.first; p <= r.last; ++p) mx = fmaxf(mx, ws_ml[(base + p) * 2]);
  for (int p = r.first; p <= r.last; ++p) den += ws_ml[(base + p) * 2 + 1] * rescale<Ops>(ws_ml[(base + p) * 2], mx);
  if (a.sinks) den += Ops::exp(a.sinks[h] - mx);
  using Elem = typename Ops::Elem;
  Elem* op = static_cast<Elem*>(a.out) + row * a.out_stride + static_cast<int64_t>(h) * a.head_dim;
  for (int d = thread; d < a.head_dim; d += threads) {
    float num = 0.0f;
    for (int p = r.first; p <= r.last; ++p)
      num += ws_acc[(base + p) * a.head_dim + d] * rescale<Ops>(ws_ml[(base + p) * 2], mx);
    op[d] = Ops::from_f(num / den);
  }
}

}  // namespace weft::cuda::decode_attention
