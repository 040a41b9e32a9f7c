// Request-body validation for the OpenAI-compatible routes (POST /v1/completions, /v1/chat/completions):
// strict like the TGI routes (unknown keys are refused by name, `null` means absent), with OpenAI's
// semantics where they differ from TGI's.
//
// Semantics chosen (and why):
//  - Sampling is OpenAI's: temperature defaults to 1 and samples; temperature 0 is greedy. top_p is in
//    (0, 1], 1 = off. top_k and repetition_penalty are accepted as extensions (LoRAX and vLLM do too); top_k -1 or
//    0 is vLLM's "no top-k" (how a request switches off a default top_k).
//  - Fields a request leaves out take --generation-config's defaults first (generation-defaults.ts: the model's
//    generation_config.json, as vLLM), then the values above.
//  - Keys OpenAI clients send at a neutral value are accepted at that value only (NEUTRAL), and refused
//    with "not supported yet" otherwise: store false, metadata {}, service_tier 'auto'|'default',
//    modalities ['text']. (`suffix` and vLLM's beam fields are taken out before, by the route: fim.ts,
//    beam-search.ts.)
//  - `best_of` (completions, n..MAX_CHOICES, not streamed when above n): best_of sequences per prompt, sampled
//    with seed, seed+1, …; the n with the highest mean token log-prob are returned, best first (OpenAI's rule),
//    and usage counts every sequence's tokens (what was computed).
//  - response_format (both routes): text, json_object (any JSON object) or json_schema — structured output,
//    the generated text is constrained to match (structured-output.ts).
//  - presence_penalty / frequency_penalty in [-2, 2] are OpenAI's: on the tokens generated so far (as vLLM).
//    logit_bias {"<token id>": bias in [-100, 100]} (at most MAX_LOGIT_BIAS entries) is added after them.
//  - `echo` (completions) returns the prompt before the completion; with `logprobs` also the prompt tokens'
//    log-probs and alternatives (the first token's are null), which is how evaluation harnesses score text.
//    `max_tokens` 0 is allowed with echo: the prompt is scored and nothing is generated.
//  - `n` (1..MAX_CHOICES) choices are n sequences of the batch, sampled with seeds seed, seed+1, …, so a seeded
//    request is reproducible choice by choice; each counts against --max-concurrent-requests. A completions
//    `prompt` may be a batch (strings or token-id lists): n choices per prompt, prompt by prompt.
//  - `ignore_eos_token` (LoRAX) and `ignore_eos` (vLLM, what benchmark clients send) generate past EOS.
//  - Identifiers for the caller's own bookkeeping are checked as strings and ignored: user,
//    prompt_cache_key, safety_identifier; stream_options.include_obfuscation too (a side-channel pad).
//  - tools / tool_choice: function calling through structured output (openai-tools.ts); `tool` messages and
//    assistant `tool_calls` in the history are rendered as text every chat template takes. The legacy
//    functions / function_call (and `function` messages, assistant `function_call`) work the same way.
//  - Message `name` is accepted and not rendered (chat templates take role and content only); 'developer'
//    is OpenAI's newer name for 'system'. Content parts are joined without a separator, as LoRAX does; image_url parts
//    (user messages, vision-language models) are the request's images (content-parts.ts).
import type { ConstraintSource, SamplingParams } from '../../protocol/index.js';
import type { AdapterSource, ChatRender } from '../engine/types.js';
import { notSupported, validationError } from './errors.js';
import { isJsonObject, type Json } from './json.js';
import {
  ADAPTER_SOURCES,
  additivePenalty,
  DEFAULT_MAX_NEW_TOKENS,
  MAX_SEED,
  MAX_STOP_SEQUENCES,
  MAX_TOP_N_TOKENS,
  asObject,
  minPOf,
  minTokensOf,
  bearerToken,
  bool,
  int,
  num,
  optional,
  priorityOf,
  repetitionPenaltyOf,
  MIN_TEMPERATURE,
  randomSeed,
  str,
  type ValidationLimits,
} from './validate.js';
import { openaiConstraint } from './structured-output.js';
import { withSamplingDefaults } from './generation-defaults.js';
import { allowedTokenIdsOf, badWordsOf, logitBiasOf } from './token-filters.js';
import { predictionOf } from './predicted-outputs.js';
import { chatRenderOf, stopTokenIdsOf, truncatePromptTokensOf, vllmTopKOf } from './openai-vllm.js';
import { callText, functionCallOf, openAiTool, toolCallsOf, toolResultText, toolUseOf, type StructuredToolCall, type ToolUse } from './openai-tools.js';
import { toolFormat } from './tool-formats.js';
import { contentOf } from './content-parts.js';
import type { ChatContentPart } from '../tokenizer/index.js';
import type { ImageInput } from '../vision/index.js';

