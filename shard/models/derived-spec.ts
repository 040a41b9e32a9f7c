// Decoders derived from one weft already serves with one or two changes: Helium (Llama with interleaved RoPE), CWM
// (Llama with per-layer sliding windows), Hunyuan dense (Llama with per-head q/k norms after RoPE) and MoE (with
// experts and a shared MLP), VaultGemma (Gemma 2 without block-output norms), MiniMax-M2 (Mixtral with OLMo 2's q/k
// norms and sigmoid routing) and PhiMoE (Mixtral with LayerNorms, biases and sparsemixer routing) — as transformers'
// modular_helium.py, modular_cwm.py, modular_hunyuan_v1_dense.py, modular_hunyuan_v1_moe.py, modular_vaultgemma.py,
// modular_minimax_m2.py and modular_phimoe.py compute them — and the table spec.ts dispatches these and
// layernorm-spec.ts's through.
import { computeRope, parseRopeParams, type Rope } from './rope.js';
import { attentionShape, checkQuantization, PLAIN_DECODER, refuseIf, rotaryDecoderShape, type Json } from './config-fields.js';
import { attentionWindows, slidingLayers } from './layer-kinds.js';
import { jais2Spec, nemotronSpec, stablelmSpec, wholeHeadRope } from './layernorm-spec.js';
import { gemmaSpec } from './gemma-spec.js';
import { moeSpec } from './moe-spec.js';
import { apertusSpec } from './apertus-spec.js';
import { dbrxSpec } from './dbrx-spec.js';
import type { Architecture, ModelSpec } from './spec.js';

/** The architectures whose config.json is read by a spec function of their own here or in layernorm-spec.ts. */
export const DERIVED_SPECS: Partial<Record<Architecture, (cfg: Json, where: string) => ModelSpec>> = {
  nemotron: nemotronSpec, jais2: jais2Spec, stablelm: stablelmSpec, helium: heliumSpec, cwm: cwmSpec,
  hunyuan_v1_dense: hunyuanDenseSpec, vaultgemma: vaultGemmaSpec, minimax_m2: minimaxM2Spec,
  hunyuan_v1_moe: hunyuanMoeSpec, phimoe: phimoeSpec,
  apertus: apertusSpec, dbrx: dbrxSpec,  // apertus-spec.ts, dbrx-spec.ts
};

/** VaultGemma: Gemma 2 without the block-output norms; its MLP's pre-norm keeps Gemma 2's name (load-weights.ts). */
function vaultGemmaSpec(cfg: Json, where: string): ModelSpec {
  return { ...gemmaSpec('Gemma2ForCausalLM', cfg, where), architecture: 'vaultgemma', postNorms: false };
}

/** Llama's layout: RMSNorms (rms_norm_eps), a SwiGLU MLP, 1/√head_dim, untied by default; biases are the caller's. */
function llamaLayout(arch: Architecture, cfg: Json, where: string, shape: ReturnType<typeof attentionShape>, rope: Rope,
  defaultEps: number) {
  const act = String(cfg.hidden_act ?? 'silu');
  refuseIf(act !== 'silu', where, `hidden_act '${act}' is not supported for ${arch} (only silu)`);
  refuseIf(typeof cfg.pretraining_tp === 'number' && cfg.pretraining_tp > 1, where, 'pretraining_tp > 1 is not supported');
  checkQuantization(cfg, where);
  return {
    ...PLAIN_DECODER,
    architecture: arch,
    ...rotaryDecoderShape(cfg, where, shape, rope),
    norm: 'rms' as const,
    normEps: Number(cfg.rms_norm_eps ?? defaultEps),
    mlp: 'gated_silu' as const,
    slidingWindow: 0,
    attnScale: 1 / Math.sqrt(shape.headDim),
    tieEmbeddings: cfg.tie_word_embeddings === true,
    qkNorm: false,
  };
}

/**
 * Helium (HeliumForCausalLM: Kyutai Helium-1): Llama with RoPE on interleaved pairs (its rotate_half takes dims 2i
 * and 2i+1), q/k/v biases by attention_bias but never on o_proj (a hidden_size → hidden_size projection, so the heads
 * must span hidden_size), mlp_bias on gate/up/down, rms_norm_eps 1e-8 by default.
 */
function heliumSpec(cfg: Json, where: string): ModelSpec {
  const shape = attentionShape(cfg, where);
  refuseIf(shape.heads * shape.headDim !== shape.hidden, where,
    `num_attention_heads × head_dim (${shape.heads * shape.headDim}) must equal hidden_size ${shape.hidden} (helium's o_proj is hidden_size wide)`);
  return {
    ...llamaLayout('helium', cfg, where, shape, wholeHeadRope(cfg, shape.headDim, 'helium', where), 1e-8),
    qkvBias: cfg.attention_bias === true, oBias: false, mlpBias: cfg.mlp_bias === true,
    ropeInterleaved: true,
  };
}

