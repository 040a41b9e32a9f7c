// --tool-call-parser pythonic (vLLM's parser of the name): the answer is a Python list of calls with keyword
// arguments — `[get_weather(city="Paris"), get_time()]` — as Llama 3.2 and Llama 4 are prompted to write (their
// templates ask for "[func_name1(params_name1=params_value1, …), func_name2(params)]"). The list is the whole
// answer: text before or after it makes the answer text, as vLLM reads it. Llama 4 may wrap it in
// <|python_start|> … <|python_end|>; those are special tokens (left out of the answer like any other), but where a
// tokenizer writes them as text they are taken off too.
// A required or named call is constrained to `[name(arg=value, …)]`, the arguments in the schema's order with
// values that are Python literals of their schemas (JSON's spelling but True / False / None; strings
// double-quoted).
import { ConstraintError, escapeRegex } from '../../protocol/index.js';
import { JSON_SP, subschemaRegex } from '../constraints/json-schema.js';
import { PYTHON_SYNTAX } from '../constraints/literal-syntax.js';
import { PYTHON_END, PYTHON_START } from '../engine/tool-format-detect.js';
import { validationError } from './errors.js';
import type { ToolCall, ToolFunction, ToolUse } from './openai-tools.js';
import { parsePythonCallList } from './python-literal.js';
import { allowedTools, namedCall, newCallId, type ToolFormat } from './tool-format-base.js';
import { declaredParameters, sequencePattern } from './tool-parameters.js';

/** A keyword argument's name as Python writes it. */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** How a call list begins: `[`, the first function's name and its `(`. */
const CALLS_BEGIN = /^\s*\[\s*[A-Za-z_][A-Za-z0-9_-]*\s*\(/;
/** What may still grow into CALLS_BEGIN. */
const CALLS_BEGIN_PREFIX = /^\s*(?:\[\s*(?:[A-Za-z_][A-Za-z0-9_-]*\s*)?)?$/;

/** The answer without Llama 4's wrapper (and the spaces around it), when it is there as text. */
function unwrapped(answer: string): string {
  let body = answer.trim();
  if (body.startsWith(PYTHON_START)) body = body.slice(PYTHON_START.length);
  if (body.endsWith(PYTHON_END)) body = body.slice(0, -PYTHON_END.length);
  return body;
}

/** The answer so far with the wrapper's start taken off; null while it is only the start of the wrapper. */
function afterStart(answer: string): string | null {
  const text = answer.trimStart();
  if (text.startsWith(PYTHON_START)) return text.slice(PYTHON_START.length);
  return text !== '' && PYTHON_START.startsWith(text) ? null : text;
}

function parse(answer: string, use: ToolUse): { content: null; calls: ToolCall[] } | null {
  const body = unwrapped(answer);
  // As streaming decides (callStart): a list that does not open as CALLS_BEGIN says (a comment first) is text.
  const list = CALLS_BEGIN.test(body) ? parsePythonCallList(body) : null;
  if (!list) return null;
  const calls: ToolCall[] = [];
  for (const c of list) {
    const call = namedCall(c.name, c.args, use, newCallId);
    if (!call) return null;
    calls.push(call);
  }
  return { content: null, calls };
}

/** `name(arg=value, …)` of one function, its arguments' values Python literals of their schemas. */
function callPattern(t: ToolFunction): string {
  const members = declaredParameters(t, 'pythonic').map((p) => {
    if (!IDENTIFIER.test(p.name)) {
      throw validationError(`\`tools\` function '${t.name}' parameter '${p.name.slice(0, 64)}' is not a Python identifier, so a pythonic call ` +
        'cannot pass it by keyword: rename it (letters, digits and _), or use tool_choice "auto"');
    }
    try {
      return { pattern: `${p.name}=${subschemaRegex(t.parameters, p.schema, `#/properties/${p.name}`, PYTHON_SYNTAX)}`, required: p.required };
    } catch (e) {
      if (e instanceof ConstraintError) throw validationError(`\`tools\` function '${t.name}' parameters: ${e.message}`);
      throw e;
    }
  });
  return `${escapeRegex(t.name)}\\(${sequencePattern(members, `,${JSON_SP}`)}\\)`;
}

export const PYTHONIC: ToolFormat = {
  name: 'pythonic',
  native: true,
  constraint: (use) => {
    if (use.choice === 'auto') return undefined;
    const one = `(?:${allowedTools(use).map(callPattern).join('|')})`;
    return `\\[${use.parallel ? `${one}(?:,${JSON_SP}${one})*` : one}\\]`;
  },
  parse,
  // The whole answer is calls or none: decided once it begins `[name(` (held), or cannot any more (sent).
  callStart: (answer) => {
    const text = afterStart(answer);
    return text !== null && CALLS_BEGIN.test(text) ? 0 : -1;
  },
  heldTail: (answer) => {
    const text = afterStart(answer);
    return text === null || CALLS_BEGIN_PREFIX.test(text) ? answer.length : 0;
  },
};
