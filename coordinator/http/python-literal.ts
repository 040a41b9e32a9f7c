// A reader of pythonic call lists — `[get_weather(city="Paris", unit='c'), log(tags=("a", "b"), extra=None)]` —
// for the tool calls Llama 3.2 / 4 write. Nothing is evaluated: the arguments must be Python literals (what
// ast.literal_eval accepts, less what JSON cannot carry), read into their JSON values:
//   strings   '…', "…", '''…''', """…""" with Python's escapes, r-prefixed raw ones, adjacent ones joined
//   numbers   ints (also 0x / 0o / 0b, with _ separators) and floats, one sign; non-finite or complex: refused
//   True / False / None → true / false / null;  lists and tuples → arrays;  dicts → objects (string, number, bool
//   or None keys, written as json.dumps writes them); sets, bytes, f-strings, names and expressions: refused
// A call takes keyword arguments only (a positional one has no parameter name to go by).

/** A JSON value read from a Python literal. */
export type LiteralValue = null | boolean | number | string | LiteralValue[] | { [key: string]: LiteralValue };

export interface PythonCall {
  name: string;
  /** The keyword arguments, in order (an own property per name, `__proto__` included). */
  args: { [key: string]: LiteralValue };
}

/** Containers nested inside each other (the reader recurses per level). */
const MAX_DEPTH = 64;
/** Function and keyword names: Python identifiers, and `-` (OpenAI function names may have it). */
const NAME = /[A-Za-z_][A-Za-z0-9_-]*/y;
const KEYWORD = /[A-Za-z_][A-Za-z0-9_]*/y;
/** The numbers Python writes: hex / octal / binary ints, and decimal ints and floats (underscores between digits). */
const NUMBER = /0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|(?:[0-9](?:_?[0-9])*(?:\.(?:[0-9](?:_?[0-9])*)?)?|\.[0-9](?:_?[0-9])*)(?:[eE][+-]?[0-9](?:_?[0-9])*)?/y;
const SIMPLE_ESCAPES: Record<string, string> = { '\\': '\\', "'": "'", '"': '"', a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

class NotALiteral extends Error {}

/** The calls of `text` when it is exactly a Python list of calls (spaces around it allowed), else null. An empty
 * list is no calls: null too. */
export function parsePythonCallList(text: string): PythonCall[] | null {
  try {
    const r = new Reader(text);
    const calls = r.callList();
    r.space();
    return r.atEnd() && calls.length > 0 ? calls : null;
  } catch (e) {
    if (e instanceof NotALiteral) return null;
    throw e;
  }
}

/** One Python literal (the whole text, spaces around it allowed) as JSON, or undefined when it is not one. */
export function parsePythonLiteral(text: string): LiteralValue | undefined {
  try {
    const r = new Reader(text);
    const v = r.value(0);
    r.space();
    return r.atEnd() ? v : undefined;
  } catch (e) {
    if (e instanceof NotALiteral) return undefined;
    throw e;
  }
}

class Reader {
  private i = 0;

  constructor(private readonly text: string) {}

  atEnd(): boolean {
    return this.i >= this.text.length;
  }

  /** Spaces, line breaks (inside brackets they are free in Python) and comments. */
  space(): void {
    for (;;) {
      const c = this.text[this.i];
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f') this.i++;
      else if (c === '\\' && this.text[this.i + 1] === '\n') this.i += 2;
      else if (c === '#') while (this.i < this.text.length && this.text[this.i] !== '\n') this.i++;
      else return;
    }
  }

  private fail(): never {
    throw new NotALiteral();
  }

  private eat(c: string): boolean {
    this.space();
    if (this.text[this.i] !== c) return false;
    this.i++;
    return true;
  }

  private expect(c: string): void {
    if (!this.eat(c)) this.fail();
  }

  private match(re: RegExp): string | null {
    re.lastIndex = this.i;
    const m = re.exec(this.text);
    if (!m) return null;
    this.i += m[0].length;
    return m[0];
  }

  /** `[` call (`,` call)* `,`? `]`. */
  callList(): PythonCall[] {
    this.expect('[');
    const calls: PythonCall[] = [];
    while (!this.eat(']')) {
      calls.push(this.call());
      if (!this.eat(',')) {
        this.expect(']');
        break;
      }
    }
    return calls;
  }

  private call(): PythonCall {
    this.space();
    const name = this.match(NAME) ?? this.fail();
    this.expect('(');
    const args = new Map<string, LiteralValue>();
    while (!this.eat(')')) {
      this.space();
      const key = this.match(KEYWORD) ?? this.fail();
      this.expect('=');
      if (this.text[this.i] === '=' || args.has(key)) this.fail();  // `a == 1` is no argument; Python refuses repeats
      args.set(key, this.value(0));
      if (!this.eat(',')) {
        this.expect(')');
        break;
      }
    }
    return { name, args: Object.fromEntries(args) };
  }

  value(depth: number): LiteralValue {
    if (depth > MAX_DEPTH) this.fail();
    this.space();
    const c = this.text[this.i];
    if (c === '[') return this.items(']', depth);
    if (c === '(') return this.tuple(depth);
    if (c === '{') return this.dict(depth);
    if (c === '-' || c === '+') {
      this.i++;
      this.space();
      const n = this.number();
      return c === '-' ? -n : n;
    }
    if (c !== undefined && /[0-9.]/.test(c)) return this.number();
    const word = this.match(KEYWORD);
    if (word === 'True') return true;
    if (word === 'False') return false;
    if (word === 'None') return null;
    if (word !== null && /^[rRuU]$/.test(word) && (this.text[this.i] === "'" || this.text[this.i] === '"')) {
      this.i -= word.length;
      return this.strings();
    }
    if (word === null && (c === "'" || c === '"')) return this.strings();
    return this.fail();  // another name (a variable), a set, bytes, an f-string, …
  }

  /** Elements up to `close`, a trailing comma allowed. */
  private items(close: string, depth: number): LiteralValue[] {
    this.i++;
    const out: LiteralValue[] = [];
    while (!this.eat(close)) {
      out.push(this.value(depth + 1));
      if (!this.eat(',')) {
        this.expect(close);
        break;
      }
    }
    return out;
  }

  /** `()`, `(x,)`, `(x, y)`: a tuple, as an array; `(x)` is x. */
  private tuple(depth: number): LiteralValue {
    this.i++;
    if (this.eat(')')) return [];
    const first = this.value(depth + 1);
    if (this.eat(')')) return first;
    this.expect(',');
    this.i--;  // items() starts past its opening bracket: stand on the comma
    return [first, ...this.items(')', depth)];
  }

  private dict(depth: number): { [key: string]: LiteralValue } {
    this.i++;
    const out = new Map<string, LiteralValue>();
    while (!this.eat('}')) {
      const key = this.value(depth + 1);
      if (typeof key === 'object' && key !== null) this.fail();  // unhashable
      this.expect(':');  // a `,` here would make it a set
      out.set(typeof key === 'string' ? key : JSON.stringify(key), this.value(depth + 1));
      if (!this.eat(',')) {
        this.expect('}');
        break;
      }
    }
    return Object.fromEntries(out);
  }

  private number(): number {
    const s = this.match(NUMBER) ?? this.fail();
    if (/^[A-Za-z0-9_.]/.test(this.text[this.i] ?? '')) this.fail();  // 1j, 1abc, 1.2.3
    const plain = s.replace(/_/g, '');
    if (/^0[0-9]*[1-9]/.test(plain) && !/[.eE]/.test(plain) && !/^0[xXoObB]/.test(plain)) this.fail();  // 012: not Python 3
    const n = Number(plain);
    return Number.isFinite(n) ? n : this.fail();
  }

  /** One or more adjacent string literals, joined (as Python joins "a" "b"). */
  private strings(): string {
    let out = this.string();
    for (;;) {
      const at = this.i;
      this.space();
      const c = this.text[this.i];
      const prefixed = (c === 'r' || c === 'R' || c === 'u' || c === 'U') && (this.text[this.i + 1] === "'" || this.text[this.i + 1] === '"');
      if (c === "'" || c === '"' || prefixed) out += this.string();
      else {
        this.i = at;
        return out;
      }
    }
  }

  private string(): string {
    let raw = false;
    const p = this.text[this.i];
    if (p === 'r' || p === 'R') raw = true;
    if (p !== "'" && p !== '"') this.i++;
    const q = this.text[this.i]!;
    const triple = this.text.startsWith(q.repeat(3), this.i);
    const quote = triple ? q.repeat(3) : q;
    this.i += quote.length;
    let out = '';
    for (;;) {
      if (this.i >= this.text.length) this.fail();
      if (this.text.startsWith(quote, this.i)) {
        this.i += quote.length;
        return out;
      }
      const c = this.text[this.i]!;
      if ((c === '\n' || c === '\r') && !triple) this.fail();
      if (c !== '\\') {
        out += c;
        this.i++;
      } else if (raw) {  // a raw string keeps the backslash, and the character after it (a quote does not end it)
        out += this.text.slice(this.i, this.i + 2);
        this.i += 2;
      } else out += this.escape();
    }
  }

  /** The escape at the backslash under the cursor. */
  private escape(): string {
    const e = this.text[this.i + 1];
    this.i += 2;
    if (e === undefined) this.fail();
    if (e === '\n') return '';  // a line continuation
    if (e === 'N') this.fail();  // \N{NAME}: a named character (Unicode's name table is not carried here)
    if (SIMPLE_ESCAPES[e] !== undefined) return SIMPLE_ESCAPES[e];
    if (/[0-7]/.test(e)) {
      const digits = /[0-7]{0,2}/y;
      digits.lastIndex = this.i;
      const more = digits.exec(this.text)![0];
      this.i += more.length;
      return String.fromCodePoint(parseInt(e + more, 8));
    }
    const hex = ({ x: 2, u: 4, U: 8 } as Record<string, number>)[e];
    if (hex === undefined) return `\\${e}`;  // Python keeps an unknown escape as written
    const h = this.text.slice(this.i, this.i + hex);
    if (h.length !== hex || !/^[0-9a-fA-F]+$/.test(h)) this.fail();
    this.i += hex;
    const cp = parseInt(h, 16);
    if (cp > 0x10ffff) this.fail();
    // \uD83D\uDE00 written as two escapes joins into one character, as in a JSON text.
    return cp <= 0xffff ? String.fromCharCode(cp) : String.fromCodePoint(cp);
  }
}
