// OpenAI's Responses API request (POST /v1/responses) as the chat completion request it asks for: `input` (text, or
// message / function_call / function_call_output items) and `instructions` become messages; max_output_tokens,
// tools (flat function tools), tool_choice, text.format and reasoning.effort their chat names. The chat validation
// then checks everything as for /v1/chat/completions (the token filters logit_bias, allowed_token_ids and bad_words,
// and vLLM's `priority`, included: they pass through as they are). A stored response's conversation (previous_response_id,
// resolved by the route from response-store.ts) comes before `input`; `instructions` are this request's alone.
import { validationError, notSupported } from './errors.js';
import { isJsonObject, type Json } from './json.js';
import { asObject, bool, optional, str } from './validate.js';

const KEYS = new Set([
  'model', 'input', 'instructions', 'max_output_tokens', 'temperature', 'top_p', 'stream', 'tools', 'tool_choice',
  'parallel_tool_calls', 'reasoning', 'text', 'store', 'metadata', 'user', 'seed', 'previous_response_id', 'truncation',
  'background', 'include', 'top_logprobs', 'service_tier', 'prompt_cache_key', 'safety_identifier',
  // weft's / vLLM's fields the chat route takes as they are
  'adapter_source', 'api_token', 'top_k', 'min_p', 'repetition_penalty', 'stop', 'presence_penalty', 'frequency_penalty',
  'chat_template', 'chat_template_kwargs', 'include_reasoning', 'logit_bias', 'allowed_token_ids', 'bad_words', 'priority',
]);
const PASSED = ['model', 'temperature', 'top_p', 'stream', 'parallel_tool_calls', 'user', 'seed', 'adapter_source', 'api_token',
  'top_k', 'min_p', 'repetition_penalty', 'stop', 'presence_penalty', 'frequency_penalty', 'prompt_cache_key', 'safety_identifier',
  'chat_template', 'chat_template_kwargs', 'include_reasoning', 'logit_bias', 'allowed_token_ids', 'bad_words', 'priority'];

/** The request's fields a response repeats back (OpenAI's response object echoes its settings). */
export interface ResponseSettings {
  instructions: string | null;
  maxOutputTokens: number | null;
  temperature: number | null;
  topP: number | null;
  tools: unknown[];
  toolChoice: unknown;
  parallelToolCalls: boolean;
  text: Json;
  reasoningEffort: string | null;
  metadata: Json;
  previousResponseId: string | null;
  /** Keep the response for GET /v1/responses/{id} and previous_response_id (OpenAI's default: true). */
  store: boolean;
  /** top_logprobs as given (the response echoes it); the log-probs come back with include's message.output_text.logprobs. */
  topLogprobs: number | null;
}

/** What `include` may ask for: the output text's token log-probs (with top_logprobs alternatives each). */
const OUTPUT_LOGPROBS = 'message.output_text.logprobs';

/** The response a request continues (`previous_response_id`), or null; a non-string is a 422. */
export function previousResponseIdOf(body: unknown): string | null {
  if (!isJsonObject(body) || body.previous_response_id === undefined || body.previous_response_id === null) return null;
  return str(body.previous_response_id, 'previous_response_id');
}

/** The chat completion body a Responses request stands for (after `previous`, the items of the conversation it
 * continues), the settings the response echoes, and its own input as items (what a stored response keeps). */
