// Native ForwardBatch construction for tests that drive a model executor directly (no step runner).
import type { ForwardBatch } from '../../kernels/index.js';
import { usesLongRope, type Rope } from '../../shard/models/rope.js';

export interface BatchEntry {
  /** The whole sequence; this step feeds tokens[pos0, pos0 + n). */
  tokens: number[];
  pos0: number;
  n: number;
  /** Adapter slot, -1 for the base model. */
  slot: number;
  /** KV block ids of the sequence. */
  table: number[];
  /** Every fed row's logits (else only the last row's). */
  all: boolean;
  /** The sequence's prompt length, for longrope's choice of factors (default: tokens.length). */
  promptLen?: number;
}

/** One step over `entries` (their rows contiguous, in order) with KV blocks of `blockSize` tokens; with a longrope
 * `rope`, each row marked as the shard marks it (rope.ts usesLongRope). */
export function stepBatch(entries: BatchEntry[], blockSize: number, rope?: Rope): ForwardBatch {
  const tokens: number[] = [], positions: number[] = [], slots: number[] = [], logitRows: number[] = [], long: number[] = [];
  const seqs: ForwardBatch['seqs'] = [];
  for (const e of entries) {
    const start = tokens.length;
    for (let i = 0; i < e.n; i++) {
      const pos = e.pos0 + i;
      tokens.push(e.tokens[pos]);
      positions.push(pos);
      if (rope?.long) long.push(usesLongRope(rope, e.promptLen ?? e.tokens.length, pos) ? 1 : 0);
      slots.push(e.table[Math.floor(pos / blockSize)] * blockSize + (pos % blockSize));
      if (e.all || i === e.n - 1) logitRows.push(start + i);
    }
    seqs.push({ tokenStart: start, numTokens: e.n, contextLen: e.pos0 + e.n, adapterSlot: e.slot,
      blockTable: Int32Array.from(e.table) });
  }
  return { tokens: Int32Array.from(tokens), positions: Int32Array.from(positions), slotMapping: Int32Array.from(slots),
    ...(rope?.long ? { ropeLong: Uint8Array.from(long) } : {}), seqs, logitRows: Int32Array.from(logitRows) };
}
