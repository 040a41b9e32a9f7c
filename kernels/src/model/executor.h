// What every model executor (CPU: model/model.h, CUDA: cuda/model/cuda_model.h) shares: the plan config,
// the batch, the LoRA part, the abstract interface the N-API layer drives, and the plan rules both backends
// must apply identically (weight names and sizes, LoRA part checks, batch validation, logits assembly).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cpu/ops.h"
#include "model/op_profile.h"
#include "model/query_scale.h"

namespace weft {

enum class NormKind { kRms, kLayer };
// Gated kinds (kGatedSilu: Llama's SwiGLU; kGatedGeluTanh: Gemma's GeGLU) read a [gate | up] projection.
// kReluSquared (Arcee AFM): relu(x)² on a non-gated up projection. kClampedSwiglu (gpt-oss): gated, the gate clamped
// above and the up clamped both ways at glu_limit, then gate·σ(glu_alpha·gate)·(up + 1). kXielu (Apertus): xIELU on a
// non-gated up projection, with each layer's parameters (plan weight layers.<l>.xielu, cpu::xielu's four values).
enum class MlpKind { kGatedSilu, kGeluTanh, kGeluErf, kGatedGeluTanh, kReluSquared, kClampedSwiglu, kXielu };
// kEmbed: LoRA on the token embedding (PEFT lora_embedding_A [rank, vocab] / _B [hidden, rank]): its "input" is
// the token's one-hot row, so in = vocab, out = hidden.
// kQb / kKvb: multi-head latent attention's second projections (ModelConfig::mla_kv_rank > 0): q_b_proj and kv_b_proj.
enum LoraModule { kQkv = 0, kO = 1, kUp = 2, kDown = 3, kQb = 4, kKvb = 5, kNumLayerModules = 6, kLmHead = 6, kEmbed = 7 };

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
  // Qwen3: q and k are RMS-normalised per head (weights q_norm/k_norm [head_dim], eps norm_eps) after the
  // projection (LoRA included) and before RoPE.
  bool qk_norm = false;
  // OLMo 2: q and k RMS-normalised over their whole width (all heads: weights q_norm [heads_local·head_dim] and
  // k_norm [kv_heads_local·head_dim], this rank's slices), the sums of squares added over the ranks. A kv head that
  // several ranks hold (fewer kv heads than ranks) is then counted that many times in the sum and in the width
  // alike (local width × world), so the mean is right.
  bool qk_norm_full = false;
  // Command R+ (Cohere use_qk_norm): q and k LayerNorm-ed per head (mean subtracted, no bias, eps norm_eps) with each
  // head's own weights: q_norm [heads_local·head_dim], k_norm [kv_heads_local·head_dim] (this rank's heads' rows).
  bool qk_layer_norm = false;
  // OLMo, OLMoE (clip_qkv): q, k and v clamped to [-qkv_clip, qkv_clip] after the projection (LoRA included) and the
  // q/k norms, before RoPE; 0 = no clamp.
  float qkv_clip = 0.0f;
  // Ministral 3 (llama_4_scaling_beta): after RoPE each token's q times 1 + q_scale_beta·ln(1 + ⌊pos / q_scale_period⌋)
  // (period: the RoPE's original_max_position_embeddings), in float32 as transformers computes it; 0 = none.
  float q_scale_beta = 0.0f;
  int64_t q_scale_period = 0;
  // Llama 4's attention temperature (attn_temperature_tuning): the same scale of ⌊(pos + q_scale_offset) / period⌋
  // (offset 1; floor_scale the period, attn_scale the beta), only in the layers without RoPE (q_scale_nope_only).
  int64_t q_scale_offset = 0;
  bool q_scale_nope_only = false;
  // Llama 4 (use_qk_norm): q and k RMS-normalised per head without weights (eps norm_eps) after RoPE, in the layers
  // that have RoPE.
  bool qk_norm_after_rope = false;
  // Hunyuan: qk_norm's per-head RMS norm (with its q_norm/k_norm weights) applied after RoPE instead of before.
  bool qk_norm_post_rope = false;
  // Llama 4: chunked attention in the layers layer_chunked marks (empty: none) — a query at position p sees the keys
  // j <= p of its own chunk only (⌊j / attention_chunk⌋ = ⌊p / attention_chunk⌋).
  int64_t attention_chunk = 0;
  std::vector<uint8_t> layer_chunked;
  // Bidirectional attention (EmbeddingGemma: Gemma 3 with use_bidirectional_attention): every query sees every key
  // of its sequence's context, or within a two-sided window in the sliding layers (key j when |p - j| <
  // sliding_window). Only right for a prompt computed whole in one step (the coordinator sees to it; such a model
  // only embeds). Not with attention_chunk.
  bool bidirectional = false;
  // false (OLMo 2): no norm before attention or the MLP (their input is the residual stream itself); post_norms then.
  bool pre_norms = true;
  // Cohere, Phi-1/2: attention and the MLP read the same normed input (attn_norm; no mlp_norm) and both outputs are
  // added to the residual stream: h + attn(x) + mlp(x).
  bool parallel_block = false;
  // GPT-NeoX: in a parallel block the MLP reads its own norm of the block input (mlp_norm) instead of attn_norm's:
  // h + attn(attn_norm(h)) + mlp(mlp_norm(h)).
  bool parallel_mlp_norm = false;
  // Gemma: the gathered token embedding times this (√hidden, rounded to the weights' dtype as transformers does).
  float embed_scale = 1.0f;
  // Gemma 3: each block's output is RMS-normalised (post_attn_norm / post_mlp_norm) before the residual add.
  bool post_norms = false;
  // Per-layer attention kind (Gemma 3 interleaves them): empty = every layer uses sliding_window and inv_freq;
  // else layer_sliding[l] = 1 for a sliding-window layer (sliding_window, and inv_freq_local when given) and 0 for
  // a full-attention layer (no window, inv_freq).
  std::vector<uint8_t> layer_sliding;
  std::vector<float> inv_freq_local;  // sliding layers' RoPE frequencies (rotary_dim/2), or empty: inv_freq
  // The sliding layers' RoPE attention factor where they have frequencies of their own (inv_freq_local): YaRN on the
  // full-attention layers only (OLMo 3) scales those alone.
  float rope_attention_factor_local = 1.0f;
  // GLM-4: RoPE pairs are dims (2i, 2i+1) (GPT-J style) instead of (i, i + rotary_dim/2).
  bool rope_interleaved = false;
  // SmolLM3's NoPE layers: empty = every layer rotates q and k; else layer_rope[l] = 0 for a layer without RoPE.
  std::vector<uint8_t> layer_rope;
  // longrope (Phi-3.5, Phi-4-mini): the long factors' frequencies (rotary_dim/2), used for the tokens a batch marks
  // in Batch::rope_long (the shard decides which: rope.ts); empty = none. Not combined with inv_freq_local.
  std::vector<float> inv_freq_long;
  // Multimodal RoPE (Qwen2-VL, Qwen2.5-VL): the rotary frequencies split into (temporal, height, width) sections of
  // these many frequencies (summing to rotary_dim/2), each rotated by its own coordinate of the token's 3-D position
  // (Batch::mrope_positions). Empty: one position per token.
  std::vector<int64_t> mrope_section;
  // Qwen3-VL's interleaved M-RoPE: frequency i turns by the height when i mod 3 = 1 and i < 3 · section[1], by the
  // width when i mod 3 = 2 and i < 3 · section[2], else by the temporal position (apply_interleaved_mrope).
  bool mrope_interleaved = false;
  // Gemma 2's tanh caps (0 = none): attention scores (after attn_scale, before the mask) and the final logits.
  float attn_softcap = 0.0f, final_softcap = 0.0f;
  // gpt-oss: attention sinks — each head's learned logit (plan weight layers.<l>.attn_sinks [heads_local], this rank's
  // heads) joins the softmax as one more score without a value.
  bool attn_sinks = false;
  // MlpKind::kClampedSwiglu's constants (gpt-oss: alpha 1.702, limit 7).
  float glu_alpha = 1.702f, glu_limit = 7.0f;
  // Granite: each block's output times residual_scale before the residual add; the logits divided by logits_divisor.
  float residual_scale = 1.0f, logits_divisor = 1.0f;
  // Mixture of experts (Mixtral, Qwen3-MoE): num_experts > 0 makes a layer's MLP a router (plan weight
  // layers.<l>.router.weight [num_experts, hidden], replicated) that sends each token to experts_per_token of
  // num_experts gated experts (layers.<l>.experts.<e>.up.weight [gate | up], .down.weight), each of
  // expert_intermediate_local rows on this rank (split like a dense MLP's), their outputs weighted by the softmax
  // of the router logits over the chosen experts (renormalised to sum 1 when moe_renormalize). layer_moe: empty =
  // every layer; else 1 for a MoE layer, 0 for a dense one (Qwen3-MoE's mlp_only_layers: up/down as usual).
  int64_t num_experts = 0, experts_per_token = 0, expert_intermediate_local = 0;
  bool moe_renormalize = false;
  std::vector<uint8_t> layer_moe;
  // Routing variants (model/moe_route.h): moe_sigmoid (GLM-4.5) scores experts by sigmoid, ranks them with the
  // bias layers.<l>.router.bias [num_experts] added, within the moe_topk_groups best of moe_groups groups, and
  // scales the weights by moe_routed_scale. moe_shared_expert: expert index num_experts (experts.<E>.*, the same
  // width) runs for every token with weight 1 (GLM-4.5's shared expert).
  bool moe_sigmoid = false, moe_shared_expert = false;
  int64_t moe_groups = 1, moe_topk_groups = 1;
  float moe_routed_scale = 1.0f;
  // The shared expert's own width on this rank when > 0 (Qwen2-MoE's shared_expert_intermediate_size, DeepSeek-V2's
  // n_shared_experts × moe_intermediate_size); 0: the routed experts' width. moe_shared_gate (Qwen2-MoE): its weight
  // per token is sigmoid(x · shared_gate.weight) (plan weight layers.<l>.shared_gate.weight [hidden], replicated)
  // instead of 1.
  int64_t moe_shared_intermediate_local = 0;
  bool moe_shared_gate = false;
  // Softmax routing within groups (DeepSeek-V2's group_limited_greedy): the moe_topk_groups groups whose best
  // probability is largest.
  bool moe_group_max = false;
  // Softmax routing whose choice adds the router bias (layers.<l>.router.bias) to the probabilities, renormalised by
  // max(sum, moe_renorm_min) (ERNIE 4.5 MoE); moe_renorm_min 0: by the sum.
  bool moe_choice_bias = false;
  float moe_renorm_min = 0.0f;
  // Phi-3.5-MoE's sparsemixer (model/moe_route.h): per stage the largest remaining logit, weighted by its softmax over
  // the remaining experts within moe_mixer_threshold (2 · router_jitter_noise) of it, relatively; never renormalised.
  bool moe_sparsemixer = false;
  float moe_mixer_threshold = 0.0f;
  // gpt-oss's router is a linear layer with a bias: layers.<l>.router.bias added to the logits before the routing.
  bool moe_logit_bias = false;
  // gpt-oss's experts have biases: experts.<e>.up.bias [2·width] (this rank's [gate | up] rows) and experts.<e>.down.bias
  // [hidden] (whole on every rank; added by rank 0 only, as the expert outputs are partial sums all-reduced after),
  // each expert's output (bias included) times its routing weight.
  bool moe_expert_bias = false;
  // Llama 4: each routed expert's INPUT is scaled by its routing weight (Llama4TextMoe: routed_in = x · score) and its
  // output added with weight 1; the shared expert is unscaled.
  bool moe_scale_input = false;
  // Multi-head latent attention (DeepSeek-V2/V3, Kimi K2), on when mla_kv_rank > 0. The qkv module is the first
  // projection, replicated on every rank: [q_a (mla_q_rank rows) | kv_a (mla_kv_rank) | k_rope (rotary_dim)], or with
  // mla_q_rank 0 [q (heads_local·head_dim, this rank's heads) | kv_a | k_rope]. q_a is RMS-normalised (q_a_norm, eps
  // mla_norm_eps) and projected by kQb (q_b.weight [heads_local·head_dim, mla_q_rank]); kv_a is RMS-normalised
  // (kv_a_norm) and projected by kKvb (kv_b.weight [heads_local·(mla_nope_dim + mla_v_dim), mla_kv_rank]) into each
  // head's [k_nope | v]. head_dim = mla_nope_dim + rotary_dim; q's heads are [nope | rope] as transformers lays them.
  // The cache holds the expanded keys and values: each head's key [rope(k_rope) | k_nope] (the rotated part first,
  // as in q — a dot product does not mind the order), its value zero-padded to head_dim; the attention output's
  // first mla_v_dim of each head feed o (o.weight [hidden, heads_local·mla_v_dim]). kv_heads_local = heads_local.
  int64_t mla_q_rank = 0, mla_kv_rank = 0, mla_nope_dim = 0, mla_v_dim = 0;
  float mla_norm_eps = 1e-6f;
  // Hybrid Mamba-2 / attention (Granite 4.0 H, model/mamba.cc): layer_mamba[l] = 1 for a layer whose mixer is a
  // Mamba-2 block instead of attention (no KV cache use; its state lives in the executor's per-sequence state slots,
  // BatchSeq::state_slot). Empty: no Mamba layers. This rank holds mamba_heads_local of mamba_heads heads (from head
  // mamba_head_start), each mamba_head_dim wide with a state of mamba_state; B and C (mamba_groups groups of
  // mamba_state) are computed whole on every rank. Plan weights of a Mamba layer: in_proj.weight [z | x | B | C | dt]
  // rows (this rank's z, x and dt, all of B and C), conv.weight [x | B | C channels, mamba_conv] (+ conv.bias),
  // dt_bias, A_log, D [heads_local], ssm_norm.weight [heads_local·head_dim], out_proj.weight [hidden, heads_local·
  // head_dim] (row-parallel). LoRA: kQkv adapts in_proj, kO out_proj in such a layer. dt is clamped to
  // [mamba_dt_min, mamba_dt_max] after the softplus, on every token (as a whole-prompt forward).
  std::vector<uint8_t> layer_mamba;
  int64_t mamba_heads = 0, mamba_heads_local = 0, mamba_head_start = 0, mamba_head_dim = 0, mamba_state = 0,
          mamba_groups = 0, mamba_conv = 0;
  float mamba_dt_min = 0.0f, mamba_dt_max = 0.0f;  // max 0: no upper clamp
  int64_t num_blocks = 0, block_size = 16;
  int64_t adapter_slots = 0;
};

