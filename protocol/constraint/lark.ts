// Lark grammars (the notation of OpenAI's grammar-constrained tools, outlines and guidance; vLLM takes them as
// `guided_grammar` too), parsed into the same Grammar as GBNF (grammar-text.ts) and run by grammar.ts.
//
//   start: expr                       // the whole output is one `start`
//   expr: term (("+" | "-") term)*
//   ?term: NUMBER | "(" expr ")"
//   %import common.NUMBER
//   %ignore " "
//
// Rules (lowercase names, `?`/`!` prefixes and `.priority` accepted) and terminals (UPPERCASE) alike; items:
// "strings" (an `i` suffix: any letter case), "a".."z" ranges, /regular expressions/ (flag `i` only), names,
// ( groups ), [ optional ], postfix `?` `*` `+`, `~ n` and `~ n..m`, `| alternatives` on following lines,
// `-> alias` (ignored). Directives: `%import common.NAME [-> ALIAS]` and `%import common (A, B)` from the
// terminals of Lark's common.lark below; `%ignore` terminals may come before any terminal of a rule (Lark's
// lexer skips them between tokens). The grammar is read as a context-free language: Lark's lexer (longest
// match, priorities) can refuse a few texts this accepts — the same reading vLLM gives Lark grammars.
import { type Ast, ConstraintError, normalize, parseRegex } from './regex.js';
import { GrammarScanner, RuleTable, type Grammar } from './grammar-text.js';

/** The terminals of Lark's common.lark that grammars import. */
const COMMON: Record<string, string> = {
  DIGIT: '"0".."9"',
  HEXDIGIT: '"a".."f" | "A".."F" | DIGIT',
  INT: 'DIGIT+',
  SIGNED_INT: '["+" | "-"] INT',
  DECIMAL: 'INT "." INT? | "." INT',
  _EXP: '("e" | "E") SIGNED_INT',
  FLOAT: 'INT _EXP | DECIMAL _EXP?',
  SIGNED_FLOAT: '["+" | "-"] FLOAT',
  NUMBER: 'FLOAT | INT',
  SIGNED_NUMBER: '["+" | "-"] NUMBER',
  ESCAPED_STRING: String.raw`"\"" ( /[^"\\\n]/ | "\\" /[^\n]/ )* "\""`,
  LCASE_LETTER: '"a".."z"',
  UCASE_LETTER: '"A".."Z"',
  LETTER: 'UCASE_LETTER | LCASE_LETTER',
  WORD: 'LETTER+',
  CNAME: '("_" | LETTER) ("_" | LETTER | DIGIT)*',
  WS_INLINE: '(" " | /\\t/)+',
  WS: '/[ \\t\\f\\r\\n]/+',
  CR: '/\\r/',
  LF: '/\\n/',
  NEWLINE: '(CR? LF)+',
  SH_COMMENT: '/#[^\\n]*/',
  CPP_COMMENT: '/\\/\\/[^\\n]*/',
  SQL_COMMENT: '/--[^\\n]*/',
};
const COMMON_PREFIX = 'common.';
const IGNORE = '%ignore';
const TERMINAL = /^_?[A-Z][A-Z0-9_]*$/;
const NAME_CHAR = /[A-Za-z0-9_]/;

export function parseLark(text: string): Grammar {
  const rules = new RuleTable();
  const ignored: Ast[] = [];
  const imports = new Set<string>();
  new LarkParser(text, rules, '', ignored, imports).parse();
  // Common terminals, with those they use.
  const done = new Set<string>();
  const queue = [...imports];
  while (queue.length > 0) {
    const name = queue.pop()!;
    if (done.has(name)) continue;
    done.add(name);
    const body = COMMON[name]!;
    new LarkParser(`${name}: ${body}`, rules, COMMON_PREFIX, ignored, imports).parse();
    for (const used of body.match(/\b_?[A-Z][A-Z0-9_]*\b/g) ?? []) if (COMMON[used] !== undefined) queue.push(used);
  }
  const skip: Ast = ignored.length === 0 ? { t: 'seq', items: [] } : { t: 'rep', item: { t: 'alt', items: ignored }, min: 0, max: Infinity };
  rules.define(IGNORE, skip, (w) => new ConstraintError(w));
  const g = rules.grammar('start', 'Lark grammar');
  // Ignored text may also open the output.
  g.bodies[g.root] = { t: 'seq', items: [{ t: 'call', rule: rules.id(IGNORE) }, g.bodies[g.root]!] };
  return g;
}

class LarkParser extends GrammarScanner {
  /** Whether the definition being read is a terminal's (no ignored text inside it). */
  private inTerminal = false;

  constructor(text: string, private readonly rules: RuleTable, private readonly prefix: string, private readonly ignored: Ast[],
    private readonly imports: Set<string>) {
    super(text, 'Lark grammar');
  }

