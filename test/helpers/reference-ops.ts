// Naive float64 reference versions of the native CPU ops (kernels/index.ts `cpuOps`), written from the
// math with plain loops so each one is obviously correct. Inputs are read as given (the tests pass the
// same Float32Array they give the addon), every intermediate is a JS number (float64).
// Also: a tiny seeded PRNG and input generators for the op tests.

export type Vec = ArrayLike<number>;

// ---------------------------------------------------------------------------------------------------
// Seeded PRNG (xorshift32) and generators.

export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = (seed >>> 0) || 0x9e3779b9;
    for (let i = 0; i < 4; i++) this.nextU32();
  }
  nextU32(): number {
    let x = this.s;
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    this.s = x;
    return x;
  }
  /** Uniform in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }
  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }
  /** Integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  f32(n: number, lo = -1, hi = 1): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = this.uniform(lo, hi);
    return a;
  }
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      const t = a[i]!; a[i] = a[j]!; a[j] = t;
    }
    return a;
  }
}

// ---------------------------------------------------------------------------------------------------
// Dense ops.

/** y[t, o] = sum_i x[t, i] * w[o, i] (+ bias[o]); w is [out, in] row-major. */
export function refGemm(x: Vec, tokens: number, inDim: number, w: Vec, outDim: number, bias: Vec | null): Float64Array {
  const y = new Float64Array(tokens * outDim);
  for (let t = 0; t < tokens; t++) {
    for (let o = 0; o < outDim; o++) {
      let s = 0;
      for (let i = 0; i < inDim; i++) s += x[t * inDim + i]! * w[o * inDim + i]!;
      y[t * outDim + o] = s + (bias ? bias[o]! : 0);
    }
  }
  return y;
}

/** Each row: x / sqrt(mean(x^2) + eps) * weight. */
export function refRmsNorm(x: Vec, weight: Vec, eps: number): Float64Array {
  const h = weight.length;
  const y = new Float64Array(x.length);
  for (let r = 0; r * h < x.length; r++) {
    let ss = 0;
    for (let i = 0; i < h; i++) ss += x[r * h + i]! ** 2;
    const inv = 1 / Math.sqrt(ss / h + eps);
    for (let i = 0; i < h; i++) y[r * h + i] = x[r * h + i]! * inv * weight[i]!;
  }
  return y;
}

/** Each row: (x - mean) / sqrt(var + eps) * weight + bias, var the biased (population) variance. */
export function refLayerNorm(x: Vec, weight: Vec, bias: Vec, eps: number): Float64Array {
  const h = weight.length;
  const y = new Float64Array(x.length);
  for (let r = 0; r * h < x.length; r++) {
    let mean = 0;
    for (let i = 0; i < h; i++) mean += x[r * h + i]!;
    mean /= h;
    let v = 0;
    for (let i = 0; i < h; i++) v += (x[r * h + i]! - mean) ** 2;
    v /= h;
    const inv = 1 / Math.sqrt(v + eps);
    for (let i = 0; i < h; i++) y[r * h + i] = (x[r * h + i]! - mean) * inv * weight[i]! + bias[i]!;
  }
  return y;
}

/**
 * Rotary embedding, "rotate half" layout, on the first rotaryDim dims of every head of x [tokens, heads, headDim]:
 * for i < rotaryDim/2, with a = x[i], b = x[i + rotaryDim/2], theta = pos * invFreq[i]:
 *   x'[i] = (a cos theta - b sin theta) * f,  x'[i + half] = (b cos theta + a sin theta) * f.
 * Dims >= rotaryDim are unchanged. theta is rounded to float32 (transformers computes freqs = pos * inv_freq in
 * fp32); everything after that is float64.
 */
export function refRope(x: Vec, heads: number, headDim: number, rotaryDim: number, positions: Vec, invFreq: Vec,
  attentionFactor: number): Float64Array {
  const y = Float64Array.from(x as ArrayLike<number>);
  const half = rotaryDim / 2;
  for (let t = 0; t < positions.length; t++) {
    for (let h = 0; h < heads; h++) {
      const base = (t * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const theta = Math.fround(positions[t]! * invFreq[i]!);
        const c = Math.cos(theta) * attentionFactor;
        const s = Math.sin(theta) * attentionFactor;
        const a = x[base + i]!;
        const b = x[base + i + half]!;
        y[base + i] = a * c - b * s;
        y[base + i + half] = b * c + a * s;
      }
    }
  }
  return y;
}

export function sigmoid(v: number): number {
  return 1 / (1 + Math.exp(-v));
}

/** out = silu(gate) * up, silu(g) = g * sigmoid(g). */
export function refSiluMul(gate: Vec, up: Vec): Float64Array {
  const y = new Float64Array(gate.length);
  for (let i = 0; i < gate.length; i++) y[i] = gate[i]! * sigmoid(gate[i]!) * up[i]!;
  return y;
}

