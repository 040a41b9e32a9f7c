// Rotary-embedding inverse frequencies, as transformers computes them (rope_type default, linear, llama3).
// Other rope types are refused by name rather than approximated.
import { UnsupportedModelError } from './errors.js';

export interface RopeParams {
  ropeType: 'default' | 'linear' | 'llama3';
  theta: number;
  partialRotaryFactor: number;
  factor?: number;
  lowFreqFactor?: number;
  highFreqFactor?: number;
  originalMaxPositions?: number;
}

export interface Rope {
  rotaryDim: number;
  invFreq: Float32Array;
  attentionFactor: number;
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
    default:
      throw new UnsupportedModelError(
        `rope type '${type}' is not supported (supported: default, linear, llama3); refusing rather than approximating it`);
  }
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
