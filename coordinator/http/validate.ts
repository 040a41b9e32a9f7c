// Request-body validation for the TGI/LoRAX routes: strict (unknown keys are refused by name), with
// TGI's messages where TGI has one, and the mapping to the engine's GenerateRequest.
//
// Semantics chosen (and why):
//  - `null` means "absent" for every optional key, as with TGI's serde `Option` fields.
//  - Sampling follows TGI's server: `do_sample` defaults to false, but setting temperature != 1, top_k,
//    top_p < 1 or typical_p < 1 turns sampling on even when do_sample is false (TGI computes
//    `sampling = do_sample || has_warpers`). repetition_penalty alone does not. `min_p` (an extension, as vLLM's
//    and transformers' MinPLogitsWarper) in [0, 1] counts as a warper when above 0.
//  - A seed is chosen here when none is given and the request samples, so details.seed can report it.
//  - `best_of` > 1 (TGI, /generate only, sampling without a seed): that many sequences with random seeds;
//    the one with the highest mean token log-prob answers, the others are details.best_of_sequences.
//  - Keys TGI/LoRAX clients send with neutral defaults (watermark, ...) are accepted at their
//    neutral value and refused with "not supported yet" otherwise; nothing is silently ignored.
//  - `truncate` keeps the last N prompt tokens (TGI); `ignore_eos_token` generates past EOS (LoRAX);
//    `frequency_penalty` (TGI) and `presence_penalty` in [-2, 2] work on the generated tokens, as OpenAI's and
//    vLLM's do.
//  - `apply_chat_template: true` follows LoRAX: `inputs` is a JSON-encoded list of chat messages
//    ([{role, content}], as OpenAI's), rendered with the model's chat template and a generation prompt.
//  - `merged_adapters` follows LoRAX: one id is that adapter alone (LoRAX ignores its weight too),
//    2+ ids become a MergeSpec; `adapter_source` / `api_token` apply to every id. Stricter than LoRAX:
//    ids must be distinct, and ties / dare_* need a density in (0, 1] (LoRAX defaults it to 0).
import { randomBytes } from 'node:crypto';
import type { ToolFormatName } from '../engine/tool-format-detect.js';
import type { SamplingDefaults } from './generation-defaults.js';
import type { SamplingParams } from '../../protocol/index.js';
import type { AdapterRef, AdapterSource, GenerateRequest, MergeSpec, MergeStrategy } from '../engine/types.js';
import { notSupported, validationError } from './errors.js';
import { isJsonObject, type Json } from './json.js';
import { tgiConstraint } from './structured-output.js';

/** TGI's default `--max-stop-sequences`. */
export const MAX_STOP_SEQUENCES = 4;
/** TGI's default `--max-top-n-tokens`. */
export const MAX_TOP_N_TOKENS = 5;
/** Used when max_new_tokens is absent (TGI's documented default), capped by the model's limit. */
export const DEFAULT_MAX_NEW_TOKENS = 100;
export const MAX_SEED = Number.MAX_SAFE_INTEGER;
export const ADAPTER_SOURCES: readonly AdapterSource[] = ['hub', 's3', 'local'];
export const MERGE_STRATEGIES: readonly MergeStrategy[] = ['linear', 'ties', 'dare_linear', 'dare_ties', 'cat'];
const MAJORITY_SIGN_METHODS: readonly MergeSpec['majoritySignMethod'][] = ['total', 'frequency'];
/** Larger merge weights overflow the merged factors (float32) into infinities. */
const MAX_MERGE_WEIGHT = 100;
const MERGE_KEYS = new Set(['ids', 'weights', 'merge_strategy', 'density', 'majority_sign_method']);

export interface ValidationLimits {
  maxTotalTokens: number;
  /** Longest prompt in tokens (bounds `truncate`); default maxTotalTokens - 1. */
  maxInputLength?: number;
  /** Source of an adapter id given without `adapter_source` (the server's --adapter-source). Default 'hub'. */
  defaultAdapterSource?: AdapterSource;
  /** --trust-request-chat-template: a chat request's own `chat_template` is rendered (else refused). */
  requestChatTemplate?: boolean;
  /** --tool-call-parser: how tools, calls and results reach the chat template (default weft: as text). */
  toolFormat?: ToolFormatName;
  /** OpenAI routes only: --generation-config's defaults for the sampling fields a request leaves out. */
  samplingDefaults?: SamplingDefaults | null;
}

