// Model executor: the plan rules both backends share (executor.h), then the CPU executor's weight
// bookkeeping and adapter slots (its forward pass is in forward.cc).
#include "model/model.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

#include "cpu/ops.h"
#include "model/moe_route.h"

namespace weft {

namespace {
std::string layer_name(int64_t i, const char* suffix) { return "layers." + std::to_string(i) + "." + suffix; }
bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
}  // namespace

void check_model_config(const ModelConfig& c) {
  if (c.hidden <= 0 || c.layers <= 0 || c.head_dim <= 0 || c.heads_local <= 0 || c.kv_heads_local <= 0 ||
      c.intermediate_local <= 0 || c.vocab <= 0 || c.vocab_local <= 0 || c.vocab_chunk < c.vocab_local)
    throw std::invalid_argument("model config: sizes must be positive (hidden, layers, head_dim, heads, kv_heads, intermediate, vocab)");
  if (c.heads_local % c.kv_heads_local != 0)
    throw std::invalid_argument("model config: local attention heads must be a multiple of local kv heads");
  if (c.rotary_dim % 2 != 0 || c.rotary_dim > c.head_dim ||
      static_cast<int64_t>(c.inv_freq.size()) != c.rotary_dim / 2)
    throw std::invalid_argument("model config: rotary_dim must be even, <= head_dim, with rotary_dim/2 inverse frequencies");
  if (c.num_blocks <= 0 || c.block_size <= 0) throw std::invalid_argument("model config: KV cache needs blocks");
  if ((c.qk_norm || c.qk_norm_full || c.post_norms) && c.norm != NormKind::kRms)
    throw std::invalid_argument("model config: qk_norm and post_norms need RMS norms");
  if (int(c.qk_norm) + int(c.qk_norm_full) + int(c.qk_layer_norm) > 1)
    throw std::invalid_argument("model config: q/k norms are per head (RMS or LayerNorm) or full width, one kind");
  if (c.parallel_block && (!c.pre_norms || c.post_norms))
    throw std::invalid_argument("model config: a parallel block reads one pre-norm and has no post norms");
  if (!(c.qkv_clip >= 0.0f) || (c.qkv_clip > 0.0f && c.mla_kv_rank > 0))
    throw std::invalid_argument("model config: qkv_clip must be 0 (none) or positive, and not with latent attention");
  if (c.q_scale_beta != 0.0f && c.q_scale_period <= 0)
    throw std::invalid_argument("model config: q_scale_beta needs a positive q_scale_period");
  if (!c.layer_chunked.empty() && (static_cast<int64_t>(c.layer_chunked.size()) != c.layers || c.attention_chunk <= 0))
    throw std::invalid_argument("model config: layer_chunked needs one entry per layer and a positive attention_chunk");
  if (c.bidirectional && !c.layer_chunked.empty())
    throw std::invalid_argument("model config: bidirectional attention with chunked attention layers is not supported");
  if (c.q_scale_offset < 0 || (c.qk_norm_after_rope && (c.qk_norm || c.qk_norm_full || c.qk_layer_norm)))
    throw std::invalid_argument("model config: q_scale_offset must be >= 0; qk_norm_after_rope is the only q/k norm");
  if (c.qk_norm_post_rope && !c.qk_norm)
    throw std::invalid_argument("model config: qk_norm_post_rope moves qk_norm's per-head norm after RoPE; it needs qk_norm");
  if (c.moe_scale_input && (c.num_experts == 0 || !c.moe_sigmoid))
    throw std::invalid_argument("model config: moe_scale_input is Llama 4's sigmoid routing");
  if (c.parallel_mlp_norm && !c.parallel_block)
    throw std::invalid_argument("model config: parallel_mlp_norm is part of a parallel block");
  if (!c.layer_sliding.empty() && static_cast<int64_t>(c.layer_sliding.size()) != c.layers)
    throw std::invalid_argument("model config: layer_sliding needs one entry per layer");
  if (c.mrope_interleaved && c.mrope_section.empty())
    throw std::invalid_argument("model config: mrope_interleaved needs mrope_section");
  if (!c.mrope_section.empty()) {
    int64_t sum = 0;
    bool negative = false;
    for (int64_t s : c.mrope_section) {
      sum += s;
      negative = negative || s < 0;
    }
    if (negative || c.mrope_section.size() != 3 || sum != c.rotary_dim / 2 || c.rope_interleaved || !c.inv_freq_long.empty())
      throw std::invalid_argument("model config: mrope_section needs 3 non-negative frequency counts summing to "
                                  "rotary_dim/2 (" + std::to_string(c.rotary_dim / 2) + "), without interleaved or long RoPE");
  }
  if (!c.layer_rope.empty() && static_cast<int64_t>(c.layer_rope.size()) != c.layers)
    throw std::invalid_argument("model config: layer_rope needs one entry per layer");
  if (!c.inv_freq_local.empty() && c.inv_freq_local.size() != c.inv_freq.size())
    throw std::invalid_argument("model config: inv_freq_local needs rotary_dim/2 frequencies, like inv_freq");
  if (!c.inv_freq_long.empty() && (c.inv_freq_long.size() != c.inv_freq.size() || !c.inv_freq_local.empty()))
    throw std::invalid_argument("model config: inv_freq_long needs rotary_dim/2 frequencies and no inv_freq_local");
  if (!(c.embed_scale > 0.0f)) throw std::invalid_argument("model config: embed_scale must be positive");
  if (!(c.attn_softcap >= 0.0f) || !(c.final_softcap >= 0.0f))
    throw std::invalid_argument("model config: softcaps must be 0 (none) or positive");
  if (!(c.residual_scale > 0.0f) || !(c.logits_divisor > 0.0f))
    throw std::invalid_argument("model config: residual_scale and logits_divisor must be positive");
  if (c.num_experts < 0 || (c.num_experts > 0 && (c.experts_per_token <= 0 || c.experts_per_token > c.num_experts ||
                                                  c.expert_intermediate_local <= 0 || !gated_mlp(c))))
    throw std::invalid_argument("model config: a mixture of experts needs 1 <= experts_per_token <= num_experts, "
                                "expert_intermediate_local > 0 and a gated MLP");
  if (!c.layer_moe.empty() && (c.num_experts == 0 || static_cast<int64_t>(c.layer_moe.size()) != c.layers))
    throw std::invalid_argument("model config: layer_moe needs experts and one entry per layer");
  if (c.num_experts > moe::kMaxExperts || c.experts_per_token > moe::kMaxTopK)
    throw std::invalid_argument("model config: at most " + std::to_string(moe::kMaxExperts) + " experts and " +
                                std::to_string(moe::kMaxTopK) + " per token");
  if (c.moe_groups < 1 || c.moe_groups > moe::kMaxGroups || c.moe_topk_groups < 1 || c.moe_topk_groups > c.moe_groups ||
      (c.num_experts > 0 && (c.num_experts % c.moe_groups != 0 || (c.moe_groups > 1 && c.num_experts / c.moe_groups < 2))) ||
      (c.moe_groups > 1 && !c.moe_sigmoid && !c.moe_group_max) || (c.moe_group_max && c.moe_sigmoid) ||
      (c.num_experts > 0 && c.experts_per_token > c.moe_topk_groups * (c.num_experts / c.moe_groups)))
    throw std::invalid_argument("model config: expert groups must split the experts evenly (2 or more each), with "
                                "1 <= topk_groups <= groups holding at least experts_per_token experts (sigmoid "
                                "routing, or softmax with moe_group_max)");
  if ((c.moe_logit_bias || c.moe_expert_bias) && (c.num_experts == 0 || c.moe_sigmoid || c.moe_choice_bias || c.moe_shared_expert))
    throw std::invalid_argument("model config: a router logit bias and expert biases are softmax routing without a "
                                "choice bias or shared expert (gpt-oss)");
  if (c.mlp == MlpKind::kClampedSwiglu && !(c.glu_limit > 0.0f && std::isfinite(c.glu_alpha)))
    throw std::invalid_argument("model config: the clamped SwiGLU needs a positive glu_limit and a finite glu_alpha");
  if ((c.moe_choice_bias && c.moe_sigmoid) || !(c.moe_renorm_min >= 0.0f))
    throw std::invalid_argument("model config: a softmax choice bias is not sigmoid routing; moe_renorm_min must be >= 0");
  if (c.moe_sparsemixer && (c.num_experts == 0 || c.experts_per_token < 1 || c.moe_sigmoid || c.moe_renormalize ||
                            c.moe_groups > 1 || c.moe_group_max || c.moe_choice_bias || c.moe_logit_bias ||
                            c.moe_scale_input || !(c.moe_mixer_threshold >= 0.0f) || !std::isfinite(c.moe_mixer_threshold)))
    throw std::invalid_argument("model config: sparsemixer routing is its own softmax (no sigmoid, renormalisation, "
                                "groups or biases) and needs a finite moe_mixer_threshold >= 0");
  if ((c.moe_shared_intermediate_local != 0 || c.moe_shared_gate) &&
      (!c.moe_shared_expert || c.moe_shared_intermediate_local < 0))
    throw std::invalid_argument("model config: a shared expert's width or gate needs moe_shared_expert");
  if (c.mla_kv_rank < 0 || c.mla_q_rank < 0 || (!is_mla(c) && (c.mla_q_rank || c.mla_nope_dim || c.mla_v_dim)))
    throw std::invalid_argument("model config: latent attention's ranks must be >= 0, mla_kv_rank > 0 to use it");
  if (is_mla(c) && (c.kv_heads_local != c.heads_local || c.rotary_dim <= 0 || c.mla_nope_dim < 0 ||
                    c.head_dim != c.mla_nope_dim + c.rotary_dim || c.mla_v_dim <= 0 || c.mla_v_dim > c.head_dim ||
                    c.qk_norm || c.qk_norm_full || c.parallel_block || !(c.mla_norm_eps > 0.0f)))
    throw std::invalid_argument("model config: latent attention needs kv heads = heads, head_dim = mla_nope_dim + "
                                "rotary_dim (rotary_dim > 0), 0 < mla_v_dim <= head_dim, a positive mla_norm_eps, and "
                                "no q/k norms or parallel block");
  check_mamba_config(c);
}

bool layer_is_moe(const ModelConfig& c, int64_t layer) {
  return c.num_experts > 0 && (c.layer_moe.empty() || c.layer_moe[static_cast<size_t>(layer)] != 0);
}

int64_t part_in(const ModelConfig& c, int module, int expert) {
  if (expert < 0) return module_in(c, module);
  return module == kUp ? c.hidden : module == kDown ? expert_width(c, expert) : -1;
}

int64_t part_out(const ModelConfig& c, int module, int expert) {
  if (expert < 0) return module_out(c, module);
  return module == kUp ? 2 * expert_width(c, expert) : module == kDown ? c.hidden : -1;
}

int64_t module_in(const ModelConfig& c, int module) {
  switch (module) {
    case kQkv: case kUp: case kLmHead: return c.hidden;
    case kO: return c.heads_local * attn_value_dim(c);
    case kQb: return is_mla(c) && c.mla_q_rank > 0 ? c.mla_q_rank : -1;
    case kKvb: return is_mla(c) ? c.mla_kv_rank : -1;
    case kDown: return c.intermediate_local;
    case kEmbed: return c.vocab;
  }
  return -1;
}

bool gated_mlp(const ModelConfig& c) {
  return c.mlp == MlpKind::kGatedSilu || c.mlp == MlpKind::kGatedGeluTanh || c.mlp == MlpKind::kClampedSwiglu;
}

void gated_activation(const ModelConfig& c, const float* gate, const float* up, float* out, int64_t n) {
  if (c.mlp == MlpKind::kGatedSilu) cpu::silu_mul(gate, up, out, n);
  else if (c.mlp == MlpKind::kGatedGeluTanh) cpu::gelu_tanh_mul(gate, up, out, n);
  else if (c.mlp == MlpKind::kClampedSwiglu) cpu::clamped_swiglu(gate, up, out, n, c.glu_alpha, c.glu_limit);
  else throw std::logic_error("gated_activation: the MLP is not gated");
}

int64_t layer_window(const ModelConfig& c, int64_t layer) {
  return c.layer_sliding.empty() || c.layer_sliding[static_cast<size_t>(layer)] ? c.sliding_window : 0;
}

int64_t layer_chunk(const ModelConfig& c, int64_t layer) {
  return !c.layer_chunked.empty() && c.layer_chunked[static_cast<size_t>(layer)] ? c.attention_chunk : 0;
}

bool layer_query_scaled(const ModelConfig& c, int64_t layer) {
  return c.q_scale_beta != 0.0f && (!c.q_scale_nope_only || !layer_has_rope(c, layer));
}

bool layer_has_rope(const ModelConfig& c, int64_t layer) {
  return c.rotary_dim > 0 && (c.layer_rope.empty() || c.layer_rope[static_cast<size_t>(layer)] != 0);
}

const std::vector<float>& layer_inv_freq(const ModelConfig& c, int64_t layer) {
  const bool sliding = !c.layer_sliding.empty() && c.layer_sliding[static_cast<size_t>(layer)];
  return sliding && !c.inv_freq_local.empty() ? c.inv_freq_local : c.inv_freq;
}

float layer_rope_attention_factor(const ModelConfig& c, int64_t layer) {
  return &layer_inv_freq(c, layer) == &c.inv_freq_local ? c.rope_attention_factor_local : c.rope_attention_factor;
}

int64_t module_out(const ModelConfig& c, int module) {
  switch (module) {
    case kQkv:
      if (is_mla(c)) return (c.mla_q_rank > 0 ? c.mla_q_rank : c.heads_local * c.head_dim) + c.mla_kv_rank + c.rotary_dim;
      return (c.heads_local + 2 * c.kv_heads_local) * c.head_dim;
    case kQb: return is_mla(c) && c.mla_q_rank > 0 ? c.heads_local * c.head_dim : -1;
    case kKvb: return is_mla(c) ? c.heads_local * (c.mla_nope_dim + c.mla_v_dim) : -1;
    case kO: case kDown: return c.hidden;
    case kUp: return gated_mlp(c) ? 2 * c.intermediate_local : c.intermediate_local;
    case kLmHead: return c.vocab_local;
    case kEmbed: return c.hidden;
  }
  return -1;
}

int64_t expected_weight_size(const ModelConfig& c, const std::string& name) {
  const int64_t h = c.hidden;
  const bool ln = c.norm == NormKind::kLayer;
  if (name == "embed") return c.vocab * h;
  if (name == "pos_embed") return c.learned_positions ? c.max_positions * h : -1;
  if (name == "final_norm.weight") return h;
  if (name == "final_norm.bias") return ln ? h : -1;
  if (name == "lm_head") return c.vocab_local * h;
  if (name == "lm_head.bias") return c.vocab_local;  // Phi-1/2 (optional)
  if (!starts_with(name, "layers.")) return -1;
  const size_t dot = name.find('.', 7);
  if (dot == std::string::npos) return -1;
  const int64_t layer = std::stoll(name.substr(7, dot - 7));
  if (layer < 0 || layer >= c.layers) return -1;
  const std::string p = name.substr(dot + 1);
  if (layer_is_mamba(c, layer)) {  // no attention weights; the MLP's below
    const int64_t n = mamba_weight_size(c, p);
    if (n >= 0) return n;
    if (p == "qkv.weight" || p == "qkv.bias" || p == "o.weight" || p == "o.bias" || p == "q_norm.weight" ||
        p == "k_norm.weight" || p == "attn_sinks")
      return -1;
  }
  if (layer_is_moe(c, layer)) {
    if (p == "up.weight" || p == "up.bias" || p == "down.weight" || p == "down.bias") return -1;
    if (p == "router.weight") return c.num_experts * h;
    if (p == "router.bias") return router_has_bias(c) ? c.num_experts : -1;  // e_score_correction_bias, gpt-oss's bias
    if (p == "shared_gate.weight") return c.moe_shared_gate ? h : -1;
    if (starts_with(p, "experts.")) {  // experts.<e>.up.weight | experts.<e>.down.weight
      const size_t d = p.find('.', 8);
      if (d == std::string::npos || d == 8 || p.find_first_not_of("0123456789", 8) != d) return -1;
      const int64_t e = std::stoll(p.substr(8, d - 8));
      if (e >= experts_held(c)) return -1;
      const std::string rest = p.substr(d + 1);
      if (rest == "up.weight") return 2 * expert_width(c, e) * h;
      if (rest == "down.weight") return h * expert_width(c, e);
      if (rest == "up.bias") return c.moe_expert_bias ? 2 * expert_width(c, e) : -1;
      if (rest == "down.bias") return c.moe_expert_bias ? h : -1;
      return -1;
    }
  }
  const bool mlp_norm = has_mlp_norm(c);
  if (p == "attn_sinks") return c.attn_sinks ? c.heads_local : -1;
  if (p == "attn_norm.weight") return c.pre_norms ? h : -1;
  if (p == "attn_norm.bias") return ln && c.pre_norms ? h : -1;
  if (p == "mlp_norm.weight") return mlp_norm ? h : -1;
  if (p == "mlp_norm.bias") return ln && mlp_norm ? h : -1;
  const bool per_rank_heads = c.qk_norm_full || c.qk_layer_norm;  // weights for each of this rank's heads
  if (p == "q_norm.weight") return c.qk_norm ? c.head_dim : per_rank_heads ? c.heads_local * c.head_dim : -1;
  if (p == "k_norm.weight") return c.qk_norm ? c.head_dim : per_rank_heads ? c.kv_heads_local * c.head_dim : -1;
  if (p == "post_attn_norm.weight" || p == "post_mlp_norm.weight") return c.post_norms ? h : -1;
  if (p == "q_a_norm.weight") return is_mla(c) && c.mla_q_rank > 0 ? c.mla_q_rank : -1;
  if (p == "kv_a_norm.weight") return is_mla(c) ? c.mla_kv_rank : -1;
  if (p == "q_b.weight") return module_out(c, kQb) < 0 ? -1 : module_out(c, kQb) * module_in(c, kQb);
  if (p == "kv_b.weight") return module_out(c, kKvb) < 0 ? -1 : module_out(c, kKvb) * module_in(c, kKvb);
  if (p == "qkv.weight") return module_out(c, kQkv) * h;
  if (p == "qkv.bias") return module_out(c, kQkv);
  if (p == "o.weight") return h * module_in(c, kO);
  if (p == "o.bias" || p == "down.bias") return h;
  if (p == "up.weight") return module_out(c, kUp) * h;
  if (p == "up.bias") return module_out(c, kUp);
  if (p == "down.weight") return h * c.intermediate_local;
  if (p == "xielu") return c.mlp == MlpKind::kXielu ? 4 : -1;  // alpha_p, alpha_n, beta, eps (cpu::xielu)
  return -1;
}

std::vector<std::string> required_weights(const ModelConfig& c) {
  std::vector<std::string> required = {"embed", "final_norm.weight", "lm_head"};
  if (c.learned_positions) required.push_back("pos_embed");
  if (c.norm == NormKind::kLayer) required.push_back("final_norm.bias");
  for (int64_t i = 0; i < c.layers; ++i) {
    const bool mamba = layer_is_mamba(c, i);
    if (mamba) for (const std::string& s : mamba_required(i)) required.push_back(s);
    else for (const char* s : {"qkv.weight", "o.weight"}) required.push_back(layer_name(i, s));
    if (c.pre_norms) required.push_back(layer_name(i, "attn_norm.weight"));
    if (c.attn_sinks && !mamba) required.push_back(layer_name(i, "attn_sinks"));
    if (is_mla(c)) {
      for (const char* s : {"kv_a_norm.weight", "kv_b.weight"}) required.push_back(layer_name(i, s));
      if (c.mla_q_rank > 0)
        for (const char* s : {"q_a_norm.weight", "q_b.weight"}) required.push_back(layer_name(i, s));
    }
    if (has_mlp_norm(c)) required.push_back(layer_name(i, "mlp_norm.weight"));
    if (layer_is_moe(c, i)) {
      required.push_back(layer_name(i, "router.weight"));
      if (router_has_bias(c)) required.push_back(layer_name(i, "router.bias"));
      if (c.moe_shared_gate) required.push_back(layer_name(i, "shared_gate.weight"));
      for (int64_t e = 0; e < experts_held(c); ++e) {
        const std::string ex = "experts." + std::to_string(e) + ".";
        required.push_back(layer_name(i, (ex + "up.weight").c_str()));
        required.push_back(layer_name(i, (ex + "down.weight").c_str()));
        if (c.moe_expert_bias) {
          required.push_back(layer_name(i, (ex + "up.bias").c_str()));
          required.push_back(layer_name(i, (ex + "down.bias").c_str()));
        }
      }
    } else {
      required.push_back(layer_name(i, "up.weight"));
      required.push_back(layer_name(i, "down.weight"));
      if (c.mlp == MlpKind::kXielu) required.push_back(layer_name(i, "xielu"));
    }
    if (c.post_norms) {
      required.push_back(layer_name(i, "post_attn_norm.weight"));
      required.push_back(layer_name(i, "post_mlp_norm.weight"));
    }
    if ((c.qk_norm || c.qk_norm_full || c.qk_layer_norm) && !mamba) {
      required.push_back(layer_name(i, "q_norm.weight"));
      required.push_back(layer_name(i, "k_norm.weight"));
    }
    if (c.norm == NormKind::kLayer && c.pre_norms) required.push_back(layer_name(i, "attn_norm.bias"));
    if (c.norm == NormKind::kLayer && has_mlp_norm(c)) required.push_back(layer_name(i, "mlp_norm.bias"));
  }
  return required;
}

void check_adapter_slot(const ModelConfig& c, int slot) {
  if (slot < 0 || slot >= c.adapter_slots)
    throw std::invalid_argument("adapter slot " + std::to_string(slot) + " out of range [0, " +
                                std::to_string(c.adapter_slots) + ")");
}

const char* lora_data_name(LoraData d) {
  return d == LoraData::kF32 ? "float32" : d == LoraData::kF16 ? "float16" : "bfloat16";
}

void check_lora_part(const ModelConfig& c, const LoraPartRef& part) {
  const int module = part.module, layer = part.layer;
  if (module < 0 || module > kEmbed) throw std::invalid_argument("lora: unknown module id " + std::to_string(module));
  if (module != kLmHead && module != kEmbed && (layer < 0 || layer >= c.layers))
    throw std::invalid_argument("lora: layer " + std::to_string(layer) + " out of range");
  const int expert = part.expert;
  if (expert >= 0 && ((module != kUp && module != kDown) || expert >= experts_held(c) || !layer_is_moe(c, layer)))
    throw std::invalid_argument("lora: expert " + std::to_string(expert) + " of layer " + std::to_string(layer) +
                                " module " + std::to_string(module) + " is not an expert's up or down of a MoE layer");
  if (expert < -1) throw std::invalid_argument("lora: expert must be -1 or an expert index");
  if (expert < 0 && layer_is_moe(c, layer) && (module == kUp || module == kDown))
    throw std::invalid_argument("lora: layer " + std::to_string(layer) + " is a mixture of experts: its up/down parts "
                                "belong to an expert");
  const bool mixer = expert < 0 && layer_is_mamba(c, layer) && (module == kQkv || module == kO);  // in_proj, out_proj
  const int64_t in = mixer ? (module == kQkv ? c.hidden : mamba_inner(c)) : part_in(c, module, expert);
  const int64_t out = mixer ? (module == kQkv ? mamba_in_proj_out(c) : c.hidden) : part_out(c, module, expert);
  if (mixer && part.mag) throw std::invalid_argument("lora: DoRA is not supported on a Mamba layer's in_proj / out_proj");
  if (in < 0 || out < 0)
    throw std::invalid_argument("lora: module " + std::to_string(module) + " (q_b_proj / kv_b_proj) is part of latent " +
                                "attention only" + (is_mla(c) ? " (this model has no q_lora_rank: q_proj is in qkv)" : ""));
  if (!part.a || !part.b || part.rank <= 0 || part.in != in || part.out_offset < 0 ||
      part.out_offset + part.out_len > out || part.a_len != part.rank * part.in ||
      part.b_len != part.out_len * part.rank || (part.mag && part.mag_len != part.out_len))
    throw std::invalid_argument("lora: part for layer " + std::to_string(layer) + " module " + std::to_string(module) +
                                (expert >= 0 ? " expert " + std::to_string(expert) : std::string()) +
                                " does not fit: in " + std::to_string(part.in) + " (module in " + std::to_string(in) +
                                "), out " + std::to_string(part.out_offset) + "+" + std::to_string(part.out_len) +
                                " (module out " + std::to_string(out) + ")");
  if (part.mag && expert >= 0) throw std::invalid_argument("lora: DoRA is not supported on MoE experts");
  if (part.mag && (module == kLmHead || module == kEmbed))
    throw std::invalid_argument("lora: DoRA (a channel scale) is not supported on lm_head or the embedding");
}

std::string dora_norm_weight(const ModelConfig& c, const LoraPartRef& part) {
  static const char* const kWeight[kNumLayerModules] = {"qkv.weight", "o.weight",  "up.weight",
                                                         "down.weight", "q_b.weight", "kv_b.weight"};
  check_lora_part(c, part);
  if (part.module == kLmHead || part.module == kEmbed)
    throw std::invalid_argument("lora: DoRA weight norms are not supported on lm_head or the embedding");
  if (part.data != LoraData::kF32) throw std::invalid_argument("lora: DoRA weight norms take float32 parts");
  if (part.expert >= 0) throw std::invalid_argument("lora: DoRA is not supported on MoE experts");
  return layer_name(part.layer, kWeight[part.module]);
}

Model::Model(ModelConfig cfg, std::shared_ptr<Collective> coll) : cfg_(std::move(cfg)), coll_(std::move(coll)) {
  if (!coll_) coll_ = std::make_shared<SoloCollective>();
  check_model_config(cfg_);
  slots_.resize(static_cast<size_t>(cfg_.adapter_slots));
}

int64_t Model::expected_size(const std::string& name) const { return expected_weight_size(cfg_, name); }

void Model::set_weight(const std::string& name, const float* data, int64_t n) {
  const int64_t want = expected_size(name);
  if (want < 0) throw std::invalid_argument("model: '" + name + "' is not a weight of this model plan");
  if (want != n)
    throw std::invalid_argument("model: weight '" + name + "' has " + std::to_string(n) + " elements, expected " +
                                std::to_string(want));
  weights_[name].assign(data, data + n);
}

void Model::finalize() {
  for (const auto& r : required_weights(cfg_))
    if (!weights_.count(r)) throw std::invalid_argument("model: required weight '" + r + "' was never set");
  const int64_t kv_dim = cfg_.kv_heads_local * cfg_.head_dim;
  const size_t cache = static_cast<size_t>(cfg_.num_blocks * cfg_.block_size * kv_dim);
  k_cache_.assign(static_cast<size_t>(cfg_.layers), {});
  v_cache_.assign(static_cast<size_t>(cfg_.layers), {});
  for (int64_t l = 0; l < cfg_.layers; ++l) {  // a Mamba layer keeps no keys and values
    if (layer_is_mamba(cfg_, l)) continue;
    k_cache_[l].assign(cache, 0.0f);
    v_cache_[l].assign(cache, 0.0f);
  }
  finalized_ = true;
}

const float* Model::w(const std::string& name) const {
  auto it = weights_.find(name);
  if (it == weights_.end()) throw std::logic_error("model: missing weight " + name);
  return it->second.data();
}
const float* Model::w_opt(const std::string& name) const {
  auto it = weights_.find(name);
  return it == weights_.end() ? nullptr : it->second.data();
}

namespace {
// The CPU backend's staged adapter: the slot contents, ready to move in.
struct CpuStagedAdapter final : StagedAdapter {
  const Model* owner = nullptr;
  AdapterSlot slot;
  int64_t bytes() const override { return slot.bytes; }
};
}  // namespace

std::unique_ptr<StagedAdapter> Model::stage_adapter(const std::vector<LoraPartRef>& parts) {
  auto staged = std::make_unique<CpuStagedAdapter>();
  staged->owner = this;
  AdapterSlot& s = staged->slot;
  s.layers.resize(static_cast<size_t>(cfg_.layers));
  for (const LoraPartRef& r : parts) {
    check_lora_part(cfg_, r);
    if (r.data != LoraData::kF32)
      throw std::invalid_argument(std::string("lora: the CPU backend takes float32 parts, got ") + lora_data_name(r.data) +
                                  " (plan adapters for a CPU shard in float32)");
    LoraPart part;
    part.rank = r.rank, part.in = r.in, part.out_len = r.out_len, part.out_offset = r.out_offset, part.scale = r.scale;
    part.expert = r.expert;
    const auto* a = static_cast<const float*>(r.a);
    const auto* b = static_cast<const float*>(r.b);
    part.a.assign(a, a + r.a_len);
    part.b.assign(b, b + r.b_len);
    if (r.mag) part.mag.assign(r.mag, r.mag + r.mag_len);
    s.bytes += static_cast<int64_t>((part.a.size() + part.b.size() + part.mag.size()) * sizeof(float));
    if (r.module == kLmHead) s.lm_head.push_back(std::move(part));
    else if (r.module == kEmbed) s.embed.push_back(std::move(part));
    else s.layers[r.layer][r.module].push_back(std::move(part));
  }
  s.loaded = true;
  return staged;
}

std::vector<std::vector<float>> Model::lora_weight_norms_sq(const std::vector<LoraPartRef>& parts) {
  if (!finalized_) throw std::logic_error("model: lora_weight_norms_sq before finalize()");
  std::vector<std::vector<float>> out;
  for (const LoraPartRef& r : parts) {
    // Weights are fixed after finalize(), so this reads them without the step mutex, beside a running step.
    const float* wt = w(dora_norm_weight(cfg_, r)) + r.out_offset * r.in;
    std::vector<float> sums(static_cast<size_t>(r.out_len));
    cpu::lora_weight_norms_sq(wt, r.out_len, r.in, static_cast<const float*>(r.a), static_cast<const float*>(r.b),
                              r.rank, r.scale, sums.data());
    out.push_back(std::move(sums));
  }
  return out;
}

void Model::install_adapter(int slot, std::unique_ptr<StagedAdapter> staged) {
  check_adapter_slot(cfg_, slot);
  auto* mine = dynamic_cast<CpuStagedAdapter*>(staged.get());
  if (!mine || mine->owner != this) throw std::invalid_argument("install_adapter: the adapter was staged by another model");
  std::lock_guard<std::mutex> lock(mu_);
  slots_[slot] = std::move(mine->slot);
}

void Model::clear_adapter(int slot) {
  check_adapter_slot(cfg_, slot);
  std::lock_guard<std::mutex> lock(mu_);
  slots_[slot] = AdapterSlot{};
}

int64_t Model::adapter_bytes(int slot) const {
  check_adapter_slot(cfg_, slot);
  std::lock_guard<std::mutex> lock(mu_);
  return slots_[slot].bytes;
}

}  // namespace weft