  parse(): void {
    this.space();
    if (this.i >= this.cps.length && this.prefix === '') throw this.error('the grammar is empty');
    while (this.i < this.cps.length) {
      if (this.peek() === 0x25) this.directive();
      else this.definition();
      this.space();
    }
  }

  /** Spaces, newlines and `//` comments. */
  protected space(): void {
    for (;;) {
      const c = this.peek();
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.i++;
      else if (c === 0x2f && this.peek(1) === 0x2f) while (this.peek() !== undefined && this.peek() !== 0x0a) this.i++;
      else return;
    }
  }

  private name(): string | undefined {
    const start = this.i;
    while (this.peek() !== undefined && NAME_CHAR.test(String.fromCodePoint(this.peek()!))) this.i++;
    return this.i > start ? String.fromCodePoint(...this.cps.slice(start, this.i)) : undefined;
  }

  /** `[?!]name[.priority] :` at the cursor: returns the name and moves past the colon, else stays. */
  private definitionHead(): string | undefined {
    const save = this.i;
    if (this.peek() === 0x3f || this.peek() === 0x21) this.i++;
    const name = this.name();
    if (name !== undefined && this.peek() === 0x2e) {
      this.i++;
      if (this.peek() === 0x2d) this.i++;
      if (this.name() === undefined) { this.i = save; return undefined; }
    }
    this.space();
    if (name !== undefined && this.peek() === 0x7b) throw this.error(`rule templates (${name}{…}) are not supported`);
    if (name !== undefined && this.peek() === 0x3a) { this.i++; return name; }
    this.i = save;
    return undefined;
  }

  private atDefinition(): boolean {
    const save = this.i;
    try {
      return this.definitionHead() !== undefined;
    } finally {
      this.i = save;
    }
  }

  private definition(): void {
    const name = this.definitionHead();
    if (name === undefined) throw this.error('expected a definition `name: …` or a %directive');
    this.inTerminal = TERMINAL.test(name);
    this.space();
    this.rules.define(this.prefix + name, this.alternation(false), (w) => this.error(w));
  }

  private directive(): void {
    this.i++;
    const word = this.name();
    this.inlineSpace();
    if (word === 'ignore') {
      this.inTerminal = true;
      this.ignored.push(this.alternation(false));
      return;
    }
    if (word === 'import') return this.importCommon();
    throw this.error(`%${word ?? ''} is not supported (only %import common.… and %ignore)`);
  }

  private inlineSpace(): void {
    while (this.peek() === 0x20 || this.peek() === 0x09) this.i++;
  }

  private importCommon(): void {
    const module = this.name();
    if (module !== 'common') throw this.error(`only Lark's common terminals can be imported (%import common.NAME), not '${module ?? ''}'`);
    const names: [string, string][] = [];
    if (this.peek() === 0x2e) {
      this.i++;
      const name = this.name() ?? '';
      this.inlineSpace();
      const alias = this.eatText('->') ? (this.inlineSpace(), this.name()) : name;
      names.push([name, alias ?? name]);
    } else {
      this.inlineSpace();
      if (this.peek() !== 0x28) throw this.error('expected %import common.NAME or %import common (NAME, …)');
      this.i++;
      for (;;) {
        this.space();
        const name = this.name();
        if (name === undefined) throw this.error('expected a terminal name in the import list');
        names.push([name, name]);
        this.space();
        if (this.peek() === 0x2c) { this.i++; continue; }
        if (this.peek() === 0x29) { this.i++; break; }
        throw this.error('expected , or ) in the import list');
      }
    }
    for (const [name, alias] of names) {
      if (COMMON[name] === undefined) throw this.error(`common.${name} is not available; available: ${Object.keys(COMMON).join(', ')}`);
      this.imports.add(name);
      this.rules.define(this.prefix + alias, { t: 'call', rule: this.rules.id(COMMON_PREFIX + name) }, (w) => this.error(w));
    }
  }

  /** At the top level a sequence ends where a definition or directive begins. */
  protected sequence(nested: boolean): Ast {
    const items: Ast[] = [];
    for (;;) {
      const c = this.peek();
      if (c === undefined || c === 0x7c || c === 0x29 || c === 0x5d) break;
      if (!nested && (c === 0x25 || this.atDefinition())) break;
      if (c === 0x2d && this.peek(1) === 0x3e) {  // -> alias: names the tree node only
        this.i += 2;
        this.space();
        this.name();
        this.space();
        continue;
      }
      items.push(this.postfix(this.primary()));
      this.space();
    }
    return items.length === 1 ? items[0]! : { t: 'seq', items };
  }

