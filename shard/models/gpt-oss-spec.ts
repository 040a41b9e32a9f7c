// OpenAI's gpt-oss (GptOssForCausalLM: gpt-oss-20b, gpt-oss-120b) as transformers' modeling_gpt_oss.py computes it:
// Llama-shaped attention with biases on q/k/v/o and a learned sink logit per head, sliding-window (128) and full
// layers alternating, YaRN RoPE; every MLP a mixture of experts whose router is a linear layer with a bias (softmax
// over the top-k logits) and whose experts carry biases and a clamped SwiGLU on interleaved gate/up columns.
import { refuseIf, type Json } from './config-fields.js';
import type { MoeSpec } from './spec.js';

// GptOssConfig's defaults for the fields its published configs may leave out.
const GPT_OSS_DEFAULTS: Json = {
  head_dim: 64, sliding_window: 128, attention_bias: true, rms_norm_eps: 1e-5, num_experts_per_tok: 4,
  tie_word_embeddings: false, hidden_act: 'silu',
};
const GPT_OSS_ROPE: Json = {
  rope_type: 'yarn', factor: 32.0, beta_fast: 32.0, beta_slow: 1.0, truncate: false, original_max_position_embeddings: 4096,
};

/**
 * The config with GptOssConfig's defaults filled in (rope_theta 150000, YaRN ×32 over 4,096 when no RoPE
 * parameters are given), and its experts' quantization checked: only OpenAI's MXFP4 experts are read (the loader
 * dequantizes them); any other quantization_config is refused as for every other model.
 */
export function gptOssConfig(cfg: Json, where: string): Json {
  const q = cfg.quantization_config as Json | null | undefined;
  refuseIf(q !== undefined && q !== null && q.quant_method !== 'mxfp4', where,
    `quantization_config '${String(q?.quant_method)}' is not supported for gpt-oss (only its published MXFP4 experts are read)`);
  const hasRope = cfg.rope_parameters !== undefined && cfg.rope_parameters !== null ||
    cfg.rope_scaling !== undefined && cfg.rope_scaling !== null;
  const theta = cfg.rope_theta ?? (cfg.rope_parameters as Json | undefined)?.rope_theta ?? 150_000;
  const rope = hasRope ? { ...((cfg.rope_parameters ?? cfg.rope_scaling) as Json), rope_theta: theta } : { ...GPT_OSS_ROPE, rope_theta: theta };
  const out: Json = { ...GPT_OSS_DEFAULTS, ...cfg, rope_parameters: rope, rope_scaling: undefined };
  delete out.quantization_config;  // checked above; the loader finds the MXFP4 tensors by name
  for (const k of Object.keys(GPT_OSS_DEFAULTS)) if (out[k] === null) out[k] = GPT_OSS_DEFAULTS[k];
  return out;
}

/** The clamp of the experts' SwiGLU: swiglu_limit (published configs: 7.0; GptOssExperts' constant). */
export function gptOssGluLimit(cfg: Json, where: string): number {
  const v = cfg.swiglu_limit ?? 7.0;
  refuseIf(!(typeof v === 'number' && v > 0), where, `swiglu_limit must be a positive number, got ${JSON.stringify(v)}`);
  return v as number;
}

/**
 * gpt-oss's experts (GptOssTopKRouter, GptOssExperts): the top num_experts_per_tok of the router's logits (bias
 * included) weighted by a softmax over them — the renormalised top-k of a softmax over all; every layer MoE.
 */
export function gptOssMoe(cfg: Json, where: string, int: (key: string) => number): MoeSpec {
  const experts = int(cfg.num_local_experts !== undefined ? 'num_local_experts' : 'num_experts');
  const perToken = int('num_experts_per_tok');
  refuseIf(perToken > experts, where, `num_experts_per_tok ${perToken} is more than the ${experts} experts`);
  return {
    experts, perToken, intermediate: int('intermediate_size'), renormalize: true, layers: null,
    sigmoid: false, groups: 1, topkGroups: 1, routedScale: 1, sharedExpert: false,
    logitBias: true, expertBias: true, gateUpInterleaved: true,
  };
}
