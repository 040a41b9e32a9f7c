// The regular expressions of structured output (`NewSequence.constraint`), compiled to a byte-level NFA. The
// coordinator compiles a request's pattern to refuse a bad one with a 422 before it is scheduled; each shard
// compiles it again and runs it as a lazy DFA over the bytes of the vocabulary's tokens (shard/constraints/).
// The pattern must match the whole generated text. Text is UTF-8: a character class becomes the exact byte
// sequences of its code points (the UTF-8 range split RE2 uses), so a token holding part of a character works.
//
// Syntax: literals, `.` (not newline), `[...]` / `[^...]` with ranges, `\d \w \s \D \W \S`, escapes
// (`\n \t \r \f \v \0 \xHH \uHHHH \u{H…}`, escaped punctuation), groups `( )` `(?: )` `(?<name> )`, `|`,
// `* + ? {n} {n,} {n,m}` (a lazy `?` suffix is accepted: it changes nothing when the whole text must match),
// `^` at the start and `$` at the end. Backreferences, lookaround and `\b` are refused (not regular).

export class ConstraintError extends Error {
  override readonly name = 'ConstraintError';
}

/** A pattern's syntax tree; `call` (a grammar's rule reference, grammar.ts) never comes from a regex. */
export type Ast =
  | { t: 'set'; ranges: [number, number][] } // code point ranges, sorted, disjoint
  | { t: 'seq'; items: Ast[] }
  | { t: 'alt'; items: Ast[] }
  | { t: 'rep'; item: Ast; min: number; max: number }
  | { t: 'call'; rule: number };

export const MAX_CP = 0x10ffff;
/** Largest {n,m} bound; larger counts make NFAs no one needs. */
export const MAX_REPEAT = 1000;
/** NFA nodes one pattern may compile to. */
export const MAX_NFA_NODES = 200_000;

const range = (lo: number, hi: number): [number, number][] => [[lo, hi]];
const DIGIT = range(0x30, 0x39);
const WORD: [number, number][] = [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]];
const SPACE: [number, number][] = [[0x09, 0x0d], [0x20, 0x20]];

