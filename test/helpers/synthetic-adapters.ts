// Seeded random PEFT LoRA adapters for a Llama-family model directory (for load and tier tests):
// varying ranks and target modules, written exactly as PEFT saves them.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { prng } from '../../deploy/bench/synthetic.js';
import { writeSafetensors } from '../../shard/formats/index.js';


const MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;

/** Writes `count` adapters named a000… under `root`; returns their directory names. */
export function writeSyntheticAdapters(modelDir: string, root: string, count: number, seed = 1): string[] {
  const cfg = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8'));
  const hidden = cfg.hidden_size, layers = cfg.num_hidden_layers, inter = cfg.intermediate_size;
  const hd = cfg.head_dim ?? hidden / cfg.num_attention_heads;
  const dims: Record<string, [number, number]> = {
    q_proj: [hidden, cfg.num_attention_heads * hd], k_proj: [hidden, cfg.num_key_value_heads * hd],
    v_proj: [hidden, cfg.num_key_value_heads * hd], o_proj: [cfg.num_attention_heads * hd, hidden],
    gate_proj: [hidden, inter], up_proj: [hidden, inter], down_proj: [inter, hidden],
  };
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const rnd = prng(seed * 7919 + i);
    const r = 2 + (i % 7);
    const targets = MODULES.filter((_, k) => (i + k) % 3 !== 0);
    const name = `a${String(i).padStart(3, '0')}`;
    const dir = join(root, name);
    mkdirSync(dir, { recursive: true });
    const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    for (let l = 0; l < layers; l++) {
      for (const m of targets) {
        const [inDim, outDim] = dims[m];
        const prefix = `base_model.model.model.layers.${l}.${m.includes('proj') && ['gate_proj', 'up_proj', 'down_proj'].includes(m) ? 'mlp' : 'self_attn'}.${m}`;
        tensors[`${prefix}.lora_A.weight`] = { dtype: 'F32', shape: [r, inDim], data: Float32Array.from({ length: r * inDim }, () => rnd() * 0.5) };
        tensors[`${prefix}.lora_B.weight`] = { dtype: 'F32', shape: [outDim, r], data: Float32Array.from({ length: outDim * r }, () => rnd() * 0.5) };
      }
    }
    writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors);
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({
      peft_type: 'LORA', task_type: 'CAUSAL_LM', r, lora_alpha: 2 * r, target_modules: targets, lora_dropout: 0,
      bias: 'none', fan_in_fan_out: false, use_rslora: false, use_dora: false, modules_to_save: null,
      init_lora_weights: true, rank_pattern: {}, alpha_pattern: {}, layers_to_transform: null,
    }));
    names.push(name);
  }
  return names;
}
