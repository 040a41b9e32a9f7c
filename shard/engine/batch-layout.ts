// The token arrays of a forward batch from its rows (a sequence's tokens at its next positions in its paged KV
// cache): what the step runner and the draft model both hand to the executor.
import type { BatchSeq } from '../../kernels/index.js';
import { usesLongRope, type Rope } from '../models/index.js';
import type { MropePositions } from './mrope.js';

export interface RowLayout {
  seqId: string;
  tokens: readonly number[];
  /** Position of the first token. */
  firstPos: number;
  blockTable: readonly number[];
  adapterSlot: number;
  /** The prompt's length: longrope's choice of factors. */
  promptLen: number;
  /** A hybrid Mamba model's recurrent-state slot (BatchSeq.stateSlot). */
  stateSlot?: number;
  /** Multimodal RoPE: the sequence's image placements (absent: a text-only sequence, whose 3-D positions are equal). */
  mrope?: MropePositions;
}

/** tokens, positions and KV slots of every row back to back, the per-sequence table, and each row's first index.
 * `missing` makes the error for a position without a KV block. `mrope`: a model with multimodal RoPE (Qwen2-VL), whose
 * batch also carries every token's (t, h, w) position. */
export function layoutRows(rows: readonly RowLayout[], blockSize: number, rope: Rope | null, missing: (seqId: string, pos: number) => Error,
  mrope = false) {
  const T = rows.reduce((n, r) => n + r.tokens.length, 0);
  const tokens = new Int32Array(T), positions = new Int32Array(T), slotMapping = new Int32Array(T);
  const ropeLong = rope?.long ? new Uint8Array(T) : undefined;
  const mropePositions = mrope ? new Int32Array(3 * T) : undefined;
  const seqs: BatchSeq[] = [], starts: number[] = [];
  let t = 0;
  for (const row of rows) {
    starts.push(t);
    for (let i = 0; i < row.tokens.length; i++, t++) {
      const pos = row.firstPos + i;
      const block = row.blockTable[Math.floor(pos / blockSize)];
      if (block === undefined) throw missing(row.seqId, pos);
      tokens[t] = row.tokens[i]!;
      positions[t] = pos;
      if (mropePositions) {
        if (row.mrope) row.mrope.write(pos, mropePositions, t, T);
        else mropePositions[t] = mropePositions[T + t] = mropePositions[2 * T + t] = pos;
      }
      if (ropeLong && usesLongRope(rope!, row.promptLen, pos)) ropeLong[t] = 1;
      slotMapping[t] = block * blockSize + (pos % blockSize);
    }
    seqs.push({ tokenStart: starts.at(-1)!, numTokens: row.tokens.length, contextLen: row.firstPos + row.tokens.length,
      adapterSlot: row.adapterSlot, blockTable: Int32Array.from(row.blockTable),
      ...(row.stateSlot !== undefined ? { stateSlot: row.stateSlot } : {}) });
  }
  return { tokens, positions, slotMapping, ...(ropeLong ? { ropeLong } : {}), ...(mropePositions ? { mropePositions } : {}), seqs, starts };
}
