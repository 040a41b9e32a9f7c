// Per-request adapter merging (`merged_adapters`, DESIGN.md §4): several loaded adapters → ONE LoadedAdapter the
// normal loading path installs. The result's config gives every module scale exactly 1; each source adapter's
// per-module scale (loraScaleFor: alpha/r, rsLoRA, rank_pattern, alpha_pattern) is folded into its lora_B first.
//
// - `cat` is exact: A = [A₁; A₂; …], B = [w₁s₁B₁ | w₂s₂B₂ | …], so the module delta is Σᵢ wᵢsᵢBᵢAᵢ. Any ranks.
// - `linear`, `ties`, `dare_linear`, `dare_ties` are LoRAX's (`lorax_server/utils/merges/strategies.py`): lora_A
//   and lora_B are merged separately, element-wise, with the same weights, so every module needs one rank across
//   the adapters that have it. With equal scales this equals LoRAX's s·merge(B)·merge(A); with differing scales
//   LoRAX silently uses the first adapter's, here each adapter keeps its own. DARE rescales kept entries by
//   1/density (LoRAX drops that division), and ties/dare_* refuse a missing density (LoRAX prunes everything).
// - A module present in only some adapters is merged from just those adapters, with their weights (as LoRAX).
// - At least 2 adapters: LoRAX serves a single id as a plain adapter and ignores weights and strategy, so a
//   1-adapter "merge" here would silently mean something else; callers load a single adapter directly.
import type { MergeRecipe } from '../../protocol/index.js';
import { loraScaleFor, parseLoraTensorKey, type LoadedAdapter, type LoraConfig } from './peft-config.js';
import { mergeTaskTensors, seededUint32, type MajoritySignMethod, type TaskStrategy } from './merge-strategies.js';

