// Drafts from a request's predicted output (OpenAI's Predicted Outputs, SamplingParams.prediction): the answer is
// expected to be mostly the prediction (a file with a few lines edited), so the next tokens are guessed as the
// prediction's tokens after the point the output has reached in it. Verified as every draft is
// (shard/engine/speculation.ts): a guess only decides how many tokens a step yields, never which.
//
// The cursor follows the output through the prediction: while the output repeats it, the guess is what comes next
// there; where the output departs (an edit), it is found again by its last few tokens — the first place after the
// point it left where they occur, else the nearest before it (of a repeated line, the copy closest to where it was).

/** Tokens of the output's end looked up in the prediction to find its place again, longest first. */
const RESYNC_MAX = 4;
const RESYNC_MIN = 2;

export class PredictionCursor {
  /** The prediction index of the token expected next (-1: not known: the output left the prediction). */
  private at = 0;
  /** Where the cursor was when the output left the prediction: a re-sync prefers a place after it. */
  private leftAt = 0;
  /** Generated tokens the cursor has accounted for. */
  private seen = 0;

  constructor(private readonly prediction: readonly number[]) {}

  /** Up to `max` tokens guessed to follow the generated tokens `tokens[from..]` (a sequence's history past its prompt,
   * read in place; the one being fed last). */
  propose(tokens: readonly number[], max: number, from = 0): number[] {
    this.follow(tokens, from);
    if (this.at < 0 || max <= 0) return [];
    return this.prediction.slice(this.at, this.at + max);
  }

  private follow(tokens: readonly number[], from: number): void {
    const generated = tokens.length - from;
    if (generated < this.seen) [this.seen, this.at, this.leftAt] = [0, 0, 0];  // started over
    for (; this.seen < generated && this.at >= 0; this.seen++) {
      if (this.prediction[this.at] === tokens[from + this.seen]) this.at++;
      else [this.leftAt, this.at] = [this.at, -1];
    }
    this.seen = generated;
    if (this.at < 0) this.at = this.find(tokens.slice(Math.max(from, tokens.length - RESYNC_MAX)));
  }

  /** The index after the first occurrence of the output's last n tokens (`tail`: its last RESYNC_MAX at most; n from
   * RESYNC_MAX down) at or after leftAt, else after the last one before it; -1 when none occurs. */
  private find(generated: readonly number[]): number {
    const p = this.prediction;
    for (let n = Math.min(RESYNC_MAX, generated.length); n >= RESYNC_MIN; n--) {
      const tail = generated.slice(generated.length - n);
      const matchAt = (j: number) => tail.every((t, k) => p[j + k] === t);
      let before = -1;  // the last occurrence before leftAt: the nearest, if none follows it
      for (let j = 0; j + n <= p.length; j++) {
        if (!matchAt(j)) continue;
        if (j >= this.leftAt) return j + n;
        before = j + n;
      }
      if (before >= 0) return before;
    }
    return -1;
  }
}
