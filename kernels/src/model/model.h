// The CPU model executor: one generic pre-norm decoder that covers Llama, Mistral, Qwen2, Phi-3 and GPT-2 (and the
// other architectures in shard/models/spec.ts), with dense or mixture-of-experts MLPs.
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
#include "model/executor.h"

namespace weft {

struct AdapterSlot {
  bool loaded = false;
  std::vector<std::array<std::vector<LoraPart>, kNumLayerModules>> layers;
  std::vector<LoraPart> lm_head;
  std::vector<LoraPart> embed;  // LoRA on the token embedding (kEmbed)
  int64_t bytes = 0;
};

class Model final : public ModelExecutor {
 public:
  Model(ModelConfig cfg, std::shared_ptr<Collective> coll);
  // Expected element count of a canonical weight, or -1 when the name is not part of this plan.
  int64_t expected_size(const std::string& name) const override;
  void set_weight(const std::string& name, const float* data, int64_t n) override;
  void finalize() override;
  std::unique_ptr<StagedAdapter> stage_adapter(const std::vector<LoraPartRef>& parts) override;
  void install_adapter(int slot, std::unique_ptr<StagedAdapter> staged) override;
  void clear_adapter(int slot) override;
  int64_t adapter_bytes(int slot) const override;
  std::vector<std::vector<float>> lora_weight_norms_sq(const std::vector<LoraPartRef>& parts) override;
  // Logits [logit_rows, vocab]. Thread-safe with respect to adapter changes (serialised by a mutex).
  std::vector<float> forward(const Batch& batch) override;
  const ModelConfig& config() const override { return cfg_; }
  void set_op_profile(bool on) override;
  std::vector<OpTime> take_op_profile() override;
  int64_t module_in(int module) const { return weft::module_in(cfg_, module); }
  int64_t module_out(int module) const { return weft::module_out(cfg_, module); }

 private:
  const float* w(const std::string& name) const;
  const float* w_opt(const std::string& name) const;
  void norm(const float* x, int64_t tokens, const std::string& prefix, float* out) const;
  void finish_block_output(float* y, int64_t tokens, const std::string& post_norm) const;
  void append_hidden_rows(const float* h, const std::vector<int32_t>& rows, std::vector<float>& out) const;
  // OLMo 2's full-width q/k RMS norms (cfg_.qk_norm_full), the sums of squares all-reduced over the ranks.
  void qk_norm_full(float* q, float* k, int64_t tokens, const float* q_w, const float* k_w) const;
  // bias: the module's bias when y already holds it (DoRA scales the product without it), else null.
  // expert >= 0: only the parts of that expert of a MoE layer (x, y: the rows routed to it).
  void apply_lora(int layer, int module, const float* x, int64_t in, const std::vector<int32_t>& token_slots,
                  float* y, int64_t out, const float* bias = nullptr, int expert = -1) const;
  // A MoE layer's MLP (moe.cc): x [T, hidden] normalised -> out [T, hidden], this rank's partial sum (before the
  // all-reduce).
  void moe_mlp(int64_t layer, const float* x, int64_t T, const std::vector<int32_t>& token_slots, float* out) const;
  // Latent attention's q, k, v [T, heads_local · head_dim] (mla.cc; ModelConfig::mla_kv_rank > 0) from x [T, hidden].
  void mla_qkv(int64_t layer, const float* x, int64_t T, const std::vector<int32_t>& token_slots, float* q, float* k,
               float* v) const;
  void validate_batch(const Batch& b) const;
  // Hybrid Mamba-2 layers (mamba.cc): one state slot's floats (every Mamba layer's conv window and SSM state), the
  // slots made ready for a step, and a Mamba layer's mixer (x [T, hidden] normalised -> out, before the all-reduce).
  int64_t mamba_state_floats() const;
  void prepare_states(const Batch& b);
  void mamba_mixer(int64_t layer, const float* x, int64_t T, const Batch& b, const std::vector<int32_t>& token_slots,
                   float* out);

  ModelConfig cfg_;
  std::shared_ptr<Collective> coll_;
  std::unordered_map<std::string, std::vector<float>> weights_;
  std::vector<AdapterSlot> slots_;
  std::vector<std::vector<float>> k_cache_, v_cache_;  // per layer [num_blocks * block_size, kv_dim]
  std::vector<std::vector<float>> states_;  // per state slot (BatchSeq::state_slot): mamba_state_floats(), under mu_
  std::vector<uint8_t> state_live_;          // 1 once a slot's sequence started (its first chunk zeroed it)
  bool finalized_ = false;
  HostOpClock ops_;  // under mu_
  mutable std::mutex mu_;
};

}  // namespace weft