/** Which route the body came to: the stream route refuses decoder_input_details, like TGI. */
export type GenerateRoute = 'generate' | 'generate_stream' | 'compat';

export interface ValidGenerate {
  request: Omit<GenerateRequest, 'requestId'>;
  /** Sequences to sample, the best answering (1: the request itself). */
  bestOf: number;
  details: boolean;
  returnFullText: boolean;
  /** Top-level `stream` flag (POST / picks the response kind with it; other routes ignore it). */
  stream: boolean;
  /** TGI `top_n_tokens`: top_tokens beside each generated token (0: none). */
  topTokens: number;
  /** LoRAX `return_k_alternatives`: each generated token lists this many most likely tokens (0: none). */
  alternatives: number;
  /** LoRAX `apply_chat_template`: `inputs` parsed as chat messages, for the route to render with the template. */
  chatMessages?: ChatMessageInput[];
  /** The inputs as sent, when the route rewrote request.inputs (markdown images became image placeholders). */
  originalInputs?: string;
}

/** One message of a LoRAX `apply_chat_template` request. */
export interface ChatMessageInput { role: string; content: string }

const TOP_LEVEL_KEYS = new Set(['inputs', 'parameters', 'stream']);
const TOKENIZE_KEYS = new Set(['inputs', 'parameters', 'add_special_tokens']);

const PARAMETER_KEYS = new Set([
  'adapter_id', 'adapter_source', 'api_token', 'max_new_tokens', 'temperature', 'top_k', 'top_p',
  'typical_p', 'repetition_penalty', 'do_sample', 'seed', 'stop', 'return_full_text', 'details',
  'decoder_input_details', 'top_n_tokens', 'merged_adapters', 'ignore_eos_token', 'truncate', 'frequency_penalty',
  'presence_penalty', 'best_of', 'grammar', 'response_format', 'return_k_alternatives', 'apply_chat_template', 'min_p',
  'min_new_tokens', 'priority',
]);

/** Largest `best_of` (TGI's --max-best-of defaults to 2; each is a sequence in the batch). */
export const MAX_BEST_OF = 16;

/** Known TGI/LoRAX keys weft does not implement: accepted only at these values (or null). */
const NEUTRAL_ONLY: Readonly<Record<string, readonly unknown[]>> = {
  watermark: [false],
};

export function randomSeed(): number {
  return Number(randomBytes(8).readBigUInt64BE() & BigInt(MAX_SEED));
}

/** The token of an `Authorization: Bearer <token>` header, if any. */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  const m = value === undefined ? null : /^\s*bearer\s+(\S+)\s*$/i.exec(value);
  return m ? m[1] : undefined;
}