export function chatBodyOfResponses(body: unknown, previous: readonly Json[] = []): { chat: Json; settings: ResponseSettings; inputItems: Json[] } {
  const top = asObject(body, 'request body');
  for (const key of Object.keys(top)) if (!KEYS.has(key)) throw validationError(`unknown field \`${key.slice(0, 64)}\``);
  const store = optional(top, 'store', bool) ?? true;
  if (top.background === true) throw notSupported('background');
  const truncation = optional(top, 'truncation', str);
  if (truncation !== undefined && truncation !== 'disabled') throw notSupported('truncation');
  const include = top.include === undefined || top.include === null ? [] : top.include;
  if (!Array.isArray(include)) throw validationError('`include` must be an array');
  for (const v of include) if (v !== OUTPUT_LOGPROBS) throw notSupported(`include: ${JSON.stringify(v).slice(0, 64)}`);
  const topLogprobs = top.top_logprobs === undefined || top.top_logprobs === null ? undefined : top.top_logprobs;
  if (topLogprobs !== undefined && !(Number.isInteger(topLogprobs) && (topLogprobs as number) >= 0 && (topLogprobs as number) <= 20)) {
    throw validationError('`top_logprobs` must be an integer from 0 to 20');
  }
  const instructions = optional(top, 'instructions', str);
  const inputItems = inputItemsOf(top.input);
  const messages = [...(instructions !== undefined ? [{ role: 'system', content: instructions }] : []),
    ...itemMessages([...previous, ...inputItems], previous.length)];
  const chat: Json = { messages };
  for (const key of PASSED) if (top[key] !== undefined) chat[key] = top[key];
  if (top.max_output_tokens !== undefined) chat.max_completion_tokens = top.max_output_tokens;
  if (include.length > 0) Object.assign(chat, { logprobs: true, ...(topLogprobs !== undefined ? { top_logprobs: topLogprobs } : {}) });
  if (top.tools !== undefined && top.tools !== null) chat.tools = toolsOf(top.tools);
  if (top.tool_choice !== undefined) chat.tool_choice = toolChoiceOf(top.tool_choice);
  const reasoning = top.reasoning === undefined || top.reasoning === null ? {} : asObject(top.reasoning, '`reasoning`');
  for (const key of Object.keys(reasoning)) {
    if (key !== 'effort' && key !== 'summary') throw validationError(`unknown field \`reasoning.${key.slice(0, 64)}\``);
  }
  const effort = optional(reasoning, 'effort', str);
  if (effort !== undefined) chat.reasoning_effort = effort;
  const text = top.text === undefined || top.text === null ? {} : asObject(top.text, '`text`');
  const format = formatOf(text);
  if (format !== undefined) chat.response_format = format;
  const metadata = top.metadata === undefined || top.metadata === null ? {} : metadataOf(asObject(top.metadata, '`metadata`'));
  return {
    chat,
    inputItems,
    settings: {
      previousResponseId: previousResponseIdOf(top), store,
      instructions: instructions ?? null, maxOutputTokens: typeof top.max_output_tokens === 'number' ? top.max_output_tokens : null,
      temperature: typeof top.temperature === 'number' ? top.temperature : null, topP: typeof top.top_p === 'number' ? top.top_p : null,
      tools: Array.isArray(top.tools) ? top.tools : [], toolChoice: top.tool_choice ?? 'auto', parallelToolCalls: top.parallel_tool_calls !== false,
      text: { format: text.format ?? { type: 'text' } }, reasoningEffort: effort ?? null, metadata,
      topLogprobs: typeof topLogprobs === 'number' ? topLogprobs : null,
    },
  };
}

/** `input` as items: text is one user message. */
function inputItemsOf(input: unknown): Json[] {
  if (input === undefined || input === null) throw validationError('missing field `input`');
  if (typeof input === 'string') return [{ type: 'message', role: 'user', content: input }];
  if (!Array.isArray(input)) throw validationError('`input` must be a string or an array of items');
  if (input.length === 0) throw validationError('`input` cannot be empty');
  return input.map((v, i) => asObject(v, `\`input[${i}]\``));
}

