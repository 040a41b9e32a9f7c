// DoRA test material for a golden model directory: a seeded DoRA adapter written as PEFT saves one, and the
// same model with that adapter merged the way PEFT merges DoRA (variants.py DoraLinearVariant.merge_safe:
// W' = (magnitude / ||W + s·BA||) ⊙ (W + s·BA), the norm over each output row; biases unchanged), computed in
// double precision. Serving the adapter must give the merged model's logits.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { prng } from '../../deploy/bench/synthetic.js';
import { SafetensorsFile, writeSafetensors } from '../../shard/formats/index.js';
import { writeEditedModel } from './lora-merge.js';

type Tensor = { dtype: 'F32'; shape: number[]; data: Float32Array };

export interface DoraAdapterOptions {
  seed: number;
  rank: number;
  alpha: number;
  /** PEFT target_modules: module-name suffixes (q_proj, down_proj, …). */
  modules: string[];
}

/** GPT-2 stores its linear layers as Conv1D, weights [in, out] (PEFT's fan_in_fan_out). */
function isConv1d(modelDir: string): boolean {
  return JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')).model_type === 'gpt2';
}

function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c]!;
  return t;
}

/** Every 2-D `<path>.<module>.weight` of the model whose module is targeted, by module path, as [out, in]. */
function targetedWeights(model: SafetensorsFile, modules: string[], conv1d: boolean): Map<string, { shape: number[]; data: Float32Array }> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const name of model.names()) {
    const m = /^((?:.+\.)?([^.]+))\.weight$/.exec(name);
    if (!m || !modules.includes(m[2]!) || model.info(name).shape.length !== 2) continue;
    const [r, c] = model.info(name).shape as [number, number];
    const data = model.readF32(name);
    out.set(m[1]!, conv1d && m[2] !== 'lm_head' ? { shape: [c, r], data: transpose(data, r, c) } : { shape: [r, c], data });
  }
  return out;
}

/** (W + s·BA) in double, row-major [out, in]. */
function adapted(w: Float32Array, a: Float32Array, b: Float32Array, out: number, inp: number, rank: number, s: number): Float64Array {
  const r = new Float64Array(out * inp);
  for (let o = 0; o < out; o++) {
    for (let j = 0; j < inp; j++) {
      let d = 0;
      for (let k = 0; k < rank; k++) d += b[o * rank + k]! * a[k * inp + j]!;
      r[o * inp + j] = w[o * inp + j]! + s * d;
    }
  }
  return r;
}

function rowNorms(m: Float64Array, out: number, inp: number): Float64Array {
  const n = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let acc = 0;
    for (let j = 0; j < inp; j++) acc += m[o * inp + j]! ** 2;
    n[o] = Math.sqrt(acc);
  }
  return n;
}

/** Writes a DoRA adapter for the model in `modelDir` into `dir` (magnitudes moved off their initial norms, as by training). */
export function writeDoraAdapter(modelDir: string, dir: string, o: DoraAdapterOptions): void {
  const model = SafetensorsFile.open(join(modelDir, 'model.safetensors'));
  const rnd = prng(o.seed);
  const tensors: Record<string, Tensor> = {};
  const s = o.alpha / o.rank;
  try {
    for (const [path, w] of targetedWeights(model, o.modules, isConv1d(modelDir))) {
      const [out, inp] = w.shape as [number, number];
      const a = Float32Array.from({ length: o.rank * inp }, () => rnd() * 0.6);
      const b = Float32Array.from({ length: out * o.rank }, () => rnd() * 0.6);
      const norms = rowNorms(adapted(w.data, a, b, out, inp, o.rank, s), out, inp);
      const magnitude = Float32Array.from(norms, (n) => n * (1 + 0.4 * rnd()));
      tensors[`base_model.model.${path}.lora_A.weight`] = { dtype: 'F32', shape: [o.rank, inp], data: a };
      tensors[`base_model.model.${path}.lora_B.weight`] = { dtype: 'F32', shape: [out, o.rank], data: b };
      tensors[`base_model.model.${path}.lora_magnitude_vector`] = { dtype: 'F32', shape: [out], data: magnitude };
    }
  } finally {
    model.close();
  }
  if (Object.keys(tensors).length === 0) throw new Error(`${modelDir}: no weight matches ${o.modules.join(', ')}`);
  mkdirSync(dir, { recursive: true });
  writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({
    peft_type: 'LORA', task_type: 'CAUSAL_LM', r: o.rank, lora_alpha: o.alpha, target_modules: o.modules,
    lora_dropout: 0, bias: 'none', fan_in_fan_out: isConv1d(modelDir), use_rslora: false, use_dora: true, modules_to_save: null,
    init_lora_weights: true, rank_pattern: {}, alpha_pattern: {}, layers_to_transform: null,
  }));
}

/** Writes `modelDir` with the DoRA adapter in `adapterDir` merged into it (PEFT's merge), as a float32 model in `outDir`. */
export function writeDoraMerged(modelDir: string, adapterDir: string, outDir: string, o: DoraAdapterOptions): void {
  const model = SafetensorsFile.open(join(modelDir, 'model.safetensors'));
  const adapter = SafetensorsFile.open(join(adapterDir, 'adapter_model.safetensors'));
  const s = o.alpha / o.rank;
  const conv1d = isConv1d(modelDir);
  try {
    const targeted = targetedWeights(model, o.modules, conv1d);
    writeEditedModel(modelDir, outDir, (name, shape, data) => {
      const path = name.replace(/\.weight$/, '');
      const w = targeted.get(path);
      if (!name.endsWith('.weight') || !w) return { shape, data };
      const [out, inp] = w.shape as [number, number];
      const key = `base_model.model.${path}`;
      const sum = adapted(w.data, adapter.readF32(`${key}.lora_A.weight`), adapter.readF32(`${key}.lora_B.weight`), out, inp, o.rank, s);
      const norms = rowNorms(sum, out, inp);
      const magnitude = adapter.readF32(`${key}.lora_magnitude_vector`);
      const merged = new Float32Array(out * inp);
      for (let r = 0; r < out; r++) for (let j = 0; j < inp; j++) merged[r * inp + j] = (magnitude[r]! / norms[r]!) * sum[r * inp + j]!;
      return conv1d ? { shape: [inp, out], data: transpose(merged, out, inp) } : { shape: [out, inp], data: merged };
    });
  } finally {
    model.close();
    adapter.close();
  }
}
