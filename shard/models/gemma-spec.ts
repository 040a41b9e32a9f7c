// Gemma 2 and Gemma 3 config.json → ModelSpec, as transformers' modeling_gemma2.py / modeling_gemma3.py compute them.
// Both: GeGLU MLP, (1 + w) RMSNorms, the embedding scaled by √hidden, a norm on each block's output, sliding-window
// layers interleaved with full-attention ones, attention scale query_pre_attn_scalar^-½. Gemma 2 adds tanh caps on
// the attention scores and the final logits; Gemma 3 per-head q/k norms and a RoPE base of its own for the sliding
// layers. Gemma3ForConditionalGeneration (4B-27B): its language model from text_config, and its SigLIP image encoder
// (gemma3-vision-spec.ts) when it has a vision_config.
import { computeRope, parseRopeParams, type RopeParams } from './rope.js';
import { attentionShape, eosList, int, refuseIf, checkQuantization, visionLanguageText, type Json } from './config-fields.js';
import type { ModelSpec } from './spec.js';
import { gemma3VisionSpec } from './gemma3-vision-spec.js';

// Gemma2Config's defaults (gemma-2-2b's shape).
const GEMMA2_DEFAULTS: Json = {
  vocab_size: 256_000, hidden_size: 2304, intermediate_size: 9216, num_hidden_layers: 26, num_attention_heads: 8,
  num_key_value_heads: 4, head_dim: 256, max_position_embeddings: 8192, rms_norm_eps: 1e-6, query_pre_attn_scalar: 256,
  sliding_window: 4096, final_logit_softcapping: 30.0, attn_logit_softcapping: 50.0, tie_word_embeddings: true,
  bos_token_id: 2, eos_token_id: 1,
};

// transformers' Gemma3TextConfig defaults: the published 4B-27B configs set only the fields that differ from them.
const GEMMA3_TEXT_DEFAULTS: Json = {
  vocab_size: 262_208, hidden_size: 2304, intermediate_size: 9216, num_hidden_layers: 26, num_attention_heads: 8,
  num_key_value_heads: 4, head_dim: 256, max_position_embeddings: 131_072, rms_norm_eps: 1e-6, query_pre_attn_scalar: 256,
  sliding_window: 4096, tie_word_embeddings: true, bos_token_id: 2, eos_token_id: 1,
};


/** A Gemma3ForConditionalGeneration config's language model; its tie_word_embeddings may sit at the top level. */
function gemma3VisionLanguageText(cfg: Json, where: string): Json {
  const text = visionLanguageText(cfg, GEMMA3_TEXT_DEFAULTS, where);
  const textTie = (cfg.text_config as Json).tie_word_embeddings;
  return textTie === undefined && cfg.tie_word_embeddings !== undefined ? { ...text, tie_word_embeddings: cfg.tie_word_embeddings } : text;
}

/** archName: Gemma2ForCausalLM, Gemma3ForCausalLM or Gemma3ForConditionalGeneration. */
export function gemmaSpec(archName: string, raw: Json, where: string): ModelSpec {
  if (archName === 'Gemma2ForCausalLM') return gemmaCore(2, { ...GEMMA2_DEFAULTS, ...raw }, where, false);
  if (archName === 'Gemma3ForConditionalGeneration') {
    const spec = gemmaCore(3, gemma3VisionLanguageText(raw, where), where, true);
    const vision = gemma3VisionSpec(raw, where, spec.vocab);
    return vision ? { ...spec, vision } : spec;
  }
  return gemmaCore(3, { ...GEMMA3_TEXT_DEFAULTS, ...raw }, where, false);
}