/** Items as chat messages — messages, function calls and their outputs; reasoning items are dropped. */
function itemMessages(items: readonly Json[], stored: number): Json[] {
  const out: Json[] = [];
  items.forEach((item, i) => {
    const at = i < stored ? `previous response's item ${i}` : `input[${i - stored}]`;
    const type = item.type ?? 'message';
    if (type === 'message') {
      out.push({ role: str(item.role, `${at}.role`), content: itemText(item.content, `${at}.content`) });
    } else if (type === 'function_call') {  // consecutive calls: one assistant turn
      const call = { id: str(item.call_id, `${at}.call_id`), type: 'function',
        function: { name: str(item.name, `${at}.name`), arguments: str(item.arguments, `${at}.arguments`) } };
      const last = out.at(-1);
      if (last && last.role === 'assistant' && Array.isArray(last.tool_calls)) last.tool_calls.push(call);
      else out.push({ role: 'assistant', content: null, tool_calls: [call] });
    } else if (type === 'function_call_output') {
      const output = item.output;
      out.push({ role: 'tool', tool_call_id: str(item.call_id, `${at}.call_id`),
        content: typeof output === 'string' ? output : itemText(output, `${at}.output`) });
    } else if (type !== 'reasoning') {
      throw validationError(`\`${at}.type\` '${String(type).slice(0, 64)}' is not supported (message, function_call, ` +
        'function_call_output, reasoning)');
    }
  });
  return out;
}

/** A message's content: text, or input_text / output_text parts joined — or, with input_image parts (vision-language
 * models), the parts as chat content parts (the chat validation loads the images, content-parts.ts). */
function itemText(content: unknown, at: string): string | Json[] {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw validationError(`\`${at}\` must be a string or an array of content parts`);
  const parts = content.map((p, j): Json => {
    const part = asObject(p, `\`${at}[${j}]\``);
    if (part.type === 'input_image') return part;
    if (part.type !== 'input_text' && part.type !== 'output_text' && part.type !== 'text') {
      throw validationError(`\`${at}[${j}].type\` '${String(part.type).slice(0, 64)}' is not supported (input_text, output_text, input_image)`);
    }
    return { type: 'text', text: str(part.text, `${at}[${j}].text`) };
  });
  return parts.some((p) => p.type === 'input_image') ? parts : parts.map((p) => p.text as string).join('');
}

/** Function tools, flat as the Responses API gives them ({type, name, description, parameters, strict}). */
function toolsOf(tools: unknown): Json[] {
  if (!Array.isArray(tools)) throw validationError('`tools` must be an array');
  return tools.map((t, i) => {
    const tool = asObject(t, `\`tools[${i}]\``);
    if (tool.type !== 'function') {
      throw validationError(`\`tools[${i}].type\` '${String(tool.type).slice(0, 64)}' is not supported (function tools only)`);
    }
    const { type: _type, ...fn } = tool;
    return { type: 'function', function: fn };
  });
}

/** tool_choice: auto / none / required, or {type: 'function', name}. */
function toolChoiceOf(choice: unknown): unknown {
  if (!isJsonObject(choice)) return choice;
  if (choice.type !== 'function') throw validationError('`tool_choice` must be auto, none, required or {"type": "function", "name"}');
  return { type: 'function', function: { name: str(choice.name, 'tool_choice.name') } };
}

/** text.format: text (none), json_object, or json_schema {name, schema, strict, description}. */
function formatOf(text: Json): Json | undefined {
  for (const key of Object.keys(text)) {
    if (key !== 'format' && key !== 'verbosity') throw validationError(`unknown field \`text.${key.slice(0, 64)}\``);
  }
  if (text.format === undefined || text.format === null) return undefined;
  const f = asObject(text.format, '`text.format`');
  if (f.type === 'text') return undefined;
  if (f.type === 'json_object') return { type: 'json_object' };
  if (f.type === 'json_schema') {
    const { type: _type, ...schema } = f;
    return { type: 'json_schema', json_schema: schema };
  }
  throw validationError('`text.format.type` must be text, json_object or json_schema');
}

/** OpenAI's metadata: at most 16 pairs of a key (≤ 64 characters) and a string value (≤ 512). */
function metadataOf(m: Json): Json {
  const entries = Object.entries(m);
  if (entries.length > 16) throw validationError('`metadata` holds more than 16 keys');
  for (const [k, v] of entries) {
    if (k.length > 64) throw validationError('`metadata` keys are at most 64 characters');
    if (typeof v !== 'string' || v.length > 512) throw validationError(`\`metadata.${k.slice(0, 64)}\` must be a string of at most 512 characters`);
  }
  return m;
}