// CwmConfig's RoPE when the config has none (rope_parameters / rope_scaling): llama3 scaling ×16 over 8,192 positions.
const CWM_ROPE: Json = {
  rope_type: 'llama3', rope_theta: 1_000_000, factor: 16, high_freq_factor: 4, low_freq_factor: 1,
  original_max_position_embeddings: 8192,
};

/**
 * CWM (CwmForCausalLM: Meta's Code World Model): Llama without attention biases whose layers layer_types marks
 * sliding_attention see only the last sliding_window (default 8,192) positions — by default every layer but each
 * fourth from layer 0; llama3 RoPE (rope_theta 1e6, ×16) when the config sets none.
 */
function cwmSpec(raw: Json, where: string): ModelSpec {
  const cfg: Json = { rope_theta: 1_000_000, sliding_window: 8192, bos_token_id: 128_000, eos_token_id: [128_001, 128_008, 128_009], ...raw };
  const shape = attentionShape(cfg, where);
  const ropeCfg = cfg.rope_parameters || cfg.rope_scaling ? cfg : { ...cfg, rope_parameters: CWM_ROPE };
  const sliding = slidingLayers(cfg, where, (i) => i % 4 !== 0);
  const window = cfg.sliding_window;
  refuseIf(sliding.some(Boolean) && !(typeof window === 'number' && Number.isInteger(window) && window > 0), where,
    `sliding_window must be a positive integer for the sliding_attention layers, got ${JSON.stringify(window)}`);
  const anySliding = sliding.some(Boolean);
  return {
    ...llamaLayout('cwm', cfg, where, shape, wholeHeadRope(ropeCfg, shape.headDim, 'cwm', where), 1e-5),
    qkvBias: false, oBias: false, mlpBias: cfg.mlp_bias === true,
    slidingWindow: anySliding ? window as number : 0,
    layerSliding: anySliding && !sliding.every(Boolean) ? sliding : null,
  };
}

/**
 * Hunyuan dense (HunYuanDenseV1ForCausalLM: Hunyuan-0.5B…7B): Llama whose q and k are RMS-normalised per head
 * (query_layernorm / key_layernorm, [head_dim]) after RoPE, attention_bias on q/k/v/o, no MLP biases. Its published
 * RoPE is rope_type "dynamic" with an NTK alpha: a base of rope_theta · alpha^(head_dim / (head_dim − 2)), fixed up to
 * max_position_embeddings (transformers' dynamic update only acts past it, where weft does not go).
 */
function hunyuanDenseSpec(cfg: Json, where: string, arch: 'hunyuan_v1_dense' | 'hunyuan_v1_moe' = 'hunyuan_v1_dense'): ModelSpec {
  const shape = attentionShape(cfg, where);
  refuseIf(cfg.use_cla === true, where, `use_cla=true (cross-layer attention) is not supported for ${arch}`);
  const bias = cfg.attention_bias === true;
  return {
    ...llamaLayout(arch, cfg, where, shape, hunyuanRope(cfg, shape.headDim, where, arch), 1e-5),
    qkvBias: bias, oBias: bias, mlpBias: false,
    qkNorm: true, qkNormPostRope: true,
  };
}

/**
 * Hunyuan MoE (HunYuanMoEV1ForCausalLM: Hunyuan-A13B): Hunyuan dense's attention (per-head q/k norms after RoPE, NTK
 * alpha) with a mixture of experts and a shared MLP in every layer (moe-spec.ts). The published fields transformers
 * always computes one way are refused when they say otherwise: use_qk_norm false, mlp_bias, a norm_type other than
 * rms, an attention_head_dim other than the head size.
 */
function hunyuanMoeSpec(cfg: Json, where: string): ModelSpec {
  const spec = hunyuanDenseSpec(cfg, where, 'hunyuan_v1_moe');
  refuseIf(cfg.use_qk_norm === false, where, 'use_qk_norm=false is not supported for hunyuan_v1_moe (transformers always normalises q and k)');
  refuseIf(cfg.mlp_bias === true, where, 'mlp_bias=true is not supported for hunyuan_v1_moe (its MLPs have no biases in transformers)');
  refuseIf(cfg.norm_type !== undefined && cfg.norm_type !== 'rms', where, `norm_type '${String(cfg.norm_type)}' is not supported for hunyuan_v1_moe (only rms)`);
  refuseIf(cfg.attention_head_dim !== undefined && cfg.attention_head_dim !== spec.headDim, where,
    `attention_head_dim ${String(cfg.attention_head_dim)} differs from the head size ${spec.headDim} transformers uses (head_dim, or hidden_size / num_attention_heads)`);
  return { ...spec, moe: moeSpec('hunyuan_v1_moe', cfg, where) };
}

/**
 * PhiMoE (PhimoeForCausalLM; Phi-3.5-MoE publishes PhiMoEForCausalLM): Mixtral's decoder with LayerNorms (weight and
 * bias, eps rms_norm_eps), attention_bias on q/k/v/o, an lm_head bias (lm_head_bias), one sliding window on every layer
 * (sliding_window), sparsemixer routing (moe-spec.ts), and RoPE default or longrope with the config's short_mscale /
 * long_mscale as the cos/sin scale. The two scales must be equal (weft keeps one); past original_max_position_embeddings
 * the long factors are used as for Phi-3 (the published model's code and transformers 4 do; transformers 5.15's
 * PhimoeRotaryEmbedding recomputes its frequencies without the sequence length, so it keeps the short ones there).
 */
