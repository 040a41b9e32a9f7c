// Llama-layout decoders with LayerNorms (weight and bias) in place of RMSNorms: Nemotron (Minitron, Nemotron-Mini),
// Jais 2 and StableLM — as transformers' modeling_nemotron.py, modular_jais2.py and modeling_stablelm.py compute them.
import { computeRope, parseRopeParams, type Rope } from './rope.js';
import { attentionShape, checkQuantization, PLAIN_DECODER, refuseIf, rotaryDecoderShape, type Json } from './config-fields.js';
import type { Architecture, ModelSpec } from './spec.js';

/** The fields these three share: LayerNorms with biases (eps `epsKey`), rotate-half RoPE, 1/√head_dim, untied by default. */
function layerNormDecoder(arch: Architecture, cfg: Json, where: string, shape: ReturnType<typeof attentionShape>, rope: Rope,
  epsKey: string) {
  checkQuantization(cfg, where);
  return {
    ...PLAIN_DECODER,
    architecture: arch,
    ...rotaryDecoderShape(cfg, where, shape, rope),
    norm: 'layer' as const,
    normEps: Number(cfg[epsKey] ?? 1e-5),
    slidingWindow: 0,
    attnScale: 1 / Math.sqrt(shape.headDim),
    tieEmbeddings: cfg.tie_word_embeddings === true,
    qkNorm: false,
  };
}

function onlyAct(cfg: Json, want: string, arch: Architecture, where: string): void {
  const act = String(cfg.hidden_act ?? want);
  refuseIf(act !== want, where, `hidden_act '${act}' is not supported for ${arch} (only ${want})`);
}

/**
 * Nemotron (NemotronForCausalLM: Minitron-4B/8B, Nemotron-Mini-4B, Nemotron-3-8B): LayerNorm1P — a LayerNorm with a
 * bias whose weight is stored as w and applied as w + 1 (folded in at load, as Gemma's RMSNorms), eps norm_eps —,
 * partial rotate-half RoPE (partial_rotary_factor, default 0.5), a non-gated up_proj → relu² → down_proj MLP,
 * attention_bias on q/k/v/o and mlp_bias on up/down.
 */
export function nemotronSpec(cfg: Json, where: string): ModelSpec {
  const shape = attentionShape(cfg, where);
  onlyAct(cfg, 'relu2', 'nemotron', where);
  const rope = computeRope(parseRopeParams({ ...cfg, partial_rotary_factor: cfg.partial_rotary_factor ?? 0.5 }), shape.headDim);
  const bias = cfg.attention_bias === true;
  return {
    ...layerNormDecoder('nemotron', cfg, where, shape, rope, 'norm_eps'),
    mlp: 'relu2',
    qkvBias: bias, oBias: bias, mlpBias: cfg.mlp_bias === true,
    normPlusOne: true,
  };
}

/**
 * Jais 2 (Jais2ForCausalLM): Llama's attention with LayerNorms (layer_norm_eps) and Nemotron's non-gated relu² MLP;
 * attention_bias (on q/k/v/o) and mlp_bias both default to true. Llama's RoPE rotates whole heads.
 */
export function jais2Spec(cfg: Json, where: string): ModelSpec {
  const shape = attentionShape(cfg, where);
  onlyAct(cfg, 'relu2', 'jais2', where);
  const rope = wholeHeadRope(cfg, shape.headDim, 'jais2', where);
  const bias = cfg.attention_bias !== false;
  return {
    ...layerNormDecoder('jais2', cfg, where, shape, rope, 'layer_norm_eps'),
    mlp: 'relu2',
    qkvBias: bias, oBias: bias, mlpBias: cfg.mlp_bias !== false,
  };
}

/**
 * A Llama-derived model's RoPE: transformers' LlamaRotaryEmbedding rotates whole heads whatever partial_rotary_factor
 * says (a partial rotation would fail in its apply_rotary_pos_emb), so such a factor is refused.
 */
export function wholeHeadRope(cfg: Json, headDim: number, arch: Architecture, where: string): Rope {
  const p = parseRopeParams(cfg);
  refuseIf(p.partialRotaryFactor !== 1, where, `partial_rotary_factor ${p.partialRotaryFactor} is not supported for ${arch} (its RoPE rotates whole heads)`);
  return computeRope(p, headDim);
}

/**
 * StableLM (StableLmForCausalLM: StableLM-3B-4E1T, StableLM-2 1.6B/12B, StableLM Zephyr, StableCode): LayerNorms with
 * biases, partial rotate-half RoPE (partial_rotary_factor, default 0.25), q/k/v biases by use_qkv_bias (never on
 * o_proj), a SwiGLU MLP without biases; qk_layernorm (StableLM-2-12B): q and k LayerNorm-ed per head before RoPE,
 * each head its own weights and no bias (q_layernorm.norms.<h>); use_parallel_residual (StableLM-2-12B): h + attn(x)
 * + mlp(x) off the one input_layernorm.
 */
export function stablelmSpec(cfg: Json, where: string): ModelSpec {
  const shape = attentionShape({ ...cfg, head_dim: undefined }, where);  // hidden_size / num_attention_heads always
  // its rotary embedding reads head_dim when present: only the one the attention uses is consistent
  refuseIf(typeof cfg.head_dim === 'number' && cfg.head_dim !== shape.headDim, where,
    `head_dim ${String(cfg.head_dim)} differs from hidden_size / num_attention_heads ${shape.headDim}; not supported for stablelm`);
  onlyAct(cfg, 'silu', 'stablelm', where);
  const rope = computeRope(parseRopeParams({ ...cfg, partial_rotary_factor: cfg.partial_rotary_factor ?? 0.25 }), shape.headDim);
  return {
    ...layerNormDecoder('stablelm', cfg, where, shape, rope, 'layer_norm_eps'),
    mlp: 'gated_silu',
    qkvBias: cfg.use_qkv_bias === true, oBias: false, mlpBias: false,
    qkLayerNorm: cfg.qk_layernorm === true,
    parallelBlock: cfg.use_parallel_residual === true,
  };
}
