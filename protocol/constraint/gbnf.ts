// GBNF, the EBNF dialect of llama.cpp grammars that vLLM's `guided_grammar` takes (xgrammar's EBNF): parsed into
// a Grammar — one syntax tree per rule whose leaves are character sets and calls of other rules. grammar.ts
// compiles it to a recursive transition network that runs as a lazy pushdown automaton over bytes.
//
//   root   ::= object                      # `root` is where the text starts; rules in any order
//   object ::= "{" ws ( pair ( "," ws pair )* )? "}"
//   pair   ::= string ":" ws value
//   ws     ::= [ \t\n]*                     # comments run to the end of the line
//
// Elements: "literal" (or 'literal') with escapes \n \t \r \\ \" \' \xHH \uHHHH \UHHHHHHHH; [classes] and
// [^negated] as in regular expressions; `.` (any character); rule names ([A-Za-z0-9_.-]+); ( groups ); `|`;
// postfix `*` `+` `?` `{n}` `{n,}` `{n,m}`. A rule's body may span lines: it ends where the next `name ::=`
// begins.
import { type Ast, MAX_CP } from './regex.js';
import { GrammarScanner, RuleTable, type Grammar } from './grammar-text.js';

const NAME = /[A-Za-z0-9_.-]/;

export function parseGbnf(text: string, rootName = 'root'): Grammar {
  return new GbnfParser(text).parse(rootName);
}

class GbnfParser extends GrammarScanner {
  private readonly rules = new RuleTable();

  constructor(text: string) {
    super(text, 'grammar');
  }

  parse(rootName: string): Grammar {
    this.space();
    if (this.i >= this.cps.length) throw this.error('the grammar is empty');
    while (this.i < this.cps.length) {
      const name = this.name();
      if (name === undefined) throw this.error('expected a rule name');
      this.space();
      if (!this.eatText('::=')) throw this.error(`expected '::=' after rule name '${name}'`);
      this.space();
      this.rules.define(name, this.alternation(false), (w) => this.error(w));
    }
    return this.rules.grammar(rootName, 'grammar');
  }

  /** Spaces, newlines and `#` comments. */
  protected space(): void {
    for (;;) {
      const c = this.peek();
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.i++;
      else if (c === 0x23) while (this.peek() !== undefined && this.peek() !== 0x0a) this.i++;
      else return;
    }
  }

  private name(): string | undefined {
    const start = this.i;
    while (this.peek() !== undefined && NAME.test(String.fromCodePoint(this.peek()!))) this.i++;
    return this.i > start ? String.fromCodePoint(...this.cps.slice(start, this.i)) : undefined;
  }

  /** Whether the text at the cursor starts the next rule (`name ::=`). */
  private atRuleStart(): boolean {
    const save = this.i;
    const name = this.name();
    this.space();
    const yes = name !== undefined && this.eatText('::=');
    this.i = save;
    return yes;
  }

  protected sequence(nested: boolean): Ast {
    const items: Ast[] = [];
    for (;;) {
      const c = this.peek();
      if (c === undefined || c === 0x7c || c === 0x29) break;
      if (!nested && this.atRuleStart()) break;
      items.push(this.postfix(this.primary()));
      this.space();
    }
    return items.length === 1 ? items[0]! : { t: 'seq', items };
  }

  private postfix(item: Ast): Ast {
    for (;;) {
      const repeated = this.repeatSuffix(item);
      if (repeated) item = repeated;
      else if (this.peek() === 0x7b) {
        const count = this.repeatCount(/^\{\s*(\d+)\s*(,\s*(\d*)\s*)?\}/);
        if (!count) throw this.error('expected a repeat count {n}, {n,} or {n,m}');
        item = { t: 'rep', item, min: count[0], max: count[1] };
      } else return item;
    }
  }

  private primary(): Ast {
    const c = this.peek()!;
    if (c === 0x22 || c === 0x27) return this.literal(c);
    if (c === 0x5b) return this.charClass();
    if (c === 0x2e) { this.i++; return { t: 'set', ranges: [[0, MAX_CP]] }; }
    if (c === 0x28) {
      this.i++;
      this.space();
      const inner = this.alternation(true);
      if (this.peek() !== 0x29) throw this.error('missing )');
      this.i++;
      return inner;
    }
    const at = this.i;
    const name = this.name();
    if (name === undefined) throw this.error(`unexpected character ${JSON.stringify(String.fromCodePoint(c))}`);
    return { t: 'call', rule: this.rules.id(name, () => this.position(at)) };
  }


}
