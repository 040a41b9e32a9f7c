// The host half of a CUDA step: the batch's rows reordered for the kernels, and every small per-step array
// (tokens, positions, KV slots, adapter entries, attention metadata, block tables) packed into one int32
// buffer so a step needs exactly one host-to-device copy.
//
// Order: sequences with several rows (prefill) first, then single-row ones (decode); inside each group,
// stably by adapter slot with the base model (-1) first. So
//  - prefill attention runs over rows [0, prefill_rows) and decode attention over the rest, each one launch;
//  - the prefill rows of one adapter are consecutive: one SGMV segment per adapter the prefill rows use
//    (segment k covers seg[k]..seg[k+1] with slot seg_entry[k]: a few segments however many slots there are),
//    and decode rows use BGMV with one entry per row.
// Every op computes a row independently of the others, so the order changes no result; logits come back in
// the batch's logit_rows order (logit_index maps each to its reordered row).
#pragma once
#include <cstdint>
#include <vector>

#include "model/executor.h"

namespace weft::cuda {

// A decode-only step padded to a captured graph's shape: `rows` sequences of one row (extra rows are base
// model rows that write no KV slot) and block tables `table_stride` entries wide.
struct PaddedShape {
  int32_t rows = 0, table_stride = 0;
};

struct StepPlan {
  int64_t rows = 0;           // rows computed (padded ones included)
  int64_t prefill_rows = 0;   // rows [0, prefill_rows) belong to multi-row sequences
  int64_t logit_rows = 0;     // rows whose logits are computed (padded ones included)
  int64_t wanted_logits = 0;  // the batch's logit_rows, copied back to the host
  int32_t prefill_seqs = 0, decode_seqs = 0;
  int32_t max_query_len = 0;  // longest prefill sequence
  int32_t prefill_max_context = 0, decode_max_context = 0;
  int32_t table_stride = 1;
  bool lora = false;          // some row uses an adapter
  bool dora = false;          // some row uses a DoRA adapter (set by the executor, which knows the slots)
  bool embed_lora = false;    // some row's adapter has LoRA on the token embedding (set likewise)
  int32_t num_segments = 0;   // SGMV segments (adapters of the prefill rows)
  int64_t embed_overrides = 0;  // Batch::embed_rows uploaded for this step (set by the executor; never in a graph)
  // Offsets, in int32 elements, of each array in the packed buffer.
  int64_t tokens = 0, positions = 0, kv_slots = 0, row_entry = 0, logit_index = 0, logit_entry = 0, seg = 0, seg_entry = 0;
  int64_t cu_p = 0, ctx_p = 0, bt_p = 0, cu_d = 0, ctx_d = 0, bt_d = 0;
  int64_t rope_long = -1;     // longrope models only (cfg.inv_freq_long): 1 per row rotated with the long factors
  // Multimodal RoPE models only (cfg.mrope_section): [3, rows] (t, h, w) positions of every row (a text row's three
  // equal to its position; padding rows 0). Always present for such a model, at an offset fixed by the step's shape,
  // so a replayed decode graph reads the positions this step uploaded (decode rows: index + the sequence's delta).
  int64_t mrope = -1;
  // Gemma 3's images of the prefill sequences (BatchSeq::image_spans), only when some prefill sequence has one:
  // span_off [prefill_seqs + 1] (pair offsets, PagedAttention::span_offsets) and spans [2 · num_spans]. Never in a
  // graph (prefill steps are not captured); decode rows need none (a decode query is never inside an image).
  int64_t span_off = -1, spans = -1;
  int32_t num_spans = 0;
  int64_t words = 0;          // packed length
  std::vector<int32_t> row_of;  // the reordered row of each batch row (Batch::hidden_rows are read through it)
};

// True when every sequence has one row (a decode step).
bool decode_only(const Batch& b);
// Longest block table of the batch (at least 1).
int32_t longest_block_table(const Batch& b);

// Plans a validated batch and fills `packed` (resized to plan.words). `pad`: the graph shape to pad a
// decode-only batch to (rows >= sequences and logit rows, table_stride >= every block table), or null.
StepPlan plan_step(const ModelConfig& cfg, const Batch& b, const PaddedShape* pad, std::vector<int32_t>& packed);

}  // namespace weft::cuda
