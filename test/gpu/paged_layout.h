// A paged KV-cache layout for attention tests: sequences (query rows this step, tokens cached after it) in
// shuffled blocks, so pages are not contiguous; the arrays cpu::paged_attention and weft::cuda::PagedAttention
// take; every PagedAttention field that does not depend on where the buffers live; attention sinks; the emulators' case
// shape and Llama 4's chunking of a case. Host C++ only: shared by the CUDA kernel tests (test_attention.cu) and the host
// warp emulators (test/emulated/prefill_mma_emu.cc, decode_attention_emu.cc).
#pragma once
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "cpu/ops.h"
#include "cuda/kernels/kernels.h"

namespace weft::testing {

struct SeqShape {
  int nq, ctx;  // query rows this step, tokens in the cache after it
};

struct PagedLayout {
  int num_seqs = 0, tokens = 0, max_q = 0, max_ctx = 0, max_blocks = 0;
  int total_blocks = 3;  // three spare blocks nobody owns
  std::vector<int32_t> block_tables, cu_seqlens, context_lens;
  std::vector<weft::cpu::AttentionSeq> cpu_seqs;  // point into block_tables: move a layout, never copy it
};

inline PagedLayout make_paged_layout(const std::vector<SeqShape>& seqs, int block_size, std::mt19937& rng) {
  PagedLayout l;
  l.num_seqs = static_cast<int>(seqs.size());
  for (const SeqShape& s : seqs) {
    const int nb = (s.ctx + block_size - 1) / block_size;
    l.max_blocks = std::max(l.max_blocks, nb);
    l.total_blocks += nb;
    l.tokens += s.nq;
    l.max_q = std::max(l.max_q, s.nq);
    l.max_ctx = std::max(l.max_ctx, s.ctx);
  }
  std::vector<int32_t> perm(l.total_blocks);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  l.block_tables.assign(static_cast<size_t>(l.num_seqs) * l.max_blocks, 0);
  l.cu_seqlens.assign(l.num_seqs + 1, 0);
  l.context_lens.assign(l.num_seqs, 0);
  l.cpu_seqs.resize(l.num_seqs);
  for (int s = 0, next = 0; s < l.num_seqs; ++s) {
    for (int b = 0; b < (seqs[s].ctx + block_size - 1) / block_size; ++b) l.block_tables[s * l.max_blocks + b] = perm[next++];
    l.cu_seqlens[s + 1] = l.cu_seqlens[s] + seqs[s].nq;
    l.context_lens[s] = seqs[s].ctx;
    l.cpu_seqs[s] = {l.cu_seqlens[s], seqs[s].nq, seqs[s].ctx, &l.block_tables[s * l.max_blocks]};
  }
  return l;
}

// Everything but q, out, k_cache, v_cache, cu_seqlens_q, context_lens and block_tables (the caller's buffers).
inline weft::cuda::PagedAttention paged_args(const PagedLayout& l, weft::cuda::DType d, int heads, int kv_heads,
                                             int head_dim, int block_size, int window, float scale) {
  weft::cuda::PagedAttention a{};
  a.dtype = d;
  a.q_stride = a.out_stride = static_cast<int64_t>(heads) * head_dim;
  a.num_seqs = l.num_seqs;
  a.num_tokens = l.tokens;
  a.block_table_stride = l.max_blocks;
  a.heads = heads;
  a.kv_heads = kv_heads;
  a.head_dim = head_dim;
  a.block_size = block_size;
  a.scale = scale;
  a.sliding_window = window;
  a.max_query_len = l.max_q;
  a.max_context_len = l.max_ctx;
  return a;
}

// gpt-oss's attention sinks for a test's heads (PagedAttention::sinks, cpu::paged_attention's sinks): N(shift, 1)
// each. Keys' scores are ~N(0, 1), so a row over n keys has a softmax sum near 1.6·n: a shift near log(n) gives the
// sink a share the tolerances see, one well above it makes the sink dominate (the weights over the keys near 0).
inline std::vector<float> draw_sinks(int heads, float shift, std::mt19937& rng) {
  std::normal_distribution<float> nd(shift, 1.0f);
  std::vector<float> s(static_cast<size_t>(heads));
  for (float& v : s) v = nd(rng);
  return s;
}

// One attention case of the warp emulators (decode_attention_emu.cc, prefill_mma_emu.cc).
struct EmuCase {
  std::string name;
  weft::cuda::DType d;
  int heads, kv_heads, hd, bs, window;
  std::vector<SeqShape> seqs;
  float q_scale = 1.0f;
  float softcap = 0.0f;  // PagedAttention::softcap (Gemma 2)
  bool sinks = false;    // PagedAttention::sinks (gpt-oss), drawn by draw_sinks around sink_shift
  float sink_shift = 0.0f;
  int chunk = 0;         // PagedAttention::chunk (Llama 4): set by chunked()
  bool bidirectional = false;  // PagedAttention::bidirectional (EmbeddingGemma): set by bidirectional()
  // Gemma 3's images (PagedAttention::image_spans, cpu::AttentionSeq::image_spans): per sequence, [start, end)
  // position pairs; empty: none. Set by with_images().
  std::vector<std::vector<int32_t>> image_spans;
};

// Gemma 3's image spans on a test case (one list of [start, end) pairs per sequence).
template <class Case>
Case with_images(Case c, std::vector<std::vector<int32_t>> spans) {
  c.image_spans = std::move(spans);
  c.name = "images: " + c.name;
  return c;
}

// The flat arrays PagedAttention takes for a case's image spans (offsets [num_seqs + 1], pairs), and each CPU
// sequence pointed at its own pairs. Empty arrays when the case has none.
struct SpanArrays {
  std::vector<int32_t> offsets, pairs;
};
inline SpanArrays span_arrays(const std::vector<std::vector<int32_t>>& spans, std::vector<weft::cpu::AttentionSeq>& cpu) {
  SpanArrays r;
  if (spans.empty()) return r;
  r.offsets.push_back(0);
  for (size_t s = 0; s < cpu.size(); ++s) {
    const std::vector<int32_t>* sp = s < spans.size() ? &spans[s] : nullptr;
    if (sp) r.pairs.insert(r.pairs.end(), sp->begin(), sp->end());
    r.offsets.push_back(static_cast<int32_t>(r.pairs.size() / 2));
  }
  for (size_t s = 0; s < cpu.size(); ++s) {
    cpu[s].num_spans = r.offsets[s + 1] - r.offsets[s];
    cpu[s].image_spans = cpu[s].num_spans > 0 ? r.pairs.data() + 2 * r.offsets[s] : nullptr;
  }
  return r;
}

// Llama 4's chunked attention on a test case (any case with `name` and `chunk`): the same case, chunked.
template <class Case>
Case chunked(Case c, int chunk) {
  c.chunk = chunk;
  c.name = "chunk " + std::to_string(chunk) + ": " + c.name;
  return c;
}

// A bidirectional model's attention on a test case of whole prompts (any case with `name` and `bidirectional`).
template <class Case>
Case bidirectional(Case c) {
  c.bidirectional = true;
  c.name = "bidirectional: " + c.name;
  return c;
}

}  // namespace weft::testing
