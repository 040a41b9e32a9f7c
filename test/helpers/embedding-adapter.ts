// A LoRA adapter for a Llama-family model on the token embedding (lora_embedding_A [r, vocab] / _B [hidden, r]) and,
// if asked, q/v and lm_head — saved as PEFT saves one, optionally with the base-layer copies of the embedding and
// lm_head that PEFT's default save_embedding_layers="auto" adds.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { prng } from '../../deploy/bench/synthetic.js';
import { SafetensorsFile, writeSafetensors } from '../../shard/formats/index.js';

export const RANK = 4, ALPHA = 8;

/** An adapter for `modelDir` on `targets` (embed_tokens, lm_head, q_proj, v_proj), with base-layer copies if asked. */
export function writeEmbeddingAdapter(modelDir: string, dir: string, targets: string[], copies: boolean, seed: number): void {
  const model = SafetensorsFile.open(join(modelDir, 'model.safetensors'));
  const rnd = prng(seed);
  const t = (rows: number, cols: number) => ({ dtype: 'F32' as const, shape: [rows, cols], data: Float32Array.from({ length: rows * cols }, () => rnd() * 0.6) });
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  try {
    const [vocab, hidden] = model.info('model.embed_tokens.weight').shape as [number, number];
    if (targets.includes('embed_tokens')) {
      tensors['base_model.model.model.embed_tokens.lora_embedding_A'] = t(RANK, vocab);
      tensors['base_model.model.model.embed_tokens.lora_embedding_B'] = t(hidden, RANK);
      if (copies) tensors['base_model.model.model.embed_tokens.base_layer.weight'] = { dtype: 'F32', shape: [vocab, hidden], data: model.readF32('model.embed_tokens.weight') };
    }
    if (targets.includes('lm_head')) {
      tensors['base_model.model.lm_head.lora_A.weight'] = t(RANK, hidden);
      tensors['base_model.model.lm_head.lora_B.weight'] = t(vocab, RANK);
      if (copies) tensors['base_model.model.lm_head.base_layer.weight'] = { dtype: 'F32', shape: [vocab, hidden], data: model.readF32('lm_head.weight') };
    }
    for (const name of model.names()) {
      const m = /^(model\.layers\.\d+\.self_attn\.(q_proj|v_proj))\.weight$/.exec(name);
      if (!m || !targets.includes(m[2]!)) continue;
      const [out, inp] = model.info(name).shape as [number, number];
      tensors[`base_model.model.${m[1]}.lora_A.weight`] = t(RANK, inp);
      tensors[`base_model.model.${m[1]}.lora_B.weight`] = t(out, RANK);
    }
  } finally {
    model.close();
  }
  mkdirSync(dir, { recursive: true });
  writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({
    peft_type: 'LORA', task_type: 'CAUSAL_LM', r: RANK, lora_alpha: ALPHA, target_modules: targets, lora_dropout: 0,
    bias: 'none', fan_in_fan_out: false, use_rslora: false, use_dora: false, modules_to_save: null, init_lora_weights: true,
  }));
}