export function normalize(ranges: [number, number][]): [number, number][] {
  const s = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [lo, hi] of s) {
    const last = out.at(-1);
    if (last && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else out.push([lo, hi]);
  }
  return out;
}
export function complement(ranges: [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  let next = 0;
  for (const [lo, hi] of normalize(ranges)) {
    if (lo > next) out.push([next, lo - 1]);
    next = hi + 1;
  }
  if (next <= MAX_CP) out.push([next, MAX_CP]);
  return out;
}

/** Groups nested inside each other: the parser and the NFA builder recurse once per level. */
export const MAX_NESTING = 1_000;

class Parser {
  private i = 0;
  private depth = 0;
  private readonly cps: number[];
  /** `calls`: `\R{k}` calls rule k (a grammar's rules written as regular expressions, compile.ts). */
  constructor(private readonly pattern: string, private readonly calls = false) {
    this.cps = Array.from(pattern, (c) => c.codePointAt(0)!);
  }

  parse(): Ast {
    if (this.peek() === 0x5e) this.i++; // ^
    const ast = this.alt();
    if (this.i < this.cps.length) throw this.error(this.peek() === 0x29 ? 'unbalanced )' : 'unexpected character');
    return ast;
  }

  private error(what: string): ConstraintError {
    return new ConstraintError(`regex ${JSON.stringify(this.pattern.slice(0, 200))}: ${what} at position ${this.i}`);
  }
  private peek(k = 0): number | undefined {
    return this.cps[this.i + k];
  }
  private eat(cp: number): boolean {
    if (this.peek() !== cp) return false;
    this.i++;
    return true;
  }

  private alt(): Ast {
    if (++this.depth > MAX_NESTING) throw this.error(`groups nested more than ${MAX_NESTING} deep`);
    try {
      const items = [this.seq()];
      while (this.eat(0x7c)) items.push(this.seq());
      return items.length === 1 ? items[0] : { t: 'alt', items };
    } finally {
      this.depth--;
    }
  }

  private seq(): Ast {
    const items: Ast[] = [];
    for (let c = this.peek(); c !== undefined && c !== 0x7c && c !== 0x29; c = this.peek()) {
      if (c === 0x24 && this.i === this.cps.length - 1) { this.i++; break; } // $ at the end
      items.push(this.quantified(this.atom()));
    }
    return items.length === 1 ? items[0] : { t: 'seq', items };
  }

  private quantified(item: Ast): Ast {
    for (;;) {
      const c = this.peek();
      let min: number, max: number;
      if (c === 0x2a) [min, max] = [0, Infinity];
      else if (c === 0x2b) [min, max] = [1, Infinity];
      else if (c === 0x3f) [min, max] = [0, 1];
      else if (c === 0x7b && this.isCount()) {
        [min, max] = this.count();
        item = { t: 'rep', item, min, max };
        this.eat(0x3f);
        continue;
      } else return item;
      this.i++;
      this.eat(0x3f); // lazy: same language
      item = { t: 'rep', item, min, max };
    }
  }

  private isCount(): boolean {
    const rest = String.fromCodePoint(...this.cps.slice(this.i, this.i + 24));
    return /^\{\d+(,\d*)?\}/.test(rest);
  }
  private count(): [number, number] {
    const rest = String.fromCodePoint(...this.cps.slice(this.i, this.i + 24));
    const m = /^\{(\d+)(,(\d*))?\}/.exec(rest)!;
    this.i += m[0].length;
    const min = Number(m[1]);
    const max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
    if (max < min) throw this.error(`repeat {${min},${max}} has max < min`);
    if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) throw this.error(`repeat counts above ${MAX_REPEAT} are not supported`);
    return [min, max];
  }

  private atom(): Ast {
    const c = this.cps[this.i++];
    switch (c) {
      case 0x28: { // (
        if (this.eat(0x3f)) {
          if (this.eat(0x3a)) { /* (?: */ } else if ((this.peek() === 0x3c || this.peek() === 0x50) && this.namedGroup()) { /* named */ } else {
            throw this.error('lookaround and inline flags are not supported');
          }
        }
        const inner = this.peek() === 0x29 ? { t: 'seq' as const, items: [] } : this.alt();
        if (!this.eat(0x29)) throw this.error('missing )');
        return inner;
      }
      case 0x5b: return { t: 'set', ranges: this.klass() };
      case 0x2e: return { t: 'set', ranges: complement(range(0x0a, 0x0a)) };
      case 0x5c: {
        if (this.calls && this.peek() === 0x52 && this.peek(1) === 0x7b) {  // \R{k}
          const m = /^R\{(\d{1,6})\}/.exec(String.fromCodePoint(...this.cps.slice(this.i, this.i + 10)));
          if (!m) throw this.error('bad rule call \\R{k}');
          this.i += m[0].length;
          return { t: 'call', rule: Number(m[1]) };
        }
        return { t: 'set', ranges: this.escape(false) };
      }
      case 0x2a: case 0x2b: case 0x3f: this.i--; throw this.error('nothing to repeat');
      case 0x5e: case 0x24: this.i--; throw this.error('anchors are only supported at the start (^) and end ($)');
      default: return { t: 'set', ranges: range(c, c) };
    }
  }

  /** `(?<name>` or `(?P<name>`: skips the name. */
  private namedGroup(): boolean {
    if (this.eat(0x50) && this.peek() !== 0x3c) throw this.error('bad group');
    if (!this.eat(0x3c)) return false;
    if (this.peek() === 0x3d || this.peek() === 0x21) throw this.error('lookbehind is not supported');
    while (this.peek() !== undefined && this.peek() !== 0x3e) this.i++;
    if (!this.eat(0x3e)) throw this.error('unterminated group name');
    return true;
  }

  private klass(): [number, number][] {
    const negated = this.eat(0x5e);
    const ranges: [number, number][] = [];
    let first = true;
    for (;;) {
      const c = this.cps[this.i++];
      if (c === undefined) throw this.error('missing ]');
      if (c === 0x5d && !first) break;
      first = false;
      let lo: number;
      if (c === 0x5c) {
        const e = this.escape(true);
        if (e.length !== 1 || e[0][0] !== e[0][1]) { ranges.push(...e); continue; }
        lo = e[0][0];
      } else lo = c;
      if (this.peek() === 0x2d && this.peek(1) !== undefined && this.peek(1) !== 0x5d) {
        this.i++;
        const d = this.cps[this.i++];
        const hi = d === 0x5c ? this.single(this.escape(true)) : d;
        if (hi < lo) throw this.error('range out of order');
        ranges.push([lo, hi]);
      } else ranges.push([lo, lo]);
    }
    return negated ? complement(ranges) : normalize(ranges);
  }

  private single(e: [number, number][]): number {
    if (e.length !== 1 || e[0][0] !== e[0][1]) throw this.error('a class escape cannot end a range');
    return e[0][0];
  }

  private hex(n: number): number {
    const s = String.fromCodePoint(...this.cps.slice(this.i, this.i + n));
    if (s.length !== n || !/^[0-9a-fA-F]+$/.test(s)) throw this.error('bad hex escape');
    this.i += n;
    return parseInt(s, 16);
  }

  private escape(inClass: boolean): [number, number][] {
    const c = this.cps[this.i++];
    if (c === undefined) throw this.error('trailing backslash');
    const ch = String.fromCodePoint(c);
    switch (ch) {
      case 'd': return DIGIT;
      case 'D': return complement(DIGIT);
      case 'w': return WORD;
      case 'W': return complement(WORD);
      case 's': return SPACE;
      case 'S': return complement(SPACE);
      case 'n': return range(0x0a, 0x0a);
      case 't': return range(0x09, 0x09);
      case 'r': return range(0x0d, 0x0d);
      case 'f': return range(0x0c, 0x0c);
      case 'v': return range(0x0b, 0x0b);
      case '0': return range(0, 0);
      case 'x': { const v = this.hex(2); return range(v, v); }
      case 'u': {
        if (this.eat(0x7b)) {
          const start = this.i;
          while (this.peek() !== undefined && this.peek() !== 0x7d) this.i++;
          const v = parseInt(String.fromCodePoint(...this.cps.slice(start, this.i)), 16);
          if (!this.eat(0x7d) || !(v >= 0 && v <= MAX_CP)) throw this.error('bad \\u{…} escape');
          return range(v, v);
        }
        const v = this.hex(4);
        return range(v, v);
      }
      case 'b': if (inClass) return range(0x08, 0x08); throw this.error('\\b (word boundary) is not supported');
      case 'B': throw this.error('\\B is not supported');
      default:
        if (/[1-9]/.test(ch)) throw this.error('backreferences are not supported');
        if (/[A-Za-z]/.test(ch)) throw this.error(`unknown escape \\${ch}`);
        return range(c, c);
    }
  }
}

