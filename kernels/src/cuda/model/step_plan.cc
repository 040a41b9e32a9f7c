#include "cuda/model/step_plan.h"

#include <algorithm>
#include <numeric>

namespace weft::cuda {

bool decode_only(const Batch& b) {
  return std::all_of(b.seqs.begin(), b.seqs.end(), [](const BatchSeq& s) { return s.num_tokens == 1; });
}

int32_t longest_block_table(const Batch& b) {
  size_t n = 1;
  for (const BatchSeq& s : b.seqs) n = std::max(n, s.block_table.size());
  return static_cast<int32_t>(n);
}

StepPlan plan_step(const ModelConfig& cfg, const Batch& b, const PaddedShape* pad, std::vector<int32_t>& packed) {
  StepPlan p;
  // Sequence order: prefill group then decode group, each stably by adapter slot (base first).
  std::vector<size_t> order(b.seqs.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    const bool px = b.seqs[x].num_tokens > 1, py = b.seqs[y].num_tokens > 1;
    if (px != py) return px;
    return b.seqs[x].adapter_slot < b.seqs[y].adapter_slot;
  });
  const int64_t real_rows = static_cast<int64_t>(b.tokens.size());
  for (size_t i : order) {
    const BatchSeq& s = b.seqs[i];
    if (s.num_tokens > 1) {
      p.prefill_seqs++;
      p.prefill_rows += s.num_tokens;
      p.max_query_len = std::max(p.max_query_len, static_cast<int32_t>(s.num_tokens));
      p.prefill_max_context = std::max(p.prefill_max_context, static_cast<int32_t>(s.context_len));
    } else {
      p.decode_seqs++;
      p.decode_max_context = std::max(p.decode_max_context, static_cast<int32_t>(s.context_len));
    }
    if (s.adapter_slot >= 0) p.lora = true;
  }
  p.wanted_logits = static_cast<int64_t>(b.logit_rows.size());
  p.rows = real_rows;
  p.logit_rows = p.wanted_logits;
  p.table_stride = longest_block_table(b);
  if (pad) {  // decode-only: pad sequences (one row each) and logit rows to the graph's shape
    p.decode_seqs = pad->rows;
    p.rows = pad->rows;
    p.logit_rows = pad->rows;
    p.table_stride = pad->table_stride;
    p.decode_max_context = static_cast<int32_t>(pad->table_stride * cfg.block_size);
  }

  const int64_t S = cfg.adapter_slots, T = p.rows, R = p.logit_rows, stride = p.table_stride;
  const int64_t P = p.prefill_seqs, D = p.decode_seqs;
  int64_t at = 0;
  auto field = [&at](int64_t n) {
    const int64_t off = at;
    at += (n + 3) / 4 * 4;  // 16-byte aligned fields
    return off;
  };
  p.tokens = field(T);
  p.positions = field(T);
  p.kv_slots = field(T);
  p.row_entry = field(T);
  p.logit_index = field(R);
  p.logit_entry = field(R);
  p.seg = field(S + 1);
  p.seg_entry = field(S);
  p.cu_p = field(P + 1);
  p.ctx_p = field(P);
  p.bt_p = field(P * stride);
  p.cu_d = field(D + 1);
  p.ctx_d = field(D);
  p.bt_d = field(D * stride);
  if (!cfg.inv_freq_long.empty()) p.rope_long = field(T);  // padding rows stay 0: short factors
  if (!cfg.mrope_section.empty()) p.mrope = field(3 * T);
  int64_t spans = 0;
  for (const BatchSeq& s : b.seqs)
    if (s.num_tokens > 1) spans += static_cast<int64_t>(s.image_spans.size() / 2);
  if (spans > 0) {
    p.num_spans = static_cast<int32_t>(spans);
    p.span_off = field(P + 1);
    p.spans = field(2 * spans);
  }
  p.words = at;
  packed.assign(static_cast<size_t>(at), 0);
  int32_t* w = packed.data();

