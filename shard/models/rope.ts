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
  /** longrope: the per-frequency divisors used up to originalMaxPositions, and the cos/sin scale. */
  shortFactor?: number[];
  attentionFactor?: number;
}

export interface Rope {
  rotaryDim: number;
  invFreq: Float32Array;
  attentionFactor: number;
  /**
   * Positions these frequencies hold for, when fewer than the model's: longrope switches to its long factors past
   * original_max_position_embeddings (for the whole sequence, re-rotating nothing already cached), which weft does
   * not implement, so such a model's context stops there.
   */
  maxPositions?: number;
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
      const short = rp?.short_factor;
      if (!Array.isArray(short) || !short.every((x) => typeof x === 'number' && x > 0)) {
        throw new UnsupportedModelError(`longrope needs short_factor, a list of positive numbers, got ${JSON.stringify(short)}`);
      }
      const original = Number(rp?.original_max_position_embeddings ?? cfg.original_max_position_embeddings);
      if (!(original > 0)) throw new UnsupportedModelError('longrope needs original_max_position_embeddings');
      // transformers: factor (or max_position_embeddings / original) sets the default attention factor.
      const factor = Number(rp?.factor ?? Number(cfg.max_position_embeddings) / original);
      const explicit = rp?.attention_factor;
      const attentionFactor = typeof explicit === 'number' ? explicit
        : factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(original));
      return { ropeType: 'longrope', ...base, shortFactor: short as number[], originalMaxPositions: original, attentionFactor };
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
    if (p.shortFactor!.length !== half) {
      throw new UnsupportedModelError(`longrope short_factor has ${p.shortFactor!.length} entries; the rotary dimension ${rotaryDim} needs ${half}`);
    }
    // transformers: 1 / (short_factor * base ** (arange(0, dim, 2) / dim)), in float32.
    for (let i = 0; i < half; i++) {
      const pow = Math.fround(Math.pow(p.theta, Math.fround((2 * i) / rotaryDim)));
      inv[i] = Math.fround(1 / Math.fround(Math.fround(p.shortFactor![i]!) * pow));
    }
    return { rotaryDim, invFreq: inv, attentionFactor: p.attentionFactor!, maxPositions: p.originalMaxPositions! };
  }
  return { rotaryDim, invFreq: inv, attentionFactor: 1 };
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