inline bool has_mamba(const ModelConfig& c) { return !c.layer_mamba.empty(); }
inline bool layer_is_mamba(const ModelConfig& c, int64_t l) {
  return !c.layer_mamba.empty() && c.layer_mamba[static_cast<size_t>(l)] != 0;
}
// A Mamba layer's sizes on this rank: the gated width (x, z), the conv channels (x | B | C), in_proj's rows.
inline int64_t mamba_inner(const ModelConfig& c) { return c.mamba_heads_local * c.mamba_head_dim; }
inline int64_t mamba_conv_dim(const ModelConfig& c) { return mamba_inner(c) + 2 * c.mamba_groups * c.mamba_state; }
inline int64_t mamba_in_proj_out(const ModelConfig& c) { return mamba_inner(c) + mamba_conv_dim(c) + c.mamba_heads_local; }

inline bool is_mla(const ModelConfig& c) { return c.mla_kv_rank > 0; }

// Whether a layer has an mlp_norm: every pre-norm block but a parallel one that shares attn_norm's output.
inline bool has_mlp_norm(const ModelConfig& c) { return c.pre_norms && (!c.parallel_block || c.parallel_mlp_norm); }
// The attention output's width per head that the o projection reads (MLA: the value width).
inline int64_t attn_value_dim(const ModelConfig& c) { return is_mla(c) ? c.mla_v_dim : c.head_dim; }

