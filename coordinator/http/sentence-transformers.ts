// A sentence-transformers model directory's modules (modules.json): what an embedding is, after the transformer —
// the Pooling module's mode, Dense layers (in_features → out_features, optional bias, Identity or Tanh) and an L2
// Normalize, applied in the order modules.json lists them. EmbeddingGemma is Transformer → Pooling(mean) →
// Dense(768→3072) → Dense(3072→768) → Normalize. The shards pool (they hold every position's state, chunk by chunk);
// the Dense layers and the Normalize run here, on one vector per input (float64 sums, as classifier-head.ts).
// A config weft cannot run exactly is refused on the embedding routes, by name, instead of approximated.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile, loadTorchBin } from '../../shard/formats/index.js';
import type { Pooling } from '../scheduler/index.js';

/** One sentence-transformers Dense module: y = activation(W x + b), W [outFeatures, inFeatures] row-major. */
export interface DenseLayer {
  kind: 'dense';
  path: string;
  inFeatures: number;
  outFeatures: number;
  weight: Float32Array;
  bias: Float32Array | null;
  activation: 'identity' | 'tanh';
}

/** What runs on the pooled vector, in order: Dense layers and L2 normalisations. */
export type PoolStep = DenseLayer | { kind: 'normalize' };

export interface EmbeddingPipeline {
  pooling: Pooling;
  steps: PoolStep[];
  /** An embedding's length: the last Dense's out_features, else the hidden size. */
  dimension: number;
  /** Why this model's embeddings cannot be served as its config asks (the embedding routes' 422); null: they can. */
  refusal: string | null;
}

/** A config weft cannot run: the message names the file and what to do. */
export class SentenceTransformersError extends Error {
  override name = 'SentenceTransformersError';
}

/** sentence-transformers' activation classes weft applies, by their saved names. */
const ACTIVATIONS: Record<string, DenseLayer['activation']> = {
  'torch.nn.modules.linear.Identity': 'identity',
  'torch.nn.modules.activation.Tanh': 'tanh',
};
/** Pooling config keys and the mode each turns on (sentence-transformers' Pooling.get_config_dict). */
const POOLING_KEYS: Record<string, string> = {
  pooling_mode_cls_token: 'cls', pooling_mode_mean_tokens: 'mean', pooling_mode_max_tokens: 'max',
  pooling_mode_mean_sqrt_len_tokens: 'mean_sqrt_len_tokens', pooling_mode_weightedmean_tokens: 'weightedmean',
  pooling_mode_lasttoken: 'lasttoken',
};
const SERVED_POOLING: Record<string, Pooling> = { cls: 'cls', mean: 'mean', max: 'max', lasttoken: 'last' };

interface ModuleEntry { type: string; path: string }

/**
 * The embedding pipeline of the model in `modelDir` whose hidden size is `hidden`: its sentence-transformers
 * modules (none: the last token's state as it is), with the pooling `poolingOverride` (--pooling-type) in place of
 * the config's. A config weft cannot run gives a pipeline whose `refusal` says why.
 */
export function embeddingPipeline(modelDir: string, hidden: number, poolingOverride: Pooling | null = null): EmbeddingPipeline {
  try {
    const modules = readModules(modelDir);
    const pooling = poolingOverride ?? (modules ? configuredPooling(modelDir, modules, hidden) : 'last');
    const steps = modules ? poolSteps(modelDir, modules, hidden) : [];
    const dense = steps.filter((s): s is DenseLayer => s.kind === 'dense');
    return { pooling, steps, dimension: dense.at(-1)?.outFeatures ?? hidden, refusal: null };
  } catch (e) {
    if (!(e instanceof SentenceTransformersError)) throw e;
    return { pooling: poolingOverride ?? 'last', steps: [], dimension: hidden, refusal: e.message };
  }
}

/** modules.json's entries, checked to be ones weft runs in an order it can run them; null when there is none. */
export function readModules(modelDir: string): ModuleEntry[] | null {
  const file = join(modelDir, 'modules.json');
  if (!existsSync(file)) return null;
  const list = readJson(file);
  if (!Array.isArray(list)) throw new SentenceTransformersError(`${file} must be a list of modules`);
  const entries = list.map((m, i) => {
    const { type, path } = (m ?? {}) as { type?: unknown; path?: unknown };
    if (typeof type !== 'string' || typeof path !== 'string') {
      throw new SentenceTransformersError(`${file}: module ${i} needs a string "type" and "path"`);
    }
    return { type, path };
  });
  const kinds = entries.map((m) => moduleKind(m.type, file));
  // Transformer, then Pooling, then Dense / Normalize: what sentence-transformers' embedding models are.
  const pooling = kinds.indexOf('Pooling');
  if (kinds[0] !== 'Transformer' || kinds.lastIndexOf('Transformer') !== 0 || pooling !== kinds.lastIndexOf('Pooling') ||
    (pooling !== -1 && pooling !== 1) || (pooling === -1 && kinds.length > 1)) {
    throw new SentenceTransformersError(`${file} lists ${kinds.join(' → ')}; weft runs Transformer → Pooling → Dense/Normalize`);
  }
  return entries;
}

