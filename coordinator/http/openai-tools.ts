// OpenAI function calling on any model, through structured output. The tools are described to the model in a
// system message, and the answer is constrained: `tool_choice: "required"` (or one named function) allows only
// a call `{"name": "<function>", "arguments": {<its parameters schema>}}` — or, unless parallel_tool_calls is
// false, a JSON array of such calls; "auto" allows either or text that starts with neither `{` nor `[`, so the
// model decides with its first token. An answer that is a call comes back as `tool_calls` (finish_reason
// "tool_calls"). In the history, an assistant message's tool_calls are shown to the model in the same call
// format and a `tool` message as a user message carrying the result, so any chat template renders them.
// The legacy form — `functions` + `function_call`, assistant `function_call` and `function` messages in the
// history — is the same machinery with one call per answer, returned as `function_call` (finish_reason
// "function_call"), as OpenAI's API still accepts it and older clients send it.
import { randomBytes } from 'node:crypto';
import { ConstraintError, escapeRegex } from '../../protocol/index.js';
import { JSON_SP, jsonSchemaRegex } from '../constraints/json-schema.js';
import { validationError } from './errors.js';
import { isJsonObject, type Json } from './json.js';


export interface ToolFunction {
  name: string;
  description: string | undefined;
  /** JSON Schema of the arguments object (absent: any object). */
  parameters: Json | undefined;
}

export interface ToolUse {
  tools: ToolFunction[];
  choice: 'auto' | 'required' | { name: string };
  /** Several calls in one answer (a JSON array of calls); OpenAI's default. */
  parallel: boolean;
  /** Asked for with the legacy `functions`: the answer is one `function_call`, not `tool_calls`. */
  legacy: boolean;
}

export interface ToolCall {
  id: string;
  name: string;
  /** The arguments object as JSON text (OpenAI's shape). */
  arguments: string;
}

/** Most tools one request may offer. */
export const MAX_TOOLS = 128;
const NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** `tools` + `tool_choice` (+ `parallel_tool_calls`), or the legacy `functions` + `function_call`; undefined when
 * no function may be called. */
export function toolUseOf(top: Json): ToolUse | undefined {
  if (top.parallel_tool_calls !== undefined && top.parallel_tool_calls !== null && typeof top.parallel_tool_calls !== 'boolean') {
    throw validationError('`parallel_tool_calls` must be a boolean');
  }
  // `functions: []` with `function_call` "none"/"auto" (what some clients always send) asks for nothing.
  const fc = top.function_call;
  const legacy = (top.functions !== undefined && top.functions !== null && !(Array.isArray(top.functions) && top.functions.length === 0)) ||
    (fc !== undefined && fc !== null && fc !== 'none' && fc !== 'auto');
  if (legacy) {
    for (const key of ['tools', 'tool_choice', 'parallel_tool_calls']) {
      if (top[key] !== undefined && top[key] !== null) throw validationError(`use either \`${key}\` or the legacy \`functions\` / \`function_call\`, not both`);
    }
    return legacyFunctionUseOf(top);
  }
  const raw = top.tools ?? [];
  if (!Array.isArray(raw)) throw validationError('`tools` must be an array');
  if (raw.length > MAX_TOOLS) throw validationError(`\`tools\` has ${raw.length} entries; at most ${MAX_TOOLS}`);
  const tools = raw.map((t, i) => toolOf(t, `tools[${i}]`));
  const names = new Set(tools.map((t) => t.name));
  if (names.size !== tools.length) throw validationError('`tools` function names must be distinct');
  const choice = choiceOf(top.tool_choice ?? undefined, names);
  if (choice === 'none' || tools.length === 0) return undefined;
  return { tools, choice, parallel: top.parallel_tool_calls !== false, legacy: false };
}

/** `functions: [{name, description?, parameters?}]` + `function_call: "none" | "auto" | {"name"}`. */
function legacyFunctionUseOf(top: Json): ToolUse | undefined {
  const raw = top.functions ?? [];
  if (!Array.isArray(raw)) throw validationError('`functions` must be an array');
  if (raw.length > MAX_TOOLS) throw validationError(`\`functions\` has ${raw.length} entries; at most ${MAX_TOOLS}`);
  const tools = raw.map((f, i) => functionOf(f, `functions[${i}]`));
  const names = new Set(tools.map((t) => t.name));
  if (names.size !== tools.length) throw validationError('`functions` names must be distinct');
  const v = top.function_call ?? undefined;
  let choice: ToolUse['choice'] | 'none';
  if (v === undefined || v === 'auto') choice = 'auto';
  else if (v === 'none') choice = 'none';
  else if (isJsonObject(v) && typeof v.name === 'string' && Object.keys(v).length === 1) {
    if (!names.has(v.name)) throw validationError(`\`function_call\` names function '${v.name.slice(0, 64)}', which is not in \`functions\``);
    choice = { name: v.name };
  } else throw validationError('`function_call` must be "none", "auto" or {"name": <one of `functions`>}');
  if (choice === 'none' || tools.length === 0) return undefined;
  return { tools, choice, parallel: false, legacy: true };
}

