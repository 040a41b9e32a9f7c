// Models with an adapter merged into them, for the adapter-kind tests. writeEditedModel rewrites a model tensor by
// tensor (dora.ts merges DoRA with it); writeLoraMerged merges a plain LoRA adapter as PEFT's `merge_and_unload`
// does: W += s·B·A for a linear module ([out, in]; lm_head too), E += s·(B·A)ᵀ for the token embedding
// (lora_embedding_A [r, vocab], _B [hidden, r]), in double precision, written as a float32 model — for models whose
// weights are [out, in] (not GPT-2's Conv1D). Serving the adapter must give the merged model's logits.
import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile, writeSafetensors } from '../../shard/formats/index.js';
import { parseLoraTensorKey } from '../../shard/adapters/peft-config.js';

/**
 * Writes `modelDir` into `outDir` as a float32 model (its JSON files copied) with each tensor passed through `edit`
 * (the tensor as stored → what to write; return it unchanged to keep it).
 */
export function writeEditedModel(modelDir: string, outDir: string,
  edit: (name: string, shape: number[], data: Float32Array) => { shape: number[]; data: Float32Array }): void {
  const model = SafetensorsFile.open(join(modelDir, 'model.safetensors'));
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  try {
    for (const name of model.names()) tensors[name] = { dtype: 'F32', ...edit(name, model.info(name).shape, model.readF32(name)) };
  } finally {
    model.close();
  }
  mkdirSync(outDir, { recursive: true });
  writeSafetensors(join(outDir, 'model.safetensors'), tensors, { format: 'pt' });
  for (const f of readdirSync(modelDir)) {
    if (f.endsWith('.json') && !existsSync(join(outDir, f))) copyFileSync(join(modelDir, f), join(outDir, f));
  }
}

/** Writes `modelDir` with the adapter in `adapterDir` (scale `s` on every module) merged, into `outDir`. */
export function writeLoraMerged(modelDir: string, adapterDir: string, outDir: string, s: number): void {
  const adapter = SafetensorsFile.open(join(adapterDir, 'adapter_model.safetensors'));
  const pairs = new Map<string, { a?: string; b?: string; embedding: boolean }>();
  for (const key of adapter.names()) {
    const { modulePath, kind } = parseLoraTensorKey(key);
    if (kind !== 'A' && kind !== 'B') continue;  // base-layer copies are the base weights themselves
    const p = pairs.get(modulePath) ?? { embedding: key.includes('lora_embedding_') };
    if (kind === 'A') p.a = key;
    else p.b = key;
    pairs.set(modulePath, p);
  }
  try {
    writeEditedModel(modelDir, outDir, (name, shape, data) => {
      const path = name.slice(0, -'.weight'.length);
      const pair = name.endsWith('.weight') ? pairs.get(path) : undefined;
      if (!pair) return { shape, data };
      const a = adapter.readF32(pair.a!), b = adapter.readF32(pair.b!);
      const rank = adapter.info(pair.a!).shape[0]!;
      const [rows, cols] = shape as [number, number];
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) {
          // Linear: out = r, in = c. Embedding: token = r, hidden = c, ΔE[t, o] = Σ_k B[o, k]·A[k, t].
          const [o, j] = pair.embedding ? [c, r] : [r, c];
          const inDim = pair.embedding ? rows : cols;
          let d = 0;
          for (let k = 0; k < rank; k++) d += b[o * rank + k]! * a[k * inDim + j]!;
          data[r * cols + c] = data[r * cols + c]! + s * d;
        }
      }
      pairs.delete(path);
      return { shape, data };
    });
  } finally {
    adapter.close();
  }
  if (pairs.size > 0) throw new Error(`no model weight for ${[...pairs.keys()].join(', ')}`);
}
