// Random-weight models and PEFT LoRA adapters for the benchmarks, written as Hugging Face checkpoints
// (config.json + safetensors, adapter_config.json + adapter_model.safetensors). Values only need to be
// finite and small: the benchmarks measure time, not text. Directories are built once and reused.
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DTYPE_SIZE, encodeFloats, f32ToBf16, f32ToF16, numel, writeSafetensors } from '../../shard/formats/index.js';
import type { TensorToWrite } from '../../shard/formats/safetensors.js';
import { uniformStream } from '../demo-model/prng.js';
import { loraModuleDims } from './bounds.js';
import { PROMPT_WORDS } from './load-gen.js';
import { llamaConfigJson, type ModelShape, type WeightDtype } from './shapes.js';

/** A seeded stream of uniform numbers in [-0.5, 0.5) (the demo model's mulberry32 stream, centred). */
export function prng(seed: number): () => number {
  const next = uniformStream(seed);
  return () => next() - 0.5;
}

const POOL_SIZE = 1 << 20;
const CHUNK = 1 << 14;

/**
 * `n` float32 values uniform in ±scale/2. Large tensors copy chunks of one random pool from random offsets,
 * which keeps generation bounded by memory copies, not the PRNG. (Checkpoints use RandomWeights, which
 * does the same directly in the checkpoint's dtype.)
 */
export function randomTensor(n: number, scale: number, rnd: () => number): Float32Array {
  const out = new Float32Array(n);
  if (n <= CHUNK * 4) {
    for (let i = 0; i < n; i++) out[i] = rnd() * scale;
    return out;
  }
  const pool = new Float32Array(POOL_SIZE);
  for (let i = 0; i < POOL_SIZE; i++) pool[i] = rnd() * scale;
  return fillFromPool(out, pool, rnd);
}

/** `n` values uniform in ±scale/2 from the stream of `seed`. */
function uniformValues(n: number, scale: number, seed: number): Float32Array {
  const rnd = prng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rnd() * scale;
  return out;
}

/** Fills `out` with CHUNK-element runs of `pool` copied from offsets drawn from `rnd`. */
function fillFromPool<T extends Float32Array | Uint16Array>(out: T, pool: T, rnd: () => number): T {
  const n = out.length;
  for (let o = 0; o < n; o += CHUNK) {
    const len = Math.min(CHUNK, n - o);
    const from = Math.floor((rnd() + 0.5) * (pool.length - len));
    out.set(pool.subarray(from, from + len), o);
  }
  return out;
}

export type St = 'F16' | 'BF16' | 'F32';
const ST_DTYPE: Record<WeightDtype, St> = { float16: 'F16', bfloat16: 'BF16', float32: 'F32' };
/** Tensor data in its safetensors dtype: float32 values for F32, the 16-bit patterns for F16/BF16. */
export type WeightData = Float32Array | Uint16Array;
type Tensors = Record<string, TensorToWrite>;

/** Tensors of at most this many elements draw every value; larger ones copy runs of a pool. */
const DIRECT_MAX = 4096;
/** Values per RandomWeights pool (256 Ki: about 6 ms to draw and encode; 240 Ki distinct chunk offsets). */
const WEIGHT_POOL_SIZE = 1 << 18;

/**
 * Random weights generated directly in one safetensors dtype (F16/BF16 as bit patterns), so no float32
 * copy of a checkpoint is made and large tensors are never converted element by element: for each scale,
 * a pool of WEIGHT_POOL_SIZE values uniform in ±scale/2 is drawn and encoded once (from its own stream,
 * seeded by `seed` and the scale, so a pool does not depend on which tensors were asked for first), and a
 * tensor copies CHUNK-element runs of it from offsets drawn from the caller's stream; tensors of up to
 * DIRECT_MAX elements draw (and encode) every value. Same seed and calls, same bytes.
 */
export class RandomWeights {
  private readonly pools = new Map<number, WeightData>();

  constructor(readonly dtype: St, private readonly seed: number) {}

  /** `n` values uniform in ±scale/2, in this dtype. */
  tensor(n: number, scale: number, rnd: () => number): WeightData {
    return this.fill(this.alloc(n), scale, rnd);
  }