struct LoraPart {
  int64_t rank = 0, in = 0, out_len = 0, out_offset = 0;
  int expert = -1;  // a MoE layer's expert whose up/down this part adapts; -1: the layer's own module
  float scale = 1.0f;
  std::vector<float> a, b;  // A [rank, in], B [out_len, rank]
  // DoRA (PEFT use_dora): the output channels' scale m / ||W + scale·B·A|| (out_len), applied to the module's
  // whole output for the adapter's rows, base product included. Empty: plain LoRA.
  std::vector<float> mag;
};

// How a LoRA part's host arrays are stored: float32, or the 16-bit bit patterns a bf16/fp16 GPU shard holds
// (planned so by the shard: its host-RAM tier keeps half the bytes and staging copies them as they are).
enum class LoraData { kF32, kF16, kBF16 };
const char* lora_data_name(LoraData d);

// One LoRA part as a caller hands it to stage_adapter: A [rank, in] and B [out_len, rank] in host memory of
// `data`'s format (the CPU backend takes float32 only), the caller's memory, read only until stage_adapter
// returns. a_len/b_len are the arrays' element counts.
struct LoraPartRef {
  int layer = 0, module = 0;
  int expert = -1;  // kUp / kDown of this expert of a MoE layer (LoraPart::expert); -1: the layer's own module
  int64_t rank = 0, in = 0, out_len = 0, out_offset = 0;
  float scale = 1.0f;
  LoraData data = LoraData::kF32;
  const void* a = nullptr;
  const void* b = nullptr;
  int64_t a_len = 0, b_len = 0;
  // DoRA: float32 [out_len] channel scale (LoraPart::mag), or null for plain LoRA.
  const float* mag = nullptr;
  int64_t mag_len = 0;
};

