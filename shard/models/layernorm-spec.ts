// Decoders with LayerNorms (weight and bias) in place of RMSNorms: Nemotron (Minitron, Nemotron-Mini), Jais 2 and
// StableLM — as transformers' modeling_nemotron.py, modular_jais2.py and modeling_stablelm.py compute them — and
// StarCoder2 and GPT-2.
import { computeRope, parseRopeParams, type Rope } from './rope.js';
import { attentionShape, checkQuantization, eosList, int, PLAIN_DECODER, refuseIf, rotaryDecoderShape, type Json } from './config-fields.js';
import type { Architecture, ModelSpec } from './spec.js';

/** The fields LayerNorm decoders share (StarCoder2, StableLM, Jais 2, …; Phi and GPT-NeoX add their GELU MLP): LayerNorms
 * with biases (eps `epsKey`), rotate-half RoPE, 1/√head_dim, untied by default. */
export function layerNormDecoder(arch: Architecture, cfg: Json, where: string, shape: ReturnType<typeof attentionShape>, rope: Rope,
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

// StarCoder2: Llama's attention (with biases, use_bias) and one sliding window, LayerNorms with biases, and a
// non-gated c_fc → GELU → c_proj MLP — as transformers' modeling_starcoder2.py.
export function starcoder2Spec(cfg: Json, where: string): ModelSpec {
  const { hidden, heads, kvHeads, headDim } = attentionShape({ ...cfg, head_dim: undefined }, where);  // no head_dim field
  const act = String(cfg.hidden_act ?? 'gelu_pytorch_tanh');
  const mlp = act === 'gelu_pytorch_tanh' || act === 'gelu_new' ? 'gelu_tanh' : act === 'gelu' ? 'gelu_erf' : null;
  refuseIf(mlp === null, where, `hidden_act '${act}' is not supported for starcoder2 (gelu_pytorch_tanh, gelu_new, gelu)`);
  checkQuantization(cfg, where);
  const rope = computeRope(parseRopeParams(cfg), headDim);
  const bias = cfg.use_bias !== false;
  return {
    architecture: 'starcoder2',
    ...rotaryDecoderShape(cfg, where, { hidden, heads, kvHeads, headDim }, rope),
    norm: 'layer',
    normEps: Number(cfg.norm_epsilon ?? 1e-5),
    mlp: mlp!,
    slidingWindow: typeof cfg.sliding_window === 'number' ? cfg.sliding_window : 0,
    attnScale: 1 / Math.sqrt(headDim),
    tieEmbeddings: cfg.tie_word_embeddings !== false,  // Starcoder2Config's default is tied
    qkvBias: bias, oBias: bias, mlpBias: bias, qkNorm: false,
    ...PLAIN_DECODER,
  };
}

export function gpt2Spec(cfg: Json, where: string): ModelSpec {
  const hidden = int(cfg, 'n_embd', where);
  const heads = int(cfg, 'n_head', where);
  refuseIf(hidden % heads !== 0, where, `n_embd ${hidden} is not divisible by n_head ${heads}`);
  refuseIf(cfg.scale_attn_by_inverse_layer_idx === true, where, 'scale_attn_by_inverse_layer_idx=true is not supported');
  refuseIf(cfg.add_cross_attention === true, where, 'add_cross_attention=true is not supported');
  const act = String(cfg.activation_function ?? 'gelu_new');
  const mlp = act === 'gelu_new' || act === 'gelu_pytorch_tanh' ? 'gelu_tanh' : act === 'gelu' ? 'gelu_erf' : null;
  refuseIf(mlp === null, where, `activation_function '${act}' is not supported (gelu_new, gelu_pytorch_tanh, gelu)`);
  const headDim = hidden / heads;
  return {
    architecture: 'gpt2',
    hidden, layers: int(cfg, 'n_layer', where), heads, kvHeads: heads, headDim,
    intermediate: typeof cfg.n_inner === 'number' ? int(cfg, 'n_inner', where) : 4 * hidden,
    vocab: int(cfg, 'vocab_size', where),
    maxPositions: int(cfg, 'n_positions', where),
    norm: 'layer',
    normEps: Number(cfg.layer_norm_epsilon ?? 1e-5),
    mlp: mlp!,
    learnedPositions: true,
    rope: null,
    slidingWindow: 0,
    attnScale: cfg.scale_attn_weights === false ? 1 : 1 / Math.sqrt(headDim),
    tieEmbeddings: cfg.tie_word_embeddings !== false,
    qkvBias: true, oBias: true, mlpBias: true, qkNorm: false,
    ...PLAIN_DECODER,
    bosTokenId: typeof cfg.bos_token_id === 'number' ? cfg.bos_token_id : null,
    eosTokenIds: eosList(cfg.eos_token_id),
  };
}
