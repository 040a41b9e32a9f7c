// How function calls look in a model's answer (--tool-call-parser). `weft`: weft's own format on any model —
// the tools described in a system message, the answer constrained to {"name", "arguments"} calls or text
// (openai-tools.ts). The native formats follow what a model was fine-tuned to do: its chat template renders the
// tools and the history's calls and results itself (they reach it as `tools` and structured messages), and the
// answer is parsed from the model's own markup:
//   hermes       <tool_call>{"name": …, "arguments": {…}}</tool_call>, after optional text (Qwen 2.5/3, Hermes,
//                and the many fine-tunes of them)
//   llama3_json  {"name": …, "parameters": {…}} as the whole answer, several joined by "; " (Llama 3.1-3.3; the
//                <|python_tag|> before it is a special token, not text)
//   mistral      [TOOL_CALLS][{"name": …, "arguments": {…}}, …] (tokenizer v3: Mistral 7B v0.3, Nemo, Mixtral
//                8x22B) or [TOOL_CALLS]name[ARGS]{…} per call (v11+: Small 3.2, Magistral, Devstral), after
//                optional text; [TOOL_CALLS] and [ARGS] are control tokens, kept in the answer for the parser; call
//                ids are 9 letters and digits (Mistral's templates refuse others)
//   harmony      gpt-oss: a commentary message addressed `to=functions.NAME` whose text is the arguments, ended
//                by <|call|>; the harmony reasoning parser (engine/reasoning.ts) hands such messages on as
//                HARMONY_CALL markup. Their markers are special tokens a constraint cannot write, so only `auto`.
//   pythonic     [get_weather(city="Paris"), …] as the whole answer, arguments Python literals (Llama 3.2 / 4;
//                Llama 4 may wrap it in <|python_start|> … <|python_end|>): tool-format-pythonic.ts
//   qwen3_coder  <tool_call>\n<function=NAME>\n<parameter=P>\nvalue\n</parameter>…</function>\n</tool_call>, after
//                optional text; each value raw text read as its schema's type (Qwen3-Coder): tool-format-qwen3-coder.ts
// `auto` leaves the answer free and parses it; `required` or a named function constrains it to the native calls
// with arguments matching the schema, as weft's format does.
import { randomBytes } from 'node:crypto';
import { JSON_SP } from '../constraints/json-schema.js';
import { callPattern, looksLikeCalls, parseToolCalls, toolConstraint, withToolPrompt, type ToolCall, type ToolUse } from './openai-tools.js';
import { callOf, heldBefore, namedCall, newCallId, textBefore, type ParsedCalls, type ToolFormat } from './tool-format-base.js';
import { PYTHONIC } from './tool-format-pythonic.js';
import { QWEN3_CODER } from './tool-format-qwen3-coder.js';
import { HERMES_CLOSE as CLOSE, HERMES_OPEN as OPEN, MISTRAL_CALLS, type ToolFormatName } from '../engine/tool-format-detect.js';
import { HARMONY_CALL } from '../engine/reasoning.js';
import { validationError } from './errors.js';

export type { ParsedCalls, ToolFormat } from './tool-format-base.js';

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** Mistral's call ids: 9 letters and digits. */
const mistralCallId = (): string => Array.from(randomBytes(9), (b) => ALNUM[b % ALNUM.length]).join('');

const WEFT: ToolFormat = {
  name: 'weft',
  native: false,
  constraint: toolConstraint,
  parse: (answer, use) => {
    const calls = parseToolCalls(answer, use);
    return calls ? { content: null, calls } : null;
  },
  callStart: (answer) => (looksLikeCalls(answer) ? 0 : -1),
  heldTail: () => 0,
};

