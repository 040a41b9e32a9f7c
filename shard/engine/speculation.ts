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
export function proposeDrafts(history: readonly number[], max: number): number[] {
  const len = history.length;
  if (max <= 0 || len < 2) return [];
  const floor = Math.max(0, len - LOOKUP_WINDOW);
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

/** How many drafts were accepted: the length of the run of positions where the sampled token equals the draft
 * fed after it (sampled[i] is what position i of the row predicts; drafts[i] was fed at position i + 1). */
export function acceptedDrafts(drafts: readonly number[], sampled: readonly number[]): number {
  let a = 0;
  while (a < drafts.length && sampled[a] === drafts[a]) a++;
  return a;
}
