// What the grammar notations (gbnf.ts, lark.ts) share: the Grammar they parse into — one syntax tree per rule
// whose leaves are character sets and calls of other rules, compiled by grammar.ts — the rule table that names
// and checks rules, and a scanner for positions, string literals, escapes and character classes.
import { type Ast, ConstraintError, MAX_CP, MAX_NESTING, MAX_REPEAT, parseRegex } from './regex.js';

export interface Grammar {
  /** Rule names, in order of first mention. */
  names: string[];
  /** Each rule's right-hand side; `call` nodes index `names`. */
  bodies: Ast[];
  /** The rule the whole text must derive. */
  root: number;
}

/** Longest grammar text accepted. */
export const MAX_GRAMMAR_CHARS = 1_000_000;

/** Names rules as they are referenced; checks at the end that each was defined once. */
export class RuleTable {
  readonly names: string[] = [];
  readonly bodies: (Ast | undefined)[] = [];
  private readonly ids = new Map<string, number>();
  private readonly firstUse = new Map<number, string>();

  id(name: string, where?: () => string): number {
    let id = this.ids.get(name);
    if (id === undefined) {
      id = this.names.length;
      this.ids.set(name, id);
      this.names.push(name);
      this.bodies.push(undefined);
    }
    if (where !== undefined && !this.firstUse.has(id)) this.firstUse.set(id, where());
    return id;
  }

  define(name: string, body: Ast, error: (what: string) => ConstraintError): void {
    const id = this.id(name);
    if (this.bodies[id] !== undefined) throw error(`rule '${name}' is defined twice`);
    this.bodies[id] = body;
  }

  grammar(rootName: string, kind: string): Grammar {
    this.names.forEach((name, i) => {
      if (this.bodies[i] === undefined) {
        throw new ConstraintError(`${kind}: rule '${name}' is used (${this.firstUse.get(i) ?? 'as the start'}) but never defined`);
      }
    });
    const root = this.ids.get(rootName);
    if (root === undefined) throw new ConstraintError(`${kind}: the grammar needs a '${rootName}' rule: the whole output is one '${rootName}'`);
    return { names: this.names, bodies: this.bodies as Ast[], root };
  }
}

/** A cursor over a grammar's text, with what both notations share: positions in errors, string literals,
 * escapes, character classes. */
export abstract class GrammarScanner {
  protected i = 0;
  protected readonly cps: number[];
  private readonly lineStarts: number[];

  constructor(text: string, private readonly kind: string) {
    if (text.length > MAX_GRAMMAR_CHARS) throw new ConstraintError(`the grammar is longer than ${MAX_GRAMMAR_CHARS} characters`);
    this.cps = Array.from(text, (c) => c.codePointAt(0)!);
    this.lineStarts = [0];
    this.cps.forEach((c, k) => { if (c === 0x0a) this.lineStarts.push(k + 1); });
  }

  /** Skips what separates items: spaces, newlines, the notation's comments. */
  protected abstract space(): void;
  /** Items up to `|`, a closing bracket, or (not `nested`) the next definition. */
  protected abstract sequence(nested: boolean): Ast;

  /** `|`-separated sequences. */
  private depth = 0;

  protected alternation(nested: boolean): Ast {
    if (++this.depth > MAX_NESTING) throw this.error(`groups nested more than ${MAX_NESTING} deep`);
    try {
      return this.alternatives(nested);
    } finally {
      this.depth--;
    }
  }

  private alternatives(nested: boolean): Ast {
    const items = [this.sequence(nested)];
    while (this.peek() === 0x7c) {
      this.i++;
      this.space();
      items.push(this.sequence(nested));
    }
    return items.length === 1 ? items[0]! : { t: 'alt', items };
  }

  /** `*`, `+` or `?` after an item: the repetition (the suffix consumed), or null. */
  protected repeatSuffix(item: Ast): Ast | null {
    const c = this.peek();
    const [min, max] = c === 0x2a ? [0, Infinity] : c === 0x2b ? [1, Infinity] : c === 0x3f ? [0, 1] : [-1, -1];
    if (min < 0) return null;
    this.i++;
    return { t: 'rep', item, min, max };
  }

