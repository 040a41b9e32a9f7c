// Pooled embeddings (NewSequence.pooling): a sequence's prompt positions' final hidden states folded into one vector
// as its chunks are computed — their mean (sentence-transformers' mean pooling: sum / count), their element-wise max,
// or the first position's (CLS) — so a prompt prefilled over several steps pools exactly as one computed whole. Sums
// are kept in float64; the vector is float32, as the reference's.

export type PoolMode = 'mean' | 'max' | 'cls';

export class HiddenPool {
  private readonly acc: Float64Array;
  private count = 0;

  constructor(readonly mode: PoolMode, hidden: number) {
    this.acc = new Float64Array(hidden).fill(mode === 'max' ? -Infinity : 0);
  }

  /** Which of a chunk's positions (from `firstPos`, `tokens` of them) the pool reads: CLS only position 0. */
  rowsOf(firstPos: number, tokens: number): number {
    return this.mode === 'cls' ? (firstPos === 0 ? 1 : 0) : tokens;
  }

  /** Folds in `rows` hidden states, [rows, hidden] row-major. */
  add(states: Float32Array, rows: number): void {
    const H = this.acc.length;
    for (let r = 0; r < rows; r++) {
      const row = states.subarray(r * H, (r + 1) * H);
      if (this.mode === 'max') for (let i = 0; i < H; i++) this.acc[i] = Math.max(this.acc[i]!, row[i]!);
      else if (this.mode === 'mean' || this.count === 0) for (let i = 0; i < H; i++) this.acc[i]! += row[i]!;
      this.count++;
    }
  }

  /** The pooled vector; null before any position was folded in. */
  result(): Float32Array | null {
    if (this.count === 0) return null;
    const n = this.mode === 'mean' ? this.count : 1;
    return Float32Array.from(this.acc, (v) => v / n);
  }
}