/**
 * erf in float64: Maclaurin series for |x| < 3, continued fraction of erfc for |x| >= 3 (erf(6) = 1 in double).
 * Accurate to ~1e-13 over the range the tests use.
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  let r: number;
  if (ax < 3) {
    // erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
    let term = ax; // x^(2n+1) / n! (with sign)
    let sum = ax;
    for (let n = 1; n < 200; n++) {
      term *= -(ax * ax) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    r = (2 / Math.sqrt(Math.PI)) * sum;
  } else if (ax > 6) {
    r = 1;
  } else {
    // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...))))), evaluated bottom-up.
    let f = ax;
    for (let k = 120; k >= 1; k--) f = ax + (k / 2) / f;
    r = 1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  }
  return x < 0 ? -r : r;
}

/** gelu 'tanh' (gelu_new): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); 'erf' (exact): 0.5 x (1 + erf(x / sqrt 2)). */
export function refGelu(x: Vec, kind: 'tanh' | 'erf'): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    y[i] = kind === 'tanh'
      ? 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)))
      : 0.5 * v * (1 + erf(v / Math.SQRT2));
  }
  return y;
}

// ---------------------------------------------------------------------------------------------------
// Paged attention.

export interface RefSeq {
  tokenStart: number;
  numTokens: number;
  contextLen: number;
  blockTable: ArrayLike<number>;
}

/**
 * q [T, heads, headDim]; cache [numBlocks*blockSize, kvHeads*headDim]; logical key j of a sequence lives in cache row
 * blockTable[floor(j / blockSize)] * blockSize + j % blockSize. Query row i of a sequence is at position
 * p = contextLen - numTokens + i and sees keys j <= p, and with slidingWindow > 0 only those with p - j < slidingWindow.
 * Query head h reads kv head floor(h / (heads / kvHeads)). out = softmax(scale * q.k) @ v; rows of no sequence are 0.
 */
export function refPagedAttention(q: Vec, heads: number, kvHeads: number, headDim: number, seqs: RefSeq[],
  kCache: Vec, vCache: Vec, blockSize: number, scale: number, slidingWindow: number): Float64Array {
  const out = new Float64Array(q.length);
  const kvDim = kvHeads * headDim;
  const group = heads / kvHeads;
  for (const seq of seqs) {
    const cacheRow = (j: number) => seq.blockTable[Math.floor(j / blockSize)]! * blockSize + (j % blockSize);
    for (let i = 0; i < seq.numTokens; i++) {
      const row = seq.tokenStart + i;
      const pos = seq.contextLen - seq.numTokens + i;
      const keys: number[] = [];
      for (let j = 0; j <= pos; j++) if (slidingWindow <= 0 || pos - j < slidingWindow) keys.push(j);
      for (let h = 0; h < heads; h++) {
        const kvh = Math.floor(h / group);
        const qOff = (row * heads + h) * headDim;
        const scores = keys.map((j) => {
          const kOff = cacheRow(j) * kvDim + kvh * headDim;
          let s = 0;
          for (let d = 0; d < headDim; d++) s += q[qOff + d]! * kCache[kOff + d]!;
          return s * scale;
        });
        const mx = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - mx));
        const sum = e.reduce((a, b) => a + b, 0);
        for (let k = 0; k < keys.length; k++) {
          const vOff = cacheRow(keys[k]!) * kvDim + kvh * headDim;
          for (let d = 0; d < headDim; d++) out[qOff + d] += (e[k]! / sum) * vCache[vOff + d]!;
        }
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// LoRA.

/**
 * x [T, in], A [rank, in], B [outLen, rank], y [T, yStride]: returns a copy of y with
 * y[t, outOffset + o] += scale * sum_r B[o, r] * (sum_i A[r, i] x[t, i]).
 */
export function refLora(x: Vec, a: Vec, b: Vec, scale: number, y: Vec, yStride: number, outOffset: number,
  rank: number): Float64Array {
  const inDim = a.length / rank;
  const outLen = b.length / rank;
  const tokens = x.length / inDim;
  const res = Float64Array.from(y as ArrayLike<number>);
  for (let t = 0; t < tokens; t++) {
    const h: number[] = [];
    for (let r = 0; r < rank; r++) {
      let s = 0;
      for (let i = 0; i < inDim; i++) s += a[r * inDim + i]! * x[t * inDim + i]!;
      h.push(s);
    }
    for (let o = 0; o < outLen; o++) {
      let s = 0;
      for (let r = 0; r < rank; r++) s += b[o * rank + r]! * h[r]!;
      res[t * yStride + outOffset + o] += scale * s;
    }
  }
  return res;
}

// ---------------------------------------------------------------------------------------------------
// Sampling.

export interface RefSamplingParams {
  temperature: number;
  topK: number;
  topP: number;
  typicalP: number;
  repetitionPenalty: number;
  /** OpenAI's additive penalties on the generated tokens: the last `drawIndex` of penaltyTokens. */
  frequencyPenalty?: number;
  presencePenalty?: number;
  drawIndex?: number;
  logitBias?: { token: number; bias: number }[];
  doSample: boolean;
}

export function refLogSoftmax(logits: Vec): Float64Array {
  let mx = -Infinity;
  for (let i = 0; i < logits.length; i++) mx = Math.max(mx, logits[i]!);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - mx);
  const lse = mx + Math.log(sum);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i]! - lse;
  return out;
}

