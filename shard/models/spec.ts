// A Hugging Face config.json read into one normalized description of the network. Every field weft
// does not implement exactly is refused here, by name.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { UnsupportedModelError } from './errors.js';
import { computeRope, parseRopeParams, type Rope, type RopeParams } from './rope.js';

export type Architecture = 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'gemma3' | 'phi3' | 'gpt2';

export interface ModelSpec {
  architecture: Architecture;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  vocab: number;
  maxPositions: number;
  norm: 'rms' | 'layer';
  normEps: number;
  mlp: 'gated_silu' | 'gated_gelu_tanh' | 'gelu_tanh' | 'gelu_erf';
  learnedPositions: boolean;
  rope: Rope | null;
  slidingWindow: number;
  /**
   * Gemma 3 interleaves attention kinds: per layer, true = sliding window (slidingWindow, ropeLocal) and false = full
   * attention (no window, rope). null: every layer alike (slidingWindow, rope).
   */
  layerSliding: boolean[] | null;
  ropeLocal: Rope | null;
  attnScale: number;
  tieEmbeddings: boolean;
  /** q/k/v projections carry biases (Qwen2; Llama with attention_bias). */
  qkvBias: boolean;
  oBias: boolean;
  mlpBias: boolean;
  /** Qwen3: q and k RMS-normalised per head (self_attn.q_norm / k_norm, [headDim]) before RoPE. */
  qkNorm: boolean;
  /** Gemma: the token embedding times this (√hidden); 1 elsewhere. */
  embedScale: number;
  /** Gemma: RMSNorm weights are stored as w and applied as (1 + w) (folded into the weights when loading). */
  normPlusOne: boolean;
  /** Gemma 3: each block's output is RMS-normalised before the residual add (post_attention / post_feedforward). */
  postNorms: boolean;
  /**
   * The checkpoint is a vision-language model (Gemma3ForConditionalGeneration) whose language model weft serves for
   * text requests: its weights sit under `language_model.model.` (or `model.language_model.`), and adapter pairs
   * on the vision tower / projector have no effect on text and are dropped at load.
   */
  visionLanguage: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
}

type Json = Record<string, unknown>;

const ARCHITECTURES: Record<string, Architecture> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
  Qwen3ForCausalLM: 'qwen3',
  Gemma3ForCausalLM: 'gemma3',
  Gemma3ForConditionalGeneration: 'gemma3',
  Phi3ForCausalLM: 'phi3',
  GPT2LMHeadModel: 'gpt2',
};

export function readModelSpec(modelDir: string): ModelSpec {
  const path = join(modelDir, 'config.json');
  if (!existsSync(path)) throw new UnsupportedModelError(`${modelDir} has no config.json; point --model-id at a Hugging Face model directory`);
  let cfg: Json;
  try {
    cfg = JSON.parse(readFileSync(path, 'utf8')) as Json;
  } catch (e) {
    throw new UnsupportedModelError(`${path} is not valid JSON: ${(e as Error).message}`);
  }
  return parseModelSpec(cfg, path);
}

export function parseModelSpec(cfg: Json, where = 'config.json'): ModelSpec {
  const archName = Array.isArray(cfg.architectures) ? String(cfg.architectures[0]) : '';
  const arch = ARCHITECTURES[archName];
  if (!arch) {
    throw new UnsupportedModelError(`${where}: architecture '${archName || String(cfg.model_type)}' is not supported ` +
      `(supported: ${Object.keys(ARCHITECTURES).join(', ')})`);
  }
  if (arch === 'gpt2') return gpt2Spec(cfg, where);
  if (archName === 'Gemma3ForConditionalGeneration') return gemma3Spec(gemma3TextConfig(cfg, where), where, true);
  if (arch === 'gemma3') return gemma3Spec({ ...GEMMA3_TEXT_DEFAULTS, ...cfg }, where, false);
  return llamaFamilySpec(arch, cfg, where);
}