// An adapter made ready for a slot by stage_adapter — checked and copied into the executor's own memory
// (uploaded, for a GPU executor) — that no step sees until install_adapter puts it in a slot.
class StagedAdapter {
 public:
  virtual ~StagedAdapter() = default;
  virtual int64_t bytes() const = 0;  // what the slot will hold
};

struct BatchSeq {
  int64_t token_start = 0, num_tokens = 0, context_len = 0;
  int32_t adapter_slot = -1;
  // A model with Mamba layers: the sequence's recurrent-state slot (the shard's; model/mamba.cc). A chunk that starts
  // the sequence (context_len == num_tokens) starts from a zero state; any later one continues the slot's state.
  int32_t state_slot = -1;
  std::vector<int32_t> block_table;
  // Gemma 3's images in this sequence: [s, e) position pairs, sorted and disjoint, whose tokens attend to each other
  // both ways (cpu::AttentionSeq::image_spans). A span that holds one of this step's query positions must end within
  // context_len (the chunk holds the rest of the image). Empty: causal. CPU backend only.
  std::vector<int32_t> image_spans;
};

struct Batch {
  std::vector<int32_t> tokens, positions, slot_mapping;  // [T]
  // [T] or empty: 1 where the token is rotated with ModelConfig::inv_freq_long instead of the layer's frequencies.
  std::vector<uint8_t> rope_long;
  // [3 · T] or empty: multimodal RoPE's (temporal, height, width) positions, all T temporal ones first, then the
  // heights, then the widths (a model with ModelConfig::mrope_section only; empty: all three are `positions`, as for
  // text). `positions` stays the token's index in its sequence (KV slots, checks).
  std::vector<int32_t> mrope_positions;
  std::vector<BatchSeq> seqs;                            // tokens of a sequence are contiguous
  std::vector<int32_t> logit_rows;                       // token rows whose logits are returned
  // forward() also returns each logit row's final hidden state (after the final norm, before lm_head; the
  // whole hidden size on every rank) after the logits: [logit_rows, hidden] more floats. Embeddings.
  bool return_hidden = false;
  // Token rows whose final hidden states (after the final norm, whole on every rank) forward() returns after all of
  // that: [hidden_rows, hidden] more floats. Pooled embeddings (mean, max, CLS) read every prompt position's.
  std::vector<int32_t> hidden_rows;
  // Embedding overrides (vision-language models): token row embed_rows[i] starts from embed_values[i · hidden, …)
  // instead of its token's embedding — an image's projected features in place of its placeholder tokens. Applied
  // where the embedding lookup's output is final (after Gemma's scale and embedding LoRA, before position
  // embeddings), as transformers' LLaVA scatters them into inputs_embeds. Empty: none. Both backends (CUDA:
  // cuda/model/cuda_embed_override.cc, never inside a CUDA graph).
  std::vector<int32_t> embed_rows;
  std::vector<float> embed_values;
  // Deepstack (Qwen3-VL): after decoder layer l (l < the number of sets), token row deepstack_rows[i] of the hidden
  // state (the residual stream, whole on every rank) gets deepstack_values[(l · rows + i) · hidden, …) added — an
  // image's deepstack features at its placeholder tokens, as transformers' _deepstack_process adds them to the
  // layer's output. deepstack_values: [sets, rows, hidden]. Empty: none. CPU backend only (CUDA refuses them).
  std::vector<int32_t> deepstack_rows;
  std::vector<float> deepstack_values;
};