export function validateGenerateBody(
  body: unknown,
  limits: ValidationLimits,
  route: GenerateRoute,
  authorization?: string | string[],
  seedSource: () => number = randomSeed,
): ValidGenerate {
  const top = asObject(body, 'request body');
  rejectUnknown(top, TOP_LEVEL_KEYS, 'field');
  const inputs = requireInputs(top);
  const stream = optional(top, 'stream', bool) ?? false;
  const p = top.parameters === undefined || top.parameters === null ? {} : asObject(top.parameters, '`parameters`');
  rejectUnknown(p, PARAMETER_KEYS, 'parameter');
  refuseNonNeutral(p);

  const { adapter, merge } = adapterChoice(p, bearerToken(authorization), limits.defaultAdapterSource ?? 'hub');
  const sampling = samplingParams(p, seedSource);
  const maxNewTokens = maxNewTokensOf(p, limits.maxTotalTokens);
  const stop = stopSequences(p);
  const topTokens = optional(p, 'top_n_tokens', int) ?? 0;
  if (topTokens < 0 || topTokens > MAX_TOP_N_TOKENS) {
    throw validationError(`\`top_n_tokens\` must be >= 0 and <= ${MAX_TOP_N_TOKENS}. Given: ${topTokens}`);
  }
  const alternatives = optional(p, 'return_k_alternatives', int) ?? 0;
  if (alternatives < 0 || alternatives > MAX_TOP_N_TOKENS) {
    throw validationError(`\`return_k_alternatives\` must be >= 0 and <= ${MAX_TOP_N_TOKENS}. Given: ${alternatives}`);
  }
  // One top list serves both: TGI's top_tokens and LoRAX's alternative_tokens take what each asked for from it.
  const topN = Math.max(topTokens, alternatives);
  const promptLogprobs = optional(p, 'decoder_input_details', bool) ?? false;
  if (promptLogprobs && (route === 'generate_stream' || (route === 'compat' && stream))) {
    throw validationError('`decoder_input_details` == true is not supported when streaming tokens');
  }
  const truncate = optional(p, 'truncate', int);
  const maxInput = maxInputOf(limits);
  if (truncate !== undefined && (truncate < 1 || truncate > maxInput)) {
    throw validationError(`\`truncate\` must be strictly positive and less than ${maxInput + 1}. Given: ${truncate}`);
  }
  const ignoreEos = optional(p, 'ignore_eos_token', bool) ?? false;
  const minNewTokens = minTokensOf(p, 'min_new_tokens', maxNewTokens);
  const constraint = tgiConstraint(p);
  const bestOf = bestOfOf(p, route === 'generate_stream' || (route === 'compat' && stream), sampling.doSample);
  const chatMessages = optional(p, 'apply_chat_template', bool) ? chatMessagesOf(inputs) : undefined;
  const priority = priorityOf(p);
  return {
    bestOf,
    request: { inputs, adapter, merge, sampling, maxNewTokens, stop, promptLogprobs, topN, ignoreEos,
      ...(truncate !== undefined ? { truncate } : {}), ...(constraint !== undefined ? { constraint } : {}),
      ...(minNewTokens > 0 ? { minNewTokens } : {}), ...(priority !== 0 ? { priority } : {}) },
    details: optional(p, 'details', bool) ?? false,
    returnFullText: optional(p, 'return_full_text', bool) ?? false,
    stream,
    topTokens,
    alternatives,
    ...(chatMessages ? { chatMessages } : {}),
  };
}