export interface ChatMessage {
  /** 'tool' only with a native tool format (toolFormat(...).native): otherwise results are user messages. */
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string;
  /** Native tool format: an assistant turn's calls as chat templates read them (arguments as an object). */
  tool_calls?: StructuredToolCall[];
  /** Native tool format: a tool result's call id and function name. */
  tool_call_id?: string;
  name?: string;
  /** An assistant turn's thoughts as a client echoes them back (reasoning_content, or `reasoning`): templates that
   * render earlier thoughts read message.reasoning_content (Qwen3's drops them before the last user turn). */
  reasoning_content?: string;
  /** A user message with images: its content parts, in order (the chat template renders them). */
  parts?: ChatContentPart[];
}

/** What both OpenAI routes share, validated. */
export interface ValidOpenAi {
  /** As sent (undefined when absent); the engine maps it to an adapter. */
  model: string | undefined;
  /** `api_token` (LoRAX extension) or else the Authorization bearer token. */
  apiToken: string | undefined;
  /** `adapter_source` (LoRAX extension): `model` is then an adapter id in that source. */
  adapterSource: AdapterSource | undefined;
  sampling: SamplingParams;
  maxNewTokens: number;
  /** min_tokens (vLLM): 0 = off. */
  minNewTokens: number;
  stop: string[];
  /** Report per-token log-probs, with topN alternatives each. */
  logprobs: boolean;
  topN: number;
  stream: boolean;
  includeUsage: boolean;
  /** ignore_eos_token / ignore_eos: generate past EOS. */
  ignoreEos: boolean;
  /** stop_token_ids (vLLM): token ids that end the generation like EOS. */
  stopTokenIds: number[];
  /** bad_words (vLLM), as given: openai-routes.ts tokenizes them into sampling.badWords. */
  badWords: string[];
  /** include_stop_str_in_output (vLLM): the matched stop sequence stays at the end of the text. */
  includeStop: boolean;
  /** skip_special_tokens: false (vLLM): special tokens stay in the text (GenerateRequest.keepSpecialTokens). */
  keepSpecialTokens: boolean;
  /** truncate_prompt_tokens (vLLM): keep only the last this many prompt tokens (TGI's truncate). */
  truncate: number | undefined;
  /** vLLM's `priority` (lower is admitted first; 0 unless --scheduling-policy priority: the engine refuses it). */
  priority: number;
  /** Structured output from response_format (json_object / json_schema) or vLLM's guided fields; undefined for text. */
  constraint: ConstraintSource | undefined;
  /** Choices to generate (`n`). */
  n: number;
  /** OpenAI's Predicted Outputs: the text the answer is expected to be (predicted-outputs.ts). */
  prediction: string | undefined;
  /** maxNewTokens is --generation-config's default, not the client's: the engine lowers it to the room the prompt
   * leaves (GenerateRequest.fitMaxNewTokens). */
  fitMaxNewTokens?: boolean;
  /** Completions only (see ValidCompletion). */
  bestOf?: number;
  echo?: boolean;
  scoreOnly?: boolean;
}

/** Largest `n`: each choice is a sequence in the batch. */
export const MAX_CHOICES = 16;
/** Most prompts one completion request may carry, and most sequences (prompts x n) it may start. */
export const MAX_PROMPTS = 64;

