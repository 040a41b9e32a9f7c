// Paged attention, causal (optionally with Gemma 3's bidirectional image spans) or (bidirectional models) not,
// prefill and decode alike; and the KV cache write.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace weft::cpu {

void kv_cache_write(const float* k, const float* v, int64_t tokens, int64_t kv_dim, const int32_t* slot_mapping,
                    float* k_cache, float* v_cache) {
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t slot = slot_mapping[t];
    std::memcpy(k_cache + slot * kv_dim, k + t * kv_dim, sizeof(float) * kv_dim);
    std::memcpy(v_cache + slot * kv_dim, v + t * kv_dim, sizeof(float) * kv_dim);
  }
}

void paged_attention(const float* q, int64_t heads, int64_t kv_heads, int64_t head_dim, const AttentionSeq* seqs,
                     int64_t num_seqs, const float* k_cache, const float* v_cache, int64_t block_size, float scale,
                     int64_t sliding_window, float* out, float softcap, const float* sinks, int64_t chunk, bool causal) {
  const int64_t group = heads / kv_heads;
  const int64_t kv_dim = kv_heads * head_dim;
  // Work items: a sequence's query rows in chunks of kRows (decode: one row per sequence). Every (row, head)
  // writes only its own slice of out, so items are independent and results do not depend on the split.
  constexpr int64_t kRows = 16;
  struct Item {
    int64_t seq, i0, i1;
  };
  std::vector<Item> items;
  int64_t work = 0;  // score and value multiply-adds, to decide whether threads are worth waking
  for (int64_t s = 0; s < num_seqs; ++s) {
    work += seqs[s].num_tokens * seqs[s].context_len * heads * head_dim;
    for (int64_t i0 = 0; i0 < seqs[s].num_tokens; i0 += kRows)
      items.push_back({s, i0, std::min(seqs[s].num_tokens, i0 + kRows)});
  }
  const int64_t n = static_cast<int64_t>(items.size());
  parallel_for(n, work < (int64_t{1} << 17) ? n : 1, [&](int64_t k0, int64_t k1) {
    std::vector<float> scores;
    std::vector<int64_t> row_of;  // cache row of each position of the sequence (block table resolved once)
    int64_t resolved = -1;        // the sequence row_of holds
    for (int64_t k = k0; k < k1; ++k) {
      const Item& item = items[k];
      const AttentionSeq& seq = seqs[item.seq];
      if (resolved != item.seq) {
        scores.resize(static_cast<size_t>(seq.context_len));
        row_of.resize(static_cast<size_t>(seq.context_len));
        for (int64_t j = 0; j < seq.context_len; ++j)
          row_of[j] = (static_cast<int64_t>(seq.block_table[j / block_size]) * block_size + j % block_size) * kv_dim;
        resolved = item.seq;
      }
      for (int64_t i = item.i0; i < item.i1; ++i) {
        const int64_t row = seq.token_start + i;
        const int64_t pos = seq.context_len - seq.num_tokens + i;
        int64_t lo = sliding_window > 0 && pos - sliding_window + 1 > 0 ? pos - sliding_window + 1 : 0;
        if (chunk > 0) lo = std::max(lo, pos - pos % chunk);  // the first key of the query's chunk
        // The last key seen: the query's own (causal), else the context's last, or its window's two-sided edge.
        int64_t last = causal ? pos
                       : sliding_window > 0 ? std::min(seq.context_len - 1, pos + sliding_window - 1)
                                            : seq.context_len - 1;
        for (int64_t sp = 0; causal && sp < seq.num_spans; ++sp) {  // Gemma 3: the image around the query, both ways
          const int64_t s0 = seq.image_spans[2 * sp], s1 = seq.image_spans[2 * sp + 1];
          if (pos >= s0 && pos < s1) last = std::min(seq.context_len - 1, s1 - 1);
        }
        for (int64_t h = 0; h < heads; ++h) {
          const float* qh = q + (row * heads + h) * head_dim;
          const int64_t kv_off = (h / group) * head_dim;
          float mx = sinks ? sinks[h] : -INFINITY;
          for (int64_t j = lo; j <= last; ++j) {
            float sc = dot(qh, k_cache + row_of[j] + kv_off, head_dim) * scale;
            if (softcap > 0.0f) sc = std::tanh(sc / softcap) * softcap;  // Gemma 2, as transformers' eager attention
            scores[j] = sc;
            if (sc > mx) mx = sc;
          }
          float sum = sinks ? std::exp(sinks[h] - mx) : 0.0f;  // the sink's share: no value to add
          for (int64_t j = lo; j <= last; ++j) {
            scores[j] = std::exp(scores[j] - mx);
            sum += scores[j];
          }
          float* oh = out + (row * heads + h) * head_dim;
          std::memset(oh, 0, sizeof(float) * head_dim);
          const float inv = 1.0f / sum;
          for (int64_t j = lo; j <= last; ++j) {
            const float* vh = v_cache + row_of[j] + kv_off;
            const float p = scores[j] * inv;
            for (int64_t d = 0; d < head_dim; ++d) oh[d] += p * vh[d];
          }
        }
      }
    }
  });
}

}  // namespace weft::cpu
