// Rotary-embedding inverse frequencies, as transformers computes them (rope_type default, linear, llama3, yarn,
// longrope).
// Other rope types are refused by name rather than approximated.
import { UnsupportedModelError } from './errors.js';

export interface RopeParams {
  ropeType: 'default' | 'linear' | 'llama3' | 'yarn' | 'longrope';
  theta: number;
  partialRotaryFactor: number;
  factor?: number;
  lowFreqFactor?: number;
  highFreqFactor?: number;
  originalMaxPositions?: number;
  /** longrope: the per-frequency divisors used up to originalMaxPositions and past it, and the cos/sin scale. */
  shortFactor?: number[];
  longFactor?: number[];
  attentionFactor?: number;
  /** yarn: the rotation counts bounding the blend of extrapolated and interpolated frequencies, and whether the
   * bounds are rounded outwards to whole dimensions. */
  betaFast?: number;
  betaSlow?: number;
  truncate?: boolean;
}

export interface Rope {
  rotaryDim: number;
  invFreq: Float32Array;
  attentionFactor: number;
  /** longrope: the long factors' frequencies and where they start (see usesLongRope). */
  long?: { invFreq: Float32Array; from: number };
  /** yarn: the context the scaling extends to (original_max_position_embeddings × factor), which may pass the
   * config's max_position_embeddings (Qwen2.5 and Qwen3 keep 32,768 / 40,960 there and add YaRN ×4 for 131,072). */
  scaledContext?: number;
}

/**
 * Whether a token at `position` of a sequence whose prompt has `promptLen` tokens is rotated with longrope's long
 * factors. transformers picks one set per forward pass from its longest position (seq_len = max(position_ids) + 1 >
 * original_max_position_embeddings: long), so a prompt longer than the original context is rotated long as a whole,
 * and during generation each new token past it is rotated long while the keys already cached stay as they were.
 * Deciding from the prompt length (not from a chunk's or a step's own positions) gives those same rotations however
 * the prompt is chunked, batched or recomputed after a preemption.
 */
export function usesLongRope(rope: Rope, promptLen: number, position: number): boolean {
  return rope.long !== undefined && Math.max(promptLen, position + 1) > rope.long.from;
}

type Json = Record<string, unknown>;

/** Reads `rope_parameters` (transformers 5) or `rope_theta` + `rope_scaling` (transformers 4). */
export function parseRopeParams(cfg: Json): RopeParams {
  const rp = (cfg.rope_parameters ?? cfg.rope_scaling ?? null) as Json | null;
  const theta = Number(rp?.rope_theta ?? cfg.rope_theta ?? 10000);
  const type = String(rp?.rope_type ?? rp?.type ?? 'default');
  const partial = Number(rp?.partial_rotary_factor ?? cfg.partial_rotary_factor ?? 1);
  if (!(theta > 0)) throw new UnsupportedModelError(`rope_theta must be positive, got ${String(theta)}`);
  if (!(partial > 0 && partial <= 1)) throw new UnsupportedModelError(`partial_rotary_factor must be in (0, 1], got ${partial}`);
  const base = { theta, partialRotaryFactor: partial };
  switch (type) {
    case 'default':
      return { ropeType: 'default', ...base };
    case 'linear':
      return { ropeType: 'linear', ...base, factor: requirePositive(rp, 'factor') };
    case 'llama3':
      return {
        ropeType: 'llama3', ...base,
        factor: requirePositive(rp, 'factor'),
        lowFreqFactor: requirePositive(rp, 'low_freq_factor'),
        highFreqFactor: requirePositive(rp, 'high_freq_factor'),
        originalMaxPositions: requirePositive(rp, 'original_max_position_embeddings'),
      };
    case 'longrope': case 'su': case 'yarn': {  // Phi-3: "su" and "yarn" are older names of longrope (transformers)
      const phi3 = Array.isArray(cfg.architectures) && String(cfg.architectures[0]).startsWith('Phi3');
      if (type === 'yarn' && !phi3) return parseYarn(cfg, rp!, base);
      const factorList = (key: string): number[] => {
        const list = rp?.[key];
        if (!Array.isArray(list) || !list.every((x) => typeof x === 'number' && x > 0)) {
          throw new UnsupportedModelError(`longrope needs ${key}, a list of positive numbers, got ${JSON.stringify(list)}`);
        }
        return list as number[];
      };
      const short = factorList('short_factor'), long = factorList('long_factor');
      const original = Number(rp?.original_max_position_embeddings ?? cfg.original_max_position_embeddings);
      if (!(original > 0)) throw new UnsupportedModelError('longrope needs original_max_position_embeddings');
      // transformers: factor (or max_position_embeddings / original) sets the default attention factor.
      const factor = Number(rp?.factor ?? Number(cfg.max_position_embeddings) / original);
      const explicit = rp?.attention_factor;
      const attentionFactor = typeof explicit === 'number' ? explicit
        : factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(original));
      return { ropeType: 'longrope', ...base, shortFactor: short, longFactor: long, originalMaxPositions: original, attentionFactor };
    }
  }
  throw new UnsupportedModelError(
    `rope type '${type}' is not supported (supported: default, linear, llama3, yarn, longrope); refusing rather than approximating it`);
}

/** YaRN's magnitude scale (transformers' get_mscale / DeepSeek's yarn_get_mscale): 0.1·m·ln(scale) + 1 above scale 1. */
export function yarnMscale(scale: number, m = 1): number {
  return scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1;
}