export interface ValidCompletion extends ValidOpenAi {
  /** Sequences per prompt (>= n); the n best by mean token log-prob are returned. */
  bestOf: number;
  /** Each prompt: text, or token ids. Choices are ordered prompt by prompt, n each (OpenAI's order). */
  prompts: (string | number[])[];
  /** Return the prompt (and, with logprobs, its tokens' log-probs) before the completion. */
  echo: boolean;
  /** max_tokens 0 with echo: score the prompt only; the one token generated internally is not returned. */
  scoreOnly: boolean;
}

export interface ValidChat extends ValidOpenAi {
  /** Tool results and calls are already rendered as text (openai-tools.ts). */
  messages: ChatMessage[];
  /** add_generation_prompt, continue_final_message, chat_template_kwargs (vLLM's chat fields). */
  render: ChatRender;
  /** Functions the answer may call (absent: none, or tool_choice "none"). */
  tools: ToolUse | undefined;
  /** include_reasoning (vLLM, default true): false drops the thoughts a reasoning parser splits out. */
  includeReasoning: boolean;
  /** The user messages' images, in order (image_url parts). */
  images: ImageInput[];
}


const COMMON_KEYS = [
  'model', 'stream', 'stream_options', 'prediction', 'max_tokens', 'temperature', 'top_p', 'n', 'stop', 'seed', 'presence_penalty',
  'frequency_penalty', 'logit_bias', 'user', 'top_k', 'repetition_penalty', 'ignore_eos_token', 'ignore_eos', 'adapter_source',
  'api_token', 'logprobs', 'response_format', 'min_p', 'min_tokens', 'stop_token_ids', 'include_stop_str_in_output',
  'truncate_prompt_tokens', 'guided_json', 'guided_regex', 'guided_choice', 'guided_grammar', 'structured_outputs',
  'skip_special_tokens',
  // vLLM sampling fields clients send at their defaults: accepted there only (NEUTRAL)
  'spaces_between_special_tokens', 'use_beam_search', 'length_penalty', 'early_stopping',
  'return_tokens_as_token_ids', 'priority', 'allowed_token_ids', 'bad_words',
];
const COMPLETION_KEYS = new Set([...COMMON_KEYS, 'prompt', 'best_of', 'echo']);
const CHAT_KEYS = new Set([
  ...COMMON_KEYS, 'messages', 'top_logprobs', 'max_completion_tokens', 'tools', 'tool_choice', 'parallel_tool_calls',
  'functions', 'function_call', 'store', 'metadata', 'service_tier', 'modalities',
  'prompt_cache_key', 'safety_identifier', 'add_generation_prompt', 'continue_final_message', 'chat_template_kwargs',
  'chat_template', 'include_reasoning', 'reasoning_effort',
]);
const IGNORED_STRINGS = ['user', 'prompt_cache_key', 'safety_identifier'];

const isEmptyObject = (v: unknown) => isJsonObject(v) && Object.keys(v).length === 0;
const isEmptyArray = (v: unknown) => Array.isArray(v) && v.length === 0;

/** Known OpenAI keys weft does not implement: accepted only when this says the value is neutral. */
const NEUTRAL: Readonly<Record<string, (v: unknown) => boolean>> = {
  store: (v) => v === false,
  metadata: isEmptyObject,
  service_tier: (v) => v === 'auto' || v === 'default',
  modalities: (v) => Array.isArray(v) && v.length === 1 && v[0] === 'text',
  // vLLM's, at the values that mean what weft does
  spaces_between_special_tokens: (v) => v === true,
  use_beam_search: (v) => v === false,
  length_penalty: (v) => v === 1,
  early_stopping: (v) => v === false,
  return_tokens_as_token_ids: (v) => v === false,
};

const ROLES: Readonly<Record<string, ChatMessage['role']>> = {
  system: 'system', developer: 'system', user: 'user', assistant: 'assistant',
};
const MESSAGE_KEYS = new Set(['role', 'content', 'name']);
/** Keys of an assistant message echoed back from a response object; accepted when null (or empty). */
const MESSAGE_NULL_KEYS = new Set(['refusal', 'audio', 'annotations']);

