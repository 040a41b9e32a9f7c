// The JSON shapes of OpenAI's completion and chat-completion responses (whole and streamed chunks),
// their log-probs, OpenAI-shaped errors, and the stop-sequence trimming OpenAI promises
// ("the returned text will not contain the stop sequence"; the engine, like TGI, keeps it).
import { randomUUID } from 'node:crypto';
import type { FinishReason, GeneratedToken, PrefillToken } from '../engine/types.js';
import { StreamingDetokenizer } from '../tokenizer/index.js';
import { errorBody, type HttpError } from './errors.js';
import type { ToolCall } from './openai-tools.js';
import type { PredictionDetails } from './predicted-outputs.js';

export type OpenAiFinishReason = 'stop' | 'length' | 'tool_calls' | 'function_call';

export interface UsageJson {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** cached_tokens: prompt tokens whose KV came from the prefix cache (OpenAI's field). */
  prompt_tokens_details: { cached_tokens: number };
  /** With a prediction (predicted-outputs.ts). */
  completion_tokens_details?: PredictionDetails;
}

export interface CompletionLogprobsJson {
  tokens: string[];
  /** null for the first prompt token (echo): nothing conditions it. */
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

export interface ChatTopLogprobJson {
  token: string;
  logprob: number;
  bytes: number[];
}

export interface ChatTokenLogprobJson extends ChatTopLogprobJson {
  top_logprobs: ChatTopLogprobJson[];
}

export interface ChatLogprobsJson {
  content: ChatTokenLogprobJson[];
  refusal: null;
}

/** OpenAI's error object, which its SDKs parse; `code` carries weft's error_type (DESIGN §7). */
export interface OpenAiErrorJson {
  error: { message: string; type: string; param: null; code: string };
}

/** What every response of one request shares. */
export interface ResponseHead {
  id: string;
  created: number;
  model: string;
}

export function responseHead(kind: 'completion' | 'chat', model: string): ResponseHead {
  return { id: `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`, created: Math.floor(Date.now() / 1000), model };
}

export function finishReasonOf(reason: FinishReason): OpenAiFinishReason {
  return reason === 'length' ? 'length' : 'stop';
}

export function usageJson(promptTokens: number, completionTokens: number, cachedTokens: number): UsageJson {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: { cached_tokens: cachedTokens } };
}

// --- whole responses ------------------------------------------------------------------------------

export function completionChoice(index: number, text: string, logprobs: CompletionLogprobsJson | null, finish: OpenAiFinishReason) {
  return { index, text, logprobs, finish_reason: finish };
}

export function chatChoice(index: number, content: string, logprobs: ChatLogprobsJson | null, finish: OpenAiFinishReason,
  calls?: ToolCall[] | null, legacy = false, reasoning: string | null = null) {
  // A reasoning parser's thoughts (vLLM's reasoning_content); null when it found none.
  const thoughts = reasoning === null ? {} : { reasoning_content: reasoning === '' ? null : reasoning };
  if (calls && legacy) {  // the legacy `functions` form: one call, as `function_call`
    return { index, message: { role: 'assistant' as const, content: null, ...thoughts, function_call: { name: calls[0]!.name, arguments: calls[0]!.arguments } },
      logprobs, finish_reason: 'function_call' as const };
  }
  if (calls) {  // content: what a native format's answer said before its calls (null: nothing)
    return { index, message: { role: 'assistant' as const, content: content === '' ? null : content, ...thoughts, tool_calls: calls.map(toolCallJson) }, logprobs,
      finish_reason: 'tool_calls' as const };
  }
  return { index, message: { role: 'assistant' as const, content, ...thoughts }, logprobs, finish_reason: finish };
}

export function toolCallJson(call: ToolCall) {
  return { id: call.id, type: 'function' as const, function: { name: call.name, arguments: call.arguments } };
}

/** A whole answer: one choice per `n`, in index order. */
export function completionJson(head: ResponseHead, choices: ReturnType<typeof completionChoice>[], usage: UsageJson) {
  return { id: head.id, object: 'text_completion', created: head.created, model: head.model, choices, usage };
}

export function chatJson(head: ResponseHead, choices: ReturnType<typeof chatChoice>[], usage: UsageJson) {
  return { id: head.id, object: 'chat.completion', created: head.created, model: head.model, choices, usage };
}

// --- streamed chunks ------------------------------------------------------------------------------

/** One streamed completion chunk of choice `index`; with include_usage every chunk has `usage: null` (OpenAI). */
export function completionChunk(
  head: ResponseHead,
  text: string,
  logprobs: CompletionLogprobsJson | null,
  finish: OpenAiFinishReason | null,
  includeUsage: boolean,
  index = 0,
) {
  const chunk = {
    id: head.id, object: 'text_completion', created: head.created, model: head.model,
    choices: [{ index, text, logprobs, finish_reason: finish }],
  };
  return includeUsage ? { ...chunk, usage: null } : chunk;
}

export type ChatDelta = { role: 'assistant'; content: string } | { content: string } | { reasoning_content: string } | Record<string, never>
  | { tool_calls: (ReturnType<typeof toolCallJson> & { index: number })[] } | { function_call: { name: string; arguments: string } };

export function chatChunk(
  head: ResponseHead,
  delta: ChatDelta,
  logprobs: ChatLogprobsJson | null,
  finish: OpenAiFinishReason | null,
  includeUsage: boolean,
  index = 0,
) {
  const chunk = {
    id: head.id, object: 'chat.completion.chunk', created: head.created, model: head.model,
    choices: [{ index, delta, logprobs, finish_reason: finish }],
  };
  return includeUsage ? { ...chunk, usage: null } : chunk;
}

/** The extra chunk before [DONE] when stream_options.include_usage is set: no choices, the usage. */
export function usageChunk(kind: 'completion' | 'chat', head: ResponseHead, usage: UsageJson) {
  const object = kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
  return { id: head.id, object, created: head.created, model: head.model, choices: [], usage };
}

export const SSE_DONE = 'data: [DONE]\n\n';

// --- log-probs ------------------------------------------------------------------------------------

/** Log-probs of the tokens that make up the text (special tokens such as EOS add none and are left out). */
export class CompletionLogprobs {
  private offset = 0;
  readonly json: CompletionLogprobsJson = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };

  /** Adds the prompt's tokens (echo); `decode` (ids -> text) splits the prompt into each token's text. Returns
   * their log-probs (the echo chunk's). */
  addPrompt(prefill: readonly PrefillToken[], decode: (ids: number[]) => string): CompletionLogprobsJson {
    const part: CompletionLogprobsJson = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
    const detok = new StreamingDetokenizer({ decode });
    const pieces = prefill.map((t) => detok.push(t.id));
    if (pieces.length > 0) pieces[pieces.length - 1] += detok.flush();
    prefill.forEach((t, i) => {
      part.tokens.push(pieces[i]!);
      part.token_logprobs.push(t.logprob);
      part.top_logprobs.push(t.logprob === null ? null : Object.fromEntries((t.top ?? []).map((c) => [c.text, c.logprob])));
      part.text_offset.push(this.offset);
      this.offset += pieces[i]!.length;
    });
    this.append(part);
    return part;
  }

  /** Adds one token; returns the log-probs of that token alone (a streamed chunk's). */
  add(token: GeneratedToken, textDelta: string): CompletionLogprobsJson {
    const one: CompletionLogprobsJson = {
      tokens: [textDelta],
      token_logprobs: [token.logprob],
      top_logprobs: [Object.fromEntries(token.top.map((c) => [c.text, c.logprob]))],
      text_offset: [this.offset],
    };
    this.offset += textDelta.length;
    this.append(one);
    return one;
  }

  private append(part: CompletionLogprobsJson): void {
    this.json.tokens.push(...part.tokens);
    this.json.token_logprobs.push(...part.token_logprobs);
    this.json.top_logprobs.push(...part.top_logprobs);
    this.json.text_offset.push(...part.text_offset);
  }
}

