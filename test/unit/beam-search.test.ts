// Beam search (vLLM's semantics) over scripted next-token distributions: greedy at width 1, complete beams ranked
// with the live ones by length-normalised score, length_penalty deciding between a short complete beam and a long
// one, ignore_eos; tokens the request's filters ban (log-prob -inf) never extending a beam; and the request fields it
// reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { beamScore, beamSearch, takeBeamSearch, type Beam, type Candidate } from '../../coordinator/http/beam-search.js';
import { tokensCompletingBadWords } from '../../coordinator/http/token-filters.js';

const EOS = 0;
/** The 2·width best of a distribution given as {token: logprob}. */
const best = (dist: Record<number, number>, n: number): Candidate[] =>
  Object.entries(dist).map(([t, lp]) => ({ token: Number(t), logprob: lp })).sort((a, b) => b.logprob - a.logprob).slice(0, n);

function search(table: (prefix: number[]) => Record<number, number>, o: { width: number; lengthPenalty?: number; steps: number; ignoreEos?: boolean }) {
  return beamSearch({ promptLength: 1, width: o.width, lengthPenalty: o.lengthPenalty ?? 1, maxNewTokens: o.steps, eos: new Set([EOS]),
    ignoreEos: o.ignoreEos ?? false, expand: async (beams: readonly Beam[]) => beams.map((b) => best(table(b.tokens), 2 * o.width)) });
}

/** A fixed pseudo-random distribution over tokens 1..7 per prefix (no EOS). */
function noisy(prefix: number[]): Record<number, number> {
  let h = 2166136261;
  for (const t of prefix) h = Math.imul(h ^ t, 16777619) >>> 0;
  const out: Record<number, number> = {};
  for (let t = 1; t <= 7; t++) out[t] = -((Math.imul(h ^ (t * 2654435761), 2246822519) >>> 0) % 1000) / 100 - 0.01;
  return out;
}

test('width 1 is greedy decoding', async () => {
  const [b] = await search(noisy, { width: 1, steps: 6 });
  const greedy: number[] = [];
  for (let i = 0; i < 6; i++) greedy.push(best(noisy(greedy), 1)[0]!.token);
  assert.deepEqual(b!.tokens, greedy);
});

test('wider beams find a sequence at least as likely as greedy, and return width distinct beams best first', async () => {
  const [greedy] = await search(noisy, { width: 1, steps: 5, lengthPenalty: 0 });
  const beams = await search(noisy, { width: 4, steps: 5, lengthPenalty: 0 });
  assert.equal(beams.length, 4);
  assert.ok(beams[0]!.cumLogprob >= greedy!.cumLogprob - 1e-12);
  assert.equal(new Set(beams.map((b) => b.tokens.join(','))).size, 4);
  for (let i = 1; i < beams.length; i++) assert.ok(beams[i - 1]!.cumLogprob >= beams[i]!.cumLogprob);
});

test('a beam ending in EOS is complete; length_penalty decides between it and a longer, less likely one', async () => {
  // From the prompt: A (1) at -0.4 or EOS at -0.5; after A: B (2) at -0.5, the rest far behind. Two steps.
  const table = (p: number[]): Record<number, number> => (p.length === 0 ? { 1: -0.4, [EOS]: -0.5, 3: -5 } : { 2: -0.5, 3: -6, [EOS]: -7 });
  const short = await search(table, { width: 2, steps: 2, lengthPenalty: 0 });  // score = cumulative log-prob
  assert.deepEqual(short[0], { tokens: [EOS], cumLogprob: -0.5, complete: true });
  const long = await search(table, { width: 2, steps: 2, lengthPenalty: 1 });   // [A, B]: -0.9 / 3 beats -0.5 / 1
  assert.deepEqual(long[0]!.tokens, [1, 2]);
  assert.equal(long[0]!.complete, false);
  assert.ok(Math.abs(beamScore(long[0]!, 1, 1) - -0.3) < 1e-12);
  assert.equal(beamScore({ tokens: [EOS], cumLogprob: -0.5, complete: true }, 1, 1), -0.5, 'a final EOS does not count in the length');
  const ignored = await search(table, { width: 2, steps: 2, lengthPenalty: 0, ignoreEos: true });
  assert.ok(ignored.every((b) => !b.complete), 'with ignore_eos, EOS is a token like the others');
});

