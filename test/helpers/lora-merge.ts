// A model with a plain LoRA adapter merged into it as PEFT merges one (`merge_and_unload`): W += s·B·A for a linear
// module ([out, in]; lm_head too), E += s·(B·A)ᵀ for the token embedding (lora_embedding_A [r, vocab], _B
// [hidden, r]), in double precision, written as a float32 model. For models whose weights are [out, in] (not
// GPT-2's Conv1D). Serving the adapter must give this model's logits.
import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile, writeSafetensors } from '../../shard/formats/index.js';
import { parseLoraTensorKey } from '../../shard/adapters/peft-config.js';

/** Writes `modelDir` with the adapter in `adapterDir` (scale `s` on every module) merged, into `outDir`. */
export function writeLoraMerged(modelDir: string, adapterDir: string, outDir: string, s: number): void {
  const model = SafetensorsFile.open(join(modelDir, 'model.safetensors'));
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
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  try {
    for (const name of model.names()) {
      const shape = model.info(name).shape;
      const data = model.readF32(name);
      const pair = name.endsWith('.weight') ? pairs.get(name.slice(0, -'.weight'.length)) : undefined;
      if (pair) {
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
        pairs.delete(name.slice(0, -'.weight'.length));
      }
      tensors[name] = { dtype: 'F32', shape, data };
    }
  } finally {
    model.close();
    adapter.close();
  }
  if (pairs.size > 0) throw new Error(`no model weight for ${[...pairs.keys()].join(', ')}`);
  mkdirSync(outDir, { recursive: true });
  writeSafetensors(join(outDir, 'model.safetensors'), tensors, { format: 'pt' });
  for (const f of readdirSync(modelDir)) {
    if (f.endsWith('.json') && !existsSync(join(outDir, f))) copyFileSync(join(modelDir, f), join(outDir, f));
  }
}
