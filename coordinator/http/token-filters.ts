// The token filters of the OpenAI routes (completions, chat, Responses, beam search): OpenAI's logit_bias, vLLM's
// allowed_token_ids and bad_words — each turned into what the shards' sampler applies (biases, an allowed bitset,
// banned continuations; protocol SamplingParams), and the bad-word rule beam search applies itself.
import type { GenerationEngine } from '../engine/types.js';
import { validationError } from './errors.js';
import type { Json } from './json.js';

/** Most logit_bias entries one request may carry. */
export const MAX_LOGIT_BIAS = 1024;

/** logit_bias: `{"<token id>": bias}`; an empty map (or all zero biases) is left out of the request. */
export function logitBiasOf(top: Json): { logitBias?: { token: number; bias: number }[] } {
  const v = top.logit_bias;
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw validationError('`logit_bias` must be an object mapping token ids to biases');
  const entries = Object.entries(v as Json);
  if (entries.length > MAX_LOGIT_BIAS) throw validationError(`\`logit_bias\` has ${entries.length} entries; at most ${MAX_LOGIT_BIAS}`);
  const logitBias = entries.map(([key, bias]) => {
    if (!/^(0|[1-9][0-9]*)$/.test(key) || !Number.isSafeInteger(Number(key))) {
      throw validationError(`\`logit_bias\` keys must be token ids (integers >= 0), got "${key.slice(0, 32)}"`);
    }
    if (typeof bias !== 'number' || !Number.isFinite(bias) || bias < -100 || bias > 100) {
      throw validationError(`\`logit_bias\` values must be numbers >= -100 and <= 100 (token ${key})`);
    }
    return { token: Number(key), bias };
  }).filter((e) => e.bias !== 0).sort((a, b) => a.token - b.token);
  return logitBias.length > 0 ? { logitBias } : {};
}

/** Most allowed_token_ids one request may give. */
export const MAX_ALLOWED_TOKEN_IDS = 65_536;

/** vLLM's allowed_token_ids: a non-empty list of token ids, the only ones the answer may use (absent: all). */
export function allowedTokenIdsOf(top: Json): { allowedTokens?: number[] } {
  const v = top.allowed_token_ids;
  if (v === undefined || v === null) return {};
  if (!Array.isArray(v) || v.length === 0 || !v.every((t) => Number.isSafeInteger(t) && (t as number) >= 0)) {
    throw validationError('`allowed_token_ids` must be a non-empty array of token ids (integers >= 0)');
  }
  if (v.length > MAX_ALLOWED_TOKEN_IDS) throw validationError(`\`allowed_token_ids\` supports up to ${MAX_ALLOWED_TOKEN_IDS} ids. Given: ${v.length}`);
  return { allowedTokens: [...new Set(v as number[])] };
}

/** Most bad_words one request may give, and the longest one (characters). */
export const MAX_BAD_WORDS = 128;
const MAX_BAD_WORD_CHARS = 256;

/** vLLM's bad_words: a list of non-empty strings the answer must not contain as tokens (see badWordTokens). */
export function badWordsOf(top: Json): string[] {
  const v = top.bad_words;
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((w) => typeof w === 'string' && w.trim() !== '' && w.length <= MAX_BAD_WORD_CHARS)) {
    throw validationError(`\`bad_words\` must be an array of non-empty strings of at most ${MAX_BAD_WORD_CHARS} characters`);
  }
  if (v.length > MAX_BAD_WORDS) throw validationError(`\`bad_words\` supports up to ${MAX_BAD_WORDS} words. Given: ${v.length}`);
  return v as string[];
}

/** Each bad word as token sequences, as vLLM bans them: the word as given and with one leading space (how it is
 * tokenized mid-text), no special tokens, duplicates dropped. */
export async function badWordTokens(engine: GenerationEngine, words: readonly string[]): Promise<number[][]> {
  const seqs = new Map<string, number[]>();
  for (const word of words) {
    for (const text of [word, ` ${word.trimStart()}`]) {
      const ids = (await engine.tokenize(text, true)).map((t) => t.id);
      if (ids.length > 0) seqs.set(ids.join(','), ids);
    }
  }
  return [...seqs.values()];
}

/** bad_words as the shards apply them (protocol SamplingParams.badWords): the tokens that would complete one of the
 * words right after `generated` — a word's last token when the tokens before it end `generated` (a one-token word
 * always). Beam search needs this itself: each beam step is a new one-token request whose prompt holds the beam's
 * tokens, so the shards would not see them as generated. */
export function tokensCompletingBadWords(badWords: readonly (readonly number[])[], generated: readonly number[]): number[] {
  const banned = new Set<number>();
  for (const word of badWords) {
    const before = word.length - 1;
    if (before > generated.length) continue;
    let matches = true;
    for (let k = 0; k < before && matches; k++) matches = generated[generated.length - before + k] === word[k];
    if (matches) banned.add(word[before]!);
  }
  return [...banned];
}

/** Whether a token is left to draw once `banned` are masked, within allowed_token_ids (null: the whole vocabulary). */
export function anyTokenLeft(allowed: ReadonlySet<number> | null, banned: readonly number[], vocabSize: number): boolean {
  if (allowed === null) return new Set(banned).size < vocabSize;
  return new Set(banned.filter((t) => allowed.has(t))).size < allowed.size;
}

/** A 422 when the one-token bad_words ban every token allowed_token_ids allows (or the whole vocabulary): not even
 * the first token could be drawn, and the shards' sampler would be handed a row of nothing. */
export function checkFirstTokenLeft(allowedTokens: readonly number[] | undefined, badWords: readonly (readonly number[])[],
  vocabSize: number): void {
  if (!anyTokenLeft(allowedTokens ? new Set(allowedTokens) : null, tokensCompletingBadWords(badWords, []), vocabSize)) {
    throw validationError(allowedTokens
      ? '`bad_words` ban every token in `allowed_token_ids`: nothing could be generated; allow more tokens or ban fewer words'
      : '`bad_words` ban every token of the vocabulary: nothing could be generated');
  }
}
