// Reads the golden cases copied from ../shared/golden (transformers + PEFT reference logits).
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '../../shard/formats/index.js';

export const GOLDEN_ROOT = fileURLToPath(new URL('../../../test/fixtures/golden', import.meta.url));

export interface GoldenCase {
  name: string;
  dir: string;
  modelDir: string;
  sequences: number[][];
  adapters: { name: string; dir: string }[];
  greedy: Record<string, number[]>;
  /** Sequences whose greedy continuation transformers also generated with its KV cache: key
   * `cached_decode/<key>` holds the next-token logits [greedy steps, vocab] after feeding each greedy token. */
  cachedDecode: number[];
  /** longrope past the original context: where the long factors start (config), or null. */
  ropeLongFrom: number | null;
  /** logits [len, vocab] for key `base/seq{i}` or `adapter/<name>/seq{i}` */
  logits(key: string): Float32Array;
  vocab: number;
}

export function goldenCases(): string[] {
  // A case is a folder with cases.json (so __pycache__ or a half-copied folder is never mistaken for one).
  return readdirSync(GOLDEN_ROOT).filter((d) => existsSync(join(GOLDEN_ROOT, d, 'cases.json'))).sort();
}

export function loadGoldenCase(name: string): GoldenCase {
  const dir = join(GOLDEN_ROOT, name);
  const cases = JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8'));
  const file = SafetensorsFile.open(join(dir, 'golden.safetensors'));
  const vocab = file.info(`base/seq0`).shape[1];
  return {
    name, dir,
    modelDir: join(dir, cases.model),
    sequences: cases.sequences,
    adapters: cases.adapters.map((a: { name: string; dir: string }) => ({ name: a.name, dir: join(dir, a.dir) })),
    greedy: cases.greedy,
    cachedDecode: cases.cached_decode ?? [],
    ropeLongFrom: ropeLongFrom(JSON.parse(readFileSync(join(dir, cases.model, 'config.json'), 'utf8'))),
    logits: (key) => file.readF32(key),
    vocab,
  };
}

function ropeLongFrom(config: Record<string, unknown>): number | null {
  const rp = (config.rope_parameters ?? config.rope_scaling) as Record<string, unknown> | undefined;
  return rp?.rope_type === 'longrope' && Array.isArray(rp.long_factor) ? Number(rp.original_max_position_embeddings) : null;
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}