  /** An empty tensor of `n` elements of this dtype (Float32Array for F32, Uint16Array for F16/BF16). */
  alloc(n: number): WeightData {
    return this.dtype === 'F32' ? new Float32Array(n) : new Uint16Array(n);
  }

  /**
   * Overwrites `out` (from alloc) with values uniform in ±scale/2, as tensor() would make them: reusing
   * one buffer for the same tensor of every layer saves allocating (and page-faulting) it per file.
   */
  fill(out: WeightData, scale: number, rnd: () => number): WeightData {
    if ((out instanceof Float32Array) !== (this.dtype === 'F32')) {
      throw new TypeError(`RandomWeights(${this.dtype}).fill: got a ${out.constructor.name}`);
    }
    const n = out.length;
    if (n > DIRECT_MAX) return fillFromPool(out, this.pool(scale), rnd);
    if (out instanceof Float32Array) {
      for (let i = 0; i < n; i++) out[i] = rnd() * scale;
    } else {
      const conv = this.dtype === 'F16' ? f32ToF16 : f32ToBf16;
      for (let i = 0; i < n; i++) out[i] = conv(rnd() * scale);
    }
    return out;
  }

  private pool(scale: number): WeightData {
    let pool = this.pools.get(scale);
    if (!pool) {
      const scaleBits = new Uint32Array(new Float32Array([scale]).buffer)[0]!;
      const values = uniformValues(WEIGHT_POOL_SIZE, scale, (Math.imul(this.seed >>> 0, 0x9e3779b1) ^ Math.imul(scaleBits, 0x85ebca6b)) >>> 0);
      pool = this.dtype === 'F32' ? values : new Uint16Array(encodeFloats(this.dtype, values).buffer);
      this.pools.set(scale, pool);
    }
    return pool;
  }
}

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
  const gen = new RandomWeights(dtype, seed);
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  const files: { name: string; tensors: () => Tensors }[] = [];
  const w = (rows: number, cols: number): TensorToWrite => ({ dtype, shape: [rows, cols], data: gen.tensor(rows * cols, 0.04, rnd) });
  // Every layer file has the same seven matrices: one buffer each, refilled per layer once the previous is written.
  const layerBuf = new Map<string, WeightData>();
  const wLayer = (m: string, rows: number, cols: number): TensorToWrite => {
    let buf = layerBuf.get(m);
    if (!buf) layerBuf.set(m, buf = gen.alloc(rows * cols));
    return { dtype, shape: [rows, cols], data: gen.fill(buf, 0.04, rnd) };
  };
  // Exactly 1 in every dtype: float32 ones, encoded by the writer.
  const ones = (n: number): TensorToWrite => ({ dtype, shape: [n], data: new Float32Array(n).fill(1) });
  files.push({ name: 'embed', tensors: () => ({ 'model.embed_tokens.weight': w(shape.vocab, shape.hidden) }) });
  const dims = loraModuleDims(shape);
  for (let l = 0; l < shape.layers; l++) {
    files.push({ name: `layer-${l}`, tensors: () => {
      const t: Tensors = {
        [`model.layers.${l}.input_layernorm.weight`]: ones(shape.hidden),
        [`model.layers.${l}.post_attention_layernorm.weight`]: ones(shape.hidden),
      };
      for (const [m, [inDim, outDim]] of Object.entries(dims)) t[`model.layers.${l}.${moduleParent(m)}.${m}.weight`] = wLayer(m, outDim, inDim);
      return t;
    } });
  }
  files.push({ name: 'head', tensors: () => {
    layerBuf.clear(); // the layers are written: let their buffers go before lm_head is made
    return { 'model.norm.weight': ones(shape.hidden), 'lm_head.weight': w(shape.vocab, shape.hidden) };
  } });
  // One file's tensors (at most one layer) are generated at a time, written straight from their buffers.
  files.forEach((f, i) => {
    const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(files.length).padStart(5, '0')}.safetensors`;
    const tensors = f.tensors();
    for (const [name, t] of Object.entries(tensors)) {
      weightMap[name] = file;
      totalSize += numel(t.shape) * DTYPE_SIZE[dtype];
    }
    writeSafetensors(join(dir, file), tensors);
    if (files.length > 8 && (i + 1) % 8 === 0) log(`wrote ${i + 1}/${files.length} weight files`);
  });
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(llamaConfigJson(shape), null, 2));
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(wordTokenizer(shape.vocab)));
}

/**
 * A word-level tokenizer.json for a random model, so `weft launch` can serve it (the serve scenario): ids 0–2
 * are <unk>, <s>, </s> (config.json's bos/eos), then the prompt words of load-gen.ts, then `w<i>` fillers up to
 * the vocabulary size; whitespace splits words, so a prompt of n words is n tokens.
 */
export function wordTokenizer(vocab: number): object {
  const words = ['<unk>', '<s>', '</s>', ...PROMPT_WORDS];
  for (let i = words.length; i < vocab; i++) words.push(`w${i}`);
  const ids = Object.fromEntries(words.slice(0, vocab).map((w, i) => [w, i]));
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: ['<unk>', '<s>', '</s>'].map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false,
      normalized: false, special: true })),
    normalizer: null, pre_tokenizer: { type: 'WhitespaceSplit' }, post_processor: null,
    decoder: { type: 'WordPiece', prefix: '##', cleanup: false },
    model: { type: 'WordLevel', vocab: ids, unk_token: '<unk>' },
  };
}

function moduleParent(m: string): 'self_attn' | 'mlp' {
  return ['gate_proj', 'up_proj', 'down_proj'].includes(m) ? 'mlp' : 'self_attn';
}

export interface AdapterSetOptions {
  names: readonly string[];
  rank: number;
  dtype: WeightDtype;
  seed?: number;
  /** DoRA adapters: a magnitude vector (ones, float32) beside every A/B pair. */
  dora?: boolean;
}

/** One random PEFT LoRA adapter per name under `root`: rank r on all 7 linear modules of every layer. */
export function writeRandomAdapters(root: string, shape: ModelShape, o: AdapterSetOptions): string[] {
  const dims = loraModuleDims(shape);
  const dtype = ST_DTYPE[o.dtype];
  // The value pools are shared by all adapters; each adapter draws its own offsets into them.
  const gen = new RandomWeights(dtype, o.seed ?? 7);
  // Adapters have the same tensors: one adapter's buffers, refilled for the next once it is written.
  const buffers = new Map<string, WeightData>();
  return o.names.map((name, i) => {
    const rnd = prng((o.seed ?? 7) * 104729 + i);
    const dir = join(root, name);
    mkdirSync(dir, { recursive: true });
    const tensors: Tensors = {};
    const t = (key: string, rows: number, cols: number, scale: number): void => {
      let buf = buffers.get(key);
      if (!buf) buffers.set(key, buf = gen.alloc(rows * cols));
      tensors[key] = { dtype, shape: [rows, cols], data: gen.fill(buf, scale, rnd) };
    };
    for (let l = 0; l < shape.layers; l++) {
      for (const [m, [inDim, outDim]] of Object.entries(dims)) {
        const prefix = `base_model.model.model.layers.${l}.${moduleParent(m)}.${m}`;
        t(`${prefix}.lora_A.weight`, o.rank, inDim, 2 / Math.sqrt(inDim));
        t(`${prefix}.lora_B.weight`, outDim, o.rank, 0.02);
        if (o.dora) tensors[`${prefix}.lora_magnitude_vector`] = { dtype: 'F32', shape: [outDim], data: new Float32Array(outDim).fill(1) };
      }
    }
    writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors);
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({
      peft_type: 'LORA', task_type: 'CAUSAL_LM', r: o.rank, lora_alpha: 2 * o.rank, lora_dropout: 0,
      target_modules: Object.keys(dims), bias: 'none', fan_in_fan_out: false, use_rslora: false, use_dora: o.dora ?? false,
      modules_to_save: null, init_lora_weights: false, rank_pattern: {}, alpha_pattern: {}, layers_to_transform: null,
    }, null, 2));
    return dir;
  });
}