const HERMES: ToolFormat = {
  name: 'hermes',
  native: true,
  constraint: (use) => {
    if (use.choice === 'auto') return undefined;
    const one = `<tool_call>\\n${callPattern(use)}\\n</tool_call>`;
    return use.parallel ? `${one}(?:\\n${one})*` : one;
  },
  parse: (answer, use) => {
    const start = answer.indexOf(OPEN);
    if (start < 0) return null;
    const calls: ToolCall[] = [];
    let at = start;
    while (at >= 0) {
      const body = at + OPEN.length;
      const end = answer.indexOf(CLOSE, body);
      // The last call may lack its closing tag (the model stopped at its end-of-turn token right after the JSON).
      const json = answer.slice(body, end < 0 ? answer.length : end).trim();
      let v: unknown;
      try {
        v = JSON.parse(json);
      } catch {
        return null;
      }
      const call = callOf(v, use, ['arguments', 'parameters']);
      if (!call) return null;
      calls.push(call);
      if (end < 0) break;
      const next = answer.indexOf(OPEN, end + CLOSE.length);
      if (next < 0 && answer.slice(end + CLOSE.length).trim() !== '') return null;  // text after the calls: not calls
      at = next;
    }
    return { content: textBefore(answer, start), calls };
  },
  callStart: (answer) => answer.indexOf(OPEN),
  heldTail: (answer) => heldBefore(answer, OPEN),
};

const MISTRAL: ToolFormat = {
  name: 'mistral',
  native: true,
  markerTokens: [MISTRAL_CALLS, '[ARGS]', '[CALL_ID]'],
  constraint: (use) => {
    if (use.choice === 'auto') return undefined;
    const one = callPattern(use);
    return `\\[TOOL_CALLS\\]\\[${use.parallel ? `${one}(?:,${JSON_SP}${one})*` : one}\\]`;
  },
  parse: (answer, use) => {
    const at = answer.indexOf(MISTRAL_CALLS);
    if (at < 0) return null;
    const body = answer.slice(at + MISTRAL_CALLS.length).trim();
    const calls: ToolCall[] = [];
    if (body.startsWith('[')) {  // v3: one JSON array of {name, arguments}
      let list: unknown;
      try {
        list = JSON.parse(body);
      } catch {
        return null;
      }
      if (!Array.isArray(list) || list.length === 0) return null;
      for (const v of list) {
        const call = callOf(v, use, ['arguments', 'parameters'], mistralCallId);
        if (!call) return null;
        calls.push(call);
      }
    } else {  // v11+: name[ARGS]{…} (name[CALL_ID]id[ARGS]{…}), each call after its own [TOOL_CALLS]
      for (const part of body.split(MISTRAL_CALLS)) {
        const m = /^\s*([A-Za-z0-9_-]+)(?:\[CALL_ID\][A-Za-z0-9]*)?\[ARGS\]([\s\S]*)$/.exec(part);
        const call = m ? namedCall(m[1]!, m[2]!.trim(), use, mistralCallId) : null;
        if (!call) return null;
        calls.push(call);
      }
    }
    return { content: textBefore(answer, at), calls };
  },
  callStart: (answer) => answer.indexOf(MISTRAL_CALLS),
  heldTail: (answer) => heldBefore(answer, MISTRAL_CALLS),
};

/** The end of the JSON object starting at `from` (index after its closing brace), or -1 if it does not close. */
function objectEnd(text: string, from: number): number {
  let depth = 0;
  let inString = false;
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return i + 1;
  }
  return -1;
}

const LLAMA3_JSON: ToolFormat = {
  name: 'llama3_json',
  native: true,
  constraint: (use) => {
    if (use.choice === 'auto') return undefined;
    const one = callPattern(use, 'parameters');
    return use.parallel ? `${one}(?:;${JSON_SP}${one})*` : one;
  },
  parse: (answer, use) => {
    const calls: ToolCall[] = [];
    let at = answer.search(/\S/);
    if (at < 0 || answer[at] !== '{') return null;
    while (at < answer.length) {
      const end = objectEnd(answer, at);
      if (end < 0) return null;
      let v: unknown;
      try {
        v = JSON.parse(answer.slice(at, end));
      } catch {
        return null;
      }
      const call = callOf(v, use, ['parameters', 'arguments']);
      if (!call) return null;
      calls.push(call);
      const sep = /^\s*(;\s*)?/.exec(answer.slice(end))![0];
      at = end + sep.length;
      if (at < answer.length && (sep.trim() !== ';' || answer[at] !== '{')) return null;
    }
    return { content: null, calls };
  },
  callStart: (answer) => {  // the whole answer is calls (spaces before them included) or none
    const at = answer.search(/\S/);
    return at >= 0 && answer[at] === '{' ? 0 : -1;
  },
  heldTail: (answer) => (answer.trim() === '' ? answer.length : 0),  // leading space: not decided yet
};

