// Model shapes the benchmarks run on: built-in presets (random weights, Llama layout) or the config.json
// of any Llama-family model directory. Only the dimensions that decide bytes and FLOPs are kept.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseModelSpec, type Architecture } from '../../shard/models/spec.js';

export type WeightDtype = 'float16' | 'bfloat16' | 'float32';

export interface ModelShape {
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  vocab: number;
  /** The dtype the checkpoint is written in (the engine may compute in another: see DTYPE_BYTES use). */
  dtype: WeightDtype;
}

export const DTYPE_BYTES: Readonly<Record<WeightDtype, number>> = { float16: 2, bfloat16: 2, float32: 4 };

export type PresetName = 'tiny' | 'small' | 'llama2-7b';

/** `--model preset:<name>`. llama2-7b is Llama-2-7B's exact shape (fp16, 6.74 B parameters). */
export const PRESETS: Readonly<Record<PresetName, ModelShape>> = {
  tiny: { hidden: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 16, intermediate: 176, vocab: 512, dtype: 'float16' },
  small: { hidden: 1024, layers: 8, heads: 16, kvHeads: 16, headDim: 64, intermediate: 2816, vocab: 32000, dtype: 'float16' },
  'llama2-7b': { hidden: 4096, layers: 32, heads: 32, kvHeads: 32, headDim: 128, intermediate: 11008, vocab: 32000, dtype: 'float16' },
};

export const PRESET_PREFIX = 'preset:';

/** The preset a `--model` value names, null for a directory; throws for an unknown preset name. */
export function presetOf(model: string | null): PresetName | null {
  if (model === null || !model.startsWith(PRESET_PREFIX)) return null;
  const name = model.slice(PRESET_PREFIX.length);
  if (!(name in PRESETS)) {
    throw new Error(`--model ${model}: unknown preset '${name}' (presets: ${Object.keys(PRESETS).map((p) => PRESET_PREFIX + p).join(', ')})`);
  }
  return name as PresetName;
}

/** A Hugging Face Llama-family config.json for a shape (what the preset generator writes). */
export function llamaConfigJson(s: ModelShape): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: s.hidden,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    head_dim: s.headDim,
    intermediate_size: s.intermediate,
    vocab_size: s.vocab,
    max_position_embeddings: 4096,
    hidden_act: 'silu',
    rms_norm_eps: 1e-5,
    // Both spellings, like the demo model: transformers 4 (rope_theta, torch_dtype) and 5 (rope_parameters, dtype).
    rope_theta: 10000.0,
    rope_scaling: null,
    rope_parameters: { rope_theta: 10000.0, rope_type: 'default' },
    attention_bias: false,
    mlp_bias: false,
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: s.dtype,
    dtype: s.dtype,
  };
}

const SEPARATE_PROJECTION_ARCHS: readonly Architecture[] = ['llama', 'mistral', 'qwen2', 'qwen3'];

/**
 * The shape in a model directory's config.json. Only architectures with separate q/k/v and gate/up
 * projections (the 7 LoRA target modules the byte model and the adapter generator assume) are accepted.
 */
export function shapeFromModelDir(dir: string): ModelShape {
  const path = join(dir, 'config.json');
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`--model ${dir}: cannot read config.json (${(e as Error).message}); pass a model directory or preset:tiny|small|llama2-7b`);
  }
  // The engine's own reading of the config (validation, defaults such as head_dim and kv heads).
  const spec = parseModelSpec(cfg as Parameters<typeof parseModelSpec>[0], path);
  if (!SEPARATE_PROJECTION_ARCHS.includes(spec.architecture)) {
    throw new Error(`--model ${dir}: the benchmarks need a model with q/k/v/o/gate/up/down projections ` +
      `(${SEPARATE_PROJECTION_ARCHS.join(', ')}); this one is '${spec.architecture}'`);
  }
  const dtype = String(cfg.torch_dtype ?? cfg.dtype ?? 'float32');
  return {
    hidden: spec.hidden, layers: spec.layers, heads: spec.heads, kvHeads: spec.kvHeads, headDim: spec.headDim,
    intermediate: spec.intermediate, vocab: spec.vocab,
    dtype: dtype === 'float16' || dtype === 'bfloat16' ? dtype : 'float32',
  };
}
