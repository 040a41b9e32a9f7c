// Loads a model directory's tokenizer (tokenizer.json + tokenizer_config.json) and the facts the server
// needs about it. Used both in the worker threads and in-process (for synchronous streaming decode).
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { tokenizerJsonProblem } from '../../protocol/index.js';

export class TokenizerLoadError extends Error {
  override name = 'TokenizerLoadError';
}

export interface TokenizerInfo {
  modelDir: string;
  /** One past the largest token id the tokenizer knows (added tokens included). */
  vocabSize: number;
  bosTokenId: number | null;
  bosToken: string | null;
  /** Every id that ends generation: tokenizer eos, then generation_config / config eos ids. */
  eosTokenIds: number[];
  eosToken: string | null;
  specialTokenIds: number[];
  chatTemplate: string | null;
  /** Why structured output cannot work with this tokenizer (its pieces are not text), or null. */
  structuredOutputProblem: string | null;
}

export interface LoadedTokenizer {
  tokenizer: Tokenizer;
  info: TokenizerInfo;
  /** The model's unknown token (tokenizer.json's model.unk_token / unk_id), for words its vocabulary lacks; null: none. */
  unkId: number | null;
}

type Json = Record<string, unknown>;

export function loadTokenizer(modelDir: string): LoadedTokenizer {
  const dir = resolve(modelDir);
  const tokenizerPath = join(dir, 'tokenizer.json');
  if (!existsSync(tokenizerPath)) {
    throw new TokenizerLoadError(
      `no tokenizer.json in model directory ${dir}: weft needs a Hugging Face fast tokenizer (tokenizer.json) next to the weights`,
    );
  }
  const tokenizerJson = readJson(tokenizerPath);
  if (tokenizerJson === null) throw new TokenizerLoadError(`${tokenizerPath} is not a JSON object`);
  const config = readJson(join(dir, 'tokenizer_config.json')) ?? {};
  const generation = readJson(join(dir, 'generation_config.json')) ?? {};
  const modelConfig = readJson(join(dir, 'config.json')) ?? {};

  // tokenizers.js wants every component key present; files written by hand may leave some out.
  for (const key of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder']) tokenizerJson[key] ??= null;
  tokenizerJson.added_tokens ??= [];
  applyAddSpecialTokenFlags(tokenizerJson, config);
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(tokenizerJson, config);
  } catch (err) {
    throw new TokenizerLoadError(`cannot load ${tokenizerPath}: ${(err as Error).message}`, { cause: err });
  }

  const idOf = (token: string | null): number | null =>
    token === null ? null : (tokenizer.token_to_id(token) ?? null);
  const bosToken = tokenString(config.bos_token);
  const eosToken = tokenString(config.eos_token);
  const bosTokenId = idOf(bosToken) ?? firstId(generation.bos_token_id) ?? firstId(modelConfig.bos_token_id);
  const eosTokenIds = unique([
    idOf(eosToken),
    ...idList(generation.eos_token_id),
    ...idList(modelConfig.eos_token_id),
  ]);

  const specialTokenIds = new Set<number>();
  for (const t of (tokenizerJson.added_tokens ?? []) as { id: number; special?: boolean }[]) {
    if (t.special === true) specialTokenIds.add(t.id);
  }
  for (const t of [bosToken, eosToken, ...stringList(config.additional_special_tokens)]) {
    const id = idOf(t);
    if (id !== null) specialTokenIds.add(id);
  }

  let vocabSize = 0;
  for (const id of tokenizer.get_vocab(true).values()) vocabSize = Math.max(vocabSize, id + 1);

  const model = (tokenizerJson.model ?? {}) as Json;
  const unkId = typeof model.unk_token === 'string' ? idOf(model.unk_token)
    : Number.isInteger(model.unk_id) ? model.unk_id as number : null;
  return {
    tokenizer,
    unkId,
    info: {
      modelDir: dir,
      vocabSize,
      bosTokenId,
      bosToken,
      eosTokenIds,
      eosToken,
      specialTokenIds: [...specialTokenIds].sort((a, b) => a - b),
      chatTemplate: findChatTemplate(dir, config),
      structuredOutputProblem: tokenizerJsonProblem(tokenizerJson),
    },
  };
}

/** Token ids → text; an empty list is '' and an id outside the vocabulary is an error. */
export function decodeIds(loaded: LoadedTokenizer, ids: readonly number[], skipSpecialTokens = false): string {
  if (ids.length === 0) return '';
  const { vocabSize } = loaded.info;
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new RangeError(`token id ${id} is outside the tokenizer's vocabulary [0, ${vocabSize})`);
    }
  }
  // Never "clean up" spaces before punctuation: streamed text must equal the final text, as in TGI.
  return loaded.tokenizer.decode([...ids], {
    skip_special_tokens: skipSpecialTokens,
    clean_up_tokenization_spaces: false,
  });
}