  private postfix(item: Ast): Ast {
    for (;;) {
      const c = this.peek();
      if (c === 0x20 || c === 0x09) {  // spaces before `~ n`
        const save = this.i;
        this.inlineSpace();
        if (this.peek() === 0x7e) continue;
        this.i = save;
        return item;
      }
      const repeated = this.repeatSuffix(item);
      if (repeated) item = repeated;
      else if (c === 0x7e) {
        this.i++;
        this.inlineSpace();
        const count = this.repeatCount(/^(\d+)(\s*\.\.\s*(\d+))?/);
        if (!count) throw this.error('expected a count after ~ (n or n..m)');
        item = { t: 'rep', item, min: count[0], max: count[1] };
      } else return item;
    }
  }

  private primary(): Ast {
    const c = this.peek()!;
    if (c === 0x22 || c === 0x27) return this.terminal(this.stringItem(c));
    if (c === 0x2f) return this.terminal(this.regexItem());
    if (c === 0x28 || c === 0x5b) {
      this.i++;
      this.space();
      const inner = this.alternation(true);
      const close = c === 0x28 ? 0x29 : 0x5d;
      if (this.peek() !== close) throw this.error(`missing ${c === 0x28 ? ')' : ']'}`);
      this.i++;
      return c === 0x28 ? inner : { t: 'rep', item: inner, min: 0, max: 1 };
    }
    const at = this.i;
    const name = this.name();
    if (name === undefined) throw this.error(`unexpected character ${JSON.stringify(String.fromCodePoint(c))}`);
    const where = () => this.position(at);
    const call: Ast = { t: 'call', rule: this.rules.id(this.prefix + name, where) };
    return TERMINAL.test(name) ? this.terminal(call) : call;
  }

  /** A terminal inside a rule may be followed by ignored text; inside a terminal it is taken as it is. */
  private terminal(item: Ast): Ast {
    if (this.inTerminal) return item;
    return { t: 'seq', items: [item, { t: 'call', rule: this.rules.id(IGNORE) }] };
  }

  /** "text", "text"i (any case), or "a".."z" (a range of characters). */
  private stringItem(quote: number): Ast {
    const text = this.literal(quote);
    if (this.peek() === 0x69 && !NAME_CHAR.test(String.fromCodePoint(this.peek(1) ?? 0x20))) {
      this.i++;
      return caseless(text);
    }
    if (this.peek() === 0x2e && this.peek(1) === 0x2e) {
      this.i += 2;
      const to = this.peek() === 0x22 || this.peek() === 0x27 ? this.literal(this.peek()!) : undefined;
      if (text.t !== 'set' || to?.t !== 'set') throw this.error('a range "a".."z" joins two one-character strings');
      const lo = text.ranges[0]![0], hi = to.ranges[0]![0];
      if (hi < lo) throw this.error('range out of order');
      return { t: 'set', ranges: [[lo, hi]] };
    }
    return text;
  }

  /** /pattern/ — Python regular-expression syntax within what regex.ts supports; flags are refused. */
  private regexItem(): Ast {
    const start = this.i++;
    let source = '';
    for (;;) {
      const c = this.cps[this.i++];
      if (c === undefined || c === 0x0a) { this.i = start; throw this.error('unterminated /regular expression/'); }
      if (c === 0x2f) break;
      if (c === 0x5c && this.peek() === 0x2f) { source += '/'; this.i++; continue; }
      source += String.fromCodePoint(c);
      if (c === 0x5c && this.peek() !== undefined) source += String.fromCodePoint(this.cps[this.i++]!);
    }
    const flags = this.name() ?? '';
    if (/[^i]/.test(flags)) throw this.error(`regular-expression flags other than i (/…/${flags}) are not supported`);
    try {
      return flags === 'i' ? caseless(parseRegex(source)) : parseRegex(source);
    } catch (e) {
      if (!(e instanceof ConstraintError)) throw e;
      this.i = start;
      throw this.error(`bad regular expression /${source.slice(0, 100)}/: ${e.message}`);
    }
  }
}

/** Character sets with each letter's other case added (`"…"i`, `/…/i`); a range of more than
 * 4,096 characters is left as it is (such a range, a negated class or `.`, holds both cases already or means to). */
function caseless(a: Ast): Ast {
  switch (a.t) {
    case 'seq': case 'alt': return { t: a.t, items: a.items.map(caseless) };
    case 'rep': return { ...a, item: caseless(a.item) };
    case 'call': return a;
    case 'set': {
      const extra: [number, number][] = [];
      for (const [lo, hi] of a.ranges) {
        if (hi - lo > 4096) continue;
        for (let c = lo; c <= hi; c++) {
          for (const v of [String.fromCodePoint(c).toLowerCase(), String.fromCodePoint(c).toUpperCase()]) {
            if ([...v].length === 1 && v.codePointAt(0) !== c) extra.push([v.codePointAt(0)!, v.codePointAt(0)!]);
          }
        }
      }
      return extra.length === 0 ? a : { t: 'set', ranges: normalize([...a.ranges, ...extra]) };
    }
  }
}
