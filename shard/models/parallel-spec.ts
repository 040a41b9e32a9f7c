// Decoders whose attention and MLP add to the residual stream together (h + attn(x) + mlp(x)): Cohere (Command R,
// Aya Expanse), Cohere2 (Command R7B, Command A), Phi-1/1.5/2 and GPT-J, whose two read the same normed input, and
// GPT-NeoX, whose MLP has a norm of its own — as transformers' modeling_cohere.py, modeling_cohere2.py,
// modeling_phi.py, modeling_gptj.py and modeling_gpt_neox.py compute them.
import { computeRope, parseRopeParams } from './rope.js';
import { attentionShape, eosList, int, PLAIN_DECODER, refuseIf, checkQuantization, rotaryDecoderShape, type Json } from './config-fields.js';
import type { Architecture, ModelSpec } from './spec.js';
import { slidingLayers } from './layer-kinds.js';
import { layerNormDecoder } from './layernorm-spec.js';

/**
 * Cohere / Cohere2: a mean-subtracting LayerNorm without bias (CohereLayerNorm), RoPE on interleaved pairs (its
 * rotate_half takes dims 2i and 2i+1), the logits times logit_scale, tied embeddings by default. Cohere2 slides a
 * window in the layers layer_types (or sliding_window_pattern, default 4) marks, and only those rotate: its
 * full-attention layers have no RoPE.
 */
export function cohereSpec(arch: 'cohere' | 'cohere2', cfg: Json, where: string): ModelSpec {
  const shape = attentionShape(arch === 'cohere2' ? { ...cfg, head_dim: undefined } : cfg, where);
  const act = String(cfg.hidden_act ?? 'silu');
  refuseIf(act !== 'silu', where, `hidden_act '${act}' is not supported for ${arch} (only silu)`);
  checkQuantization(cfg, where);
  const scale = Number(cfg.logit_scale ?? 0.0625);
  refuseIf(!(scale > 0), where, `logit_scale must be positive, got ${JSON.stringify(cfg.logit_scale)}`);
  const bias = cfg.attention_bias === true;
  const rope = computeRope(parseRopeParams(cfg), shape.headDim);
  let sliding: boolean[] | null = null, window = 0;
  if (arch === 'cohere2') {
    const pattern = Number(cfg.sliding_window_pattern ?? 4);
    sliding = slidingLayers(cfg, where, (i) => (i + 1) % pattern !== 0);
    window = int(cfg, 'sliding_window', where);
  }
  return {
    architecture: arch,
    ...rotaryDecoderShape(cfg, where, shape, rope),
    norm: 'layer',
    normEps: Number(cfg.layer_norm_eps ?? 1e-5),
    mlp: 'gated_silu',
    slidingWindow: window,
    attnScale: 1 / Math.sqrt(shape.headDim),
    tieEmbeddings: cfg.tie_word_embeddings !== false,  // CohereConfig's default is tied
    qkvBias: bias, oBias: bias, mlpBias: false, qkNorm: false,
    ...PLAIN_DECODER,
    ropeInterleaved: true,
    logitsDivisor: 1 / scale,
    parallelBlock: true, normBias: false,
    qkLayerNorm: cfg.use_qk_norm === true,  // Command R+: CohereLayerNorm((heads, head_dim)) on q and k
    layerSliding: sliding,
    layerRope: sliding,  // Cohere2: RoPE in the sliding layers only (null for Cohere: every layer)
  };
}

/**
 * Phi-1, Phi-1.5, Phi-2 (PhiForCausalLM): LayerNorms with biases, partial rotate-half RoPE (partial_rotary_factor),
 * q/k/v and `dense` with biases, a non-gated fc1 → gelu_new → fc2 MLP with biases, a final_layernorm and an lm_head
 * with a bias.
 */
export function phiSpec(cfg: Json, where: string): ModelSpec {
  const shape = attentionShape({ ...cfg, head_dim: undefined }, where);
  const mlp = geluMlp(String(cfg.hidden_act ?? 'gelu_new'), 'hidden_act', 'phi', where);
  refuseIf(cfg.qk_layernorm === true, where, 'qk_layernorm=true is not supported');
  const rope = computeRope(parseRopeParams({ ...cfg, partial_rotary_factor: cfg.partial_rotary_factor ?? 0.5 }), shape.headDim);
  return {
    ...layerNormGeluDecoder('phi', cfg, where, shape, rope, mlp),
    qkvBias: true, oBias: true, mlpBias: true, qkNorm: false,
    parallelBlock: true, lmHeadBias: true,
  };
}

/** A GELU MLP's kind from its activation name (gelu_fast is the tanh form too), refused by name otherwise. */
function geluMlp(act: string, field: string, arch: Architecture, where: string): 'gelu_tanh' | 'gelu_erf' {
  const mlp = act === 'gelu_new' || act === 'gelu_pytorch_tanh' || act === 'gelu_fast' ? 'gelu_tanh' : act === 'gelu' ? 'gelu_erf' : null;
  refuseIf(mlp === null, where, `${field} '${act}' is not supported for ${arch} (gelu, gelu_new, gelu_fast, gelu_pytorch_tanh)`);
  return mlp!;
}