const utf8 = (s: string): number[] => [...Buffer.from(s, 'utf8')];

/** One chat log-prob entry; alternatives carry the tokenizer's token strings. */
export function chatTokenLogprob(token: GeneratedToken, textDelta: string): ChatTokenLogprobJson {
  return {
    token: textDelta,
    logprob: token.logprob,
    bytes: utf8(textDelta),
    top_logprobs: token.top.map((c) => ({ token: c.text, logprob: c.logprob, bytes: utf8(c.text) })),
  };
}

export const chatLogprobs = (content: ChatTokenLogprobJson[]): ChatLogprobsJson => ({ content, refusal: null });

// --- stop sequences -------------------------------------------------------------------------------

/**
 * Cuts the output at the first stop sequence. While streaming it holds back any tail that could still
 * become a stop sequence, so no part of one is ever sent. With min_tokens, the text of the first
 * `minTokens - 1` tokens is never searched (the engine does not stop there either: request-state.ts); a stop
 * sequence counts from the token that reaches min_tokens on, as vLLM checks them.
 */
export class StopTrimmer {
  private text = '';
  private sent = 0;
  private tokens = 0;
  stopped = false;

  /** includeStop (vLLM's include_stop_str_in_output): the cut comes after the stop sequence, not before. */
  constructor(private readonly stops: readonly string[], private readonly minTokens = 0, private readonly includeStop = false) {}

  /** Appends one generated token's text ('' for a special token: it still counts); returns what may be sent now. */
  push(delta: string): string {
    this.tokens++;
    return this.append(delta);
  }

  private append(delta: string): string {
    if (this.stopped) return '';
    this.text += delta;
    if (this.tokens < this.minTokens) return this.take(this.text.length);  // no stop yet: nothing to hold back
    // A stop sequence never starts before `sent`: its prefix would have been held back.
    let cut = -1, stopLen = 0;
    for (const stop of this.stops) {
      const at = this.text.indexOf(stop, this.sent);
      if (at >= 0 && (cut < 0 || at < cut)) [cut, stopLen] = [at, stop.length];
    }
    if (cut >= 0) {
      this.stopped = true;
      return this.take(this.includeStop ? cut + stopLen : cut);
    }
    return this.take(this.text.length - this.heldTail());
  }

  /** At the end: the engine's final text (which may add what no token carried), nothing held back. */
  finish(finalText: string): string {
    let out = this.append(finalText.startsWith(this.text) ? finalText.slice(this.text.length) : '');
    if (!this.stopped) out += this.take(this.text.length);
    return out;
  }

  /** Length of the longest suffix of the text that is a proper prefix of a stop sequence. */
  private heldTail(): number {
    let held = 0;
    for (const stop of this.stops) {
      for (let k = Math.min(stop.length - 1, this.text.length - this.sent); k > held; k--) {
        if (this.text.endsWith(stop.slice(0, k))) {
          held = k;
          break;
        }
      }
    }
    return held;
  }

  private take(end: number): string {
    const out = this.text.slice(this.sent, end);
    this.sent = Math.max(this.sent, end);
    return out;
  }
}

// --- errors ---------------------------------------------------------------------------------------

/** OpenAI's error `type` for a status (what its SDKs map to exception classes). */
export function openAiErrorType(status: number): string {
  switch (status) {
    case 401: return 'authentication_error';
    case 403: return 'permission_error';
    case 404: return 'not_found_error';
    case 429: return 'rate_limit_error';
    default: return status < 500 && status !== 424 ? 'invalid_request_error' : 'server_error';
  }
}

/** The error body of the OpenAI routes, secrets scrubbed as in errorBody. */
export function openAiErrorBody(err: HttpError, secrets: readonly string[] = []): OpenAiErrorJson {
  const scrubbed = errorBody(err, secrets);
  return { error: { message: scrubbed.error, type: openAiErrorType(err.status), param: null, code: scrubbed.error_type } };
}