function phimoeSpec(cfg: Json, where: string): ModelSpec {
  const shape = attentionShape(cfg, where);
  const rp = (cfg.rope_parameters ?? cfg.rope_scaling ?? null) as Json | null;
  const type = String(rp?.rope_type ?? rp?.type ?? 'default');
  refuseIf(type !== 'default' && type !== 'longrope', where, `rope type '${type}' is not supported for phimoe (default, longrope)`);
  let rope = wholeHeadRope(cfg, shape.headDim, 'phimoe', where);
  if (type === 'longrope') {
    const short = rp!.short_mscale, long = rp!.long_mscale;
    refuseIf(typeof short !== 'number' || typeof long !== 'number', where,
      `longrope for phimoe needs short_mscale and long_mscale numbers, got ${JSON.stringify(short)} / ${JSON.stringify(long)}`);
    refuseIf(short !== long, where, `short_mscale ${String(short)} differs from long_mscale ${String(long)}; not supported for phimoe`);
    const key = cfg.rope_parameters ? 'rope_parameters' : 'rope_scaling';
    rope = wholeHeadRope({ ...cfg, [key]: { ...rp, attention_factor: short } }, shape.headDim, 'phimoe', where);
  }
  const bias = cfg.attention_bias === true;
  return {
    ...llamaLayout('phimoe', cfg, where, shape, rope, 1e-5),
    norm: 'layer', qkvBias: bias, oBias: bias, mlpBias: false, lmHeadBias: cfg.lm_head_bias === true,
    slidingWindow: attentionWindows('phimoe', cfg, where).window,
    moe: moeSpec('phimoe', cfg, where),
  };
}

function hunyuanRope(cfg: Json, headDim: number, where: string, arch: Architecture): Rope {
  const rp = (cfg.rope_parameters ?? cfg.rope_scaling ?? null) as Json | null;
  if (String(rp?.rope_type ?? rp?.type ?? 'default') !== 'dynamic') return wholeHeadRope(cfg, headDim, arch, where);
  const alpha = rp!.alpha;
  refuseIf(!(typeof alpha === 'number' && alpha > 0), where,
    `rope type 'dynamic' without a positive alpha (dynamic NTK scaling) is not supported for ${arch}, got alpha ${JSON.stringify(alpha)}`);
  const theta = Number(rp!.rope_theta ?? cfg.rope_theta ?? 10000);
  refuseIf(!(theta > 0), where, `rope_theta must be positive, got ${String(theta)}`);
  // transformers: (rope_theta · alpha ** (d / (d − 2))) ** (arange(0, d, 2) / d), the base a float32 in the power
  const base = Math.fround(theta * Math.pow(alpha as number, headDim / (headDim - 2)));
  return computeRope({ ropeType: 'default', theta: base, partialRotaryFactor: 1 }, headDim);
}

/**
 * MiniMax-M2 (MiniMaxM2ForCausalLM): Mixtral's decoder (pre-norms; experts w1/w3/w2 of intermediate_size under
 * block_sparse_moe) with q and k RMS-normalised over all heads before RoPE (OLMo 2's q_norm / k_norm), partial
 * rotate-half RoPE (partial_rotary_factor; rope_theta 5e6 by default), no biases, and sigmoid routing with the block's
 * e_score_correction_bias (moe-spec.ts). The MTP modules (use_mtp) are not part of the decoder and are not loaded.
 */
function minimaxM2Spec(raw: Json, where: string): ModelSpec {
  const cfg: Json = { rope_theta: 5_000_000, ...raw };
  const shape = attentionShape(cfg, where, 128);
  const rope = computeRope(parseRopeParams(cfg), shape.headDim);
  // The original model rotates rotary_dim dims; transformers rotates head_dim × partial_rotary_factor: they must agree.
  refuseIf(cfg.rotary_dim !== undefined && cfg.rotary_dim !== null && cfg.rotary_dim !== rope.rotaryDim, where,
    `rotary_dim ${String(cfg.rotary_dim)} differs from head_dim × partial_rotary_factor (${rope.rotaryDim} dims, what transformers rotates); not supported`);
  const kinds = cfg.attn_type_list;
  refuseIf(Array.isArray(kinds) && kinds.some((k) => k !== 1), where, 'attn_type_list with lightning attention (0) layers is not supported for minimax_m2');
  refuseIf(cfg.qk_norm_type !== undefined && cfg.qk_norm_type !== 'per_layer', where,
    `qk_norm_type '${String(cfg.qk_norm_type)}' is not supported for minimax_m2 (only per_layer: q and k normalised over all heads)`);
  return {
    ...llamaLayout('minimax_m2', cfg, where, shape, rope, 1e-6),
    qkvBias: false, oBias: false, mlpBias: false,
    qkNormFull: true,
    moe: moeSpec('minimax_m2', cfg, where),
  };
}
