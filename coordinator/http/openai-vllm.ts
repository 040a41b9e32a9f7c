// vLLM's request fields on the OpenAI routes that take more than a key check (openai-validate.ts calls these):
// the chat rendering fields, stop_token_ids, truncate_prompt_tokens and top_k's "off" values.
import type { ChatRender } from '../engine/types.js';
import { validationError } from './errors.js';
import { isJsonObject, type Json } from './json.js';
import { bool, int, MAX_TOP_K, maxInputOf, optional, str, type ValidationLimits } from './validate.js';

// Template variables a request may not set through chat_template_kwargs: weft sets them itself.
const RESERVED_TEMPLATE_VARS = new Set(['messages', 'add_generation_prompt', 'bos_token', 'eos_token', 'tools']);

/** Longest request chat_template, in characters (the real templates weft checks are under 16 KiB). */
export const MAX_REQUEST_TEMPLATE_CHARS = 65_536;

/**
 * vLLM's chat rendering fields: add_generation_prompt (default true), continue_final_message, chat_template_kwargs,
 * and chat_template (the request's own Jinja template: only with --trust-request-chat-template, as vLLM's
 * --trust-request-chat-template; it is code the server runs).
 */
export function chatRenderOf(top: Json, limits: ValidationLimits = { maxTotalTokens: 0 }): ChatRender {
  const addGenerationPrompt = optional(top, 'add_generation_prompt', bool) ?? true;
  const continueFinalMessage = optional(top, 'continue_final_message', bool) ?? false;
  if (addGenerationPrompt && continueFinalMessage) {
    throw validationError('`continue_final_message` needs `add_generation_prompt` false: a new assistant turn cannot ' +
      'continue the final message');
  }
  const kwargs = top.chat_template_kwargs;
  if (kwargs !== undefined && kwargs !== null && !isJsonObject(kwargs)) {
    throw validationError('`chat_template_kwargs` must be an object of template variables');
  }
  const reserved = isJsonObject(kwargs) ? Object.keys(kwargs).find((k) => RESERVED_TEMPLATE_VARS.has(k)) : undefined;
  if (reserved !== undefined) throw validationError(`\`chat_template_kwargs.${reserved}\` is set by the server; leave it out`);
  const template = optional(top, 'chat_template', str);
  if (template !== undefined) {
    if (limits.requestChatTemplate !== true) {
      throw validationError('`chat_template` in a request is refused: the server renders it, and was not started with ' +
        '--trust-request-chat-template (leave it out to use the model\'s template)');
    }
    if (template.length === 0 || template.length > MAX_REQUEST_TEMPLATE_CHARS) {
      throw validationError(`\`chat_template\` must be a Jinja template of 1 to ${MAX_REQUEST_TEMPLATE_CHARS} characters`);
    }
  }
  // reasoning_effort (OpenAI's, for reasoning models): the template variable gpt-oss's template reads ("Reasoning: low").
  const effort = optional(top, 'reasoning_effort', str);
  if (effort !== undefined && !['minimal', 'low', 'medium', 'high'].includes(effort)) {
    throw validationError('`reasoning_effort` must be one of minimal, low, medium, high');
  }
  const vars = { ...(effort !== undefined ? { reasoning_effort: effort } : {}), ...(isJsonObject(kwargs) ? kwargs : {}) };
  return { addGenerationPrompt, continueFinalMessage,
    ...(Object.keys(vars).length > 0 ? { templateKwargs: vars } : {}),
    ...(template !== undefined ? { template } : {}) };
}

/** truncate_prompt_tokens: 1 up to the longest prompt (as TGI's truncate); absent: none. */
export function truncatePromptTokensOf(top: Json, limits: ValidationLimits): number | undefined {
  const v = optional(top, 'truncate_prompt_tokens', int);
  const maxInput = maxInputOf(limits);
  if (v !== undefined && (v < 1 || v > maxInput)) {
    throw validationError(`\`truncate_prompt_tokens\` must be >= 1 and <= ${maxInput}. Given: ${v}`);
  }
  return v;
}

/** Most stop_token_ids one request may give. */
export const MAX_STOP_TOKEN_IDS = 64;

export function stopTokenIdsOf(top: Json): number[] {
  const v = top.stop_token_ids;
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((t) => Number.isSafeInteger(t) && (t as number) >= 0)) {
    throw validationError('`stop_token_ids` must be an array of token ids (integers >= 0)');
  }
  if (v.length > MAX_STOP_TOKEN_IDS) {
    throw validationError(`\`stop_token_ids\` supports up to ${MAX_STOP_TOKEN_IDS} ids. Given: ${v.length}`);
  }
  return [...(v as number[])];
}

/** vLLM's top_k: -1 or 0 mean all tokens (off), as does absent — how a request switches off a --generation-config
 * default top_k. */
export function vllmTopKOf(top: Json): number | undefined {
  const v = optional(top, 'top_k', int);
  if (v === undefined || v === -1 || v === 0) return undefined;
  if (v < 0 || v > MAX_TOP_K) throw validationError(`\`top_k\` must be -1 or 0 (all tokens), or between 1 and ${MAX_TOP_K}`);
  return v;
}
