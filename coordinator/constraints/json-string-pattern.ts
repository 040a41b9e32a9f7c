// A JSON Schema `pattern` (a string's, or a patternProperties key's) as the regular expression of the JSON string
// bodies it allows. Two things differ from pasting the pattern between quotes:
//  - The pattern describes the string's characters, the generated text is their JSON spelling: a `.` or `[^a]`
//    pasted raw could write `"` (ending the string early), `\` or a control character — invalid JSON. Every
//    character set in the pattern is cut to the characters JSON writes unescaped, so what is generated is always
//    a valid JSON string whose value matches (escaped characters are simply never chosen).
//  - ECMA-262 patterns search, they do not anchor. A pattern anchored at one end only (`^s_`, `\.json$`) says
//    "starts with" / "ends with", so the other end is left open; one anchored at both ends or at neither is
//    matched whole (for an unanchored pattern that is a subset of what a search accepts — what a user writing
//    `[A-Z]{3}` means).
import { ConstraintError, MAX_CP, parseRegex, type Ast } from '../../protocol/index.js';

/** Characters a JSON string holds unescaped: everything but `"`, `\` and U+0000–U+001F. */
const JSON_UNESCAPED: [number, number][] = [[0x20, 0x21], [0x23, 0x5b], [0x5d, MAX_CP]];
/** Any JSON string character as written: an unescaped one or an escape (a string schema's and an open end's). */
export const JSON_CHAR = '(?:[^"\\\\\\x00-\\x1f]|\\\\["\\\\/bfnrt]|\\\\u[0-9a-fA-F]{4})';

/** The regular expression of the JSON string bodies (between the quotes) whose value `pattern` matches. */
export function jsonStringPattern(pattern: string, at: string): string {
  let inner = pattern;
  const start = inner.startsWith('^');
  if (start) inner = inner.slice(1);
  // A trailing `$` anchors unless it is escaped (an odd number of backslashes before it).
  const end = /(?:^|[^\\])(?:\\\\)*\$$/.test(inner);
  if (end) inner = inner.slice(0, -1);
  const ast = restrict(parseRegex(inner), pattern, at);
  const body = serialize(ast);
  if (start === end) return body;
  return start ? `${body}${JSON_CHAR}*` : `${JSON_CHAR}*${body}`;
}

function restrict(a: Ast, pattern: string, at: string): Ast {
  switch (a.t) {
    case 'set': {
      const ranges = intersect(a.ranges, JSON_UNESCAPED);
      if (ranges.length === 0) {
        throw new ConstraintError(`pattern '${pattern.slice(0, 64)}' at ${at} needs a character JSON escapes (", \\ or a control character): not supported in structured output`);
      }
      return { t: 'set', ranges };
    }
    case 'seq': case 'alt': return { t: a.t, items: a.items.map((x) => restrict(x, pattern, at)) };
    case 'rep': return { ...a, item: restrict(a.item, pattern, at) };
    case 'call': throw new ConstraintError(`pattern at ${at} cannot call a rule`);
  }
}

function intersect(a: [number, number][], b: [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  for (const [alo, ahi] of a) {
    for (const [blo, bhi] of b) {
      const lo = Math.max(alo, blo), hi = Math.min(ahi, bhi);
      if (lo <= hi) out.push([lo, hi]);
    }
  }
  return out;
}

const cp = (c: number) => `\\u{${c.toString(16)}}`;

/** An AST back to pattern text parseRegex reads the same way. */
function serialize(a: Ast): string {
  switch (a.t) {
    case 'set': return `[${a.ranges.map(([lo, hi]) => (lo === hi ? cp(lo) : `${cp(lo)}-${cp(hi)}`)).join('')}]`;
    case 'seq': return a.items.map(serialize).join('');
    case 'alt': return `(?:${a.items.map(serialize).join('|')})`;
    case 'rep': return `(?:${serialize(a.item)}){${a.min},${a.max === Infinity ? '' : a.max}}`;
    case 'call': throw new ConstraintError('a pattern cannot call a rule');
  }
}
