// The built-in demo model that `weft launch` serves when no --model-id is given: a tiny Llama with
// seeded random weights and a real byte-level BPE tokenizer, built locally with no downloads.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureBuiltDir } from './atomic-dir.js';
import { buildByteLevelTokenizer } from './bpe-trainer.js';
import { DEMO_CORPUS } from './corpus.js';
import { normalTensor } from './prng.js';
import { type TensorToWrite, encodeSafetensors } from './write-safetensors.js';

/** Bump whenever any built file would change; an older build is then replaced. */
export const DEMO_MODEL_VERSION = 1;
export const DEMO_MODEL_MARKER = 'weft-demo-model.json';
export const DEMO_MODEL_NAME = 'weft-demo';
export const DEMO_WEIGHT_SEED = 1234;
export const DEMO_VOCAB_SIZE = 1024;

export const DEMO_SPECIAL_TOKENS = {
  endoftext: '<|endoftext|>',
  user: '<|user|>',
  assistant: '<|assistant|>',
  end: '<|end|>',
} as const;
const SPECIALS = Object.values(DEMO_SPECIAL_TOKENS);
/** Ids of the special tokens: they follow the 1020 learned tokens, in the order above. */
export const DEMO_TOKEN_IDS = {
  endoftext: DEMO_VOCAB_SIZE - 4,
  user: DEMO_VOCAB_SIZE - 3,
  assistant: DEMO_VOCAB_SIZE - 2,
  end: DEMO_VOCAB_SIZE - 1,
} as const;

export const DEMO_CHAT_TEMPLATE = [
  '{{- bos_token -}}',
  '{%- for message in messages -%}',
  "{%- if message['role'] == 'system' -%}{{- message['content'] + '\\n' -}}",
  "{%- elif message['role'] == 'user' or message['role'] == 'assistant' -%}",
  "{{- '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' -}}",
  "{%- else -%}{{- raise_exception('unknown role: ' + message['role']) -}}",
  '{%- endif -%}',
  '{%- endfor -%}',
  "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}",
].join('\n');

export const DEMO_CONFIG = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: DEMO_TOKEN_IDS.endoftext,
  eos_token_id: DEMO_TOKEN_IDS.endoftext,
  head_dim: 32,
  hidden_act: 'silu',
  hidden_size: 128,
  initializer_range: 0.02,
  intermediate_size: 344,
  max_position_embeddings: 2048,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 4,
  num_hidden_layers: 4,
  num_key_value_heads: 2,
  pad_token_id: null,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  // Both spellings: transformers 4 (rope_theta, torch_dtype) and 5 (rope_parameters, dtype).
  rope_scaling: null,
  rope_theta: 10000.0,
  rope_parameters: { rope_theta: 10000.0, rope_type: 'default' },
  tie_word_embeddings: false,
  torch_dtype: 'float32',
  dtype: 'float32',
  transformers_version: '4.46.0',
  use_cache: true,
  vocab_size: DEMO_VOCAB_SIZE,
} as const;

export interface DemoModelFiles {
  'tokenizer.json': string;
  'tokenizer_config.json': string;
  'config.json': string;
  'generation_config.json': string;
  'model.safetensors': Buffer;
}

/** Every file of the demo model, in memory (deterministic: the same bytes on every call). */
export function demoModelFiles(): DemoModelFiles {
  const tokenizer = buildByteLevelTokenizer({
    corpus: DEMO_CORPUS,
    vocabSize: DEMO_VOCAB_SIZE,
    specialTokens: SPECIALS,
  });
  const addedTokensDecoder = Object.fromEntries(
    SPECIALS.map((content, i) => [
      String(DEMO_VOCAB_SIZE - SPECIALS.length + i),
      { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true },
    ]),
  );
  const tokenizerConfig = {
    add_bos_token: false,
    add_eos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: addedTokensDecoder,
    additional_special_tokens: [DEMO_SPECIAL_TOKENS.user, DEMO_SPECIAL_TOKENS.assistant, DEMO_SPECIAL_TOKENS.end],
    bos_token: DEMO_SPECIAL_TOKENS.endoftext,
    chat_template: DEMO_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: DEMO_SPECIAL_TOKENS.endoftext,
    model_max_length: DEMO_CONFIG.max_position_embeddings,
    pad_token: null,
    tokenizer_class: 'PreTrainedTokenizerFast',
    unk_token: null,
  };
  const generationConfig = {
    bos_token_id: DEMO_TOKEN_IDS.endoftext,
    // <|end|> closes an assistant turn, so chat generations stop there too.
    eos_token_id: [DEMO_TOKEN_IDS.endoftext, DEMO_TOKEN_IDS.end],
    transformers_version: DEMO_CONFIG.transformers_version,
  };
  return {
    'tokenizer.json': JSON.stringify(tokenizer),
    'tokenizer_config.json': json(tokenizerConfig),
    'config.json': json(DEMO_CONFIG),
    'generation_config.json': json(generationConfig),
    'model.safetensors': encodeSafetensors(demoModelTensors(DEMO_WEIGHT_SEED)),
  };
}

/** Llama weights in Hugging Face names: normal(0, 0.02) matrices (as HF initialises them), norms = 1. */
export function demoModelTensors(seed: number): Record<string, TensorToWrite> {
  const c = DEMO_CONFIG;
  const qOut = c.num_attention_heads * c.head_dim;
  const kvOut = c.num_key_value_heads * c.head_dim;
  const tensors: Record<string, TensorToWrite> = {};
  const matrix = (name: string, rows: number, cols: number): void => {
    const data = normalTensor(rows * cols, c.initializer_range, seed, name);
    tensors[name] = { dtype: 'F32', shape: [rows, cols], data };
  };
  const ones = (name: string, n: number): void => {
    tensors[name] = { dtype: 'F32', shape: [n], data: new Float32Array(n).fill(1) };
  };
  matrix('model.embed_tokens.weight', c.vocab_size, c.hidden_size);
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    matrix(`${p}.self_attn.q_proj.weight`, qOut, c.hidden_size);
    matrix(`${p}.self_attn.k_proj.weight`, kvOut, c.hidden_size);
    matrix(`${p}.self_attn.v_proj.weight`, kvOut, c.hidden_size);
    matrix(`${p}.self_attn.o_proj.weight`, c.hidden_size, qOut);
    matrix(`${p}.mlp.gate_proj.weight`, c.intermediate_size, c.hidden_size);
    matrix(`${p}.mlp.up_proj.weight`, c.intermediate_size, c.hidden_size);
    matrix(`${p}.mlp.down_proj.weight`, c.hidden_size, c.intermediate_size);
    ones(`${p}.input_layernorm.weight`, c.hidden_size);
    ones(`${p}.post_attention_layernorm.weight`, c.hidden_size);
  }
  ones('model.norm.weight', c.hidden_size);
  matrix('lm_head.weight', c.vocab_size, c.hidden_size);
  return tensors;
}

/**
 * Returns `dir` (resolved) holding the demo model, building it there first unless a complete build
 * of this version is already present. The build goes to a temporary sibling and is renamed into place.
 */
export async function ensureDemoModel(dir: string): Promise<string> {
  return ensureBuiltDir(dir, {
    marker: DEMO_MODEL_MARKER,
    markerContents: json({ name: DEMO_MODEL_NAME, version: DEMO_MODEL_VERSION }),
    what: 'demo model',
    async build(tmp) {
      for (const [name, contents] of Object.entries(demoModelFiles())) {
        await writeFile(join(tmp, name), contents);
      }
    },
  });
}

function json(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}