// transformers' _compute_yarn_parameters: factor defaults to max_position_embeddings / original; the attention
// factor to 0.1·ln(factor) + 1 (or DeepSeek's mscale / mscale_all_dim ratio); beta_fast 32, beta_slow 1.
function parseYarn(cfg: Json, rp: Json, base: { theta: number; partialRotaryFactor: number }): RopeParams {
  const original = requirePositive(rp, 'original_max_position_embeddings');
  const factor = rp.factor === undefined || rp.factor === null ? Number(cfg.max_position_embeddings) / original : Number(rp.factor);
  if (!(factor > 0)) throw new UnsupportedModelError(`yarn needs a positive factor, got ${String(rp.factor)}`);
  const m = Number(rp.mscale), mAll = Number(rp.mscale_all_dim);
  const attentionFactor = typeof rp.attention_factor === 'number' ? rp.attention_factor
    : m && mAll ? yarnMscale(factor, m) / yarnMscale(factor, mAll) : yarnMscale(factor);
  return {
    ropeType: 'yarn', ...base, factor, originalMaxPositions: original, attentionFactor,
    betaFast: Number(rp.beta_fast) || 32, betaSlow: Number(rp.beta_slow) || 1, truncate: rp.truncate !== false,
  };
}

function requirePositive(rp: Json | null, key: string): number {
  const v = Number(rp?.[key]);
  if (!(v > 0)) throw new UnsupportedModelError(`rope scaling field '${key}' must be a positive number, got ${String(rp?.[key])}`);
  return v;
}

export function computeRope(p: RopeParams, headDim: number): Rope {
  const rotaryDim = Math.floor(headDim * p.partialRotaryFactor);
  if (rotaryDim % 2 !== 0) throw new UnsupportedModelError(`rotary dimension ${rotaryDim} must be even`);
  const half = rotaryDim / 2;
  const inv = new Float32Array(half);
  // transformers: 1 / base ** (arange(0, dim, 2).float() / dim), in float32.
  for (let i = 0; i < half; i++) inv[i] = Math.fround(1 / Math.fround(Math.pow(p.theta, Math.fround((2 * i) / rotaryDim))));
  if (p.ropeType === 'linear') for (let i = 0; i < half; i++) inv[i] = Math.fround(inv[i] / p.factor!);
  if (p.ropeType === 'llama3') applyLlama3(inv, p);
  if (p.ropeType === 'yarn') {
    return { rotaryDim, invFreq: yarnInvFreq(p, rotaryDim), attentionFactor: p.attentionFactor!,
      scaledContext: Math.floor(p.originalMaxPositions! * p.factor!) };
  }
  if (p.ropeType === 'longrope') {
    return { rotaryDim, invFreq: longropeInvFreq(p, 'short_factor', p.shortFactor!, rotaryDim), attentionFactor: p.attentionFactor!,
      long: { invFreq: longropeInvFreq(p, 'long_factor', p.longFactor!, rotaryDim), from: p.originalMaxPositions! } };
  }
  return { rotaryDim, invFreq: inv, attentionFactor: 1 };
}

// transformers' YaRN blend, each float32 operation rounded as torch rounds it: the interpolated frequencies
// 1 / (factor · base^(2i/dim)) where a frequency turns fewer than beta_slow times over the original context, the
// extrapolated 1 / base^(2i/dim) where it turns more than beta_fast times, a linear ramp between.
function yarnInvFreq(p: RopeParams, dim: number): Float32Array {
  const half = dim / 2, f = Math.fround;
  const correctionDim = (rotations: number): number =>
    (dim * Math.log(p.originalMaxPositions! / (rotations * 2 * Math.PI))) / (2 * Math.log(p.theta));
  let low = correctionDim(p.betaFast!), high = correctionDim(p.betaSlow!);
  if (p.truncate) [low, high] = [Math.floor(low), Math.ceil(high)];
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001;  // transformers: prevents a division by zero
  const inv = new Float32Array(half);
  const factor = f(p.factor!);
  for (let i = 0; i < half; i++) {
    const pos = f(Math.pow(p.theta, f((2 * i) / dim)));
    const extrapolation = f(1 / pos), interpolation = f(1 / f(factor * pos));
    const linear = f(f(i - f(low)) / f(high - low));
    const extrapolationShare = f(1 - Math.min(Math.max(linear, 0), 1));
    inv[i] = f(f(interpolation * f(1 - extrapolationShare)) + f(extrapolation * extrapolationShare));
  }
  return inv;
}

// transformers: 1 / (factor * base ** (arange(0, dim, 2) / dim)), in float32.
function longropeInvFreq(p: RopeParams, name: string, factors: number[], rotaryDim: number): Float32Array {
  const half = rotaryDim / 2;
  if (factors.length !== half) {
    throw new UnsupportedModelError(`longrope ${name} has ${factors.length} entries; the rotary dimension ${rotaryDim} needs ${half}`);
  }
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const pow = Math.fround(Math.pow(p.theta, Math.fround((2 * i) / rotaryDim)));
    inv[i] = Math.fround(1 / Math.fround(Math.fround(factors[i]!) * pow));
  }
  return inv;
}

function applyLlama3(inv: Float32Array, p: RopeParams): void {
  const factor = p.factor!, low = p.lowFreqFactor!, high = p.highFreqFactor!, old = p.originalMaxPositions!;
  const lowWavelen = old / low;
  const highWavelen = old / high;
  for (let i = 0; i < inv.length; i++) {
    const wavelen = (2 * Math.PI) / inv[i];
    let f = wavelen > lowWavelen ? inv[i] / factor : inv[i];
    const medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
    if (medium) {
      const smooth = (old / wavelen - low) / (high - low);
      f = (1 - smooth) * (f / factor) + smooth * f;
    }
    inv[i] = Math.fround(f);
  }
}
