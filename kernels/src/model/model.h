// The CPU model executor: one generic pre-norm decoder that covers Llama, Mistral, Qwen2, Phi-3 and GPT-2.
// The TypeScript side maps each architecture onto this plan once (config + canonical weight names);
// after that a step is one call: forward(batch) -> logits for the requested rows.
// Weights held here are this rank's tensor-parallel slice (DESIGN.md §3); row-parallel outputs are
// all-reduced through the collective, vocab-parallel logits all-gathered.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "collectives/collective.h"

namespace weft {

enum class NormKind { kRms, kLayer };
enum class MlpKind { kGatedSilu, kGeluTanh, kGeluErf };
enum LoraModule { kQkv = 0, kO = 1, kUp = 2, kDown = 3, kNumLayerModules = 4, kLmHead = 4 };

struct ModelConfig {
  int64_t hidden = 0, layers = 0, head_dim = 0;
  int64_t heads_local = 0, kv_heads_local = 0, intermediate_local = 0;
  int64_t vocab = 0, vocab_chunk = 0, vocab_local = 0;  // lm_head rows on this rank = vocab_local <= vocab_chunk
  NormKind norm = NormKind::kRms;
  float norm_eps = 1e-5f;
  MlpKind mlp = MlpKind::kGatedSilu;
  bool learned_positions = false;
  int64_t max_positions = 0;
  int64_t rotary_dim = 0;  // 0 = no rotary embedding
  std::vector<float> inv_freq;
  float rope_attention_factor = 1.0f;
  int64_t sliding_window = 0;
  float attn_scale = 0;
  int64_t num_blocks = 0, block_size = 16;
  int64_t adapter_slots = 0;
};

struct LoraPart {
  int64_t rank = 0, in = 0, out_len = 0, out_offset = 0;
  float scale = 1.0f;
  std::vector<float> a, b;  // A [rank, in], B [out_len, rank]
};

struct AdapterSlot {
  bool loaded = false;
  std::vector<std::array<std::vector<LoraPart>, kNumLayerModules>> layers;
  std::vector<LoraPart> lm_head;
  int64_t bytes = 0;
};

struct BatchSeq {
  int64_t token_start = 0, num_tokens = 0, context_len = 0;
  int32_t adapter_slot = -1;
  std::vector<int32_t> block_table;
};

struct Batch {
  std::vector<int32_t> tokens, positions, slot_mapping;  // [T]
  std::vector<BatchSeq> seqs;                            // tokens of a sequence are contiguous
  std::vector<int32_t> logit_rows;                       // token rows whose logits are returned
};

class Model {
 public:
  Model(ModelConfig cfg, std::shared_ptr<Collective> coll);
  // Expected element count of a canonical weight, or -1 when the name is not part of this plan.
  int64_t expected_size(const std::string& name) const;
  void set_weight(const std::string& name, const float* data, int64_t n);
  // Checks every required weight is present; allocates the KV cache.
  void finalize();
  void add_lora_part(int slot, int layer, int module, LoraPart part);
  void mark_adapter_loaded(int slot);
  void clear_adapter(int slot);
  int64_t adapter_bytes(int slot) const;
  // Logits [logit_rows, vocab]. Thread-safe with respect to adapter changes (serialised by a mutex).
  std::vector<float> forward(const Batch& batch);
  const ModelConfig& config() const { return cfg_; }
  int64_t module_in(int module) const;
  int64_t module_out(int module) const;

 private:
  const float* w(const std::string& name) const;
  const float* w_opt(const std::string& name) const;
  void norm(const float* x, int64_t tokens, const std::string& prefix, float* out) const;
  void apply_lora(int layer, int module, const float* x, int64_t in, const std::vector<int32_t>& token_slots,
                  float* y, int64_t out) const;
  void validate_batch(const Batch& b) const;

  ModelConfig cfg_;
  std::shared_ptr<Collective> coll_;
  std::unordered_map<std::string, std::vector<float>> weights_;
  std::vector<AdapterSlot> slots_;
  std::vector<std::vector<float>> k_cache_, v_cache_;  // per layer [num_blocks * block_size, kv_dim]
  bool finalized_ = false;
  mutable std::mutex mu_;
};

}  // namespace weft