export function validateCompletionBody(
  body: unknown,
  limits: ValidationLimits,
  authorization?: string | string[],
  seedSource: () => number = randomSeed,
): ValidCompletion {
  const top = withSamplingDefaults(asObject(body, 'request body'), limits.samplingDefaults);
  checkKeys(top, COMPLETION_KEYS);
  const logprobs = optional(top, 'logprobs', int);
  if (logprobs !== undefined && (logprobs < 0 || logprobs > MAX_TOP_N_TOKENS)) {
    throw validationError(`\`logprobs\` must be >= 0 and <= ${MAX_TOP_N_TOKENS}. Given: ${logprobs}`);
  }
  const echo = optional(top, 'echo', bool) ?? false;
  const given = optional(top, 'max_tokens', int);
  const scoreOnly = echo && given === 0;
  const common = commonFields(top, limits, authorization, seedSource, scoreOnly ? 1 : given, logprobs);
  const prompts = promptsOf(top);
  if (prompts.length * common.n > MAX_PROMPTS) {
    throw validationError(`${prompts.length} prompts x n ${common.n} is ${prompts.length * common.n} sequences; at most ${MAX_PROMPTS} per request`);
  }
  const bestOf = optional(top, 'best_of', int) ?? common.n;
  if (bestOf < common.n || bestOf > MAX_CHOICES) {
    throw validationError(`\`best_of\` must be >= n (${common.n}) and <= ${MAX_CHOICES}. Given: ${bestOf}`);
  }
  if (bestOf > common.n && common.stream) throw validationError('`best_of` above `n` cannot be streamed (the best are known at the end)');
  if (prompts.length * bestOf > MAX_PROMPTS) {
    throw validationError(`${prompts.length} prompts x best_of ${bestOf} is ${prompts.length * bestOf} sequences; at most ${MAX_PROMPTS} per request`);
  }
  return { ...common, prompts, echo, scoreOnly, bestOf };
}

export function validateChatBody(
  body: unknown,
  limits: ValidationLimits,
  authorization?: string | string[],
  seedSource: () => number = randomSeed,
): ValidChat {
  const top = withSamplingDefaults(asObject(body, 'request body'), limits.samplingDefaults);
  checkKeys(top, CHAT_KEYS);
  const logprobs = optional(top, 'logprobs', bool) ?? false;
  const topLogprobs = optional(top, 'top_logprobs', int);
  if (topLogprobs !== undefined && (topLogprobs < 0 || topLogprobs > MAX_TOP_N_TOKENS)) {
    throw validationError(`\`top_logprobs\` must be >= 0 and <= ${MAX_TOP_N_TOKENS}. Given: ${topLogprobs}`);
  }
  if (topLogprobs !== undefined && !logprobs) throw validationError('`top_logprobs` requires `logprobs` to be true');
  const maxTokens = optional(top, 'max_tokens', int);
  const maxCompletionTokens = optional(top, 'max_completion_tokens', int);
  if (maxTokens !== undefined && maxCompletionTokens !== undefined && maxTokens !== maxCompletionTokens) {
    throw validationError('`max_tokens` and `max_completion_tokens` disagree; send one of them');
  }
  const topN = logprobs ? (topLogprobs ?? 0) : undefined;
  const common = commonFields(top, limits, authorization, seedSource, maxCompletionTokens ?? maxTokens, topN);
  const tools = toolUseOf(top);
  if (tools && common.constraint !== undefined) throw validationError('use either `tools` or a JSON `response_format`, not both');
  const format = toolFormat(limits.toolFormat ?? 'weft');
  const render = chatRenderOf(top, limits);
  // A native format: the chat template renders the tools (the variable transformers' apply_chat_template sets).
  if (format.native && tools) render.templateKwargs = { ...render.templateKwargs, tools: tools.tools.map(openAiTool) };
  const pattern = tools ? format.constraint(tools) : undefined;
  const constraint = pattern !== undefined ? { pattern } : undefined;
  const images: ImageInput[] = [];
  return { ...common, messages: messagesOf(top, format.native, images), render, tools, ...(constraint !== undefined ? { constraint } : {}),
    includeReasoning: optional(top, 'include_reasoning', bool) ?? true, images };
}

// --- pieces ---------------------------------------------------------------------------------------