function toolOf(v: unknown, at: string): ToolFunction {
  if (!isJsonObject(v) || v.type !== 'function' || !isJsonObject(v.function)) {
    throw validationError(`\`${at}\` must be {"type": "function", "function": {"name", "description"?, "parameters"?}}`);
  }
  return functionOf(v.function, `${at}.function`);
}

function functionOf(f: unknown, at: string): ToolFunction {
  if (!isJsonObject(f)) throw validationError(`\`${at}\` must be {"name", "description"?, "parameters"?}`);
  if (typeof f.name !== 'string' || !NAME.test(f.name)) throw validationError(`\`${at}.name\` must be 1-64 letters, digits, _ or -`);
  if (f.description !== undefined && f.description !== null && typeof f.description !== 'string') {
    throw validationError(`\`${at}.description\` must be a string`);
  }
  if (f.parameters !== undefined && f.parameters !== null && !isJsonObject(f.parameters)) {
    throw validationError(`\`${at}.parameters\` must be a JSON schema object`);
  }
  return { name: f.name, description: (f.description as string | undefined) ?? undefined, parameters: (f.parameters as Json | undefined) ?? undefined };
}

function choiceOf(v: unknown, names: ReadonlySet<string>): ToolUse['choice'] | 'none' {
  if (v === undefined) return 'auto';
  if (v === 'none' || v === 'auto' || v === 'required') return v;
  if (isJsonObject(v) && v.type === 'function' && isJsonObject(v.function) && typeof v.function.name === 'string') {
    if (!names.has(v.function.name)) throw validationError(`\`tool_choice\` names function '${v.function.name.slice(0, 64)}', which is not in \`tools\``);
    return { name: v.function.name };
  }
  throw validationError('`tool_choice` must be "none", "auto", "required" or {"type": "function", "function": {"name"}}');
}

/** The pattern of one call of an allowed function: {"name": <it>, "<argsKey>": <its arguments>} (weft's and
 * Hermes' format say "arguments", Llama 3's JSON tool calls "parameters"). */
export function callPattern(use: ToolUse, argsKey = 'arguments'): string {
  const allowed = typeof use.choice === 'object' ? use.tools.filter((t) => t.name === (use.choice as { name: string }).name) : use.tools;
  const calls = allowed.map((t) => {
    let args: string;
    try {
      args = takesNoArguments(t.parameters) ? '\\{\\}' : jsonSchemaRegex(t.parameters!);
    } catch (e) {
      if (e instanceof ConstraintError) throw validationError(`\`tools\` function '${t.name}' parameters: ${e.message}`);
      throw e;
    }
    return `\\{"name":${JSON_SP}${escapeRegex(JSON.stringify(t.name))},${JSON_SP}${escapeRegex(JSON.stringify(argsKey))}:${JSON_SP}${args}\\}`;
  });
  return `(?:${calls.join('|')})`;
}

/** The pattern of the answer: a call of an allowed function, or (auto) text not starting with `{`. */
export function toolConstraint(use: ToolUse): string {
  const one = callPattern(use);
  const call = use.parallel ? `(?:${one}|\\[${one}(?:,${JSON_SP}${one})*\\])` : one;
  return use.choice === 'auto' ? `(?:[^{[][\\s\\S]*)?|${call}` : call;
}

/** OpenAI: omitted parameters define a function with an empty parameter list; so does an object schema that
 * declares no properties (what pydantic writes for a function without arguments). Its arguments are `{}`. */
export function takesNoArguments(parameters: Json | undefined): boolean {
  if (parameters === undefined) return true;
  const keys = Object.keys(parameters).filter((k) => !['type', 'properties', 'title', 'description', 'additionalProperties', 'required', '$schema'].includes(k));
  const props = parameters.properties;
  const noProps = props === undefined || (isJsonObject(props) && Object.keys(props).length === 0);
  const required = Array.isArray(parameters.required) ? parameters.required.length : 0;
  return keys.length === 0 && (parameters.type === undefined || parameters.type === 'object') && noProps && required === 0;
}

/** The system message that offers the tools. */
export function toolSystemPrompt(use: ToolUse): string {
  const list = use.tools.map((t) => JSON.stringify({ name: t.name, description: t.description ?? '',
    parameters: t.parameters ?? { type: 'object', properties: {} } }));
  const format = 'a JSON object {"name": <function name>, "arguments": <arguments object>}';
  const several = use.parallel ? ' (or a JSON array of such objects to call several)' : '';
  const how = use.choice === 'auto'
    ? `To call one, answer with only ${format}${several}; otherwise answer normally.`
    : `Answer with only ${format} that calls one of them${several}.`;
  return `You can call these functions:\n${list.join('\n')}\n${how}`;
}