// UTF-8 --------------------------------------------------------------------------------------------

type ByteRange = [number, number];

function utf8Encode(cp: number): number[] {
  return [...Buffer.from(String.fromCodePoint(cp), 'utf8')];
}

/** The byte-range sequences whose concatenations are exactly the UTF-8 encodings of code points lo..hi. */
function utf8Sequences(lo: number, hi: number, out: ByteRange[][]): void {
  for (const [a, b] of [[0, 0x7f], [0x80, 0x7ff], [0x800, 0xffff], [0x10000, MAX_CP]]) {
    const l = Math.max(lo, a), h = Math.min(hi, b);
    if (l <= h) split(l, h, out);
  }
}
function split(lo: number, hi: number, out: ByteRange[][]): void {
  const n = utf8Encode(lo).length;
  for (let i = 1; i < n; i++) {
    const m = (1 << (6 * i)) - 1;
    if ((lo & ~m) !== (hi & ~m)) {
      if ((lo & m) !== 0) { split(lo, lo | m, out); split((lo | m) + 1, hi, out); return; }
      if ((hi & m) !== m) { split(lo, (hi & ~m) - 1, out); split(hi & ~m, hi, out); return; }
    }
  }
  // Surrogates are not characters: skip them (String.fromCodePoint would encode them as U+FFFD).
  if (lo <= 0xdfff && hi >= 0xd800) {
    if (lo < 0xd800) split(lo, 0xd7ff, out);
    if (hi > 0xdfff) split(0xe000, hi, out);
    return;
  }
  const a = utf8Encode(lo), b = utf8Encode(hi);
  out.push(a.map((x, k) => [x, b[k]]));
}

// NFA ----------------------------------------------------------------------------------------------

/** Thompson NFA over bytes: node i either moves on a byte in `bytes[i]` to `next[i]`, or only has ε-edges
 * (or, in a grammar's network, calls rule `calls[i]` and goes on at `next[i]` when it returns). */
export interface Nfa {
  start: number;
  accept: number;
  /** 256-bit sets (8 × uint32), or null for ε-only nodes. */
  bytes: (Uint32Array | null)[];
  next: number[];
  eps: number[][];
}

export class Builder {
  readonly bytes: (Uint32Array | null)[] = [];
  readonly next: number[] = [];
  readonly eps: number[][] = [];
  /** The rule a node calls (-1: none). */
  readonly calls: number[] = [];

  node(bytes: Uint32Array | null = null): number {
    if (this.bytes.length >= MAX_NFA_NODES) throw new ConstraintError(`the pattern compiles to more than ${MAX_NFA_NODES} NFA states; simplify it (smaller repeat counts, shorter enums)`);
    this.bytes.push(bytes);
    this.next.push(-1);
    this.eps.push([]);
    this.calls.push(-1);
    return this.bytes.length - 1;
  }

