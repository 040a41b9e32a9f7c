// Meta's Llama 4 (Llama4ForCausalLM; the text model of Llama4ForConditionalGeneration: Scout, Maverick) as
// transformers' modeling_llama4.py computes it: RoPE on interleaved pairs (its complex product) in most layers and
// none in every no_rope_layer_interval-th (no_rope_layers), the RoPE layers with chunked attention
// (attention_chunk_size) and a weightless RMS norm of q and k after RoPE (use_qk_norm), the NoPE layers with the
// attention temperature (attn_temperature_tuning: q × 1 + attn_scale·ln(1 + ⌊(pos + 1) / floor_scale⌋)); MoE layers
// every interleave_moe_layer_step (moe_layers) whose router takes the top num_experts_per_tok logits, scales each
// chosen expert's INPUT by sigmoid(logit), and adds a shared expert; dense layers of intermediate_size_mlp.
import { attentionShape, eosList, int, PLAIN_DECODER, refuseIf, checkQuantization, visionLanguageText, type Json } from './config-fields.js';
import { computeRope, parseRopeParams } from './rope.js';
import type { ModelSpec, MoeSpec } from './spec.js';

// Llama4TextConfig's defaults.
const LLAMA4_TEXT_DEFAULTS: Json = {
  vocab_size: 202048, hidden_size: 5120, intermediate_size: 8192, intermediate_size_mlp: 16384, num_hidden_layers: 48,
  num_attention_heads: 40, num_key_value_heads: 8, head_dim: 128, hidden_act: 'silu', max_position_embeddings: 4096 * 32,
  rms_norm_eps: 1e-5, bos_token_id: 1, eos_token_id: 2, tie_word_embeddings: false, num_experts_per_tok: 1,
  num_local_experts: 16, interleave_moe_layer_step: 1, use_qk_norm: true, no_rope_layer_interval: 4,
  attention_chunk_size: 8192, attn_temperature_tuning: true, floor_scale: 8192, attn_scale: 0.1, attention_bias: false,
  rope_theta: 500000,
};

export function llama4Spec(archName: string, cfg: Json, where: string): ModelSpec {
  const vlm = archName === 'Llama4ForConditionalGeneration';
  const text: Json = vlm ? visionLanguageText(cfg, LLAMA4_TEXT_DEFAULTS, where) : { ...LLAMA4_TEXT_DEFAULTS, ...cfg };
  for (const [k, v] of Object.entries(LLAMA4_TEXT_DEFAULTS)) if (text[k] === null && k !== 'attention_chunk_size') text[k] = v;
  checkQuantization(text, where);
  const act = String(text.hidden_act);
  refuseIf(act !== 'silu', where, `hidden_act '${act}' is not supported for llama4 (only silu)`);
  const { hidden, heads, kvHeads, headDim } = attentionShape(text, where);
  const layers = int(text, 'num_hidden_layers', where);
  const useRope = ropeLayers(text, where, layers);
  const chunked = chunkedLayers(text, where, useRope);
  const chunk = text.attention_chunk_size === null ? 0 : int(text, 'attention_chunk_size', where);
  const rope = computeRope(parseRopeParams(text), headDim);
  const temperature = text.attn_temperature_tuning !== false;
  const num = (key: string): number => {
    const v = text[key];
    refuseIf(!(typeof v === 'number' && v > 0), where, `${key} must be a positive number, got ${JSON.stringify(v)}`);
    return v as number;
  };
  return {
    architecture: 'llama4',
    ...PLAIN_DECODER,
    hidden, heads, kvHeads, headDim, layers,
    intermediate: int(text, 'intermediate_size_mlp', where),
    vocab: int(text, 'vocab_size', where),
    maxPositions: int(text, 'max_position_embeddings', where),
    learnedPositions: false,
    rope,
    norm: 'rms',
    normEps: Number(text.rms_norm_eps),
    mlp: 'gated_silu',
    slidingWindow: 0,
    attnScale: 1 / Math.sqrt(headDim),
    tieEmbeddings: text.tie_word_embeddings === true,
    qkvBias: text.attention_bias === true, oBias: text.attention_bias === true, mlpBias: false, qkNorm: false,
    ropeInterleaved: true,  // apply_rotary_emb: view_as_complex over pairs (2i, 2i+1)
    layerRope: useRope.every(Boolean) ? null : useRope,
    qkNormAfterRope: text.use_qk_norm !== false,
    ...(chunk > 0 && chunked.some(Boolean) ? { attentionChunk: chunk, layerChunked: chunked } : {}),
    queryScale: temperature && useRope.some((r) => !r)
      ? { beta: num('attn_scale'), period: num('floor_scale'), offset: 1, nopeOnly: true } : null,
    moe: llama4Moe(text, where, layers),
    visionLanguage: vlm,
    bosTokenId: typeof text.bos_token_id === 'number' ? text.bos_token_id : null,
    eosTokenIds: eosList(cfg.eos_token_id ?? text.eos_token_id),
  };
}

/** Per layer whether it rotates q and k: no_rope_layers (1 = RoPE), else every no_rope_layer_interval-th layer has none. */
function ropeLayers(text: Json, where: string, layers: number): boolean[] {
  const given = text.no_rope_layers;
  if (Array.isArray(given) && given.length > 0) {
    refuseIf(given.length !== layers || !given.every((v) => v === 0 || v === 1), where,
      `no_rope_layers must list 0 or 1 for each of the ${layers} layers`);
    return (given as number[]).map((v) => v === 1);
  }
  const interval = int(text, 'no_rope_layer_interval', where);
  return Array.from({ length: layers }, (_, l) => (l + 1) % interval !== 0);
}

/** Per layer whether its attention is chunked: layer_types, else the RoPE layers (Llama4TextConfig's default). */
function chunkedLayers(text: Json, where: string, useRope: boolean[]): boolean[] {
  const types = text.layer_types;
  if (!Array.isArray(types)) return useRope;
  refuseIf(types.length !== useRope.length || types.some((t) => t !== 'chunked_attention' && t !== 'full_attention'), where,
    `layer_types must give chunked_attention or full_attention for each of the ${useRope.length} layers`);
  return types.map((t) => t === 'chunked_attention');
}

/** The MoE layers (moe_layers, else every interleave_moe_layer_step-th): sigmoid of the top logits scaling the input, a shared expert. */
function llama4Moe(text: Json, where: string, layers: number): MoeSpec {
  const experts = int(text, 'num_local_experts', where), perToken = int(text, 'num_experts_per_tok', where);
  refuseIf(perToken > experts, where, `num_experts_per_tok ${perToken} is more than the ${experts} experts`);
  let moeLayers: number[];
  if (Array.isArray(text.moe_layers)) {
    refuseIf(!text.moe_layers.every((l) => Number.isInteger(l) && l >= 0 && l < layers), where, 'moe_layers must list layer indices');
    moeLayers = text.moe_layers as number[];
  } else {
    const step = int(text, 'interleave_moe_layer_step', where);
    moeLayers = Array.from({ length: layers }, (_, l) => l).filter((l) => (l + 1) % step === 0);
  }
  refuseIf(moeLayers.length === 0, where, 'moe_layers is empty: no mixture-of-experts layer');
  const perLayer = Array.from({ length: layers }, (_, l) => moeLayers.includes(l));
  return {
    experts, perToken, intermediate: int(text, 'intermediate_size', where), renormalize: false,
    layers: perLayer.every(Boolean) ? null : perLayer, sigmoid: true, groups: 1, topkGroups: 1, routedScale: 1,
    sharedExpert: true, scaleInput: true,
  };
}
