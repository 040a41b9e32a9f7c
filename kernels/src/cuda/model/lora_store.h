// LoRA adapters on the device: every slot's A/B per layer and module in the weight dtype, and per module one
// device table indexed [sub-block][slot] (A, B, rank, scale) that the SGMV/BGMV kernels read (kernels.h
// LoraArgs with entries = adapter slots). The tables sit at fixed addresses for the model's life, so a
// captured decode graph reads whatever adapters the tables name at replay time.
//
// Adapters arrive in two steps: stage (any thread, beside steps: one stream-ordered allocation per adapter,
// every part uploaded on the caller's copy stream, one synchronisation) and install (between steps: the
// slot's table entries point at the staged memory). The host tables change only on install and clear.
//
// A fused module's output is split into fixed sub-blocks (qkv: q|k|v; gated up: gate|up; else one), the same
// ones shard/models/layout.ts slices adapters by. Each LoRA part must be one whole sub-block, at most one
// part per sub-block and slot (what planAdapter produces); anything else is refused with the reason.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "cuda/kernels/kernels.h"
#include "cuda/model/buffers.h"
#include "model/executor.h"

namespace weft::cuda {

// The LoraArgs fields of one module that do not change from step to step (device pointers).
struct LoraTable {
  const void* const* a = nullptr;
  const void* const* b = nullptr;
  const float* const* mag = nullptr;  // DoRA channel scales (float32 [out_len]), null where an entry has none
  const int32_t* rank = nullptr;
  const float* scale = nullptr;
  const int32_t* out_offset = nullptr;
  const int32_t* out_len = nullptr;
  int32_t num_slices = 0, max_out_len = 0, num_entries = 0;
};

// An adapter uploaded by LoraStore::stage: its parts in one device allocation and the table entries that
// install writes.
class StagedLora final : public StagedAdapter {
 public:
  int64_t bytes() const override { return bytes_; }

 private:
  friend class LoraStore;
  struct Entry {
    int table, sub;  // which table, which sub-block of its module
    const void *a, *b;
    const float* mag;  // DoRA, or null
    int32_t rank;
    float scale;
  };
  const void* owner_ = nullptr;
  StreamBuffer mem_;
  std::vector<Entry> entries_;
  int64_t bytes_ = 0;
  int32_t rank_cap_ = 16;
  bool dora_ = false;
  bool embed_ = false;
};

class LoraStore {
 public:
  static constexpr int kMaxRank = 1024;  // lora.cu's limit
  LoraStore(const ModelConfig& cfg, DType dtype);

  // Checks every part (check_lora_part, then one whole sub-block each, at most one per sub-block) and uploads
  // them, converted to the dtype, on `stream` through `up`; returns once the bytes are on the device. Touches
  // no slot or table: callers serialise stages among themselves (one uploader), not with steps.
  std::unique_ptr<StagedLora> stage(const std::vector<LoraPartRef>& parts, Uploader& up, cudaStream_t stream) const;
  // Clears `slot`, then points its table entries at `staged`'s memory and marks it loaded. `step_stream`
  // orders the eventual free of that memory after the steps that read it.
  void install(int slot, StagedLora& staged, cudaStream_t step_stream);
  void clear(int slot);
  bool loaded(int slot) const { return slots_[slot].loaded; }
  // The adapter in `slot` is a DoRA adapter: a step with its rows scales them after every module's expands.
  bool is_dora(int slot) const { return slots_[slot].loaded && slots_[slot].dora; }
  // The adapter in `slot` has LoRA on the token embedding.
  bool has_embedding(int slot) const { return slots_[slot].loaded && slots_[slot].embed; }
  int64_t bytes(int slot) const { return slots_[slot].bytes; }

  // Enqueues copies of the tables changed since the last call to the device (before a step is enqueued). Does not
  // wait for them: the host tables change only in install/clear, which run between steps, and every step waits
  // for its stream before it returns — so a copy has always landed before the tables change again.
  void sync_tables(cudaStream_t stream);
  // expert >= 0: that expert's up (gate|up) or down of a MoE layer (cuda_moe.cc).
  LoraTable table(int layer, int module, int expert = -1) const;
  // The max_rank a step launches with: >= every rank held, a multiple of 16, at least 16.
  int32_t rank_cap() const { return rank_cap_; }

 private:
  struct Slice {
    int32_t offset, len;
  };
  struct Layout {  // byte offsets of one table inside the blob
    size_t base, a, b, mag, rank, scale, out_offset, out_len, end;
  };
  struct SlotState {
    bool loaded = false;
    bool dora = false;
    bool embed = false;
    int64_t bytes = 0;
    StreamBuffer mem;                              // every part of the adapter
    std::vector<std::pair<int, int>> entries;      // (table, sub-block) entries that point into mem
  };
  static constexpr int kMaxSlices = 3;

  int table_index(int layer, int module, int expert = -1) const;
  void set_entry(int table, int sub, int slot, const void* a, const void* b, const float* mag, int32_t rank, float scale);
  // Tables: layers × 4 modules, lm_head, the embedding, then (MoE models) layers × experts × {up, down}.
  int module_of(int table) const {
    if (table >= num_dense_tables_) return (table - num_dense_tables_) % 2 == 0 ? kUp : kDown;
    return table == num_dense_tables_ - 1 ? kEmbed : table == num_dense_tables_ - 2 ? kLmHead : table % kNumLayerModules;
  }
  int expert_of(int table) const {
    return table >= num_dense_tables_ ? static_cast<int>(((table - num_dense_tables_) / 2) % experts_held(cfg_)) : -1;
  }
  std::vector<Slice> slices_of(int module, int expert = -1) const;
  template <class T> T* host(int table, size_t Layout::*field) {
    return reinterpret_cast<T*>(blob_.as<uint8_t>() + layouts_[table].*field);
  }

  ModelConfig cfg_;
  DType dtype_;
  int32_t entries_;                  // adapter slots
  int num_dense_tables_;             // layers * 4 + lm_head + the token embedding
  int num_tables_;                   // and layers * experts * 2 for a MoE model's experts
  std::vector<Layout> layouts_;
  // Host mirror of every table, page-locked: sync_tables copies it without waiting (see there).
  PinnedBuffer blob_;
  std::vector<bool> dirty_;
  bool any_dirty_ = true;
  DeviceBuffer device_;
  std::vector<LoraTable> tables_;    // device views of the tables, fixed for the store's life
  std::vector<SlotState> slots_;
  int32_t rank_cap_ = 16;
};

}  // namespace weft::cuda