  /** Returns [start, end]: end is an ε-node the caller links onward (start may consume a byte). */
  build(a: Ast): [number, number] {
    switch (a.t) {
      case 'set': return this.set(a.ranges);
      case 'call': {
        const n = this.node(), e = this.node();
        this.calls[n] = a.rule;
        this.next[n] = e;
        return [n, e];
      }
      case 'seq': {
        if (a.items.length === 0) {
          const x = this.node();
          return [x, x];
        }
        const [start, first] = this.build(a.items[0]!);
        let end = first;
        for (const it of a.items.slice(1)) {
          const [is, ie] = this.build(it);
          this.eps[end].push(is);
          end = ie;
        }
        return [start, end];
      }
      case 'alt': {
        const s = this.node(), e = this.node();
        for (const it of a.items) {
          const [is, ie] = this.build(it);
          this.eps[s].push(is);
          this.eps[ie].push(e);
        }
        return [s, e];
      }
      case 'rep': {
        const s = this.node();
        let end = s;
        for (let k = 0; k < a.min; k++) {
          const [is, ie] = this.build(a.item);
          this.eps[end].push(is);
          end = ie;
        }
        if (a.max === Infinity) {
          const [is, ie] = this.build(a.item);
          const e = this.node();
          this.eps[end].push(is, e);
          this.eps[ie].push(is, e);
          return [s, e];
        }
        // Nested optionals: a(b(c)?)? — each further copy only after the previous one.
        const e = this.node();
        for (let k = a.min; k < a.max; k++) {
          const [is, ie] = this.build(a.item);
          this.eps[end].push(is, e);
          end = ie;
        }
        this.eps[end].push(e);
        return [s, e];
      }
    }
  }

  private set(ranges: [number, number][]): [number, number] {
    const seqs: ByteRange[][] = [];
    for (const [lo, hi] of ranges) utf8Sequences(lo, hi, seqs);
    if (seqs.length > 0 && seqs.every((q) => q.length === 1)) {  // one byte per character (ASCII): one node
      const bits = new Uint32Array(8);
      for (const [[lo, hi]] of seqs) for (let b = lo; b <= hi; b++) bits[b >> 5] |= 1 << (b & 31);
      const n = this.node(bits), e = this.node();
      this.next[n] = e;
      return [n, e];
    }
    const s = this.node(), e = this.node();
    const single = new Uint32Array(8);
    let anySingle = false;
    // Byte nodes chain straight into each other, and sequences that end alike share their tails (most end in
    // the same continuation-byte ranges): a class of all non-ASCII characters is ~15 nodes instead of ~45.
    const tails = new Map<string, number>();
    const tail = (seq: ByteRange[], k: number): number => {
      if (k === seq.length) return e;
      const key = seq.slice(k).map(([a, b]) => `${a}-${b}`).join(',');
      let n = tails.get(key);
      if (n === undefined) {
        const bits = new Uint32Array(8);
        for (let b = seq[k][0]; b <= seq[k][1]; b++) bits[b >> 5] |= 1 << (b & 31);
        n = this.node(bits);
        this.next[n] = tail(seq, k + 1);
        tails.set(key, n);
      }
      return n;
    };
    for (const seq of seqs) {
      if (seq.length === 1) {
        for (let b = seq[0][0]; b <= seq[0][1]; b++) single[b >> 5] |= 1 << (b & 31);
        anySingle = true;
        continue;
      }
      this.eps[s].push(tail(seq, 0));
    }
    if (anySingle) {
      const n = this.node(single);
      this.eps[s].push(n);
      this.next[n] = e;
    }
    return [s, e];
  }
}

/** Parses a pattern into its syntax tree (throws ConstraintError saying what is wrong). `calls`: see Parser. */
export function parseRegex(pattern: string, calls = false): Ast {
  if (pattern.length > 1_000_000) throw new ConstraintError('the pattern is longer than 1,000,000 characters');
  return new Parser(pattern, calls).parse();
}

/** Parses and compiles a pattern (throws ConstraintError saying what is wrong). */
export function compileRegex(pattern: string): Nfa {
  const ast = parseRegex(pattern);
  const b = new Builder();
  const [start, end] = b.build(ast);
  const accept = b.node();
  b.eps[end].push(accept);
  return { start, accept, bytes: b.bytes, next: b.next, eps: b.eps };
}

/** Escapes a string for use as a literal inside a pattern. */
export function escapeRegex(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|/-]/g, (c) => `\\${c}`);
}