function gemmaCore(version: 2 | 3, cfg: Json, where: string, visionLanguage: boolean): ModelSpec {
  const { hidden, heads, kvHeads, headDim } = attentionShape(cfg, where, 256);
  const layers = int(cfg, 'num_hidden_layers', where);
  const act = String(cfg.hidden_activation ?? 'gelu_pytorch_tanh');
  refuseIf(!['gelu_pytorch_tanh', 'gelu_new', 'gelu_fast', 'gelu_tanh'].includes(act), where,
    `hidden_activation '${act}' is not supported for gemma${version} (only gelu_pytorch_tanh)`);
  const cap = (key: string): number => {
    const v = cfg[key];
    refuseIf(v !== undefined && v !== null && !(typeof v === 'number' && v > 0), where, `${key} must be a positive number or null`);
    return typeof v === 'number' ? v : 0;
  };
  // Gemma 3's attention ignores attn_logit_softcapping (transformers does not pass it on), so weft does too.
  const attnSoftcap = version === 2 ? cap('attn_logit_softcapping') : 0;
  const finalSoftcap = cap('final_logit_softcapping');
  // EmbeddingGemma: attention over the whole prompt. transformers' Gemma3TextConfig turns the config's window w into
  // w // 2 + 1 and lets a token see the keys within |i - j| < that on either side (its sliding layers' mask).
  const bidirectional = cfg.use_bidirectional_attention === true;
  refuseIf(bidirectional && version === 2, where, 'use_bidirectional_attention=true is a Gemma 3 setting, not Gemma 2\'s');
  checkQuantization(cfg, where);
  // Gemma 2 alternates (even layers slide); Gemma 3 slides on all but every sliding_window_pattern-th layer.
  const pattern = version === 2 ? 2 : typeof cfg.sliding_window_pattern === 'number' ? cfg.sliding_window_pattern : 6;
  const types = Array.isArray(cfg.layer_types)
    ? (cfg.layer_types as unknown[]).map(String)
    : Array.from({ length: layers }, (_, i) => ((i + 1) % pattern !== 0 ? 'sliding_attention' : 'full_attention'));
  refuseIf(types.length !== layers, where, `layer_types has ${types.length} entries for ${layers} layers`);
  const unknown = types.find((t) => t !== 'sliding_attention' && t !== 'full_attention');
  refuseIf(unknown !== undefined, where, `layer type '${unknown}' is not supported (sliding_attention, full_attention)`);
  const configWindow = typeof cfg.sliding_window === 'number' ? int(cfg, 'sliding_window', where) : 4096;
  const window = bidirectional ? Math.floor(configWindow / 2) + 1 : configWindow;
  const { global, local } = version === 3 ? gemma3RopeParams(cfg) : { global: parseRopeParams(cfg), local: null };
  const scalar = typeof cfg.query_pre_attn_scalar === 'number' ? cfg.query_pre_attn_scalar : 256;
  refuseIf(!(scalar > 0), where, `query_pre_attn_scalar must be positive, got ${scalar}`);
  const bias = cfg.attention_bias === true;
  return {
    architecture: version === 2 ? 'gemma2' : 'gemma3',
    hidden, layers, heads, kvHeads, headDim,
    intermediate: int(cfg, 'intermediate_size', where),
    vocab: int(cfg, 'vocab_size', where),
    maxPositions: int(cfg, 'max_position_embeddings', where),
    norm: 'rms',
    normEps: Number(cfg.rms_norm_eps ?? 1e-6),
    mlp: 'gated_gelu_tanh',
    learnedPositions: false,
    rope: computeRope(global, headDim),
    slidingWindow: window,
    layerSliding: types.map((t) => t === 'sliding_attention'),
    layerRope: null,
    ropeInterleaved: false,
    ropeLocal: local ? computeRope(local, headDim) : null,
    attnScale: Math.pow(scalar, -0.5),
    tieEmbeddings: cfg.tie_word_embeddings !== false,  // both configs' default is tied
    qkvBias: bias, oBias: bias, mlpBias: false,
    qkNorm: version === 3,
    embedScale: Math.sqrt(hidden),
    normPlusOne: true,
    postNorms: true,
    visionLanguage,
    attnSoftcap,
    finalSoftcap,
    residualScale: 1,
    logitsDivisor: 1,
    moe: null, mla: null, normParams: true, qkvClip: 0, queryScale: null, qkLayerNorm: false, attnSinks: false, qkNormAfterRope: false, attentionChunk: 0, layerChunked: null,
    qkNormFull: false,
    preNorms: true,
    parallelBlock: false, parallelMlpNorm: false,
    normBias: true,
    lmHeadBias: false,
    bosTokenId: typeof cfg.bos_token_id === 'number' ? cfg.bos_token_id : null,
    eosTokenIds: eosList(cfg.eos_token_id),
    ...(bidirectional ? { bidirectional: true } : {}),
  };
}

/**
 * Gemma 3's two RoPE settings: transformers 5 keeps them in rope_parameters.{full_attention, sliding_attention};
 * older configs have rope_theta (full), rope_local_base_freq (sliding) and rope_scaling (full layers only).
 */
function gemma3RopeParams(cfg: Json): { global: RopeParams; local: RopeParams } {
  const rp = cfg.rope_parameters as Json | null | undefined;
  if (rp && typeof rp === 'object' && ('full_attention' in rp || 'sliding_attention' in rp)) {
    const full = (rp.full_attention ?? {}) as Json, sliding = (rp.sliding_attention ?? {}) as Json;
    return {
      global: parseRopeParams({ rope_parameters: { rope_theta: 1_000_000, ...full } }),
      local: parseRopeParams({ rope_parameters: { rope_theta: 10_000, ...sliding } }),
    };
  }
  const scaling = (cfg.rope_scaling ?? null) as Json | null;
  return {
    global: parseRopeParams({ rope_parameters: { ...(scaling ?? {}), rope_theta: Number(cfg.rope_theta ?? 1_000_000) } }),
    local: parseRopeParams({ rope_parameters: { rope_theta: Number(cfg.rope_local_base_freq ?? 10_000) } }),
  };
}