// How one logit row of a step is sampled (forward_sample): the CPU's sampling rules (cpu/sampling.cc) on the
// row's logits, penalising the tokens the sequence has seen.
struct RowSampling {
  cpu::SamplingParams params;
  std::vector<int32_t> penalty_tokens;
  int32_t top_n = 0;
};

// The surface model_wrap.cc drives. Weights arrive as host float32 (a backend converts them on upload);
// forward returns logits [logit_rows, vocab] (then, with Batch::return_hidden, the hidden states [logit_rows,
// hidden], then those of Batch::hidden_rows) as host float32 on every rank.
class ModelExecutor {
 public:
  virtual ~ModelExecutor() = default;
  // Expected element count of a canonical weight, or -1 when the name is not part of this plan.
  virtual int64_t expected_size(const std::string& name) const = 0;
  virtual void set_weight(const std::string& name, const float* data, int64_t n) = 0;
  // Checks every required weight is present; allocates the KV cache.
  virtual void finalize() = 0;
  // Checks an adapter's parts and copies them (on a GPU: uploads them) without touching any slot, so it may
  // run on another thread while a step runs: a shard stages the next adapter beside its steps and only the
  // install waits for a step boundary. Throws std::invalid_argument naming the first bad part.
  virtual std::unique_ptr<StagedAdapter> stage_adapter(const std::vector<LoraPartRef>& parts) = 0;
  // Replaces what `slot` holds with a staged adapter (of this executor) and marks the slot loaded; quick.
  // Not while a step runs (serialised with forward like clear_adapter).
  virtual void install_adapter(int slot, std::unique_ptr<StagedAdapter> staged) = 0;
  virtual void clear_adapter(int slot) = 0;
  // DoRA's weight norms, this rank's share: for each output row o of the part, the sum over this rank's input
  // columns j of (W[o, j] + scale·(B·A)[o, j])² (a row-parallel module's ranks each hold a slice of j; their
  // sums add up to the squared norm). Read-only on the weights: may run beside a step.
  virtual std::vector<std::vector<float>> lora_weight_norms_sq(const std::vector<LoraPartRef>& parts) = 0;
  virtual int64_t adapter_bytes(int slot) const = 0;
  // Thread-safe with respect to adapter changes (serialised by the executor).
  virtual std::vector<float> forward(const Batch& batch) = 0;
  // The step, then one sampled token (with its logprob and top_n alternatives) per logit row, rows[i] for
  // batch.logit_rows[i]. This default samples the host logits of forward(); a GPU executor samples on the
  // device and copies back only the results.
  virtual std::vector<cpu::SampleResult> forward_sample(const Batch& batch, const std::vector<RowSampling>& rows);
  virtual const ModelConfig& config() const = 0;
  // Per-op time of the steps that run while on (model/op_profile.h). A CUDA model runs its steps without decode
  // graphs meanwhile (an event between every two kernels), so step times while profiling are not the usual ones.
  virtual void set_op_profile(bool on) = 0;
  // The per-op totals since the last call; resets them.
  virtual std::vector<OpTime> take_op_profile() = 0;
};