/** LoRAX `apply_chat_template`: `inputs` must be a JSON list of {role, content} string pairs. */
function chatMessagesOf(inputs: string): ChatMessageInput[] {
  const what = 'with `apply_chat_template` true, `inputs` must be a JSON-encoded list of messages ' +
    '[{"role": ..., "content": ...}]';
  let parsed: unknown;
  try {
    parsed = JSON.parse(inputs);
  } catch {
    throw validationError(`${what}; it is not JSON`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0) throw validationError(`${what}; got ${Array.isArray(parsed) ? 'an empty list' : typeof parsed}`);
  return parsed.map((m: unknown, i) => {
    if (!isJsonObject(m) || typeof m.role !== 'string' || typeof m.content !== 'string') {
      throw validationError(`${what}; message ${i} is not {"role": string, "content": string}`);
    }
    return { role: m.role, content: m.content };
  });
}

/** POST /tokenize: `{inputs, parameters?, add_special_tokens?}` (parameters are checked, then unused). */
export function validateTokenizeBody(body: unknown, limits: ValidationLimits): { inputs: string; chatMessages?: ChatMessageInput[] } {
  const top = asObject(body, 'request body');
  rejectUnknown(top, TOKENIZE_KEYS, 'field');
  const inputs = requireInputs(top);
  if (optional(top, 'add_special_tokens', bool) === false) notSupportedThrow('add_special_tokens');
  if (top.parameters !== undefined && top.parameters !== null) {
    const { chatMessages } = validateGenerateBody({ inputs, parameters: top.parameters }, limits, 'generate', undefined, () => 0);
    if (chatMessages) return { inputs, chatMessages };
  }
  return { inputs };
}

// --- pieces ---------------------------------------------------------------------------------------

function requireInputs(top: Json): string {
  if (top.inputs === undefined || top.inputs === null) throw validationError('missing field `inputs`');
  if (typeof top.inputs !== 'string') throw validationError('`inputs` must be a string');
  if (top.inputs.length === 0) throw validationError('`inputs` cannot be empty');
  return top.inputs;
}

/** `adapter_id` or `merged_adapters` (never both, as in LoRAX), with the request's source and token. */
function adapterChoice(p: Json, bearer: string | undefined, defaultSource: AdapterSource): { adapter: AdapterRef | null; merge: MergeSpec | null } {
  const id = optional(p, 'adapter_id', str);
  const source = optional(p, 'adapter_source', str);
  if (source !== undefined && !(ADAPTER_SOURCES as readonly string[]).includes(source)) {
    throw validationError(`\`adapter_source\` must be one of ${ADAPTER_SOURCES.join(', ')}`);
  }
  const token = optional(p, 'api_token', str) || bearer;
  const refTo = (adapterId: string): AdapterRef => {
    const ref: AdapterRef = { id: adapterId, source: (source as AdapterSource | undefined) ?? defaultSource };
    if (token) ref.apiToken = token;
    return ref;
  };
  if (p.merged_adapters !== undefined && p.merged_adapters !== null) {
    if (id !== undefined) throw validationError('at most one of `adapter_id` or `merged_adapters` may be provided');
    const merge = mergeSpec(asObject(p.merged_adapters, '`merged_adapters`'), refTo);
    return merge.adapters.length === 1 ? { adapter: merge.adapters[0], merge: null } : { adapter: null, merge };
  }
  return { adapter: id === undefined || id === '' ? null : refTo(id), merge: null };
}

function mergeSpec(m: Json, refTo: (id: string) => AdapterRef): MergeSpec {
  for (const key of Object.keys(m)) {
    if (!MERGE_KEYS.has(key)) throw validationError(`unknown field \`merged_adapters.${key.slice(0, 64)}\``);
  }
  const ids = stringArray(m, 'ids');
  if (ids.length === 0) throw validationError('at least one adapter id must be provided in `merged_adapters.ids`');
  if (ids.some((id) => id === '')) throw validationError('`merged_adapters.ids` cannot contain an empty id (the base model cannot be merged)');
  if (new Set(ids).size !== ids.length) throw validationError('`merged_adapters.ids` must be distinct');
  if (!Array.isArray(m.weights) || !m.weights.every((w) => typeof w === 'number' && Math.abs(w) <= MAX_MERGE_WEIGHT)) {
    throw validationError(`\`merged_adapters.weights\` must be an array of numbers from -${MAX_MERGE_WEIGHT} to ${MAX_MERGE_WEIGHT}`);
  }
  if (m.weights.length !== ids.length) {
    throw validationError('number of adapter ids must match number of adapter weights in `merged_adapters`');
  }
  const strategy = oneOf(m, 'merge_strategy', MERGE_STRATEGIES) ?? 'linear';
  const majoritySignMethod = oneOf(m, 'majority_sign_method', MAJORITY_SIGN_METHODS) ?? 'total';
  const density = m.density === undefined || m.density === null ? undefined : num(m.density, 'merged_adapters.density');
  const sparsifies = strategy !== 'linear' && strategy !== 'cat';
  if (sparsifies && density === undefined) {
    throw validationError(`\`merged_adapters.density\` is required for merge_strategy ${strategy}`);
  }
  if (density !== undefined && (density < 0 || density > 1)) {
    throw validationError('`merged_adapters.density` must be >= 0.0 and <= 1.0');
  }
  if (sparsifies && density === 0) {
    throw validationError(`\`merged_adapters.density\` must be > 0.0 for merge_strategy ${strategy}`);
  }
  return {
    adapters: ids.map(refTo),
    weights: [...(m.weights as number[])],
    strategy,
    // Unused by linear / cat: dropped so that it does not split the merge cache.
    density: sparsifies ? (density as number) : null,
    majoritySignMethod,
  };
}

function stringArray(m: Json, key: string): string[] {
  const v = m[key];
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) {
    throw validationError(`\`merged_adapters.${key}\` must be an array of strings`);
  }
  return [...(v as string[])];
}

function oneOf<T extends string>(m: Json, key: string, allowed: readonly T[]): T | undefined {
  const v = m[key] === undefined || m[key] === null ? undefined : str(m[key], `merged_adapters.${key}`);
  if (v !== undefined && !(allowed as readonly string[]).includes(v)) {
    throw validationError(`\`merged_adapters.${key}\` must be one of ${allowed.join(', ')}`);
  }
  return v as T | undefined;
}

/** Bounds that keep the sampler's arithmetic finite: logits divided by a temperature or repetition penalty near 0
 * overflow float32 (NaN probabilities); top_k travels as a 32-bit integer. */
export const MIN_TEMPERATURE = 1e-5;
export const MAX_TOP_K = 2 ** 31 - 1;
export const REPETITION_PENALTY_RANGE = [0.01, 100] as const;