/** The fields Phi and GPT-NeoX share: layerNormDecoder's (layer_norm_eps) with a GELU MLP. */
function layerNormGeluDecoder(arch: Architecture, cfg: Json, where: string, shape: ReturnType<typeof attentionShape>,
  rope: ReturnType<typeof computeRope>, mlp: 'gelu_tanh' | 'gelu_erf') {
  return { ...layerNormDecoder(arch, cfg, where, shape, rope, 'layer_norm_eps'), mlp };
}

/**
 * GPT-NeoX (GPTNeoXForCausalLM: Pythia, GPT-NeoX-20B, and the models trained on its code): LayerNorms with biases,
 * one fused query_key_value laid out per head ([q | k | v] of each head in turn: layout.ts reorders it), partial
 * rotate-half RoPE (rotary_pct, default 0.25, of each head; rotary_emb_base), biases on every projection, a
 * non-gated dense_h_to_4h → GELU → dense_4h_to_h MLP, and an untied embed_out. use_parallel_residual (default true):
 * h + attn(input_layernorm(h)) + mlp(post_attention_layernorm(h)); false: the usual sequential pre-norm block.
 */
export function gptNeoxSpec(cfg: Json, where: string): ModelSpec {
  const shape = attentionShape({ ...cfg, head_dim: undefined, num_key_value_heads: undefined }, where);
  const mlp = geluMlp(String(cfg.hidden_act ?? 'gelu'), 'hidden_act', 'gpt_neox', where);
  // transformers 4 configs name the RoPE base and fraction rotary_emb_base / rotary_pct (GPTNeoXConfig's defaults
  // 10000 / 0.25); transformers 5 moves them into rope_parameters.
  const ropeCfg = cfg.rope_parameters ? cfg
    : { ...cfg, rope_theta: cfg.rotary_emb_base ?? 10000, partial_rotary_factor: cfg.rotary_pct ?? 0.25 };
  const rope = computeRope(parseRopeParams(ropeCfg), shape.headDim);
  const bias = cfg.attention_bias !== false;
  const parallel = cfg.use_parallel_residual !== false;
  return {
    ...layerNormGeluDecoder('gpt_neox', cfg, where, shape, rope, mlp),
    qkvBias: bias, oBias: bias, mlpBias: true, qkNorm: false,
    parallelBlock: parallel, parallelMlpNorm: parallel,
  };
}

/**
 * GPT-J (GPTJForCausalLM: GPT-J-6B and its fine-tunes): one LayerNorm (ln_1) read by attention and the MLP in
 * parallel, q/k/v/out_proj without biases, RoPE on interleaved pairs (rotate_every_two) of the first rotary_dim dims
 * of each head (null: all of them), a fc_in → gelu_new → fc_out MLP with biases, and an untied lm_head with a bias.
 */
export function gptjSpec(cfg: Json, where: string): ModelSpec {
  const hidden = int(cfg, 'n_embd', where), heads = int(cfg, 'n_head', where);
  refuseIf(hidden % heads !== 0, where, `n_embd ${hidden} is not divisible by n_head ${heads}`);
  const headDim = hidden / heads;
  const mlp = geluMlp(String(cfg.activation_function ?? 'gelu_new'), 'activation_function', 'gptj', where);
  checkQuantization(cfg, where);
  const rotaryDim = cfg.rotary_dim === null || cfg.rotary_dim === undefined ? headDim : int(cfg, 'rotary_dim', where);
  refuseIf(rotaryDim > headDim || rotaryDim % 2 !== 0, where, `rotary_dim ${rotaryDim} must be even and at most the head size ${headDim}`);
  const rope = computeRope({ ropeType: 'default', theta: 10000, partialRotaryFactor: rotaryDim / headDim }, headDim);
  return {
    architecture: 'gptj' satisfies Architecture,
    hidden, layers: int(cfg, 'n_layer', where), heads, kvHeads: heads, headDim,
    intermediate: typeof cfg.n_inner === 'number' ? int(cfg, 'n_inner', where) : 4 * hidden,
    vocab: int(cfg, 'vocab_size', where),
    maxPositions: int(cfg, 'n_positions', where),
    learnedPositions: false,
    rope,
    norm: 'layer',
    normEps: Number(cfg.layer_norm_epsilon ?? 1e-5),
    mlp,
    slidingWindow: 0,
    attnScale: 1 / Math.sqrt(headDim),
    tieEmbeddings: cfg.tie_word_embeddings === true,
    qkvBias: false, oBias: false, mlpBias: true, qkNorm: false,
    ...PLAIN_DECODER,
    ropeInterleaved: true, parallelBlock: true, lmHeadBias: true,
    bosTokenId: typeof cfg.bos_token_id === 'number' ? cfg.bos_token_id : null,
    eosTokenIds: eosList(cfg.eos_token_id),
  };
}
