// Beam search on the OpenAI routes, as vLLM serves it (`use_beam_search: true`, `n` beams, `length_penalty`):
// every step, each live beam runs as a one-token request whose prompt is the prompt plus the beam's tokens (the
// prefix cache keeps their K/V), asking for its 2·n most likely next tokens; the candidates — beam + token,
// cumulative log-prob + the token's — are ranked by cumulative log-prob ÷ (total length ^ length_penalty),
// where the total counts the prompt and not a final EOS (vLLM's score); a candidate ending in EOS is complete, the
// best n others go on. After max_tokens steps the complete and the live beams are ranked together and the best n
// answer, as n choices. The log-probs are the model's own (greedy rows: no temperature or penalties), shaped only by
// the request's token filters as sampling is: logit_bias added to the logits, the tokens allowed_token_ids leaves out
// and those that would complete a bad word masked, then renormalised. A masked token never extends a beam, so fewer
// than n beams come back when fewer token sequences are allowed.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Span } from '@opentelemetry/api';
import { GREEDY, type SamplingParams } from '../../protocol/index.js';
import type { AdapterRef, GenerateRequest, GenerationEngine } from '../engine/types.js';
import { validationError } from './errors.js';
import { isJsonObject } from './json.js';
import { runEvents, startEngineRun, startRuns } from './engine-run.js';
import { anyTokenLeft, badWordTokens, checkFirstTokenLeft, tokensCompletingBadWords } from './token-filters.js';

/** Beams one request may ask for (`n`). */
export const MAX_BEAMS = 16;
const BEAM_KEYS = ['use_beam_search', 'length_penalty', 'early_stopping'] as const;

export interface BeamSearch {
  width: number;
  lengthPenalty: number;
}

export interface Beam {
  /** Generated tokens (the last may be EOS). */
  tokens: number[];
  cumLogprob: number;
  /** Ended with an end-of-sequence token. */
  complete: boolean;
}

/**
 * Reads and removes vLLM's beam fields from an OpenAI body: the beam search asked for (`n` beams), or null. Without
 * `use_beam_search: true` they must be at their neutral values (length_penalty 1, early_stopping false): a
 * length penalty with nothing to apply it to is refused, not ignored.
 */
export function takeBeamSearch(body: unknown): { beam: BeamSearch | null; rest: unknown } {
  if (!isJsonObject(body) || !BEAM_KEYS.some((k) => k in body)) return { beam: null, rest: body };
  const { use_beam_search: use, length_penalty: lp, early_stopping: early, ...rest } = body;
  if (use !== undefined && use !== null && typeof use !== 'boolean') throw validationError('`use_beam_search` must be true or false');
  if (lp !== undefined && lp !== null && (typeof lp !== 'number' || !Number.isFinite(lp))) throw validationError('`length_penalty` must be a number');
  if (early !== undefined && early !== null && typeof early !== 'boolean') throw validationError('`early_stopping` must be true or false');
  if (use !== true) {
    if ((lp ?? 1) !== 1 || (early ?? false) !== false) {
      throw validationError('`length_penalty` and `early_stopping` apply to beam search: set `use_beam_search: true`, or leave them out');
    }
    return { beam: null, rest };
  }
  if (early === true) throw validationError('`early_stopping` is not supported: beams run to `max_tokens` or their end token (vLLM\'s beam search)');
  const n = rest.n ?? 1;
  if (!Number.isInteger(n) || (n as number) < 1 || (n as number) > MAX_BEAMS) throw validationError(`with beam search \`n\` is the beam width: 1 to ${MAX_BEAMS}`);
  for (const [k, why] of [['stream', 'streaming'], ['logprobs', 'logprobs'], ['best_of', 'best_of'], ['echo', 'echo'], ['tools', 'tools'],
    ['functions', 'functions'], ['response_format', 'structured output'], ['stop', 'stop sequences'], ['min_tokens', 'min_tokens']] as const) {
    const v = rest[k];
    if (v !== undefined && v !== null && v !== false && !(Array.isArray(v) && v.length === 0) && !(k === 'best_of' && v === n) &&
        !(k === 'response_format' && isJsonObject(v) && v.type === 'text') && !(k === 'min_tokens' && v === 0)) {
      throw validationError(`beam search does not combine with ${why}`);
    }
  }
  for (const k of ['guided_json', 'guided_regex', 'guided_choice', 'guided_grammar', 'structured_outputs']) {
    if (rest[k] !== undefined && rest[k] !== null) throw validationError('beam search does not combine with structured output');
  }
  return { beam: { width: n as number, lengthPenalty: (lp ?? 1) as number }, rest };
}

/** vLLM's get_beam_search_score: cumulative log-prob over (prompt + tokens, without a final EOS) ^ penalty. */
export function beamScore(beam: Beam, promptLength: number, lengthPenalty: number): number {
  const length = promptLength + beam.tokens.length - (beam.complete ? 1 : 0);
  return beam.cumLogprob / length ** lengthPenalty;
}

