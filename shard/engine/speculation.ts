// Speculative decoding by n-gram lookup (prompt lookup): a decoding sequence's next tokens are guessed from its
// own history — where its last n tokens occurred before, what followed them then — and the guesses are checked
// in the same forward pass as the token being fed (one row of 1 + k positions instead of 1).
//
// Verification samples every position with the sequence's own sampling rules and RNG draw index, exactly as k+1
// ordinary steps would, and keeps a draft only while it equals the token sampled before it. The tokens that come
// out are therefore the ones the sequence would have produced without speculation (greedy or seeded sampling
// alike): a guess only decides how many of them one step yields. With a point-mass guess this is also the
// acceptance rule of speculative sampling (accepted with probability p(draft)), so nothing better is left.

/** Guesses up to `max` tokens to follow `history` (a sequence's prompt and generated tokens) for seqId. */
export type Drafter = (seqId: string, history: readonly number[], max: number) => number[];

/** n-gram sizes tried, longest first: a longer match predicts better, a 1-gram still often finds a repeat. */
export const NGRAM_MAX = 3;
export const NGRAM_MIN = 1;
/** How far back the lookup searches (tokens): bounds its cost per step on long contexts. */
export const LOOKUP_WINDOW = 8192;

/**
 * Up to `max` tokens that followed the most recent earlier occurrence of `history`'s last n tokens (n from
 * NGRAM_MAX down to NGRAM_MIN; the first n with a match wins). [] when nothing matches or `max` is 0.
 */
export function proposeDrafts(history: readonly number[], max: number, window = LOOKUP_WINDOW): number[] {
  const len = history.length;
  if (max <= 0 || len < 2) return [];
  const floor = Math.max(0, len - window);
  for (let n = Math.min(NGRAM_MAX, len - 1); n >= NGRAM_MIN; n--) {
    // Candidate starts j (the n-gram history[j..j+n) ends before the final one begins, so at least one token
    // follows it), most recent first.
    for (let j = len - n - 1; j >= floor; j--) {
      let k = 0;
      while (k < n && history[j + k] === history[len - n + k]) k++;
      if (k < n) continue;
      const from = j + n;
      return history.slice(from, Math.min(from + max, len));
    }
  }
  return [];
}

/**
 * proposeDrafts without the scan: per n, the latest start of each n-gram that some token already follows, kept up
 * to date as the sequence grows (update after every append), so a step's lookup is O(n) whatever the length.
 * Keys are a hash of the n tokens; a hit is checked against the tokens themselves (a collision is a miss).
 * Starts that fall out of the lookup window are dropped, so the index holds at most NGRAM_MAX · window entries.
 * Gives exactly proposeDrafts' result (test/unit/speculative-runner.test.ts).
 */
export class NgramIndex {
  private readonly latest: Map<number, number>[] = Array.from({ length: NGRAM_MAX + 1 }, () => new Map());
  /** Tokens of the history whose n-grams (those with a follower) are indexed. */
  private indexed = 0;
  /** Starts below this have been dropped from the index (out of the window). */
  private dropped = 0;

  constructor(private readonly window = LOOKUP_WINDOW) {}

  /** Indexes what `history` gained since the last call (history only grows between calls). */
  update(history: readonly number[]): void {
    // Position p's token follows the n-grams ending at p - 1: they start at p - n.
    for (let p = Math.max(this.indexed, 1); p < history.length; p++) {
      for (let n = NGRAM_MIN; n <= NGRAM_MAX && p - n >= 0; n++) this.latest[n]!.set(hashOf(history, p - n, n), p - n);
    }
    this.indexed = Math.max(this.indexed, history.length);
    for (const floor = history.length - this.window; this.dropped < floor; this.dropped++) {
      for (let n = NGRAM_MIN; n <= NGRAM_MAX; n++) {
        const key = hashOf(history, this.dropped, n);
        if (this.latest[n]!.get(key) === this.dropped) this.latest[n]!.delete(key);
      }
    }
  }

  /** proposeDrafts(history, max), history indexed by update(). */
  propose(history: readonly number[], max: number): number[] {
    const len = history.length;
    if (max <= 0 || len < 2) return [];
    for (let n = Math.min(NGRAM_MAX, len - 1); n >= NGRAM_MIN; n--) {
      const j = this.latest[n]!.get(hashOf(history, len - n, n));
      // (Starts out of the window were dropped by update.)
      if (j === undefined || !sameTokens(history, j, len - n, n)) continue;
      return history.slice(j + n, Math.min(j + n + max, len));
    }
    return [];
  }
}

/** A 52-bit hash of history[from, from + n) (FNV-style over 32-bit halves; exactness comes from sameTokens). */
function hashOf(history: readonly number[], from: number, n: number): number {
  let lo = 0x811c9dc5 ^ n, hi = 0x01000193;
  for (let i = from; i < from + n; i++) {
    const t = history[i]!;
    lo = Math.imul(lo ^ t, 0x01000193) >>> 0;
    hi = Math.imul(hi ^ (t >>> 7) ^ lo, 0x5bd1e995) >>> 0;
  }
  return (hi & 0xfffff) * 0x100000000 + lo;
}

function sameTokens(history: readonly number[], a: number, b: number, n: number): boolean {
  for (let k = 0; k < n; k++) if (history[a + k] !== history[b + k]) return false;
  return true;
}

/** How many drafts were accepted: the length of the run of positions where the sampled token equals the draft
 * fed after it (sampled[i] is what position i of the row predicts; drafts[i] was fed at position i + 1). */
export function acceptedDrafts(drafts: readonly number[], sampled: readonly number[]): number {
  let a = 0;
  while (a < drafts.length && sampled[a] === drafts[a]) a++;
  return a;
}
