// The request mix of the serve scenario, as pure functions of a seed: S-LoRA-style power-law adapter
// popularity, Poisson arrivals, and prompt / output lengths drawn uniformly from ranges.
import { prng } from './synthetic.js';

/** Uniform numbers in [0, 1) from a seed. */
export function uniform01(seed: number): () => number {
  const r = prng(seed);
  return () => r() + 0.5;
}

/** P(adapter i) ∝ (i + 1)^-alpha, i = 0 … n-1 (alpha 0: uniform; S-LoRA uses alpha ≈ 1). */
export function powerLawWeights(n: number, alpha: number): number[] {
  if (!(n >= 1)) throw new RangeError(`power law over ${n} adapters`);
  const w = Array.from({ length: n }, (_, i) => (i + 1) ** -alpha);
  const total = w.reduce((s, v) => s + v, 0);
  return w.map((v) => v / total);
}

/** Draws adapter indices with powerLawWeights(n, alpha), by binary search on the cumulative weights. */
export function powerLawSampler(n: number, alpha: number, u: () => number): () => number {
  const cdf: number[] = [];
  let acc = 0;
  for (const p of powerLawWeights(n, alpha)) cdf.push((acc += p));
  return () => {
    const x = u() * acc;
    let lo = 0, hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! > x) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
}

/** An exponential inter-arrival time (seconds) at `rate` per second: -ln(1 - U) / rate. */
export function exponentialGap(rate: number, u: () => number): number {
  if (!(rate > 0)) throw new RangeError(`Poisson rate must be > 0, got ${rate}`);
  return -Math.log(1 - u()) / rate;
}

/** Arrival times (ms from the start) of `count` requests of a Poisson process at `rate` req/s. */
export function poissonArrivals(count: number, rate: number, u: () => number): number[] {
  const at: number[] = [];
  let t = 0;
  for (let i = 0; i < count; i++) at.push((t += exponentialGap(rate, u) * 1e3));
  return at;
}

export function uniformInt(lo: number, hi: number, u: () => number): number {
  return lo + Math.floor(u() * (hi - lo + 1));
}

export interface PlannedRequest {
  /** Open loop: send at this many ms after the start. Closed loop: 0 (sent when a client is free). */
  atMs: number;
  /** null: the base model. */
  adapter: string | null;
  prompt: string;
  promptWords: number;
  maxNewTokens: number;
}

export interface MixOptions {
  count: number;
  /** Requests per second; 0: closed loop (no arrival times). */
  rate: number;
  /** Adapter ids by popularity rank; empty: every request uses the base model. */
  adapters: readonly string[];
  alpha: number;
  promptWords: readonly [number, number];
  outputTokens: readonly [number, number];
  /** Words every prompt starts with (one fixed draw: a shared system prompt); 0: none. */
  sharedPrefixWords?: number;
  seed: number;
}

/** The words of generated prompts (the preset models' tokenizer has each as one token). */
export const PROMPT_WORDS = ['the', 'model', 'serves', 'many', 'adapters', 'in', 'one', 'batch', 'and', 'each', 'request', 'names', 'its', 'own'];

export function planRequests(o: MixOptions): PlannedRequest[] {
  const u = uniform01(o.seed);
  const pick = o.adapters.length ? powerLawSampler(o.adapters.length, o.alpha, u) : null;
  const arrivals = o.rate > 0 ? poissonArrivals(o.count, o.rate, u) : new Array<number>(o.count).fill(0);
  const words = (n: number): string[] => Array.from({ length: n }, () => PROMPT_WORDS[Math.floor(u() * PROMPT_WORDS.length)]!);
  const shared = words(o.sharedPrefixWords ?? 0);
  return arrivals.map((atMs) => {
    const own = uniformInt(o.promptWords[0], o.promptWords[1], u);
    const prompt = [...shared, ...words(own)].join(' ');
    return { atMs, adapter: pick ? o.adapters[pick()]! : null, prompt, promptWords: shared.length + own,
      maxNewTokens: uniformInt(o.outputTokens[0], o.outputTokens[1], u) };
  });
}
