// How a schema's compiled texts spell their literals. JSON's, for structured output and JSON tool calls; Python's
// for pythonic tool calls (Llama 3.2 / 4 write `[get_weather(city="Paris", metric=None)]`), whose arguments are
// Python literals: the same strings (double-quoted), numbers, lists and dicts as JSON, but True / False / None.
import { JSON_CHAR } from './json-string-pattern.js';

export interface LiteralSyntax {
  readonly true: string;
  readonly false: string;
  readonly null: string;
  /** One character of a double-quoted string as written: an unescaped one or an escape. */
  readonly char: string;
  /** A constant (`const`, `enum`) written in this syntax, compact: `,` and `:` without spaces. */
  literal(v: unknown): string;
}

export const JSON_SYNTAX: LiteralSyntax = {
  true: 'true',
  false: 'false',
  null: 'null',
  char: JSON_CHAR,
  literal: (v) => JSON.stringify(v),
};

/** Python's literals. A string is written as JSON writes it (every JSON escape but `\/` means the same in a Python
 * string; Python keeps the backslash of `\/`, so it is left out). */
export const PYTHON_SYNTAX: LiteralSyntax = {
  true: 'True',
  false: 'False',
  null: 'None',
  char: '(?:[^"\\\\\\x00-\\x1f]|\\\\["\\\\bfnrt]|\\\\u[0-9a-fA-F]{4})',
  literal: pythonLiteral,
};

function pythonLiteral(v: unknown): string {
  if (v === null) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (Array.isArray(v)) return `[${v.map(pythonLiteral).join(',')}]`;
  if (typeof v === 'object') return `{${Object.entries(v as object).map(([k, x]) => `${JSON.stringify(k)}:${pythonLiteral(x)}`).join(',')}}`;
  return JSON.stringify(v);  // strings and numbers
}
