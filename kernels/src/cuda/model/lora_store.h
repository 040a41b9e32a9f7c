// LoRA adapters on the device: every slot's A/B per layer and module in the weight dtype, and per module one
// device table indexed [sub-block][slot] (A, B, rank, scale) that the SGMV/BGMV kernels read (kernels.h
// LoraArgs with entries = adapter slots). The tables sit at fixed addresses for the model's life, so a
// captured decode graph reads whatever adapters the tables name at replay time.
//
// A fused module's output is split into fixed sub-blocks (qkv: q|k|v; gated up: gate|up; else one), the same
// ones shard/models/layout.ts slices adapters by. Each LoRA part must be one whole sub-block, at most one
// part per sub-block and slot (what planAdapter produces); anything else is refused with the reason.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "cuda/kernels/kernels.h"
#include "cuda/model/buffers.h"
#include "model/executor.h"

namespace weft::cuda {

// The LoraArgs fields of one module that do not change from step to step (device pointers).
struct LoraTable {
  const void* const* a = nullptr;
  const void* const* b = nullptr;
  const int32_t* rank = nullptr;
  const float* scale = nullptr;
  const int32_t* out_offset = nullptr;
  const int32_t* out_len = nullptr;
  int32_t num_slices = 0, max_out_len = 0, num_entries = 0;
};

class LoraStore {
 public:
  static constexpr int kMaxRank = 1024;  // lora.cu's limit
  LoraStore(const ModelConfig& cfg, DType dtype);

  // Uploads one part (checked by check_lora_part already) into `slot`, converting A and B to the dtype.
  void add(int slot, int layer, int module, const LoraPart& part, Uploader& up, cudaStream_t stream);
  void mark_loaded(int slot) { slots_[slot].loaded = true; }
  void clear(int slot);
  bool loaded(int slot) const { return slots_[slot].loaded; }
  int64_t bytes(int slot) const { return slots_[slot].bytes; }

  // Copies the tables changed since the last call to the device (before a step is enqueued).
  void sync_tables(cudaStream_t stream);
  LoraTable table(int layer, int module) const;
  // The max_rank a step launches with: >= every rank held, a multiple of 16, at least 16.
  int32_t rank_cap() const { return rank_cap_; }

 private:
  struct Slice {
    int32_t offset, len;
  };
  struct Layout {  // byte offsets of one table inside the blob
    size_t base, a, b, rank, scale, out_offset, out_len, end;
  };
  struct SlotState {
    bool loaded = false;
    int64_t bytes = 0;
    std::vector<DeviceBuffer> parts;  // [table * kMaxSlices + slice], empty until the first part arrives
  };
  static constexpr int kMaxSlices = 3;

  int table_index(int layer, int module) const;
  int module_of(int table) const { return table == num_tables_ - 1 ? kLmHead : table % kNumLayerModules; }
  std::vector<Slice> slices_of(int module) const;
  template <class T> T* host(int table, size_t Layout::*field) {
    return reinterpret_cast<T*>(blob_.data() + layouts_[table].*field);
  }

  ModelConfig cfg_;
  DType dtype_;
  int32_t entries_;                  // adapter slots
  int num_tables_;                   // layers * 4 + lm_head
  std::vector<Layout> layouts_;
  std::vector<uint8_t> blob_;        // host mirror of every table
  std::vector<bool> dirty_;
  bool any_dirty_ = true;
  DeviceBuffer device_;
  std::vector<LoraTable> tables_;    // device views of the tables, fixed for the store's life
  std::vector<SlotState> slots_;
  int32_t rank_cap_ = 16;
};

}  // namespace weft::cuda
