// Task-arithmetic merges of same-shaped tensors (LoRAX `utils/merges/{strategies,utils}.py`, itself PEFT's
// `utils/merge_utils.py`): linear, TIES (magnitude prune → sign election → disjoint mean), DARE (random prune with
// 1/density rescale) and DARE-TIES. Inputs are flat float32 tensors; arithmetic is done in float64.

export type TaskStrategy = 'linear' | 'ties' | 'dare_linear' | 'dare_ties';
export type MajoritySignMethod = 'total' | 'frequency';

/** A stream of uniform 32-bit integers (see seededUint32). */
export type Uint32Source = () => number;

/**
 * Keeps the `floor(density · n)` entries of largest magnitude and zeroes the rest (PEFT/LoRAX
 * `magnitude_based_pruning`; `int()` truncates exactly as Math.floor does here). torch.topk leaves ties at the
 * cut unordered; here the lower index wins, so the result is deterministic. density ≥ 1 keeps everything.
 */
export function magnitudePrune(t: Float32Array, density: number): Float32Array {
  if (density >= 1) return t;
  const n = t.length;
  const k = Math.floor(density * n);
  const out = new Float32Array(n);
  if (k === 0) return out;
  const mags = new Float32Array(n);
  for (let i = 0; i < n; i++) mags[i] = Math.abs(t[i]!);
  const cut = selectAscending(mags, n - k); // the k-th largest magnitude
  let above = 0;
  for (let i = 0; i < n; i++) {
    if (Math.abs(t[i]!) > cut) {
      out[i] = t[i]!;
      above++;
    }
  }
  // entries equal to the cut fill the remaining places, lowest index first
  for (let i = 0, left = k - above; left > 0 && i < n; i++) {
    if (Math.abs(t[i]!) === cut) {
      out[i] = t[i]!;
      left--;
    }
  }
  return out;
}

/** The value that would sit at index `at` if `xs` were sorted ascending (quickselect; reorders `xs`). */
function selectAscending(xs: Float32Array, at: number): number {
  let lo = 0, hi = xs.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    // median of three as the pivot keeps sorted or constant runs from going quadratic
    const a = xs[lo]!, b = xs[mid]!, c = xs[hi]!;
    const pivot = a < b ? (b < c ? b : a < c ? c : a) : (a < c ? a : b < c ? c : b);
    let i = lo, j = hi;
    while (i <= j) {
      while (xs[i]! < pivot) i++;
      while (xs[j]! > pivot) j--;
      if (i <= j) {
        const tmp = xs[i]!;
        xs[i] = xs[j]!;
        xs[j] = tmp;
        i++;
        j--;
      }
    }
    if (at <= j) hi = j;
    else if (at >= i) lo = i;
    else return xs[at]!;
  }
  return xs[at]!;
}

/**
 * DARE: keeps each entry with probability `density` and divides the kept ones by `density`, so every entry keeps
 * its expected value (PEFT `random_pruning(rescale=True)`; LoRAX computes the division and drops its result).
 * density ≥ 1 keeps everything unchanged and draws nothing.
 */
export function randomPrune(t: Float32Array, density: number, next: Uint32Source): Float32Array {
  if (density >= 1) return t;
  const out = new Float32Array(t.length);
  const threshold = density * 2 ** 32; // keep when u < density, u uniform on [0, 1) in steps of 2⁻³²
  for (let i = 0; i < t.length; i++) if (next() < threshold) out[i] = t[i]! / density;
  return out;
}

/**
 * The elected sign of every entry across the (unweighted) task tensors: `total` sums the values, `frequency`
 * sums their signs; a sum ≥ 0 elects +1, else −1 (PEFT/LoRAX `calculate_majority_sign_mask`).
 */
export function electSigns(tensors: Float32Array[], method: MajoritySignMethod): Int8Array {
  const n = tensors[0]!.length;
  const sums = new Float64Array(n);
  for (const t of tensors) {
    if (method === 'total') for (let j = 0; j < n; j++) sums[j] += t[j]!;
    else for (let j = 0; j < n; j++) sums[j] += t[j]! > 0 ? 1 : t[j]! < 0 ? -1 : 0;
  }
  const signs = new Int8Array(n);
  for (let j = 0; j < n; j++) signs[j] = sums[j]! >= 0 ? 1 : -1;
  return signs;
}

/**
 * Disjoint merge: per entry, the sum of the weighted values whose sign equals the elected one, divided by how many
 * there are (at least 1). A zero has sign 0 and never counts (PEFT/LoRAX `disjoint_merge`).
 */
export function disjointMerge(tensors: Float32Array[], weights: number[], signs: Int8Array): Float32Array {
  const n = signs.length;
  const sums = new Float64Array(n);
  const counts = new Float64Array(n);
  tensors.forEach((t, i) => {
    const w = weights[i]!;
    for (let j = 0; j < n; j++) {
      const v = t[j]!;
      if ((v > 0 && signs[j] === 1) || (v < 0 && signs[j] === -1)) {
        sums[j] += w * v;
        counts[j]++;
      }
    }
  });
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) out[j] = sums[j]! / Math.max(counts[j]!, 1);
  return out;
}

function weightedSum(tensors: Float32Array[], weights: number[]): Float32Array {
  const n = tensors[0]!.length;
  const sums = new Float64Array(n);
  tensors.forEach((t, i) => {
    const w = weights[i]!;
    for (let j = 0; j < n; j++) sums[j] += w * t[j]!;
  });
  return Float32Array.from(sums);
}

/**
 * Merges same-shaped task tensors with one strategy. `density` is in (0, 1] (checked by the caller) and unused by
 * linear; `rng(i)` gives task tensor i its own random stream (used by dare_* only).
 */
export function mergeTaskTensors(
  tensors: Float32Array[], weights: number[], strategy: TaskStrategy,
  opts: { density: number; majoritySignMethod: MajoritySignMethod; rng: (i: number) => Uint32Source },
): Float32Array {
  switch (strategy) {
    case 'linear':
      return weightedSum(tensors, weights);
    case 'dare_linear':
      return weightedSum(tensors.map((t, i) => randomPrune(t, opts.density, opts.rng(i))), weights);
    case 'ties':
    case 'dare_ties': {
      const pruned = strategy === 'ties'
        ? tensors.map((t) => magnitudePrune(t, opts.density))
        : tensors.map((t, i) => randomPrune(t, opts.density, opts.rng(i)));
      return disjointMerge(pruned, weights, electSigns(pruned, opts.majoritySignMethod));
    }
    default: {
      const never: never = strategy;
      throw new Error(`unknown task strategy ${String(never)}`);
    }
  }
}

// A 32-bit finalizer (MurmurHash3 fmix32) so that nearby inputs give unrelated states.
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function hashString(s: string, basis: number): number {
  let h = basis >>> 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return fmix32(h ^ s.length);
}

/**
 * A deterministic stream of uniform uint32s for a label (e.g. seed + tensor name): xoshiro128** with its 128-bit
 * state hashed from the label. Each tensor gets its own stream, so results do not depend on iteration order.
 */
export function seededUint32(label: string): Uint32Source {
  let s0 = hashString(label, 0x811c9dc5);
  let s1 = hashString(label, 0x9e3779b9);
  let s2 = hashString(label, 0x243f6a88);
  let s3 = hashString(label, 0xb7e15162);
  if ((s0 | s1 | s2 | s3) === 0) s0 = 1;
  return () => {
    const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl(s3, 11);
    return r;
  };
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
