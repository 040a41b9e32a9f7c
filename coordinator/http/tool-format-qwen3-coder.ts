// --tool-call-parser qwen3_coder (vLLM's parser of the name): Qwen3-Coder's XML calls, after optional text —
//   <tool_call>
//   <function=get_weather>
//   <parameter=city>
//   Paris
//   </parameter>
//   </function>
//   </tool_call>
// one block per call. A value is raw text (code, with its line breaks, as it is), read as the type its schema
// gives (qwen3-coder-values.ts). Text after the calls (or between them) makes the answer text; the last block
// may lack its </tool_call> (the model stopped at its end-of-turn token).
// A required or named call is constrained to such blocks, the parameters in the schema's order, each value's text
// matching its schema: JSON for numbers, booleans, objects and arrays; for strings any text without
// </parameter>, the enum's values, or a format's text (a counted length leaves out `<`; `pattern` is refused).
import { ConstraintError, escapeRegex } from '../../protocol/index.js';
import { HERMES_CLOSE as CLOSE, HERMES_OPEN as OPEN } from '../engine/tool-format-detect.js';
import { validationError } from './errors.js';
import { isJsonObject } from './json.js';
import type { ToolCall, ToolFunction, ToolUse } from './openai-tools.js';
import { PARAMETER_END, argumentValue, valuePattern } from './qwen3-coder-values.js';
import { allowedTools, heldBefore, namedCall, newCallId, textBefore, type ParsedCalls, type ToolFormat } from './tool-format-base.js';
import { declaredParameters, sequencePattern } from './tool-parameters.js';

const FUNCTION = '<function=';
const FUNCTION_END = '</function>';
const PARAMETER = '<parameter=';

/** The declared schema of a function's parameter (undefined: not declared). */
function parameterSchema(t: ToolFunction, name: string): unknown {
  const props = t.parameters?.properties;
  return isJsonObject(props) && Object.hasOwn(props, name) ? props[name] : undefined;
}

/** Reads Qwen3-Coder's blocks in order, by their structure: a value ends at its </parameter> only, so a value that
 * holds </function> or </tool_call> (code about these tags) does not end its block. */
class BlockReader {
  at: number;

  constructor(private readonly text: string, at: number, private readonly use: ToolUse) {
    this.at = at;
  }

  /** Whether `s` comes next (after spaces); if so, past it. */
  eat(s: string): boolean {
    const from = this.text.slice(this.at).search(/\S|$/) + this.at;
    if (!this.text.startsWith(s, from)) return false;
    this.at = from + s.length;
    return true;
  }

  atEnd(): boolean {
    return this.text.slice(this.at).trim() === '';
  }

  /** The text up to `end` (past it), or null when `end` does not come. */
  private until(end: string): string | null {
    const i = this.text.indexOf(end, this.at);
    if (i < 0) return null;
    const s = this.text.slice(this.at, i);
    this.at = i + end.length;
    return s;
  }

  /** `<function=NAME>` then `<parameter=P>\nvalue\n</parameter>` each, then `</function>` (which a reply cut at
   * the end of its turn may lack); the </tool_call> after it is the caller's. */
  call(): ToolCall | null {
    if (!this.eat(FUNCTION)) return null;
    const name = this.until('>');
    const tool = name === null ? undefined : this.use.tools.find((t) => t.name === name.trim());
    if (!tool) return null;
    const args: [string, unknown][] = [];
    while (!this.eat(FUNCTION_END) && !this.atEnd()) {
      if (!this.eat(PARAMETER)) return null;
      const param = this.until('>');
      const value = param === null ? null : this.until(PARAMETER_END);
      if (param === null || value === null) return null;
      // The line breaks after the opening tag and before the closing one are markup, not value.
      const raw = value.replace(/^\n/, '').replace(/\n$/, '');
      args.push([param.trim(), argumentValue(raw, parameterSchema(tool, param.trim()), tool.parameters)]);
    }
    return namedCall(tool.name, Object.fromEntries(args), this.use, newCallId);
  }
}

function parse(answer: string, use: ToolUse): ParsedCalls | null {
  const start = answer.indexOf(OPEN);
  if (start < 0) return null;
  const r = new BlockReader(answer, start, use);
  const calls: ToolCall[] = [];
  while (r.eat(OPEN)) {
    const call = r.call();
    if (!call) return null;
    calls.push(call);
    // The last block may lack </tool_call> (the model stopped at its end-of-turn token).
    if (!r.eat(CLOSE) && !r.atEnd()) return null;
  }
  return r.atEnd() ? { content: textBefore(answer, start), calls } : null;  // text after (or between) calls: not calls
}

/** One function's block, as Qwen3-Coder's template writes it. */
function blockPattern(t: ToolFunction): string {
  const params = declaredParameters(t, 'qwen3_coder').map((p) => {
    if (/[<>\n\r]/.test(p.name) || p.name.trim() !== p.name) {
      throw validationError(`\`tools\` function '${t.name}' parameter '${p.name.slice(0, 64)}' has a character (<, >, a line break, or spaces at an end) ` +
        'that a qwen3_coder <parameter=…> tag cannot hold: rename it, or use tool_choice "auto"');
    }
    try {
      const value = valuePattern(p.schema, t.parameters, `#/properties/${p.name}`);
      return { pattern: `${escapeRegex(PARAMETER)}${escapeRegex(p.name)}>\\n${value}\\n${escapeRegex(PARAMETER_END)}\\n`, required: p.required };
    } catch (e) {
      if (e instanceof ConstraintError) throw validationError(`\`tools\` function '${t.name}' parameters: ${e.message}`);
      throw e;
    }
  });
  return `${escapeRegex(OPEN)}\\n${escapeRegex(FUNCTION)}${escapeRegex(t.name)}>\\n${sequencePattern(params, '')}` +
    `${escapeRegex(FUNCTION_END)}\\n${escapeRegex(CLOSE)}`;
}

export const QWEN3_CODER: ToolFormat = {
  name: 'qwen3_coder',
  native: true,
  constraint: (use) => {
    if (use.choice === 'auto') return undefined;
    const one = `(?:${allowedTools(use).map(blockPattern).join('|')})`;
    return use.parallel ? `${one}(?:\\n${one})*` : one;
  },
  parse,
  callStart: (answer) => answer.indexOf(OPEN),
  heldTail: (answer) => heldBefore(answer, OPEN),
};