/** `pair`: a second text, joined to the first by the tokenizer's post-processor (a cross-encoder's input). */
export function encodeText(loaded: LoadedTokenizer, text: string, addSpecialTokens = true, pair?: string): number[] {
  if (typeof text !== 'string') throw new TypeError('text to encode must be a string');
  // A word-level model's unknown words come back without an id when the unk token is named only in tokenizer.json
  // (the library reads it from tokenizer_config.json): the unk id as the Rust tokenizers give it, else -1
  // (TokenizerPool refuses those texts; a missing id sent on would break the step).
  const ids = loaded.tokenizer.encode(text, { add_special_tokens: addSpecialTokens, ...(pair !== undefined ? { text_pair: pair } : {}) })
    .ids as (number | undefined)[];
  return ids.map((id) => (Number.isInteger(id) ? id! : loaded.unkId ?? -1));
}

/**
 * Honours explicit `add_bos_token` / `add_eos_token` in tokenizer_config.json the way transformers'
 * Llama-family fast tokenizers do: the post-processor template is rebuilt to add exactly those tokens.
 * Without the flags, tokenizer.json's own post-processor decides.
 */
function applyAddSpecialTokenFlags(tokenizerJson: Json, config: Json): void {
  const addBos = typeof config.add_bos_token === 'boolean' ? config.add_bos_token : undefined;
  const addEos = typeof config.add_eos_token === 'boolean' ? config.add_eos_token : undefined;
  if (addBos === undefined && addEos === undefined) return;
  const bos = tokenString(config.bos_token);
  const eos = tokenString(config.eos_token);
  const post = tokenizerJson.post_processor as Json | null | undefined;
  const nested = post?.type === 'Sequence' ? ((post.processors ?? []) as Json[]) : [];
  const templateAt = nested.findIndex((p) => p.type === 'TemplateProcessing');
  const template = post?.type === 'TemplateProcessing' ? post : templateAt >= 0 ? nested[templateAt] : undefined;

  const single = (template?.single ?? []) as Json[];
  const firstSeq = single.findIndex((item) => 'Sequence' in item);
  const specialAt = (i: number): string | undefined =>
    ((single[i]?.SpecialToken as Json | undefined)?.id as string | undefined) ?? undefined;
  const hasBos = bos !== null && firstSeq > 0 && specialAt(firstSeq - 1) === bos;
  const hasEos = eos !== null && firstSeq >= 0 && specialAt(firstSeq + 1) === eos;
  const wantBos = addBos ?? hasBos;
  const wantEos = addEos ?? hasEos;
  if (wantBos === hasBos && wantEos === hasEos) return;
  if (wantBos && bos === null) throw new TokenizerLoadError('tokenizer_config.json sets add_bos_token but no bos_token');
  if (wantEos && eos === null) throw new TokenizerLoadError('tokenizer_config.json sets add_eos_token but no eos_token');

  const special = (token: string, typeId: number): Json => ({ SpecialToken: { id: token, type_id: typeId } });
  const part = (seq: 'A' | 'B', typeId: number): Json[] => [
    ...(wantBos ? [special(bos!, typeId)] : []),
    { Sequence: { id: seq, type_id: typeId } },
    ...(wantEos ? [special(eos!, typeId)] : []),
  ];
  const replacement: Json = { type: 'TemplateProcessing', single: part('A', 0), pair: [...part('A', 0), ...part('B', 1)] };
  if (post?.type === 'TemplateProcessing' || post === null || post === undefined) {
    tokenizerJson.post_processor = replacement;
  } else if (templateAt >= 0) {
    nested[templateAt] = replacement;
  } else if (post.type === 'Sequence') {
    post.processors = [...nested, replacement];
  } else {
    tokenizerJson.post_processor = { type: 'Sequence', processors: [post, replacement] };
  }
}

/** chat_template.jinja (newer transformers) wins over tokenizer_config.json's chat_template. */
function findChatTemplate(dir: string, config: Json): string | null {
  const jinjaPath = join(dir, 'chat_template.jinja');
  if (existsSync(jinjaPath)) return readFileSync(jinjaPath, 'utf8');
  const pick = (t: unknown): string | null => {
    if (typeof t === 'string') return t;
    if (Array.isArray(t)) {
      // Older format: a list of named templates; the server uses the one named "default".
      const named = t as { name?: string; template?: string }[];
      return (named.find((x) => x.name === 'default') ?? named[0])?.template ?? null;
    }
    return null;
  };
  return pick(config.chat_template) ?? pick(readJson(join(dir, 'chat_template.json'))?.chat_template);
}

function readJson(path: string): Json | null {
  if (!existsSync(path)) return null;
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new TokenizerLoadError(`${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : null;
}

/** A special token in tokenizer_config.json is a string or an AddedToken object with `content`. */
function tokenString(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as Json).content === 'string') {
    return (value as Json).content as string;
  }
  return null;
}

function stringList(value: unknown): (string | null)[] {
  return Array.isArray(value) ? value.map(tokenString) : [];
}

function idList(value: unknown): number[] {
  if (Number.isInteger(value)) return [value as number];
  return Array.isArray(value) ? value.filter((v): v is number => Number.isInteger(v)) : [];
}

function firstId(value: unknown): number | null {
  return idList(value)[0] ?? null;
}

function unique(ids: (number | null)[]): number[] {
  return [...new Set(ids.filter((id): id is number => id !== null))];
}