function checkKeys(top: Json, known: ReadonlySet<string>): void {
  for (const key of Object.keys(top)) {
    if (!known.has(key)) throw validationError(`unknown field \`${key.slice(0, 64)}\``);
  }
  for (const key of IGNORED_STRINGS) optional(top, key, str);
  for (const [key, neutral] of Object.entries(NEUTRAL)) {
    const v = top[key];
    if (v === undefined || v === null || !known.has(key) || neutral(v)) continue;
    throw notSupported(key);
  }
}

function commonFields(
  top: Json,
  limits: ValidationLimits,
  authorization: string | string[] | undefined,
  seedSource: () => number,
  maxTokens: number | undefined,
  topN: number | undefined,
): ValidOpenAi {
  const model = optional(top, 'model', str);
  const adapterSource = optional(top, 'adapter_source', str);
  if (adapterSource !== undefined && !(ADAPTER_SOURCES as readonly string[]).includes(adapterSource)) {
    throw validationError(`\`adapter_source\` must be one of ${ADAPTER_SOURCES.join(', ')}`);
  }
  const stream = optional(top, 'stream', bool) ?? false;
  const defaultMax = maxTokens === undefined ? limits.samplingDefaults?.max_tokens : undefined;
  const maxNewTokens = maxTokensOf(maxTokens ?? defaultMax, limits.maxTotalTokens, defaultMax !== undefined);
  return {
    model,
    apiToken: optional(top, 'api_token', str) || bearerToken(authorization),
    adapterSource: adapterSource as AdapterSource | undefined,
    sampling: samplingParams(top, seedSource),
    maxNewTokens,
    ...(defaultMax !== undefined ? { fitMaxNewTokens: true } : {}),
    minNewTokens: minTokensOf(top, 'min_tokens', maxNewTokens),
    stop: stopSequences(top),
    logprobs: topN !== undefined,
    topN: topN ?? 0,
    stream,
    includeUsage: includeUsage(top, stream),
    ignoreEos: (optional(top, 'ignore_eos_token', bool) ?? false) || (optional(top, 'ignore_eos', bool) ?? false),
    stopTokenIds: stopTokenIdsOf(top),
    badWords: badWordsOf(top),
    includeStop: optional(top, 'include_stop_str_in_output', bool) ?? false,
    keepSpecialTokens: optional(top, 'skip_special_tokens', bool) === false,
    truncate: truncatePromptTokensOf(top, limits),
    priority: priorityOf(top),
    n: choicesOf(top),
    prediction: predictionOf(top),
    constraint: openaiConstraint(top),
  };
}

function choicesOf(top: Json): number {
  const n = optional(top, 'n', int) ?? 1;
  if (n < 1 || n > MAX_CHOICES) throw validationError(`\`n\` must be >= 1 and <= ${MAX_CHOICES}. Given: ${n}`);
  return n;
}

function samplingParams(top: Json, seedSource: () => number): SamplingParams {
  const temperature = optional(top, 'temperature', num) ?? 1;
  if (temperature < 0 || temperature > 2) throw validationError('`temperature` must be >= 0 and <= 2');
  const topP = optional(top, 'top_p', num) ?? 1;
  if (topP <= 0 || topP > 1) throw validationError('`top_p` must be > 0 and <= 1');
  const topK = vllmTopKOf(top);
  const repetitionPenalty = repetitionPenaltyOf(top);
  const given = optional(top, 'seed', int);
  if (given !== undefined && (given < 0 || given > MAX_SEED)) {
    throw validationError('`seed` must be an integer >= 0 and <= 2^53 - 1');
  }
  const penalties = { ...additivePenalty(top, 'frequency_penalty', 'frequencyPenalty'),
    ...additivePenalty(top, 'presence_penalty', 'presencePenalty'), ...logitBiasOf(top), ...allowedTokenIdsOf(top) };
  const doSample = temperature >= MIN_TEMPERATURE;  // below it, greedy (as vLLM): logits ÷ it would overflow
  const seed = given ?? (doSample ? seedSource() : 0);
  // Greedy: the warpers cannot change an argmax, so they are sent switched off (the penalties can, and stay).
  const minP = minPOf(top);
  if (!doSample) return { temperature: 1, topK: 0, topP: 1, typicalP: 1, repetitionPenalty, ...penalties, doSample, seed };
  return { temperature, topK: topK ?? 0, topP, typicalP: 1, ...(minP > 0 ? { minP } : {}), repetitionPenalty, ...penalties,
    doSample, seed };
}

