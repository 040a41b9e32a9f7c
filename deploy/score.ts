// `weft score`: full-vocabulary logits for every position of one token sequence (the conformance entry
// point, DESIGN.md §8). TP=1 runs in this process; --num-shard N runs N shard ranks over the shm collective.
import { LocalEngine, readModelSpec } from '../shard/index.js';
import type { ScoreConfig } from './config/index.js';
import { assertCudaUsable } from '../kernels/cuda.js';
import { runScoreGroup } from './score-group.js';


export type ScoreOptions = Pick<ScoreConfig, 'model' | 'adapter' | 'numShard' | 'device' | 'ids'>;

export async function score(o: ScoreOptions): Promise<number[][]> {
  if (o.device === 'cuda') assertCudaUsable();
  if (o.ids.length === 0) throw new Error('--ids must list at least one token id');
  const { vocab } = readModelSpec(o.model);
  for (const id of o.ids) {
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new Error(`token id ${id} is outside the vocabulary [0, ${vocab})`);
  }
  if (o.numShard > 1) return runScoreGroup(o);
  const blockSize = 16;
  const engine = LocalEngine.open(o.model, { numBlocks: Math.ceil(o.ids.length / blockSize) + 1, blockSize, adapterSlots: 1,
    device: o.device, dtype: 'float32' }); // the conformance entry point: full precision on every backend
  try {
    if (o.adapter) engine.loadAdapter(0, o.adapter);
    const [logits] = await engine.scoreBatch([{ tokens: [...o.ids], adapterSlot: o.adapter ? 0 : -1 }]);
    return rows(logits, vocab);
  } finally {
    engine.dispose();
  }
}

export function rows(logits: Float32Array, vocab: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < logits.length; i += vocab) out.push(Array.from(logits.subarray(i, i + vocab)));
  return out;
}

/** float32 values printed with enough digits to round-trip exactly. */
export function formatLogits(logits: number[][]): string {
  return `{"logits":[${logits.map((r) => `[${r.map((v) => (Number.isFinite(v) ? String(Math.fround(v)) : 'null')).join(',')}]`).join(',')}]}`;
}