function moduleKind(type: string, file: string): string {
  const kind = type.slice(type.lastIndexOf('.') + 1);
  if (!['Transformer', 'Pooling', 'Dense', 'Normalize'].includes(kind)) {
    throw new SentenceTransformersError(`${file} names the module '${type}', which weft does not run (it runs ` +
      'Transformer, Pooling, Dense and Normalize): serve this model with sentence-transformers');
  }
  return kind;
}

/** The Pooling module's mode; 'last' when modules.json has no Pooling module. */
function configuredPooling(modelDir: string, modules: ModuleEntry[], hidden: number): Pooling {
  const entry = modules.find((m) => m.type.endsWith('.Pooling') || m.type === 'Pooling');
  if (!entry) return 'last';
  const file = join(modelDir, entry.path, 'config.json');
  if (!existsSync(file)) throw new SentenceTransformersError(`${file} is missing: modules.json names a Pooling module there`);
  const cfg = readJson(file) as Record<string, unknown>;
  if (typeof cfg.word_embedding_dimension === 'number' && cfg.word_embedding_dimension !== hidden) {
    throw new SentenceTransformersError(`${file}: word_embedding_dimension ${cfg.word_embedding_dimension} is not the ` +
      `model's hidden size, ${hidden}`);
  }
  const on = typeof cfg.pooling_mode === 'string' ? [cfg.pooling_mode]
    : Object.keys(POOLING_KEYS).filter((k) => cfg[k] === true).map((k) => POOLING_KEYS[k]!);
  if (on.length !== 1) {
    throw new SentenceTransformersError(on.length === 0 ? `${file} turns on no pooling_mode_*`
      : `${file} pools by ${on.join(' + ')} at once (concatenated); weft pools one way: pick it with --pooling-type`);
  }
  const mode = SERVED_POOLING[on[0]!];
  if (!mode) {
    throw new SentenceTransformersError(`this model's sentence-transformers config pools by '${on[0]}'; weft pools by ` +
      "'lasttoken', 'mean', 'max' or 'cls' only (--pooling-type last|mean|max|cls picks one instead)");
  }
  return mode;
}

/** The Dense and Normalize modules after the pooling, in order, each Dense checked to take the previous width. */
function poolSteps(modelDir: string, modules: ModuleEntry[], hidden: number): PoolStep[] {
  const steps: PoolStep[] = [];
  let width = hidden;
  for (const m of modules) {
    if (m.type.endsWith('Normalize')) steps.push({ kind: 'normalize' });
    if (!m.type.endsWith('Dense')) continue;
    const dense = readDense(join(modelDir, m.path), m.path);
    if (dense.inFeatures !== width) {
      throw new SentenceTransformersError(`${m.path}/config.json: in_features ${dense.inFeatures}, but the vector it ` +
        `gets has ${width} values`);
    }
    width = dense.outFeatures;
    steps.push(dense);
  }
  return steps;
}