/** `fromDefault`: v is --generation-config's max_new_tokens, kept under --max-total-tokens like the built-in default. */
function maxTokensOf(v: number | undefined, maxTotalTokens: number, fromDefault = false): number {
  if (v === undefined || fromDefault) return Math.max(1, Math.min(v ?? DEFAULT_MAX_NEW_TOKENS, maxTotalTokens - 1));
  if (v <= 0) throw validationError('`max_tokens` must be strictly positive (0 only with `echo`)');
  if (v > maxTotalTokens) throw validationError(`\`max_tokens\` must be <= ${maxTotalTokens}. Given: ${v}`);
  return v;
}

function stopSequences(top: Json): string[] {
  const v = top.stop;
  if (v === undefined || v === null) return [];
  const stops = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(stops) || !stops.every((s) => typeof s === 'string')) {
    throw validationError('`stop` must be a string or an array of strings');
  }
  if (stops.length > MAX_STOP_SEQUENCES) {
    throw validationError(`\`stop\` supports up to ${MAX_STOP_SEQUENCES} stop sequences. Given: ${stops.length}`);
  }
  if (stops.some((s) => s === '')) throw validationError('`stop` sequences cannot be empty strings');
  return [...(stops as string[])];
}

function includeUsage(top: Json, stream: boolean): boolean {
  if (top.stream_options === undefined || top.stream_options === null) return false;
  if (!stream) throw validationError('`stream_options` is only allowed when `stream` is true');
  const opts = asObject(top.stream_options, '`stream_options`');
  for (const key of Object.keys(opts)) {
    if (key !== 'include_usage' && key !== 'include_obfuscation') {
      throw validationError(`unknown field \`stream_options.${key.slice(0, 64)}\``);
    }
  }
  if (opts.include_obfuscation !== undefined && opts.include_obfuscation !== null) {
    bool(opts.include_obfuscation, 'stream_options.include_obfuscation');
  }
  const v = opts.include_usage;
  return v === undefined || v === null ? false : bool(v, 'stream_options.include_usage');
}

/** A string, token ids [1, 2, 3], or a batch of either: ["a", "b"], [[1, 2], [3]] (at most MAX_PROMPTS). */
function promptsOf(top: Json): (string | number[])[] {
  const v = top.prompt;
  if (v === undefined || v === null) throw validationError('missing field `prompt`');
  if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number')) return [tokenIds(v)];
  const prompts = Array.isArray(v) ? v : [v];
  if (prompts.length === 0) throw validationError('`prompt` cannot be empty');
  if (prompts.length > MAX_PROMPTS) throw validationError(`\`prompt\` has ${prompts.length} prompts; at most ${MAX_PROMPTS} per request`);
  return prompts.map((p) => {
    if (Array.isArray(p)) return tokenIds(p);
    if (typeof p !== 'string') throw validationError('`prompt` must be a string, token ids, or an array of either');
    if (p === '') throw validationError('`prompt` cannot be empty');
    return p;
  });
}

function tokenIds(v: unknown[]): number[] {
  if (v.length === 0) throw validationError('`prompt` cannot be empty');
  if (!v.every((x) => Number.isInteger(x) && (x as number) >= 0)) throw validationError('token-id `prompt` entries must be integers >= 0');
  return v as number[];
}

function messagesOf(top: Json, native: boolean, images: ImageInput[]): ChatMessage[] {
  const v = top.messages;
  if (v === undefined || v === null) throw validationError('missing field `messages`');
  if (!Array.isArray(v)) throw validationError('`messages` must be an array');
  if (v.length === 0) throw validationError('`messages` cannot be empty');
  const callNames = new Map<string, string>();  // tool_call_id -> function name, from earlier assistant messages
  return v.map((m, i) => messageOf(m, `messages[${i}]`, callNames, native, images));
}