// Plan rules (model.cc) ---------------------------------------------------------------------------------
void check_model_config(const ModelConfig& cfg);  // throws std::invalid_argument naming what is wrong
int64_t module_in(const ModelConfig& cfg, int module);
bool layer_is_moe(const ModelConfig& cfg, int64_t layer);  // the layer's MLP is a mixture of experts
// The experts a MoE layer holds (num_experts, plus the shared one) and the experts each token runs (k, plus it).
inline int64_t experts_held(const ModelConfig& c) { return c.num_experts + (c.moe_shared_expert ? 1 : 0); }
inline int64_t experts_run(const ModelConfig& c) { return c.experts_per_token + (c.moe_shared_expert ? 1 : 0); }
// Expert e's intermediate width on this rank: the shared expert's own, or the routed experts'.
inline int64_t expert_width(const ModelConfig& c, int64_t e) {
  return e == c.num_experts && c.moe_shared_intermediate_local > 0 ? c.moe_shared_intermediate_local
                                                                   : c.expert_intermediate_local;
}
namespace moe { struct RouteParams; }
moe::RouteParams route_params(const ModelConfig& c);  // model/moe.cc
// A LoRA part's input / output width: module_in / module_out, or an expert's up / down (expert >= 0).
int64_t part_in(const ModelConfig& cfg, int module, int expert);
int64_t part_out(const ModelConfig& cfg, int module, int expert);
bool gated_mlp(const ModelConfig& cfg);  // the up module is [gate | up] (kGatedSilu, kGatedGeluTanh, kClampedSwiglu)
// The router's bias (plan weight layers.<l>.router.bias): the choice bias of sigmoid / ERNIE routing, or gpt-oss's logit
// bias.
inline bool router_has_bias(const ModelConfig& c) {
  return (c.moe_sigmoid && !c.moe_scale_input) || c.moe_choice_bias || c.moe_logit_bias;  // Llama 4's sigmoid router has none
}
// A gated MLP's activation on the CPU: out[i] = act(gate[i], up[i]) for cfg.mlp's kind (kGatedSilu, kGatedGeluTanh, kClampedSwiglu).
void gated_activation(const ModelConfig& cfg, const float* gate, const float* up, float* out, int64_t n);
int64_t layer_window(const ModelConfig& cfg, int64_t layer);  // the layer's sliding window (0 = full attention)
int64_t layer_chunk(const ModelConfig& cfg, int64_t layer);   // the layer's attention chunk (0 = none)
bool layer_query_scaled(const ModelConfig& cfg, int64_t layer);  // q_scale_beta applies in this layer
const std::vector<float>& layer_inv_freq(const ModelConfig& cfg, int64_t layer);  // the layer's RoPE frequencies
float layer_rope_attention_factor(const ModelConfig& cfg, int64_t layer);          // and their attention factor
bool layer_has_rope(const ModelConfig& cfg, int64_t layer);  // rotary_dim > 0 and not one of SmolLM3's NoPE layers
int64_t module_out(const ModelConfig& cfg, int module);
int64_t expected_weight_size(const ModelConfig& cfg, const std::string& name);
std::vector<std::string> required_weights(const ModelConfig& cfg);
// Module, layer and shape checks of one LoRA part (the messages JS callers see).
void check_lora_part(const ModelConfig& cfg, const LoraPartRef& part);
void check_adapter_slot(const ModelConfig& cfg, int slot);  // throws std::invalid_argument when out of range
// A part whose DoRA weight norms lora_weight_norms_sq may compute (check_lora_part, a layer module, float32
// factors); returns the plan weight its rows come from ("layers.<l>.<module>.weight").
std::string dora_norm_weight(const ModelConfig& cfg, const LoraPartRef& part);