export function repetitionPenaltyOf(p: Json): number {
  const v = optional(p, 'repetition_penalty', num) ?? 1;
  const [lo, hi] = REPETITION_PENALTY_RANGE;
  if (!(v >= lo && v <= hi)) throw validationError(`\`repetition_penalty\` must be >= ${lo} and <= ${hi} (1: off)`);
  return v;
}

export function topKOf(p: Json): number | undefined {
  const v = optional(p, 'top_k', int);
  if (v !== undefined && (v <= 0 || v > MAX_TOP_K)) throw validationError(`\`top_k\` must be strictly positive and at most ${MAX_TOP_K}`);
  return v;
}

function samplingParams(p: Json, seedSource: () => number): SamplingParams {
  const temperature = optional(p, 'temperature', num) ?? 1;
  if (temperature < MIN_TEMPERATURE) throw validationError(`\`temperature\` must be at least ${MIN_TEMPERATURE} (for greedy decoding leave do_sample false)`);
  const repetitionPenalty = repetitionPenaltyOf(p);
  const topK = topKOf(p) ?? 0;
  const topP = openUnit(p, 'top_p');
  const typicalP = openUnit(p, 'typical_p');
  const minP = minPOf(p);
  const doSample =
    (optional(p, 'do_sample', bool) ?? false) || temperature !== 1 || topK !== 0 || topP < 1 || typicalP < 1 || minP > 0;
  const given = optional(p, 'seed', int);
  if (given !== undefined && (given < 0 || given > MAX_SEED)) {
    throw validationError('`seed` must be an integer >= 0 and <= 2^53 - 1');
  }
  const seed = given ?? (doSample ? seedSource() : 0);
  return { temperature, topK, topP, typicalP, ...(minP > 0 ? { minP } : {}), repetitionPenalty, ...additivePenalty(p, 'frequency_penalty', 'frequencyPenalty'),
    ...additivePenalty(p, 'presence_penalty', 'presencePenalty'), doSample, seed };
}

/** The longest prompt a request may give (bounds `truncate` / `truncate_prompt_tokens`). */
export function maxInputOf(limits: ValidationLimits): number {
  return limits.maxInputLength ?? limits.maxTotalTokens - 1;
}

/** min_new_tokens (TGI routes) / min_tokens (OpenAI): 0 (off) up to the request's max new tokens. */
export function minTokensOf(p: Json, key: 'min_new_tokens' | 'min_tokens', maxNewTokens: number): number {
  const v = optional(p, key, int) ?? 0;
  if (v < 0 || v > maxNewTokens) throw validationError(`\`${key}\` must be >= 0 and <= the maximum new tokens (${maxNewTokens}). Given: ${v}`);
  return v;
}

/** min_p: keep tokens at least this fraction as likely as the most likely one; absent or 0 = off. */
export function minPOf(p: Json): number {
  const v = optional(p, 'min_p', num) ?? 0;
  if (!(v >= 0 && v <= 1)) throw validationError('`min_p` must be >= 0 and <= 1');
  return v;
}

/** top_p / typical_p: absent means off (1); a given value must lie strictly inside (0, 1), as in TGI. */
function openUnit(p: Json, key: 'top_p' | 'typical_p'): number {
  const v = optional(p, key, num);
  if (v === undefined) return 1;
  if (v <= 0 || v >= 1) throw validationError(`\`${key}\` must be > 0.0 and < 1.0`);
  return v;
}

function maxNewTokensOf(p: Json, maxTotalTokens: number): number {
  const v = optional(p, 'max_new_tokens', int);
  if (v === undefined) return Math.max(1, Math.min(DEFAULT_MAX_NEW_TOKENS, maxTotalTokens - 1));
  if (v <= 0) throw validationError('`max_new_tokens` must be strictly positive');
  if (v > maxTotalTokens) throw validationError(`\`max_new_tokens\` must be <= ${maxTotalTokens}. Given: ${v}`);
  return v;
}

function bestOfOf(p: Json, streaming: boolean, sampling: boolean): number {
  const v = optional(p, 'best_of', int);
  if (v === undefined || v === 1) return 1;
  if (v < 1 || v > MAX_BEST_OF) throw validationError(`\`best_of\` must be > 0 and <= ${MAX_BEST_OF}. Given: ${v}`);
  if (streaming) throw validationError('`best_of` != 1 is not allowed for this endpoint');
  if (!sampling) throw validationError('you must use sampling when `best_of` is > 1');
  if (p.seed !== undefined && p.seed !== null) throw validationError('`seed` must not be set when `best_of` > 1');
  return v;
}