function int(cfg: Json, key: string, where: string): number {
  const v = cfg[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new UnsupportedModelError(`${where}: '${key}' must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

function eosList(v: unknown): number[] {
  if (typeof v === 'number') return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number');
  return [];
}

function refuseIf(cond: boolean, where: string, msg: string): void {
  if (cond) throw new UnsupportedModelError(`${where}: ${msg}`);
}

function slidingWindowOf(arch: Architecture, cfg: Json, where: string): number {
  const layerTypes = Array.isArray(cfg.layer_types) ? (cfg.layer_types as unknown[]).map(String) : [];
  const sw = typeof cfg.sliding_window === 'number' ? cfg.sliding_window : 0;
  if (arch === 'qwen2' || arch === 'qwen3') {
    refuseIf(cfg.use_sliding_window === true, where, 'use_sliding_window=true (per-layer sliding windows) is not supported');
    refuseIf(layerTypes.some((t) => t !== 'full_attention'), where, `layer_types ${JSON.stringify(layerTypes)} mixes attention kinds; not supported`);
    return 0;
  }
  if (new Set(layerTypes).size > 1) refuseIf(true, where, `layer_types ${JSON.stringify(layerTypes)} mixes attention kinds; not supported`);
  return sw > 0 ? sw : 0;
}

/** The fields only Gemma sets, at their values for every other architecture. */
const PLAIN_DECODER = {
  layerSliding: null, ropeLocal: null, embedScale: 1, normPlusOne: false, postNorms: false, visionLanguage: false,
} as const;

function llamaFamilySpec(arch: Architecture, cfg: Json, where: string): ModelSpec {
  const hidden = int(cfg, 'hidden_size', where);
  const heads = int(cfg, 'num_attention_heads', where);
  const kvHeads = typeof cfg.num_key_value_heads === 'number' ? int(cfg, 'num_key_value_heads', where) : heads;
  const headDim = typeof cfg.head_dim === 'number' ? int(cfg, 'head_dim', where) : hidden / heads;
  refuseIf(!Number.isInteger(headDim), where, `hidden_size ${hidden} is not divisible by num_attention_heads ${heads}`);
  refuseIf(heads % kvHeads !== 0, where, `num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`);
  const act = String(cfg.hidden_act ?? 'silu');
  refuseIf(act !== 'silu', where, `hidden_act '${act}' is not supported for ${arch} (only silu)`);
  refuseIf(typeof cfg.pretraining_tp === 'number' && cfg.pretraining_tp > 1, where, 'pretraining_tp > 1 is not supported');
  refuseIf(cfg.quantization_config !== undefined && cfg.quantization_config !== null, where, 'quantized checkpoints (quantization_config) are not supported');
  // Qwen2 always has q/k/v biases (and none on o); Llama and Qwen3 put attention_bias on all four projections.
  const attnBias = arch === 'qwen2' ? true : cfg.attention_bias === true;
  const rope = computeRope(parseRopeParams(cfg), headDim);
  return {
    architecture: arch,
    hidden, layers: int(cfg, 'num_hidden_layers', where), heads, kvHeads, headDim,
    intermediate: int(cfg, 'intermediate_size', where),
    vocab: int(cfg, 'vocab_size', where),
    // longrope: only the short factors are implemented, so the context ends where they hold (rope.ts).
    maxPositions: Math.min(int(cfg, 'max_position_embeddings', where), rope.maxPositions ?? Infinity),
    norm: 'rms',
    normEps: Number(cfg.rms_norm_eps ?? 1e-6),
    mlp: 'gated_silu',
    learnedPositions: false,
    rope,
    slidingWindow: slidingWindowOf(arch, cfg, where),
    attnScale: 1 / Math.sqrt(headDim),
    tieEmbeddings: cfg.tie_word_embeddings === true,
    qkvBias: attnBias,
    oBias: (arch === 'llama' || arch === 'qwen3') && cfg.attention_bias === true,
    mlpBias: arch === 'llama' && cfg.mlp_bias === true,
    qkNorm: arch === 'qwen3',
    ...PLAIN_DECODER,
    bosTokenId: typeof cfg.bos_token_id === 'number' ? cfg.bos_token_id : null,
    eosTokenIds: eosList(cfg.eos_token_id),
  };
}

function gpt2Spec(cfg: Json, where: string): ModelSpec {
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

// Gemma 3 text models (Gemma3ForCausalLM: gemma-3-1b, gemma-3-270m): GeGLU MLP, (1 + w) RMSNorms, the embedding
// scaled by √hidden, per-head q/k norms, a norm on each block's output, and sliding-window layers (their own RoPE
// base) interleaved with full-attention ones — as transformers' modeling_gemma3.py computes them.
// transformers' Gemma3TextConfig defaults: the published 4B-27B configs set only the fields that differ from them.
const GEMMA3_TEXT_DEFAULTS: Json = {
  vocab_size: 262_208, hidden_size: 2304, intermediate_size: 9216, num_hidden_layers: 26, num_attention_heads: 8,
  num_key_value_heads: 4, head_dim: 256, max_position_embeddings: 131_072, rms_norm_eps: 1e-6, query_pre_attn_scalar: 256,
  sliding_window: 4096, tie_word_embeddings: true, bos_token_id: 2, eos_token_id: 1,
};

/** A Gemma3ForConditionalGeneration config's language model: text_config over the defaults (token ids from the top). */
function gemma3TextConfig(cfg: Json, where: string): Json {
  const text = cfg.text_config;
  refuseIf(!text || typeof text !== 'object', where, 'Gemma3ForConditionalGeneration needs a text_config');
  const top: Json = {};
  for (const k of ['bos_token_id', 'eos_token_id', 'tie_word_embeddings', 'quantization_config']) if (cfg[k] !== undefined) top[k] = cfg[k];
  return { ...GEMMA3_TEXT_DEFAULTS, ...top, ...(text as Json) };
}

function gemma3Spec(cfg: Json, where: string, visionLanguage: boolean): ModelSpec {
  const hidden = int(cfg, 'hidden_size', where);
  const heads = int(cfg, 'num_attention_heads', where);
  const kvHeads = typeof cfg.num_key_value_heads === 'number' ? int(cfg, 'num_key_value_heads', where) : heads;
  const layers = int(cfg, 'num_hidden_layers', where);
  const headDim = typeof cfg.head_dim === 'number' ? int(cfg, 'head_dim', where) : 256;
  refuseIf(heads % kvHeads !== 0, where, `num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`);
  const act = String(cfg.hidden_activation ?? 'gelu_pytorch_tanh');
  refuseIf(!['gelu_pytorch_tanh', 'gelu_new', 'gelu_fast'].includes(act) && act !== 'gelu_tanh', where,
    `hidden_activation '${act}' is not supported for gemma3 (only gelu_pytorch_tanh)`);
  refuseIf(cfg.final_logit_softcapping !== undefined && cfg.final_logit_softcapping !== null, where,
    'final_logit_softcapping is not supported');
  // attn_logit_softcapping is ignored, as transformers' Gemma 3 attention ignores it.
  refuseIf(cfg.use_bidirectional_attention === true, where, 'use_bidirectional_attention=true is not supported (causal LM only)');
  refuseIf(cfg.quantization_config !== undefined && cfg.quantization_config !== null, where, 'quantized checkpoints (quantization_config) are not supported');
  const pattern = typeof cfg.sliding_window_pattern === 'number' ? cfg.sliding_window_pattern : 6;
  const types = Array.isArray(cfg.layer_types)
    ? (cfg.layer_types as unknown[]).map(String)
    : Array.from({ length: layers }, (_, i) => ((i + 1) % pattern !== 0 ? 'sliding_attention' : 'full_attention'));
  refuseIf(types.length !== layers, where, `layer_types has ${types.length} entries for ${layers} layers`);
  const unknown = types.find((t) => t !== 'sliding_attention' && t !== 'full_attention');
  refuseIf(unknown !== undefined, where, `layer type '${unknown}' is not supported (sliding_attention, full_attention)`);
  const window = typeof cfg.sliding_window === 'number' ? int(cfg, 'sliding_window', where) : 4096;
  const { global, local } = gemma3RopeParams(cfg);
  const scalar = typeof cfg.query_pre_attn_scalar === 'number' ? cfg.query_pre_attn_scalar : 256;
  refuseIf(!(scalar > 0), where, `query_pre_attn_scalar must be positive, got ${scalar}`);
  const bias = cfg.attention_bias === true;
  return {
    architecture: 'gemma3',
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
    ropeLocal: computeRope(local, headDim),
    attnScale: Math.pow(scalar, -0.5),
    tieEmbeddings: cfg.tie_word_embeddings !== false,  // Gemma3TextConfig's default is tied
    qkvBias: bias, oBias: bias, mlpBias: false,
    qkNorm: true,
    embedScale: Math.sqrt(hidden),
    normPlusOne: true,
    postNorms: true,
    visionLanguage,
    bosTokenId: typeof cfg.bos_token_id === 'number' ? cfg.bos_token_id : null,
    eosTokenIds: eosList(cfg.eos_token_id),
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