/** native: tool results and calls stay structured for the chat template (else they are rendered as text). */
function messageOf(v: unknown, at: string, callNames: Map<string, string>, native: boolean, images: ImageInput[]): ChatMessage {
  const m = asObject(v, `\`${at}\``);
  for (const key of Object.keys(m)) {
    if (MESSAGE_KEYS.has(key) || key === 'tool_calls' || key === 'tool_call_id' || key === 'function_call') continue;
    if ((key === 'reasoning_content' || key === 'reasoning') && m.role === 'assistant') continue;
    if (MESSAGE_NULL_KEYS.has(key) && (m[key] === null || isEmptyArray(m[key]))) continue;
    if (MESSAGE_NULL_KEYS.has(key)) throw notSupported(`${at}.${key}`);
    throw validationError(`unknown field \`${at}.${key.slice(0, 64)}\``);
  }
  const name = m.name === undefined || m.name === null ? undefined : str(m.name, `${at}.name`);
  const roleName = m.role === undefined || m.role === null ? undefined : str(m.role, `${at}.role`);
  if (roleName === undefined) throw validationError(`missing field \`${at}.role\``);
  const calls = m.tool_calls === undefined || m.tool_calls === null || isEmptyArray(m.tool_calls) ? undefined : m.tool_calls;
  if (calls !== undefined && roleName !== 'assistant') throw validationError(`\`${at}.tool_calls\` is only for assistant messages`);
  const legacyCall = m.function_call === undefined || m.function_call === null ? undefined : m.function_call;
  if (legacyCall !== undefined && roleName !== 'assistant') throw validationError(`\`${at}.function_call\` is only for assistant messages`);
  if (legacyCall !== undefined && calls !== undefined) throw validationError(`\`${at}\` has both \`tool_calls\` and \`function_call\`; send one`);
  const callId = m.tool_call_id === undefined || m.tool_call_id === null ? undefined : str(m.tool_call_id, `${at}.tool_call_id`);
  if (roleName === 'tool') {
    const content = contentOf(m.content, `${at}.content`).text;
    if (native) {
      const fn = name ?? (callId !== undefined ? callNames.get(callId) : undefined);
      return { role: 'tool', content, ...(callId !== undefined ? { tool_call_id: callId } : {}), ...(fn !== undefined ? { name: fn } : {}) };
    }
    return { role: 'user', content: toolResultText(content, callId, callNames) };
  }
  if (roleName === 'function') {  // legacy: the result of a function_call, named by `name`
    if (name === undefined) throw validationError(`missing field \`${at}.name\` (the function whose result this is)`);
    const content = contentOf(m.content, `${at}.content`).text;
    if (native) return { role: 'tool', content, name };
    return { role: 'user', content: toolResultText(content, undefined, callNames, name) };
  }
  if (callId !== undefined) throw validationError(`\`${at}.tool_call_id\` is only for tool messages`);
  const role = ROLES[roleName];
  if (role === undefined) throw validationError(`\`${at}.role\` must be one of system, user, assistant, tool (or developer, function)`);
  const said = () => (m.content === undefined || m.content === null ? '' : contentOf(m.content, `${at}.content`).text);
  if (calls !== undefined) {
    const { calls: structured, ids } = toolCallsOf(calls, `${at}.tool_calls`);
    for (const [id, fn] of ids) callNames.set(id, fn);
    const before = said();
    if (native) return { role, content: before, tool_calls: structured };
    const text = structured.map((c) => callText(c.function)).join('\n');
    return { role, content: before === '' ? text : `${before}\n${text}` };
  }
  if (legacyCall !== undefined) {
    const call = functionCallOf(legacyCall, `${at}.function_call`);
    const before = said();
    if (native) return { role, content: before, tool_calls: [{ type: 'function', function: call }] };
    const text = callText(call);
    return { role, content: before === '' ? text : `${before}\n${text}` };
  }
  const thoughts = m.reasoning_content ?? m.reasoning;
  const reasoning = thoughts === undefined || thoughts === null ? undefined : str(thoughts, `${at}.reasoning_content`);
  const { text, parts } = contentOf(m.content, `${at}.content`, role === 'user' ? images : null);
  return { role, content: text, ...(parts ? { parts } : {}), ...(reasoning ? { reasoning_content: reasoning } : {}) };
}
