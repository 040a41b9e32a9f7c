// Rotary-embedding inverse frequencies, as transformers computes them (rope_type default, linear, llama3, longrope).
// Other rope types are refused by name rather than approximated.
import { UnsupportedModelError } from './errors.js';

export interface RopeParams {
  ropeType: 'default' | 'linear' | 'llama3' | 'longrope';
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
}

export interface Rope {
  rotaryDim: number;
  invFreq: Float32Array;
  attentionFactor: number;
  /** longrope: the long factors' frequencies and where they start (see usesLongRope). */
  long?: { invFreq: Float32Array; from: number };
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
      if (type === 'yarn' && !phi3) break;  // YaRN proper is another computation
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
    `rope type '${type}' is not supported (supported: default, linear, llama3, longrope); refusing rather than approximating it`);
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
  if (p.ropeType === 'longrope') {
    return { rotaryDim, invFreq: longropeInvFreq(p, 'short_factor', p.shortFactor!, rotaryDim), attentionFactor: p.attentionFactor!,
      long: { invFreq: longropeInvFreq(p, 'long_factor', p.longFactor!, rotaryDim), from: p.originalMaxPositions! } };
  }
  return { rotaryDim, invFreq: inv, attentionFactor: 1 };
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
