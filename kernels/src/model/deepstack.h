// Deepstack (Qwen3-VL): the image tokens' hidden states get extra vision features added after the first decoder
// layers (Batch::deepstack_rows / deepstack_values), as transformers' Qwen3VLTextModel._deepstack_process adds them
// to each of those layers' outputs. With tensor parallelism the residual stream is whole on every rank after the
// layer's all-reduce, so every rank adds the same rows.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

#include "cpu/ops.h"
#include "model/executor.h"

namespace weft {

// The number of deepstack sets a batch carries (0: none); throws when its arrays do not fit the batch and the model.
inline int64_t deepstack_sets(const ModelConfig& cfg, const Batch& b) {
  const size_t rows = b.deepstack_rows.size(), per = rows * static_cast<size_t>(cfg.hidden);
  if (rows == 0) {
    if (!b.deepstack_values.empty()) throw std::invalid_argument("batch: deepstackValues without deepstackRows");
    return 0;
  }
  if (b.deepstack_values.empty() || b.deepstack_values.size() % per != 0)
    throw std::invalid_argument("batch: deepstackValues must hold [sets, deepstackRows, hidden (" +
                                std::to_string(cfg.hidden) + ")] floats");
  const int64_t sets = static_cast<int64_t>(b.deepstack_values.size() / per);
  if (sets > cfg.layers)
    throw std::invalid_argument("batch: " + std::to_string(sets) + " deepstack sets for a model of " +
                                std::to_string(cfg.layers) + " layers");
  return sets;
}

inline void check_deepstack(const ModelConfig& cfg, const Batch& b) {
  deepstack_sets(cfg, b);
  const int64_t T = static_cast<int64_t>(b.tokens.size());
  for (int32_t r : b.deepstack_rows)
    if (r < 0 || r >= T) throw std::invalid_argument("batch: deepstack row out of range");
}

// After layer l: h [T, hidden] += set l's values at its rows (nothing past the last set).
inline void add_deepstack(const Batch& b, int64_t l, int64_t hidden, float* h) {
  const int64_t rows = static_cast<int64_t>(b.deepstack_rows.size());
  if (rows == 0 || static_cast<size_t>((l + 1) * rows * hidden) > b.deepstack_values.size()) return;
  const float* v = b.deepstack_values.data() + l * rows * hidden;
  for (int64_t i = 0; i < rows; ++i) cpu::add_inplace(h + static_cast<int64_t>(b.deepstack_rows[i]) * hidden, v + i * hidden, hidden);
}

}  // namespace weft
