// Reading config.json fields: the checks and defaults every architecture's parser shares.
import { UnsupportedModelError } from './errors.js';
import type { Rope } from './rope.js';
import { quantSchemeOf } from './quantized/quant-config.js';

export type Json = Record<string, unknown>;

export function int(cfg: Json, key: string, where: string): number {
  const v = cfg[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new UnsupportedModelError(`${where}: '${key}' must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

export function eosList(v: unknown): number[] {
  if (typeof v === 'number') return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number');
  return [];
}

export function refuseIf(cond: boolean, where: string, msg: string): void {
  if (cond) throw new UnsupportedModelError(`${where}: ${msg}`);
}

/**
 * hidden_size, the attention heads and KV heads (GQA) and the head size: `head_dim` when the config has it (else
 * `defaultHeadDim`, else hidden / heads), with the checks every attention layout needs.
 */
export function attentionShape(cfg: Json, where: string, defaultHeadDim?: number) {
  const hidden = int(cfg, 'hidden_size', where);
  const heads = int(cfg, 'num_attention_heads', where);
  const kvHeads = typeof cfg.num_key_value_heads === 'number' ? int(cfg, 'num_key_value_heads', where) : heads;
  const headDim = typeof cfg.head_dim === 'number' ? int(cfg, 'head_dim', where) : defaultHeadDim ?? hidden / heads;
  refuseIf(!Number.isInteger(headDim), where, `hidden_size ${hidden} is not divisible by num_attention_heads ${heads}`);
  refuseIf(heads % kvHeads !== 0, where, `num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`);
  return { hidden, heads, kvHeads, headDim };
}

/** A quantization_config weft cannot read refused here, at parse time (the loader dequantizes the others). */
export function checkQuantization(cfg: Json, where: string): void {
  quantSchemeOf(cfg, where);
}

/**
 * A vision-language config's language model (Gemma3ForConditionalGeneration, Mistral3ForConditionalGeneration):
 * text_config over the text model's defaults, the token ids from the top level when it has them.
 */
export function visionLanguageText(cfg: Json, defaults: Json, where: string): Json {
  const text = cfg.text_config;
  refuseIf(!text || typeof text !== 'object', where, `${String((cfg.architectures as unknown[] | undefined)?.[0])} needs a text_config`);
  const top: Json = {};
  for (const k of ['bos_token_id', 'eos_token_id', 'quantization_config']) if (cfg[k] !== undefined) top[k] = cfg[k];
  return { ...defaults, ...top, ...(text as Json) };
}

/** The ModelSpec fields only some architectures set (Gemma, Granite, SmolLM3, GLM-4, the MoE models), at their values for every other one. */
/** Families whose decoder is not Llama's `model.layers` / `model.embed_tokens` (GPT-2/GPT-J's `transformer.h`, GPT-NeoX's
 * `gpt_neox`, DBRX's `transformer.blocks`; Phi's base model is not looked for): no base-model (`*Model`, unprefixed)
 * layout is read for them, of checkpoints or of adapters' module paths. */
export const NO_BASE_MODEL_LAYOUT: ReadonlySet<string> = new Set(['gpt2', 'gptj', 'gpt_neox', 'phi', 'dbrx']);

export const PLAIN_DECODER = {
  layerSliding: null, layerRope: null, ropeInterleaved: false, ropeLocal: null, embedScale: 1, normPlusOne: false, postNorms: false, visionLanguage: false,
  attnSoftcap: 0, finalSoftcap: 0, residualScale: 1, logitsDivisor: 1, moe: null, qkNormFull: false, preNorms: true,
  parallelBlock: false, parallelMlpNorm: false, normBias: true, normParams: true, lmHeadBias: false, mla: null, qkvClip: 0, queryScale: null, qkLayerNorm: false,
  attnSinks: false, qkNormAfterRope: false, attentionChunk: 0, layerChunked: null,
} as const;

/** The fields every rotary decoder with HF's usual config names reads alike (the Llama family, StarCoder2, Cohere, Phi). */
export function rotaryDecoderShape(cfg: Json, where: string, shape: { hidden: number; heads: number; kvHeads: number; headDim: number },
  rope: Rope) {
  return {
    ...shape,
    layers: int(cfg, 'num_hidden_layers', where),
    intermediate: int(cfg, 'intermediate_size', where),
    vocab: int(cfg, 'vocab_size', where),
    // YaRN extends the context past max_position_embeddings where the config keeps the original (rope.ts).
    maxPositions: Math.max(int(cfg, 'max_position_embeddings', where), rope.scaledContext ?? 0),
    learnedPositions: false,
    rope,
    bosTokenId: typeof cfg.bos_token_id === 'number' ? cfg.bos_token_id : null,
    eosTokenIds: eosList(cfg.eos_token_id),
  } as const;
}