/** Whether an answer that starts so is (the start of) calls rather than text. */
export function looksLikeCalls(text: string): boolean {
  return text.startsWith('{') || text.startsWith('[');
}

/** The answer as calls, when it is calls (a constrained answer starting with `{` or `[` always is, unless cut short). */
export function parseToolCalls(text: string, use: ToolUse): ToolCall[] | null {
  if (!looksLikeCalls(text)) return null;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  const list = Array.isArray(v) ? v : [v];
  if (list.length === 0) return null;
  const calls: ToolCall[] = [];
  for (const c of list) {
    if (!isJsonObject(c) || typeof c.name !== 'string' || !isJsonObject(c.arguments) || !use.tools.some((t) => t.name === c.name)) return null;
    calls.push({ id: `call_${randomBytes(12).toString('hex')}`, name: c.name, arguments: JSON.stringify(c.arguments) });
  }
  return calls;
}

/** A tool as OpenAI's request gives it: what chat templates read from their `tools` variable. */
export function openAiTool(t: ToolFunction): Json {
  return { type: 'function', function: { name: t.name, ...(t.description !== undefined ? { description: t.description } : {}),
    parameters: t.parameters ?? { type: 'object', properties: {} } } };
}

/** An assistant message's call as chat templates that render calls read it: the arguments parsed. */
export interface StructuredToolCall {
  id?: string;
  type: 'function';
  function: FunctionCall;
}

/** A call's function and its arguments (parsed from the JSON text OpenAI's messages carry). */
export interface FunctionCall {
  name: string;
  arguments: Json;
}

/** {name, arguments: JSON text} at `at`, validated, the arguments parsed. */
function functionCallAt(v: unknown, at: string, shape: string): FunctionCall {
  if (!isJsonObject(v) || typeof v.name !== 'string' || typeof v.arguments !== 'string') throw validationError(`\`${at}\` must be ${shape}`);
  try {
    return { name: v.name, arguments: JSON.parse(v.arguments) as Json };
  } catch {
    throw validationError(`\`${at}.arguments\` must be JSON text`);
  }
}

/** A call as the model is shown it in weft's format: the call format it is asked to answer in. */
export const callText = (call: FunctionCall): string => JSON.stringify({ name: call.name, arguments: call.arguments });

/** An assistant message's `tool_calls`, structured (arguments parsed), with their ids' function names. */
export function toolCallsOf(v: unknown, at: string): { calls: StructuredToolCall[]; ids: Map<string, string> } {
  if (!Array.isArray(v)) throw validationError(`\`${at}\` must be an array`);
  const ids = new Map<string, string>();
  const calls = v.map((c, j): StructuredToolCall => {
    if (!isJsonObject(c) || !isJsonObject(c.function) || typeof c.function.name !== 'string' || typeof c.function.arguments !== 'string') {
      throw validationError(`\`${at}[${j}]\` must be {"id", "type": "function", "function": {"name", "arguments"}}`);
    }
    const fn = functionCallAt(c.function, `${at}[${j}].function`, '{"name", "arguments"}');
    if (typeof c.id === 'string') ids.set(c.id, fn.name);
    return { ...(typeof c.id === 'string' ? { id: c.id } : {}), type: 'function', function: fn };
  });
  return { calls, ids };
}

/** A legacy assistant `function_call` {name, arguments}, the arguments parsed. */
export function functionCallOf(v: unknown, at: string): FunctionCall {
  return functionCallAt(v, at, '{"name", "arguments"}');
}

/** A `tool` message (or a legacy `function` message, which names its function) as the user message that carries
 * the result to the model. */
export function toolResultText(content: string, toolCallId: string | undefined, names: ReadonlyMap<string, string>,
  functionName?: string): string {
  const name = functionName ?? (toolCallId !== undefined ? names.get(toolCallId) : undefined);
  return `Result of ${name !== undefined ? `function ${name}` : 'the function call'}${toolCallId ? ` (${toolCallId})` : ''}:\n${content}`;
}

/** The messages with the tools offered in the system message (merged into the first one when there is one). */
export function withToolPrompt<M extends { role: string; content: string }>(messages: readonly M[], use: ToolUse | undefined): M[] {
  if (!use) return [...messages];
  const prompt = toolSystemPrompt(use);
  const [first, ...rest] = messages;
  if (first && first.role === 'system') return [{ ...first, content: `${first.content}\n\n${prompt}` }, ...rest];
  return [{ ...(first ?? {}), role: 'system', content: prompt } as M, ...messages];
}