export class MergeError extends Error {
  override readonly name = 'MergeError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export type MergeStrategyName = TaskStrategy | 'cat';

export interface MergeSpec {
  /** One weight per adapter, in order. */
  weights: number[];
  strategy: MergeStrategyName;
  /** Fraction of entries kept, in (0, 1]; required by ties and dare_*, checked when given to linear and cat. */
  density: number | null;
  /** Sign election of ties / dare_ties. */
  majoritySignMethod: MajoritySignMethod;
  /** Seeds the DARE pruning masks: the same spec merges to the same tensors. */
  seed: number;
}

type Tensor = { shape: number[]; data: Float32Array };
interface Term { adapter: number; a: Tensor; b: Tensor; rank: number; scale: number }

const STRATEGIES: readonly MergeStrategyName[] = ['linear', 'ties', 'dare_linear', 'dare_ties', 'cat'];
const usesDensity = (s: MergeStrategyName): boolean => s !== 'linear' && s !== 'cat';
const usesSigns = (s: MergeStrategyName): boolean => s === 'ties' || s === 'dare_ties';
const usesSeed = (s: MergeStrategyName): boolean => s === 'dare_linear' || s === 'dare_ties';

/** Merges ≥ 2 loaded adapters into one (see the file comment); throws MergeError on an invalid spec or adapters. */
/** The MergeSpec of a protocol merge recipe (its dirs are the adapters, in order). */
export function mergeSpecOf(r: MergeRecipe): MergeSpec {
  return { weights: r.weights, strategy: r.strategy, density: r.density ?? null, majoritySignMethod: r.majoritySignMethod,
    seed: r.seed };
}

export function mergeAdapters(adapters: LoadedAdapter[], spec: MergeSpec): LoadedAdapter {
  checkSpec(adapters.length, spec);
  // PEFT's add_weighted_adapter refuses DoRA too: a weighted sum of LoRA pairs says nothing about the magnitudes.
  const dora = adapters.findIndex((a) => a.config.useDora);
  if (dora >= 0) throw new MergeError(`adapter ${dora} is a DoRA adapter (use_dora): DoRA adapters cannot be merged per request; serve it on its own`);
  // A stacked-experts pair keeps each expert's rank-r block in a layout of its own (r·E rows, expert-interleaved B
  // columns: expert-lora.ts); concatenating or averaging such pairs would mix experts.
  const stacked = adapters.findIndex((a) => a.config.targetParameters.length > 0);
  if (stacked >= 0) {
    throw new MergeError(`adapter ${stacked} has LoRA on MoE experts through target_parameters, which cannot be merged per ` +
      `request; serve it on its own`);
  }
  const modules = collectTerms(adapters);
  checkShapes(modules);
  const { strategy } = spec;
  if (strategy !== 'cat') checkEqualRanks(modules, strategy);

  const tensors = new Map<string, Tensor>();
  const ranks = new Map<string, number>();
  for (const [path, terms] of modules) {
    const { a, b } = strategy === 'cat' ? concatTerms(terms, spec.weights) : taskMerge(path, terms, spec, strategy);
    tensors.set(`base_model.model.${path}.lora_A.weight`, a);
    tensors.set(`base_model.model.${path}.lora_B.weight`, b);
    ranks.set(path, a.shape[0]!);
  }
  return { config: unitScaleConfig(ranks, adapters[0]!.config), tensors };
}

/**
 * A canonical cache key for a merge: ids in the given order, weights, strategy, and density / sign method / seed
 * only where the strategy uses them (elsewhere null), since those cannot change the merged tensors.
 */
export function mergeSpecKey(ids: string[], spec: MergeSpec): string {
  const s = spec.strategy;
  return JSON.stringify({
    ids,
    weights: spec.weights,
    strategy: s,
    density: usesDensity(s) ? spec.density : null,
    majoritySignMethod: usesSigns(s) ? spec.majoritySignMethod : null,
    seed: usesSeed(s) ? spec.seed : null,
  });
}

function checkSpec(count: number, spec: MergeSpec): void {
  const { weights, strategy, density, majoritySignMethod, seed } = spec;
  if (count < 2) {
    throw new MergeError(`a merge needs at least 2 adapters, got ${count}; a single adapter is served as-is ` +
      `(request it directly instead of through merged_adapters)`);
  }
  if (!STRATEGIES.includes(strategy)) {
    throw new MergeError(`unknown merge strategy ${JSON.stringify(strategy)}; expected one of ${STRATEGIES.join(', ')}`);
  }
  if (!Array.isArray(weights) || weights.length !== count) {
    throw new MergeError(`weights has ${Array.isArray(weights) ? weights.length : 'no'} entries for ${count} ` +
      `adapters; give exactly one weight per adapter`);
  }
  const bad = weights.findIndex((w) => typeof w !== 'number' || !Number.isFinite(w));
  if (bad >= 0) throw new MergeError(`weights[${bad}] is ${String(weights[bad])}; weights must be finite numbers`);
  if (density === null || density === undefined) {
    if (usesDensity(strategy)) {
      throw new MergeError(`density is required for ${strategy}: the fraction of each tensor to keep, in (0, 1]`);
    }
  } else if (typeof density !== 'number' || !(density > 0 && density <= 1)) {
    throw new MergeError(`density is ${String(density)}; it must be in (0, 1] (the fraction of each tensor to keep)`);
  }
  if (majoritySignMethod !== 'total' && majoritySignMethod !== 'frequency') {
    throw new MergeError(`unknown majority_sign_method ${JSON.stringify(majoritySignMethod)}; expected total or frequency`);
  }
  if (!Number.isSafeInteger(seed)) throw new MergeError(`seed is ${String(seed)}; it must be an integer`);
}

/** Module path → its LoRA pair in each adapter that has it, in adapter order (modules in first-seen order). */
function collectTerms(adapters: LoadedAdapter[]): Map<string, Term[]> {
  const modules = new Map<string, Term[]>();
  adapters.forEach(({ config, tensors }, adapter) => {
    const pairs = new Map<string, { A?: Tensor; B?: Tensor }>();
    for (const [key, t] of tensors) {
      const { modulePath, kind } = parseLoraTensorKey(key);
      if (kind === 'M') continue;  // refused above
      if (kind === 'BASE') throw new MergeError(`adapter ${adapter}: '${key}' was not checked against the base model's lm_head`);
      if (kind === 'TOKENS') throw new MergeError(`adapter ${adapter}: trainable tokens '${key}' were not converted to LoRA pairs`);
      if (kind === 'HEAD') continue;  // loadAdapterDir drops a classifier's head; a merge is for generation
      const p = pairs.get(modulePath) ?? {};
      p[kind] = t;
      pairs.set(modulePath, p);
    }
    for (const [path, { A, B }] of pairs) {
      if (!A || !B || A.shape.length !== 2 || B.shape.length !== 2 || A.shape[0] !== B.shape[1]) {
        throw new MergeError(`adapter ${adapter}: module '${path}' does not hold a LoRA pair (lora_A [r, in] and ` +
          `lora_B [out, r])`);
      }
      const terms = modules.get(path) ?? [];
      terms.push({ adapter, a: A, b: B, rank: A.shape[0]!, scale: loraScaleFor(config, path).scale });
      modules.set(path, terms);
    }
  });
  return modules;
}

function checkShapes(modules: Map<string, Term[]>): void {
  for (const [path, terms] of modules) {
    const first = terms[0]!;
    for (const t of terms.slice(1)) {
      if (t.a.shape[1] !== first.a.shape[1] || t.b.shape[0] !== first.b.shape[0]) {
        throw new MergeError(`module '${path}' has different shapes in adapter ${first.adapter} (lora_A ` +
          `[${first.a.shape.join(', ')}], lora_B [${first.b.shape.join(', ')}]) and adapter ${t.adapter} (lora_A ` +
          `[${t.a.shape.join(', ')}], lora_B [${t.b.shape.join(', ')}]); the adapters were made for different base models`);
      }
    }
  }
}

function checkEqualRanks(modules: Map<string, Term[]>, strategy: TaskStrategy): void {
  const unequal = [...modules].filter(([, terms]) => terms.some((t) => t.rank !== terms[0]!.rank));
  if (unequal.length === 0) return;
  const shown = unequal.slice(0, 4).map(([path, terms]) => `'${path}' (ranks ${terms.map((t) => t.rank).join(', ')})`);
  const more = unequal.length > 4 ? ` and ${unequal.length - 4} more` : '';
  throw new MergeError(`strategy ${strategy} merges lora_A and lora_B element-wise, so each module needs the same ` +
    `rank in every adapter; these modules differ: ${shown.join(', ')}${more}. Use strategy cat to merge adapters ` +
    `of different ranks`);
}

/** Exact: stacks the A rows and places each wᵢsᵢBᵢ side by side, so B·A = Σᵢ wᵢsᵢBᵢAᵢ. */
function concatTerms(terms: Term[], weights: number[]): { a: Tensor; b: Tensor } {
  const inDim = terms[0]!.a.shape[1]!;
  const outDim = terms[0]!.b.shape[0]!;
  const rank = terms.reduce((n, t) => n + t.rank, 0);
  const a = new Float32Array(rank * inDim);
  const b = new Float32Array(outDim * rank);
  let off = 0;
  for (const t of terms) {
    a.set(t.a.data, off * inDim);
    const f = weights[t.adapter]! * t.scale;
    for (let o = 0; o < outDim; o++) {
      for (let c = 0; c < t.rank; c++) b[o * rank + off + c] = f * t.b.data[o * t.rank + c]!;
    }
    off += t.rank;
  }
  return { a: { shape: [rank, inDim], data: a }, b: { shape: [outDim, rank], data: b } };
}

/** LoRAX's element-wise merge of the A's and of the (scale-folded) B's of one module. */
function taskMerge(path: string, terms: Term[], spec: MergeSpec, strategy: TaskStrategy): { a: Tensor; b: Tensor } {
  const weights = terms.map((t) => spec.weights[t.adapter]!);
  const opts = (kind: 'A' | 'B') => ({
    density: spec.density ?? 1,
    majoritySignMethod: spec.majoritySignMethod,
    rng: (i: number) => seededUint32(`${spec.seed}\u0000${path}\u0000${kind}\u0000${terms[i]!.adapter}`),
  });
  const folded = terms.map((t) => {
    const b = new Float32Array(t.b.data.length);
    for (let j = 0; j < b.length; j++) b[j] = t.scale * t.b.data[j]!;
    return b;
  });
  const a = mergeTaskTensors(terms.map((t) => t.a.data), weights, strategy, opts('A'));
  const b = mergeTaskTensors(folded, weights, strategy, opts('B'));
  return { a: { shape: [...terms[0]!.a.shape], data: a }, b: { shape: [...terms[0]!.b.shape], data: b } };
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * A config whose scale is exactly 1 for every module: r = lora_alpha = the most common merged rank, and for each
 * other module rank_pattern / alpha_pattern entries keyed by its escaped full path (a key matches its path and any
 * path ending in '.<path>'). Keys go longest first, so a path's own key matches it before any shorter one.
 */
function unitScaleConfig(ranks: Map<string, number>, first: LoraConfig): LoraConfig {
  const counts = new Map<number, number>();
  for (const r of ranks.values()) counts.set(r, (counts.get(r) ?? 0) + 1);
  const [r] = [...counts].sort((x, y) => y[1] - x[1] || x[0] - y[0])[0]!;
  const odd = [...ranks.keys()].filter((p) => ranks.get(p) !== r);
  // A default-rank path that ends in '.<odd path>' would match that key, so it gets its own entry too.
  const special = [...ranks].filter(([p, rank]) => rank !== r || odd.some((q) => p.endsWith(`.${q}`)))
    .sort(([p], [q]) => q.length - p.length || (p < q ? -1 : p > q ? 1 : 0));
  const rankPattern: Record<string, number> = {};
  for (const [path, rank] of special) rankPattern[escapeRegExp(path)] = rank;
  const names = new Set([...ranks.keys()].map((p) => p.slice(p.lastIndexOf('.') + 1)));
  const config: LoraConfig = {
    r,
    loraAlpha: r,
    useRslora: false,
    rankPattern,
    alphaPattern: { ...rankPattern },
    targetModules: [...names].sort(),
    layersToTransform: null,
    layersPattern: null,
    trainableTokens: null,  // the sources' tokens were LoRA pairs by the time they were merged
    targetParameters: [],
    classifierHead: false,
    fanInFanOut: first.fanInFanOut,
    useDora: false,
    baseModelNameOrPath: first.baseModelNameOrPath,
    revision: first.revision,
  };
  for (const [path, rank] of ranks) {
    const got = loraScaleFor(config, path);
    if (got.rank !== rank || got.scale !== 1) {
      throw new Error(`internal: merged config gives '${path}' rank ${got.rank} scale ${got.scale}, want ${rank} and 1`);
    }
  }
  return config;
}
