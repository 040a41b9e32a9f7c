// What the sampler gets for a sequence: its request's options, the draw index, the constraint's mask, banned
// words and the tokens its penalties count — for one position, or for each position of a speculative row.
import type { SamplingOptions } from '../../kernels/index.js';
import type { SequenceState } from './sequence-state.js';

export const NO_TOKENS = new Int32Array(0);

/** The part of a step-runner row the sampler's options depend on. */
export interface SampledRow {
  state: SequenceState;
  tokens: number[];
  drafts: number[];
  cstates?: number[];
}

/** The sampler's options for a sequence's next token: its request's, the draw index, the constraint's mask. A
 * constraint that fails (its automaton outgrew its limit) fails only its sequence: no mask, and the output says
 * why (see output()). */
export function samplingOf(state: SequenceState, ahead = 0, cstate = state.constraint?.state, drafted: readonly number[] = []): SamplingOptions {
  const c = state.constraint;
  let allowedMask: Uint8Array | undefined;
  if (c && c.failed === undefined) {
    try {
      allowedMask = c.automaton.mask(cstate!);
    } catch (e) {
      c.failed = (e as Error).message;
    }
  }
  if (state.allowed) allowedMask = allowedMask ? allowedMask.map((byte, i) => byte & state.allowed![i]!) : state.allowed;
  const { allowedTokens: _listed, badWords, ...s } = state.sampling;  // the mask above; the biases below
  // min_tokens: the end tokens get -inf (a bias no logit_bias reaches) until that many tokens are generated.
  const draws = state.draws + ahead;  // `ahead`: a draft position of this step (speculative decoding)
  const banEnd = s.minTokens !== undefined && draws < s.minTokens && (s.endTokens?.length ?? 0) > 0;
  const banned = badWords ? bannedNext(badWords, state, drafted) : [];
  const logitBias = banEnd || banned.length > 0
    ? [...(s.logitBias ?? []), ...(banEnd ? s.endTokens! : []).map((token) => ({ token, bias: -Infinity })),
      ...banned.map((token) => ({ token, bias: -Infinity }))]
    : s.logitBias;
  return { ...s, ...(logitBias ? { logitBias } : {}), drawIndex: draws, ...(allowedMask ? { allowedMask } : {}) };
}

/** bad_words: the tokens that would complete one of them now, given the generated tokens (and `drafted`, the draft
 * tokens before this position of a speculative row). */
function bannedNext(badWords: readonly number[][], state: SequenceState, drafted: readonly number[]): number[] {
  const generated = state.history.length - state.promptLen + drafted.length;
  const at = (k: number): number => (k < drafted.length ? drafted[drafted.length - 1 - k]! : state.history[state.history.length - 1 - (k - drafted.length)]!);
  return badWords.filter((w) => {
    const before = w.length - 1;
    if (before > generated) return false;
    for (let k = 0; k < before; k++) if (at(k) !== w[before - 1 - k]) return false;
    return true;
  }).map((w) => w[w.length - 1]!);
}

/** The tokens the penalties look at: the whole history (its last `draws` are the generated ones, which the
 * frequency/presence penalties count), or none when there is no penalty. */
export function penaltyTokens(state: SequenceState, drafts: readonly number[] = []): Int32Array {
  const s = state.sampling;
  const any = s.repetitionPenalty !== 1 || (s.frequencyPenalty ?? 0) !== 0 || (s.presencePenalty ?? 0) !== 0;
  return any ? Int32Array.from(drafts.length > 0 ? [...state.history, ...drafts] : state.history) : NO_TOKENS;
}

/** The sampler's options for every logit row of a row: one, or one per position of a speculative row. */
export function rowSampling(row: SampledRow) {
  const { state } = row;
  if (row.drafts.length === 0) return [{ ...samplingOf(state), penaltyTokens: penaltyTokens(state), topN: state.topN }];
  // Position i sees the history and the drafts before it: views of one array, not a copy per position.
  const seen = penaltyTokens(state, row.drafts);
  return row.tokens.map((_, i) => ({ ...samplingOf(state, i, row.cstates?.[i], row.drafts.slice(0, i)),
    penaltyTokens: seen.length === 0 ? seen : seen.subarray(0, state.history.length + i), topN: state.topN }));
}