function stopSequences(p: Json): string[] {
  if (p.stop === undefined || p.stop === null) return [];
  if (!Array.isArray(p.stop) || !p.stop.every((s) => typeof s === 'string')) {
    throw validationError('`stop` must be an array of strings');
  }
  if (p.stop.length > MAX_STOP_SEQUENCES) {
    throw validationError(`\`stop\` supports up to ${MAX_STOP_SEQUENCES} stop sequences. Given: ${p.stop.length}`);
  }
  if (p.stop.some((s) => s === '')) throw validationError('`stop` sequences cannot be empty strings');
  return [...(p.stop as string[])];
}

function refuseNonNeutral(p: Json): void {
  for (const [key, neutral] of Object.entries(NEUTRAL_ONLY)) {
    const v = p[key];
    if (v === undefined || v === null || neutral.includes(v)) continue;
    notSupportedThrow(key);
  }
}

// --- typed access (shared with the OpenAI routes' validation) --------------------------------------

export type Check<T> = (v: unknown, name: string) => T;

export const bool: Check<boolean> = (v, name) => {
  if (typeof v !== 'boolean') throw validationError(`\`${name}\` must be a boolean`);
  return v;
};
export const str: Check<string> = (v, name) => {
  if (typeof v !== 'string') throw validationError(`\`${name}\` must be a string`);
  return v;
};
export const num: Check<number> = (v, name) => {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw validationError(`\`${name}\` must be a number`);
  return v;
};
export const int: Check<number> = (v, name) => {
  if (!Number.isInteger(num(v, name))) throw validationError(`\`${name}\` must be an integer`);
  return v as number;
};

/** The value of an optional key, checked; undefined when absent or null. */
export function optional<T>(obj: Json, key: string, check: Check<T>): T | undefined {
  const v = obj[key];
  return v === undefined || v === null ? undefined : check(v, key);
}

export function asObject(v: unknown, what: string): Json {
  if (!isJsonObject(v)) throw validationError(`${what} must be a JSON object`);
  return v;
}

function rejectUnknown(obj: Json, known: ReadonlySet<string>, kind: 'field' | 'parameter'): void {
  for (const key of Object.keys(obj)) {
    if (known.has(key) || (kind === 'parameter' && key in NEUTRAL_ONLY)) continue;
    throw validationError(`unknown ${kind} \`${key.slice(0, 64)}\``);
  }
}

function notSupportedThrow(name: string): never {
  throw notSupported(name);
}

/** presence_penalty / frequency_penalty: a number in [-2, 2]; 0 (off) is left out of the request. */
export function additivePenalty<K extends string>(top: Record<string, unknown>, key: string, field: K): Partial<Record<K, number>> {
  const v = optional(top, key, num);
  if (v === undefined || v === 0) return {};
  if (v < -2 || v > 2) throw validationError(`\`${key}\` must be >= -2.0 and <= 2.0`);
  return { [field]: v } as Partial<Record<K, number>>;
}

/** `priority` (vLLM's; weft's on TGI's parameters too): an integer, lower admitted first; default 0. */
export function priorityOf(b: Json): number {
  const v = b.priority;
  if (v === undefined || v === null) return 0;
  if (!Number.isInteger(v) || Math.abs(v as number) > 2 ** 31) throw validationError('`priority` must be an integer (lower is served first)');
  return v as number;
}

/** A route's JSON body whose every field is one of `known` (refused by name otherwise). */
export function knownFields(body: unknown, known: readonly string[]): Json {
  if (!isJsonObject(body)) throw validationError('the body must be a JSON object');
  const extra = Object.keys(body).find((k) => !known.includes(k));
  if (extra !== undefined) throw validationError(`unknown field \`${extra.slice(0, 64)}\``);
  return body;
}

/** An `adapter_source` value: one of ADAPTER_SOURCES. */
export function adapterSourceOf(v: unknown): AdapterSource {
  if (!(ADAPTER_SOURCES as readonly unknown[]).includes(v)) throw validationError(`\`adapter_source\` must be one of ${ADAPTER_SOURCES.join(', ')}`);
  return v as AdapterSource;
}
