// Random-weight models and PEFT LoRA adapters for the benchmarks, written as Hugging Face checkpoints
// (config.json + safetensors, adapter_config.json + adapter_model.safetensors). Values only need to be
// finite and small: the benchmarks measure time, not text. Directories are built once and reused.
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeSafetensors } from '../../shard/formats/index.js';
import { loraModuleDims } from './bounds.js';
import { llamaConfigJson, type ModelShape, type WeightDtype } from './shapes.js';

/** xorshift32: a seeded stream of uniform numbers in [-0.5, 0.5). */
export function prng(seed: number): () => number {
  let s = (seed >>> 0) || 0x9e3779b9;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 4294967296 - 0.5;
  };
}

const POOL_SIZE = 1 << 20;
const CHUNK = 1 << 14;

/**
 * `n` values uniform in ±scale/2. Large tensors copy chunks of one random pool from random offsets,
 * which keeps a 7 B-parameter model's generation bounded by the dtype conversion, not the PRNG.
 */
export function randomTensor(n: number, scale: number, rnd: () => number): Float32Array {
  const out = new Float32Array(n);
  if (n <= CHUNK * 4) {
    for (let i = 0; i < n; i++) out[i] = rnd() * scale;
    return out;
  }
  const pool = new Float32Array(POOL_SIZE);
  for (let i = 0; i < POOL_SIZE; i++) pool[i] = rnd() * scale;
  for (let o = 0; o < n; o += CHUNK) {
    const len = Math.min(CHUNK, n - o);
    const from = Math.floor((rnd() + 0.5) * (POOL_SIZE - len));
    out.set(pool.subarray(from, from + len), o);
  }
  return out;
}

type St = 'F16' | 'BF16' | 'F32';
const ST_DTYPE: Record<WeightDtype, St> = { float16: 'F16', bfloat16: 'BF16', float32: 'F32' };
type Tensors = Record<string, { dtype: St; shape: number[]; data: Float32Array }>;

/** Builds `dir` once: into a temporary sibling, renamed into place after `marker` is written. */
export function ensureBuilt(dir: string, marker: string, build: (tmp: string) => void): string {
  if (existsSync(join(dir, marker))) return dir;
  mkdirSync(dirname(dir), { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    build(tmp);
    writeFileSync(join(tmp, marker), 'complete\n');
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return dir;
}

/**
 * A random-weight Llama checkpoint of `shape` in its dtype: embeddings and lm_head in their own files,
 * one file per layer (so no more than one layer is in memory while writing), and an index.
 */
export function writeRandomModel(dir: string, shape: ModelShape, seed = 1, log: (msg: string) => void = () => {}): void {
  const dtype = ST_DTYPE[shape.dtype];
  const rnd = prng(seed);
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  const files: { name: string; tensors: () => Tensors }[] = [];
  const w = (rows: number, cols: number) => ({ dtype, shape: [rows, cols], data: randomTensor(rows * cols, 0.04, rnd) });
  const ones = (n: number) => ({ dtype, shape: [n], data: new Float32Array(n).fill(1) });
  files.push({ name: 'embed', tensors: () => ({ 'model.embed_tokens.weight': w(shape.vocab, shape.hidden) }) });
  const dims = loraModuleDims(shape);
  for (let l = 0; l < shape.layers; l++) {
    files.push({ name: `layer-${l}`, tensors: () => {
      const t: Tensors = {
        [`model.layers.${l}.input_layernorm.weight`]: ones(shape.hidden),
        [`model.layers.${l}.post_attention_layernorm.weight`]: ones(shape.hidden),
      };
      for (const [m, [inDim, outDim]] of Object.entries(dims)) t[`model.layers.${l}.${moduleParent(m)}.${m}.weight`] = w(outDim, inDim);
      return t;
    } });
  }
  files.push({ name: 'head', tensors: () => ({ 'model.norm.weight': ones(shape.hidden), 'lm_head.weight': w(shape.vocab, shape.hidden) }) });
  files.forEach((f, i) => {
    const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(files.length).padStart(5, '0')}.safetensors`;
    const tensors = f.tensors();
    for (const [name, t] of Object.entries(tensors)) {
      weightMap[name] = file;
      totalSize += t.data.length * (dtype === 'F32' ? 4 : 2);
    }
    writeSafetensors(join(dir, file), tensors);
    if (files.length > 8 && (i + 1) % 8 === 0) log(`wrote ${i + 1}/${files.length} weight files`);
  });
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(llamaConfigJson(shape), null, 2));
}

function moduleParent(m: string): 'self_attn' | 'mlp' {
  return ['gate_proj', 'up_proj', 'down_proj'].includes(m) ? 'mlp' : 'self_attn';
}

export interface AdapterSetOptions {
  names: readonly string[];
  rank: number;
  dtype: WeightDtype;
  seed?: number;
}

/** One random PEFT LoRA adapter per name under `root`: rank r on all 7 linear modules of every layer. */
export function writeRandomAdapters(root: string, shape: ModelShape, o: AdapterSetOptions): string[] {
  const dims = loraModuleDims(shape);
  const dtype = ST_DTYPE[o.dtype];
  return o.names.map((name, i) => {
    const rnd = prng((o.seed ?? 7) * 104729 + i);
    const dir = join(root, name);
    mkdirSync(dir, { recursive: true });
    const tensors: Tensors = {};
    for (let l = 0; l < shape.layers; l++) {
      for (const [m, [inDim, outDim]] of Object.entries(dims)) {
        const prefix = `base_model.model.model.layers.${l}.${moduleParent(m)}.${m}`;
        tensors[`${prefix}.lora_A.weight`] = { dtype, shape: [o.rank, inDim], data: randomTensor(o.rank * inDim, 2 / Math.sqrt(inDim), rnd) };
        tensors[`${prefix}.lora_B.weight`] = { dtype, shape: [outDim, o.rank], data: randomTensor(outDim * o.rank, 0.02, rnd) };
      }
    }
    writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors);
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({
      peft_type: 'LORA', task_type: 'CAUSAL_LM', r: o.rank, lora_alpha: 2 * o.rank, lora_dropout: 0,
      target_modules: Object.keys(dims), bias: 'none', fan_in_fan_out: false, use_rslora: false, use_dora: false,
      modules_to_save: null, init_lora_weights: false, rank_pattern: {}, alpha_pattern: {}, layers_to_transform: null,
    }, null, 2));
    return dir;
  });
}