export interface BeamRun {
  engine: GenerationEngine;
  request: FastifyRequest;
  reply: FastifyReply;
  span: Span;
  promptIds: number[];
  adapter: AdapterRef | null;
  search: BeamSearch;
  maxNewTokens: number;
  ignoreEos: boolean;
  /** The request's logit_bias and allowed_token_ids (its other sampling fields do not apply to beam search). */
  sampling: Pick<SamplingParams, 'logitBias' | 'allowedTokens'>;
  /** bad_words as the request gives them. */
  badWords: readonly string[];
  /** Admission order of every beam step (--scheduling-policy priority); 0 otherwise. */
  priority: number;
}

/** A token that may come next, with its log-prob. */
export interface Candidate { token: number; logprob: number }

export interface BeamSearchOptions {
  promptLength: number;
  width: number;
  lengthPenalty: number;
  maxNewTokens: number;
  eos: ReadonlySet<number>;
  ignoreEos: boolean;
  /** Each live beam's 2·width most likely next tokens, in the beams' order; a token the request's filters ban has
   * log-prob -inf (or is left out). */
  expand(beams: readonly Beam[]): Promise<Candidate[][]>;
}

/** vLLM's beam search (see the top of this file): the best `width` beams, best first. */
export async function beamSearch(o: BeamSearchOptions): Promise<Beam[]> {
  const rank = (a: Beam, b: Beam) => beamScore(b, o.promptLength, o.lengthPenalty) - beamScore(a, o.promptLength, o.lengthPenalty);
  let live: Beam[] = [{ tokens: [], cumLogprob: 0, complete: false }];
  /** Complete beams (ended by EOS), and beams no allowed token may extend (they end where they are). */
  const ended: Beam[] = [];
  for (let step = 0; step < o.maxNewTokens && live.length > 0; step++) {
    const candidates = await o.expand(live);
    const next: Beam[] = [];
    live.forEach((beam, i) => {
      const allowed = candidates[i]!.filter((c) => c.logprob > -Infinity);
      if (allowed.length === 0) ended.push(beam);
      for (const c of allowed) {
        const grown: Beam = { tokens: [...beam.tokens, c.token], cumLogprob: beam.cumLogprob + c.logprob, complete: false };
        if (o.eos.has(c.token) && !o.ignoreEos) ended.push({ ...grown, complete: true });
        else next.push(grown);
      }
    });
    live = next.sort(rank).slice(0, o.width);
  }
  return [...ended, ...live].sort(rank).slice(0, o.width);
}

/** Beam search through the engine: each step's beams as one-token requests (their top 2·width alternatives). */
export async function runBeamSearch(o: BeamRun): Promise<Beam[]> {
  const badWords = o.badWords.length > 0 ? await badWordTokens(o.engine, o.badWords) : [];
  checkFirstTokenLeft(o.sampling.allowedTokens, badWords, o.engine.info.vocabSize);
  const allowed = o.sampling.allowedTokens ? new Set(o.sampling.allowedTokens) : null;
  let step = 0;
  return beamSearch({
    promptLength: o.promptIds.length, width: o.search.width, lengthPenalty: o.search.lengthPenalty, maxNewTokens: o.maxNewTokens,
    eos: new Set(o.engine.info.eosTokenIds), ignoreEos: o.ignoreEos,
    expand: async (beams) => {
      const s = step++;
      const banned = beams.map((b) => tokensCompletingBadWords(badWords, b.tokens));
      // A beam nothing may follow gets no request: a row with nothing left to draw has no log-probs.
      const open = beams.flatMap((_, i) => (anyTokenLeft(allowed, banned[i]!, o.engine.info.vocabSize) ? [i] : []));
      const runs = await startRuns(open.length, o.reply, (j) =>
        startEngineRun(o.engine, stepRequest(o, s, open[j]!, beams[open[j]!]!, banned[open[j]!]!), o.span, o.request, o.reply));
      const found = await Promise.all(runs.map(async (run) => {
        const out: Candidate[] = [];
        for await (const ev of runEvents(run)) {
          if (ev.type === 'error') throw ev.error;
          if (ev.type === 'token') out.push(...ev.token.top.map((t) => ({ token: t.token, logprob: t.logprob })));
        }
        return out;
      }));
      const candidates: Candidate[][] = beams.map(() => []);
      open.forEach((i, j) => { candidates[i] = found[j]!; });
      return candidates;
    },
  });
}

/** One beam's next-token request. Its bad words go as one-token words: the beam's tokens are this request's prompt,
 * which the shards do not match bad words against, so the tokens that would complete one are found here. */
function stepRequest(o: BeamRun, step: number, i: number, beam: Beam, banned: number[]): GenerateRequest {
  const { logitBias, allowedTokens } = o.sampling;
  const sampling: SamplingParams = { ...GREEDY, ...(logitBias ? { logitBias } : {}), ...(allowedTokens ? { allowedTokens } : {}),
    ...(banned.length > 0 ? { badWords: banned.map((t) => [t]) } : {}) };
  return {
    requestId: `${o.request.id}.beam${step}.${i}`, inputs: '', inputIds: [...o.promptIds, ...beam.tokens], adapter: o.adapter, merge: null,
    sampling, maxNewTokens: 1, stop: [], promptLogprobs: false, topN: 2 * o.search.width, ignoreEos: true, continues: true,
    ...(o.priority !== 0 ? { priority: o.priority } : {}),
  };
}
