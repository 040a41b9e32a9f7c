// Seeded random PEFT LoRA adapters for the demo model (or any Llama-shaped model): used by tests and
// by the quickstart examples. Files are laid out exactly as PEFT 0.21 saves them.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureBuiltDir } from './atomic-dir.js';
import { normalTensor } from './prng.js';
import { type TensorToWrite, encodeSafetensors } from './write-safetensors.js';

export const DEMO_ADAPTER_VERSION = 1;
export const DEMO_ADAPTER_MARKER = 'weft-demo-adapter.json';
export const DEMO_ADAPTER_RANK = 8;
export const DEMO_ADAPTER_ALPHA = 16;
export const DEMO_ADAPTER_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

interface LlamaShape {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads?: number;
  head_dim?: number;
}

/** `[in, out]` of every targeted module, keyed by its path under `model.layers.N.`. */
function moduleShapes(c: LlamaShape): Record<string, [number, number]> {
  const headDim = c.head_dim ?? c.hidden_size / c.num_attention_heads;
  const q = c.num_attention_heads * headDim;
  const kv = (c.num_key_value_heads ?? c.num_attention_heads) * headDim;
  const h = c.hidden_size;
  const i = c.intermediate_size;
  return {
    'self_attn.q_proj': [h, q],
    'self_attn.k_proj': [h, kv],
    'self_attn.v_proj': [h, kv],
    'self_attn.o_proj': [q, h],
    'mlp.gate_proj': [h, i],
    'mlp.up_proj': [h, i],
    'mlp.down_proj': [i, h],
  };
}

/** The adapter's tensors: A ~ normal(0, 1/sqrt(in)), B ~ normal(0, 0.04), so the delta is visible. */
export function demoAdapterTensors(config: LlamaShape, seed: number, rank = DEMO_ADAPTER_RANK): Record<string, TensorToWrite> {
  const tensors: Record<string, TensorToWrite> = {};
  for (let l = 0; l < config.num_hidden_layers; l++) {
    for (const [module, [inF, outF]] of Object.entries(moduleShapes(config))) {
      const p = `base_model.model.model.layers.${l}.${module}`;
      const a = `${p}.lora_A.weight`;
      const b = `${p}.lora_B.weight`;
      tensors[a] = { dtype: 'F32', shape: [rank, inF], data: normalTensor(rank * inF, 1 / Math.sqrt(inF), seed, a) };
      tensors[b] = { dtype: 'F32', shape: [outF, rank], data: normalTensor(outF * rank, 0.04, seed, b) };
    }
  }
  return tensors;
}

/** adapter_config.json with the field set PEFT 0.21 writes. */
export function demoAdapterConfig(rank = DEMO_ADAPTER_RANK, alpha = DEMO_ADAPTER_ALPHA): Record<string, unknown> {
  return {
    alora_invocation_tokens: null,
    alpha_pattern: {},
    arrow_config: null,
    auto_mapping: null,
    base_model_name_or_path: null,
    bias: 'none',
    corda_config: null,
    ensure_weight_tying: false,
    eva_config: null,
    exclude_modules: null,
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: false,
    kasa_config: null,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: alpha,
    lora_bias: false,
    lora_dropout: 0.0,
    lora_ga_config: null,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    monteclora_config: null,
    peft_type: 'LORA',
    peft_version: '0.21.0',
    qalora_group_size: 16,
    r: rank,
    rank_pattern: {},
    revision: null,
    target_modules: [...DEMO_ADAPTER_TARGETS],
    target_parameters: null,
    task_type: 'CAUSAL_LM',
    trainable_token_indices: null,
    use_bdlora: null,
    use_dora: false,
    use_qalora: false,
    use_rslora: false,
    velora_config: null,
  };
}

/**
 * Returns `<outDir>/<name>` holding a rank-8, alpha-16 LoRA adapter on all seven Llama projections of
 * the model in `modelDir`, with weights from `seed`; builds it unless the same build is already there.
 */
export async function ensureDemoAdapter(modelDir: string, outDir: string, name: string, seed: number): Promise<string> {
  if (!/^[A-Za-z0-9._-]+$/.test(name) || name === '.' || name === '..') {
    throw new Error(`adapter name ${JSON.stringify(name)} must be a plain directory name`);
  }
  const configPath = join(modelDir, 'config.json');
  const config = JSON.parse(await readFile(configPath, 'utf8').catch((err: unknown) => {
    throw new Error(`cannot build demo adapter: ${configPath} is not readable`, { cause: err });
  })) as LlamaShape;
  const marker = {
    version: DEMO_ADAPTER_VERSION,
    seed,
    shapes: moduleShapes(config),
    layers: config.num_hidden_layers,
  };
  return ensureBuiltDir(join(outDir, name), {
    marker: DEMO_ADAPTER_MARKER,
    markerContents: JSON.stringify(marker, null, 2) + '\n',
    what: 'demo adapter',
    async build(tmp) {
      await writeFile(join(tmp, 'adapter_config.json'), JSON.stringify(demoAdapterConfig(), null, 2) + '\n');
      await writeFile(join(tmp, 'adapter_model.safetensors'), encodeSafetensors(demoAdapterTensors(config, seed)));
    },
  });
}