/** One Dense module's directory: config.json and the weights (model.safetensors, else pytorch_model.bin). */
export function readDense(dir: string, path: string): DenseLayer {
  const file = join(dir, 'config.json');
  if (!existsSync(file)) throw new SentenceTransformersError(`${file} is missing: modules.json names a Dense module there`);
  const cfg = readJson(file) as Record<string, unknown>;
  const size = (key: string): number => {
    const v = cfg[key];
    if (!Number.isInteger(v) || (v as number) < 1) throw new SentenceTransformersError(`${file}: ${key} must be a positive integer`);
    return v as number;
  };
  const inFeatures = size('in_features'), outFeatures = size('out_features');
  // sentence-transformers' Dense defaults: a bias, and Tanh.
  const name = cfg.activation_function ?? 'torch.nn.modules.activation.Tanh';
  const activation = typeof name === 'string' ? ACTIVATIONS[name] : undefined;
  if (!activation) {
    throw new SentenceTransformersError(`${file}: activation_function ${JSON.stringify(name)} is not supported ` +
      `(${Object.keys(ACTIVATIONS).join(', ')})`);
  }
  const hasBias = cfg.bias !== false;
  const tensors = denseTensors(dir);
  const weight = tensors.get('linear.weight');
  if (!weight || weight.shape.join() !== [outFeatures, inFeatures].join()) {
    throw new SentenceTransformersError(`${dir}: 'linear.weight' must be [${outFeatures}, ${inFeatures}] ` +
      `(out_features, in_features), found ${weight ? `[${weight.shape.join(', ')}]` : 'none'}`);
  }
  const bias = tensors.get('linear.bias') ?? null;
  if (hasBias !== (bias !== null) || (bias && bias.shape.join() !== String(outFeatures))) {
    throw new SentenceTransformersError(`${dir}: config.json says bias ${hasBias}, but 'linear.bias' is ` +
      `${bias ? `[${bias.shape.join(', ')}]` : 'missing'}`);
  }
  return { kind: 'dense', path, inFeatures, outFeatures, weight: weight.data, bias: bias?.data ?? null, activation };
}

function denseTensors(dir: string): Map<string, { shape: number[]; data: Float32Array }> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  const st = join(dir, 'model.safetensors'), bin = join(dir, 'pytorch_model.bin');
  if (!existsSync(st) && !existsSync(bin)) {
    throw new SentenceTransformersError(`${dir} has no model.safetensors or pytorch_model.bin (the Dense module's weights)`);
  }
  try {
    if (existsSync(st)) {
      const f = SafetensorsFile.open(st);
      try {
        for (const key of f.names()) out.set(key, { shape: f.info(key).shape, data: f.readF32(key) });
      } finally {
        f.close();
      }
    } else {
      for (const [key, t] of loadTorchBin(bin)) out.set(key, { shape: t.shape, data: t.data });
    }
  } catch (e) {  // an unreadable file refuses the embeddings, like any other config problem, not the launch
    throw new SentenceTransformersError(`${dir}: cannot read the Dense weights: ${(e as Error).message}`);
  }
  return out;
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new SentenceTransformersError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/** The pooled vector through the pipeline's Dense and Normalize steps. */
export function applyPoolSteps(steps: readonly PoolStep[], pooled: Float32Array): Float32Array {
  let v = pooled;
  for (const step of steps) v = step.kind === 'dense' ? dense(step, v) : l2Normalize(v);
  return v;
}

function dense(d: DenseLayer, x: Float32Array): Float32Array {
  if (x.length !== d.inFeatures) throw new Error(`${d.path}: takes ${d.inFeatures} values, got ${x.length}`);
  const y = new Float32Array(d.outFeatures);
  for (let o = 0; o < d.outFeatures; o++) {
    let s = d.bias ? d.bias[o]! : 0;
    const row = o * d.inFeatures;
    for (let i = 0; i < d.inFeatures; i++) s += d.weight[row + i]! * x[i]!;
    y[o] = d.activation === 'tanh' ? Math.tanh(s) : s;
  }
  return y;
}

/** x / max(‖x‖, 1e-12), as torch.nn.functional.normalize (sentence-transformers' Normalize). */
export function l2Normalize(x: Float32Array): Float32Array {
  let sq = 0;
  for (const v of x) sq += v * v;
  const norm = Math.max(Math.sqrt(sq), 1e-12);
  return x.map((v) => v / norm);
}

/**
 * The pooling a sentence-transformers model directory names (modules.json's Pooling module's config.json, its
 * `pooling_mode_*` set true, `_token(s)` dropped), e.g. 'lasttoken', 'mean' or 'cls+mean'; null when it names none.
 */
export function sentenceTransformersPooling(modelDir: string): string | null {
  try {
    const modules = JSON.parse(readFileSync(join(modelDir, 'modules.json'), 'utf8')) as { type?: string; path?: string }[];
    const pooling = modules.find((m) => typeof m.type === 'string' && m.type.endsWith('.Pooling'));
    if (!pooling || typeof pooling.path !== 'string') return null;
    const file = join(modelDir, pooling.path, 'config.json');
    if (!existsSync(file)) return null;
    const cfg = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    const on = Object.keys(cfg).filter((k) => k.startsWith('pooling_mode_') && cfg[k] === true).map((k) => k.slice('pooling_mode_'.length).replace(/_tokens?$/, ''));
    return on.length === 0 ? null : on.join('+');
  } catch {
    return null;
  }
}