test('a banned token (log-prob -inf) never extends a beam: fewer beams than the width, and a beam nothing may follow ends there', async () => {
  // Only tokens 1 and 2 are allowed, and never 2 after 1: the rest come back at -inf, as the shards report them.
  const filtered = (p: number[]): Record<number, number> => {
    const out: Record<number, number> = {};
    for (const [t, lp] of Object.entries(noisy(p))) out[Number(t)] = Number(t) === 1 || (Number(t) === 2 && p.at(-1) !== 1) ? lp : -Infinity;
    return out;
  };
  const one = await search(filtered, { width: 3, steps: 1 });
  assert.deepEqual(one.map((b) => b.tokens).sort(), [[1], [2]], 'two allowed tokens: two beams, not three');
  const beams = await search(filtered, { width: 3, steps: 4 });
  assert.equal(beams.length, 3);
  for (const b of beams) {
    assert.ok(b.tokens.every((t, i) => (t === 1 || t === 2) && !(t === 2 && b.tokens[i - 1] === 1)), `${b.tokens} holds a banned token`);
    assert.ok(Number.isFinite(b.cumLogprob));
  }
  const stuck = await search(() => ({ 3: -Infinity, 4: -Infinity }), { width: 2, steps: 3 });
  assert.deepEqual(stuck, [{ tokens: [], cumLogprob: 0, complete: false }], 'nothing allowed: the beam ends where it is');
});

test('bad words as the shards ban them: the tokens that complete one after the generated tokens', () => {
  const words = [[7], [1, 2], [1, 2, 3], [4, 5, 6]];
  assert.deepEqual(tokensCompletingBadWords(words, []).sort(), [7], 'a one-token word always; longer ones need their start generated');
  assert.deepEqual(tokensCompletingBadWords(words, [9, 1]).sort(), [2, 7]);
  assert.deepEqual(tokensCompletingBadWords(words, [1, 2]).sort(), [3, 7]);
  assert.deepEqual(tokensCompletingBadWords(words, [4, 5]).sort(), [6, 7]);
  assert.deepEqual(tokensCompletingBadWords(words, [5]).sort(), [7], 'the start of a word must be generated whole');
});

test('the request fields: use_beam_search with n beams and length_penalty; what it does not combine with is a 422', () => {
  assert.deepEqual(takeBeamSearch({ prompt: 'x', n: 3, use_beam_search: true, length_penalty: 0.7 }),
    { beam: { width: 3, lengthPenalty: 0.7 }, rest: { prompt: 'x', n: 3 } });
  assert.deepEqual(takeBeamSearch({ prompt: 'x', use_beam_search: false, length_penalty: 1, early_stopping: false }), { beam: null, rest: { prompt: 'x' } });
  const body = { prompt: 'x' };
  assert.equal(takeBeamSearch(body).rest, body, 'untouched without beam fields');
  for (const [b, why] of [
    [{ length_penalty: 2 }, /apply to beam search: set `use_beam_search: true`/],
    [{ use_beam_search: true, n: 17 }, /beam width: 1 to 16/],
    [{ use_beam_search: true, stream: true }, /does not combine with streaming/],
    [{ use_beam_search: true, logprobs: 2 }, /does not combine with logprobs/],
    [{ use_beam_search: true, guided_regex: 'a' }, /does not combine with structured output/],
    [{ use_beam_search: true, early_stopping: true }, /`early_stopping` is not supported/],
    [{ use_beam_search: 'yes' }, /`use_beam_search` must be true or false/],
  ] as const) {
    assert.throws(() => takeBeamSearch(b), (e: Error) => why.test(e.message), JSON.stringify(b));
  }
});