  // Rows, in the new order; new_row[original row] for the logit rows (and hidden rows: StepPlan::row_of).
  std::vector<int32_t> new_row(static_cast<size_t>(real_rows));
  std::vector<int64_t> per_slot(static_cast<size_t>(S) + 1, 0);  // prefill rows per slot, base at [0]
  int64_t row = 0, ps = 0, ds = 0;
  for (size_t i : order) {
    const BatchSeq& s = b.seqs[i];
    const bool prefill = s.num_tokens > 1;
    for (int64_t t = 0; t < s.num_tokens; ++t, ++row) {
      const int64_t src = s.token_start + t;
      new_row[src] = static_cast<int32_t>(row);
      w[p.tokens + row] = b.tokens[src];
      w[p.positions + row] = b.positions[src];
      w[p.kv_slots + row] = b.slot_mapping[src];
      w[p.row_entry + row] = s.adapter_slot;
      if (p.rope_long >= 0 && !b.rope_long.empty()) w[p.rope_long + row] = b.rope_long[src];
      if (p.mrope >= 0)
        for (int64_t ax = 0; ax < 3; ++ax)
          w[p.mrope + ax * T + row] = b.mrope_positions.empty() ? b.positions[src] : b.mrope_positions[ax * real_rows + src];
    }
    if (prefill) per_slot[s.adapter_slot + 1] += s.num_tokens;
    int32_t* bt = w + (prefill ? p.bt_p + ps * stride : p.bt_d + ds * stride);
    std::copy(s.block_table.begin(), s.block_table.end(), bt);
    if (prefill) {
      w[p.cu_p + ps + 1] = static_cast<int32_t>(row);
      w[p.ctx_p + ps] = static_cast<int32_t>(s.context_len);
      if (p.spans >= 0) {  // this sequence's pairs after the earlier ones'
        const int32_t at = w[p.span_off + ps];
        std::copy(s.image_spans.begin(), s.image_spans.end(), w + p.spans + 2 * at);
        w[p.span_off + ps + 1] = at + static_cast<int32_t>(s.image_spans.size() / 2);
      }
      ps++;
    } else {
      w[p.cu_d + ds + 1] = static_cast<int32_t>(row - p.prefill_rows);
      w[p.ctx_d + ds] = static_cast<int32_t>(s.context_len);
      ds++;
    }
  }
  for (; row < T; ++row, ++ds) {  // padding: base rows, no KV write, one cached key (block 0) to attend to
    w[p.kv_slots + row] = -1;
    w[p.row_entry + row] = -1;
    w[p.cu_d + ds + 1] = static_cast<int32_t>(row - p.prefill_rows + 1);
    w[p.ctx_d + ds] = 1;
  }
  for (int64_t r = 0; r < R; ++r) {
    if (r < p.wanted_logits) {
      const int32_t nr = new_row[b.logit_rows[r]];
      w[p.logit_index + r] = nr;
      w[p.logit_entry + r] = w[p.row_entry + nr];
    } else {
      w[p.logit_entry + r] = -1;
    }
  }
  // SGMV segments over the prefill rows, one per slot that has some (in slot order, as the rows are): segment k
  // covers [seg[k], seg[k+1]) with slot seg_entry[k]; the base rows come first and belong to no segment.
  int64_t acc = per_slot[0];
  int32_t k = 0;
  for (int64_t e = 0; e < S; ++e) {
    if (per_slot[e + 1] == 0) continue;
    w[p.seg + k] = static_cast<int32_t>(acc);
    w[p.seg_entry + k] = static_cast<int32_t>(e);
    acc += per_slot[e + 1];
    ++k;
  }
  w[p.seg + k] = static_cast<int32_t>(acc);
  p.num_segments = k;
  p.row_of = std::move(new_row);
  return p;
}

}  // namespace weft::cuda