// Hybrid Mamba-2 plan rules (mamba.cc): the config's Mamba part, a Mamba layer's weight sizes (name relative to the
// layer; -1: not one) and the weights each needs.
void check_mamba_config(const ModelConfig& cfg);
int64_t mamba_weight_size(const ModelConfig& cfg, const std::string& layer_relative_name);
std::vector<std::string> mamba_required(int64_t layer);
constexpr int32_t kMaxStateSlots = 1 << 16;

// Batch rules (forward.cc) ------------------------------------------------------------------------------
// Everything but "finalized": shapes, ids, KV slots, block tables, adapter slots (slot_loaded(s) for s >= 0).
void validate_batch(const ModelConfig& cfg, const Batch& b, const std::function<bool(int32_t)>& slot_loaded);
// forward_sample's argument rule: one RowSampling per logit row (throws std::invalid_argument otherwise).
void check_sampling_rows(const Batch& batch, const std::vector<RowSampling>& rows);
// Samples rows[r] from logits [rows, vocab] on the host (row r at logits + r * vocab).
std::vector<cpu::SampleResult> sample_on_host(const float* logits, int64_t vocab, const std::vector<RowSampling>& rows);
// gathered: [world, rows, vocab_chunk] rank-major (what all_gather returns) -> logits [rows, vocab].
std::vector<float> assemble_logits(const ModelConfig& cfg, const float* gathered, int world, int64_t rows);

}  // namespace weft
