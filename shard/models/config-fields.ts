// Reading config.json fields: the checks and defaults every architecture's parser shares.
import { UnsupportedModelError } from './errors.js';

export type Json = Record<string, unknown>;

export function int(cfg: Json, key: string, where: string): number {
  const v = cfg[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new UnsupportedModelError(`${where}: '${key}' must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

export function eosList(v: unknown): number[] {
  if (typeof v === 'number') return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number');
  return [];
}

export function refuseIf(cond: boolean, where: string, msg: string): void {
  if (cond) throw new UnsupportedModelError(`${where}: ${msg}`);
}

/** The ModelSpec fields only Gemma sets, at their values for every other architecture. */
export const PLAIN_DECODER = {
  layerSliding: null, ropeLocal: null, embedScale: 1, normPlusOne: false, postNorms: false, visionLanguage: false,
  attnSoftcap: 0, finalSoftcap: 0, residualScale: 1, logitsDivisor: 1,
} as const;