const HARMONY: ToolFormat = {
  name: 'harmony',
  native: true,
  constraint: (use) => {
    if (use.choice === 'auto') return undefined;
    throw validationError('gpt-oss (harmony) calls are written in special tokens a constraint cannot require: use tool_choice "auto" ' +
      '(or start the server with --tool-call-parser weft to have weft\'s JSON calls constrained)');
  },
  parse: (answer, use) => {
    const at = answer.indexOf(HARMONY_CALL.open);
    if (at < 0) return null;
    const calls: ToolCall[] = [];
    for (const part of answer.slice(at + 1).split(HARMONY_CALL.open)) {
      const sep = part.indexOf(HARMONY_CALL.args);
      if (sep < 0) return null;
      const end = part.indexOf(HARMONY_CALL.close);
      // Text between calls (a preamble) is not kept; the last call may lack its close (generation ended at <|call|>).
      const call = namedCall(part.slice(0, sep), part.slice(sep + 1, end < 0 ? part.length : end).trim(), use, newCallId);
      if (!call) return null;
      calls.push(call);
    }
    return { content: textBefore(answer, at), calls };
  },
  callStart: (answer) => answer.indexOf(HARMONY_CALL.open),
  heldTail: (answer) => answer.length - answer.trimEnd().length,
};

const FORMATS: Record<ToolFormatName, ToolFormat> = { weft: WEFT, hermes: HERMES, llama3_json: LLAMA3_JSON, mistral: MISTRAL, harmony: HARMONY,
  pythonic: PYTHONIC, qwen3_coder: QWEN3_CODER };

/** The messages a chat prompt is rendered from: weft's own format describes the tools in a system message; a
 * native one has the chat template render them (validateChatBody passed them as `tools`). */
export function promptMessages<M extends { role: string; content: string }>(name: ToolFormatName, messages: readonly M[],
  use: ToolUse | undefined): M[] {
  return FORMATS[name].native ? [...messages] : withToolPrompt(messages, use);
}

/** The answer's calls in `format` — only the first with parallel_tool_calls false (an unconstrained answer may
 * hold more) — or null when it has none. */
export function answerCalls(format: ToolFormat, answer: string, use: ToolUse): ParsedCalls | null {
  const parsed = format.parse(answer, use);
  return parsed && !use.parallel && parsed.calls.length > 1 ? { ...parsed, calls: parsed.calls.slice(0, 1) } : parsed;
}

/** The text a generated token adds to the answer the format parses: its text, or for a special token only a
 * marker of the format (others are dropped, as ever). */
export function answerDelta(format: ToolFormat | null, token: { text: string; special: boolean }, delta: string): string {
  if (!token.special) return delta;
  return format?.markerTokens?.includes(token.text) ? token.text : '';
}

export function toolFormat(name: ToolFormatName): ToolFormat {
  return FORMATS[name];
}

/**
 * A streamed answer with tools: passes text on until calls begin, then holds the rest; at the end, the calls
 * (or, when what was held does not parse as calls, that text).
 */
export class ToolCallStream {
  private answer = '';
  private sent = 0;
  private holding = false;

  constructor(private readonly format: ToolFormat, private readonly use: ToolUse) {}

  /** Text of this delta that may go out now. */
  push(text: string): string {
    this.answer += text;
    if (this.holding) return '';
    const at = this.format.callStart(this.answer);
    // The text before calls goes out without the spaces that end it (as parse() gives it whole).
    const upTo = at >= 0 ? this.answer.slice(0, at).trimEnd().length : this.answer.length - this.format.heldTail(this.answer);
    if (at >= 0) this.holding = true;
    const out = this.answer.slice(this.sent, Math.max(this.sent, upTo));
    this.sent = Math.max(this.sent, upTo);
    return out;
  }

  /** The end (`rest`: text the stream did not carry; `complete`: false when cut short by the length limit). */
  finish(rest: string, complete: boolean): { text: string; calls: ToolCall[] | null } {
    this.answer += rest;
    const parsed = complete ? answerCalls(this.format, this.answer, this.use) : null;
    if (parsed) return { text: '', calls: parsed.calls };
    const text = this.answer.slice(this.sent);
    this.sent = this.answer.length;
    return { text, calls: null };
  }
}