  protected error(what: string): ConstraintError {
    return new ConstraintError(`${this.kind} ${this.position()}: ${what}`);
  }
  /** `line L, column C` of index `at` (default: the cursor). */
  protected position(at = this.i): string {
    let lo = 0, hi = this.lineStarts.length - 1;  // the last line starting at or before `at`
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid]! <= at) lo = mid; else hi = mid - 1;
    }
    return `line ${lo + 1}, column ${at - this.lineStarts[lo]! + 1}`;
  }
  protected peek(k = 0): number | undefined {
    return this.cps[this.i + k];
  }
  protected eatText(s: string): boolean {
    const cps = Array.from(s, (c) => c.codePointAt(0)!);
    if (!cps.every((c, k) => this.peek(k) === c)) return false;
    this.i += cps.length;
    return true;
  }

  protected literal(quote: number): Ast {
    const start = this.i++;
    const items: Ast[] = [];
    for (;;) {
      const c = this.cps[this.i++];
      if (c === undefined || c === 0x0a) { this.i = start; throw this.error('unterminated string literal'); }
      if (c === quote) break;
      const cp = c === 0x5c ? this.escape() : c;
      items.push({ t: 'set', ranges: [[cp, cp]] });
    }
    return items.length === 1 ? items[0]! : { t: 'seq', items };
  }

  protected escape(): number {
    const c = this.cps[this.i++];
    switch (c) {
      case 0x6e: return 0x0a; // n
      case 0x74: return 0x09; // t
      case 0x72: return 0x0d; // r
      case 0x30: return 0;
      case 0x78: return this.hex(2); // x
      case 0x75: return this.hex(4); // u
      case 0x55: return this.hex(8); // U
      case undefined: throw this.error('trailing backslash');
      default:
        if (/[A-Za-z0-9]/.test(String.fromCodePoint(c))) throw this.error(`unknown escape \\${String.fromCodePoint(c)}`);
        return c;
    }
  }

  protected hex(n: number): number {
    const s = String.fromCodePoint(...this.cps.slice(this.i, this.i + n));
    const v = parseInt(s, 16);
    if (s.length !== n || !/^[0-9a-fA-F]+$/.test(s) || v > MAX_CP) throw this.error('bad hex escape');
    this.i += n;
    return v;
  }

  /** `[...]`: read to its closing bracket and parsed as a regular-expression class (\U escapes rewritten). */
  protected charClass(): Ast {
    const start = this.i;
    this.i++;
    if (this.peek() === 0x5e) this.i++;
    if (this.peek() === 0x5d) this.i++;  // a leading ] is literal
    for (;;) {
      const c = this.cps[this.i++];
      if (c === undefined || c === 0x0a) throw this.error('unterminated character class');
      if (c === 0x5c) this.i++;
      else if (c === 0x5d) break;
    }
    const source = String.fromCodePoint(...this.cps.slice(start, this.i))
      .replace(/\\U([0-9a-fA-F]{8})/g, (_m, h: string) => `\\u{${h}}`);
    try {
      return parseRegex(source);
    } catch (e) {
      if (e instanceof ConstraintError) throw this.error(`bad character class ${source.slice(0, 100)}: ${e.message}`);
      throw e;
    }
  }
  /** A repeat count at the cursor as `re` spells it (groups: min, the part after it, max), checked. */
  protected repeatCount(re: RegExp): [number, number] | undefined {
    const m = re.exec(String.fromCodePoint(...this.cps.slice(this.i, this.i + 40)));
    if (!m) return undefined;
    const min = Number(m[1]), max = m[2] === undefined ? min : m[3] === '' || m[3] === undefined ? Infinity : Number(m[3]);
    if (max < min) throw this.error(`repeat {${min},${max}} has max < min`);
    if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) throw this.error(`repeat counts above ${MAX_REPEAT} are not supported`);
    this.i += m[0].length;
    return [min, max];
  }
}