/** Lowest id among the maxima. */
export function refArgmax(v: Vec): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
}

/**
 * The scores the sampler draws from: repetition penalty on every distinct in-range token of penaltyTokens (a positive
 * score is divided by the penalty, a negative one multiplied), then, when sampling (doSample and temperature > 0),
 * division by the temperature.
 */
export function refProcessedScores(logits: Vec, p: RefSamplingParams, penaltyTokens: Vec): Float64Array {
  const s = Float64Array.from(logits as ArrayLike<number>);
  if (p.repetitionPenalty !== 1) {
    const seen = new Set<number>();
    for (let i = 0; i < penaltyTokens.length; i++) seen.add(penaltyTokens[i]!);
    for (const t of seen) {
      if (t < 0 || t >= s.length) continue;
      s[t] = s[t]! < 0 ? s[t]! * p.repetitionPenalty : s[t]! / p.repetitionPenalty;
    }
  }
  const f = p.frequencyPenalty ?? 0, pr = p.presencePenalty ?? 0;
  if (f !== 0 || pr !== 0) {
    const count = new Map<number, number>();
    const from = Math.max(0, penaltyTokens.length - (p.drawIndex ?? 0));
    for (let i = from; i < penaltyTokens.length; i++) count.set(penaltyTokens[i]!, (count.get(penaltyTokens[i]!) ?? 0) + 1);
    for (const [t, c] of count) if (t >= 0 && t < s.length) s[t] = s[t]! - f * c - pr;
  }
  for (const { token, bias } of p.logitBias ?? []) if (token >= 0 && token < s.length) s[token] = s[token]! + bias;
  if (p.doSample && p.temperature > 0) for (let i = 0; i < s.length; i++) s[i] = s[i]! / p.temperature;
  return s;
}

/** Token ids sorted by descending score, ties by lower id. */
export function refOrder(scores: Vec): number[] {
  const ids = Array.from({ length: scores.length }, (_, i) => i);
  return ids.sort((a, b) => (scores[b]! - scores[a]!) || (a - b));
}

/**
 * The set a sampling draw may return and its renormalised probabilities: top-k (k > 0) keeps the k best; top-p (< 1)
 * keeps the smallest most-likely-first prefix whose mass reaches topP; typical-p (< 1) ranks the survivors by
 * |-log p - H| (H their entropy) and keeps the smallest such prefix whose mass reaches typicalP. Each stage works on
 * the renormalised survivors of the previous one.
 */
export function refCandidates(scores: Vec, p: Pick<RefSamplingParams, 'topK' | 'topP' | 'typicalP'>):
  { tokens: number[]; probs: number[] } {
  let tokens = refOrder(scores);
  if (p.topK > 0) tokens = tokens.slice(0, p.topK);
  const normed = (ts: number[]) => {
    const mx = Math.max(...ts.map((t) => scores[t]!));
    const e = ts.map((t) => Math.exp(scores[t]! - mx));
    const z = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / z);
  };
  let probs = normed(tokens);
  if (p.topP < 1) {
    let cum = 0;
    let k = 0;
    while (k < tokens.length) {
      cum += probs[k++]!;
      if (cum >= p.topP) break;
    }
    tokens = tokens.slice(0, k);
    probs = normed(tokens);
  }
  if (p.typicalP < 1) {
    const h = -probs.reduce((acc, q) => acc + (q > 0 ? q * Math.log(q) : 0), 0);
    const idx = probs.map((_, i) => i).sort((a, b) =>
      (Math.abs(-Math.log(probs[a]!) - h) - Math.abs(-Math.log(probs[b]!) - h)) || (a - b));
    const kept: number[] = [];
    let cum = 0;
    for (const i of idx) {
      kept.push(i);
      cum += probs[i]!;
      if (cum >= p.typicalP) break;
    }
    tokens = kept.map((i) => tokens[i]!);
    probs = normed(tokens);
  }
  return { tokens, probs };
}
