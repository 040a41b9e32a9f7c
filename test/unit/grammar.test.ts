// Context-free grammars for structured output: GBNF parsing, the lazy pushdown automaton (checked against
// independent recognizers over every short string), the refusals (left recursion, undefined rules, syntax), tail
// calls, the nesting limit, and the token automaton a shard samples through with a grammar.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { ConstraintError, GrammarDfa, LazyDfa, compileConstraint, compileGrammar, compileRegex, fullMatch, parseGbnf, parseLark,
  sortedVocab } from '../../protocol/index.js';
import { MAX_STACK_DEPTH } from '../../protocol/constraint/grammar.js';
import { TokenAutomaton } from '../../shard/constraints/token-constraint.js';

const gbnf = (text: string) => new GrammarDfa(compileGrammar(parseGbnf(text)));
const matcher = (text: string) => {
  const dfa = gbnf(text);
  return (s: string) => fullMatch(dfa, s);
};

/** Every string over `alphabet` up to `max` characters. */
function* strings(alphabet: string[], max: number): Generator<string> {
  yield '';
  let level = [''];
  for (let n = 1; n <= max; n++) {
    const next: string[] = [];
    for (const s of level) for (const c of alphabet) { next.push(s + c); yield s + c; }
    level = next;
  }
}

/** Balanced parentheses around x's: `(x)(())x`. */
function balanced(s: string): boolean {
  let depth = 0;
  for (const c of s) {
    if (c === '(') depth++;
    else if (c === ')' && --depth < 0) return false;
  }
  return depth === 0;
}

/** Arithmetic: expr = term (('+'|'-') term)*, term = num | '(' expr ')' | '-' term — a hand-written recursive descent. */
function arithmetic(s: string): boolean {
  let i = 0;
  const term = (): boolean => {
    if (s[i] === '-') { i++; return term(); }
    if (s[i] === '(') { i++; if (!expr() || s[i] !== ')') return false; i++; return true; }
    const start = i;
    while (s[i] !== undefined && /[0-9]/.test(s[i]!)) i++;
    return i > start;
  };
  const expr = (): boolean => {
    if (!term()) return false;
    while (s[i] === '+' || s[i] === '-') { i++; if (!term()) return false; }
    return true;
  };
  return expr() && i === s.length;
}

const JSON_GBNF = String.raw`
# JSON, as llama.cpp's json.gbnf writes it (whitespace bounded)
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws

object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws

array  ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws

string ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) # escapes
  )* "\"" ws

number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws
ws ::= | " " | "\n" [ \t]{0,20}
`;

describe('GBNF -> pushdown automaton', () => {
  test('balanced parentheses: exactly the balanced strings, every one up to 10 characters', () => {
    for (const g of [
      'root ::= item*\nitem ::= "x" | "(" root ")"',
      'root ::= ( "(" root ")" | "x" )*',                        // recursion inside a repetition
      'root ::= "" | item root\nitem ::= "x" | "(" root ")"',    // right recursion: tail calls
    ]) {
      const m = matcher(g);
      for (const s of strings(['(', ')', 'x'], 10)) assert.equal(m(s), balanced(s), `${JSON.stringify(g)} on ${JSON.stringify(s)}`);
    }
  });

  test('arithmetic with nesting and a unary minus: the same verdict as a recursive-descent parser', () => {
    const m = matcher(String.raw`
      root ::= expr
      expr ::= term (("+" | "-") term)*
      term ::= num | "(" expr ")" | "-" term
      num  ::= [0-9]+`);
    let yes = 0;
    for (const s of strings(['1', '+', '-', '(', ')'], 8)) {
      assert.equal(m(s), arithmetic(s), JSON.stringify(s));
      if (arithmetic(s)) yes++;
    }
    assert.ok(yes > 100, `${yes} accepted strings checked`);
  });

  test('a grammar without recursion accepts what the equivalent regular expression does', () => {
    const m = matcher(`root ::= greet ", " name "!"?\ngreet ::= "hi" | "hello"\nname ::= [A-Z] [a-z]{1,3}`);
    const dfa = new LazyDfa(compileRegex('(?:hi|hello), [A-Z][a-z]{1,3}!?'));
    for (const s of strings(['h', 'i', ',', ' ', 'B', 'o', '!'], 7)) assert.equal(m(s), fullMatch(dfa, s), JSON.stringify(s));
    assert.ok(m('hello, Bob!'));
  });

  test('JSON: nested documents accepted, broken ones refused; a text split anywhere walks to the same state', () => {
    const m = matcher(JSON_GBNF);
    for (const s of ['{}', '{"a": 1}', '{"a": [1, 2.5, {"b": null}], "c": "é\\n"}', '{"x":{"y":{"z":[[[]]]}}}']) assert.ok(m(s), s);
    for (const s of ['', '{', '{"a" 1}', '{"a": [1,]}', '{"a": 01}', '[1]', '{"a": "\x01"}', '{}}']) assert.ok(!m(s), s);
    const dfa = gbnf(JSON_GBNF);
    const text = Buffer.from('{"k": ["😀", {"d": -1.5e3}]}');
    const whole = dfa.walk(dfa.start, text);
    for (let cut = 0; cut <= text.length; cut++) {
      assert.equal(dfa.walk(dfa.walk(dfa.start, text.subarray(0, cut)), text.subarray(cut)), whole);
    }
    assert.ok(dfa.accepting(whole));
  });

  test('syntax: comments, multi-line rules, both quotes, escapes, classes, `.`, counts, empty alternatives', () => {
    const m = matcher(String.raw`
      root ::= 'a' "\x62" "\u00e9" "\U0001F600" [\u{41}-C]{2} . tail  # a comment
               | "\"q\"\t"
      tail ::= | "z"`);
    assert.ok(m('abé😀AB中'));
    assert.ok(m('abé😀CAxz'));
    assert.ok(m('"q"\t'));
    assert.ok(!m('abé😀ADx'));
    assert.ok(!m('abé😀AB'));
  });

  test('right recursion runs in constant stack (tail calls); nesting beyond the limit is dead', () => {
    const dfa = gbnf('root ::= "a" root | ""');
    assert.ok(fullMatch(dfa, 'a'.repeat(5 * MAX_STACK_DEPTH)));
    assert.ok(dfa.size < 5, `${dfa.size} states`);
    const nest = gbnf('root ::= "(" root ")" | "x"');
    const deep = (n: number) => '('.repeat(n) + 'x' + ')'.repeat(n);
    assert.ok(fullMatch(nest, deep(MAX_STACK_DEPTH - 1)));
    assert.ok(!fullMatch(nest, deep(MAX_STACK_DEPTH + 1)));
  });

  test('direct left recursion is rewritten as a repetition: the same language', () => {
    const m = matcher('root ::= root "+" num | root "-" num | num\nnum ::= [0-9]+');
    for (const s of strings(['1', '+', '-'], 7)) assert.equal(m(s), /^[0-9]+([-+][0-9]+)*$/.test(s), JSON.stringify(s));
  });

  test('rules that cannot finish are pruned: the state dies as soon as only they remain', () => {
    const dfa = gbnf('root ::= "a" loop | "ab"\nloop ::= "b" loop');
    assert.ok(fullMatch(dfa, 'ab'));
    assert.equal(dfa.walk(dfa.start, Buffer.from('abb')), -1);
  });

  test('what cannot be run is refused with the reason', () => {
    const bad: [string, RegExp][] = [
      ['root ::= x\nx ::= x2 "a" | "b"\nx2 ::= x', /rule 'x' is left-recursive \(x → x2 → x/],
      ['root ::= x\nx ::= y "a" | "b"\ny ::= "" | x', /left-recursive \(x → y → x/],  // through a nullable rule
      ['root ::= opt root "a" | "b"\nopt ::= "c"?', /left-recursive/],
      ['root ::= thing', /rule 'thing' is used \(line 1, column 10\) but never defined/],
      ['start ::= "a"', /needs a 'root' rule/],
      ['root ::= "a" root', /derives no finite text/],
      ['root ::= "a"\nroot ::= "b"', /defined twice/],
      ['root ::= "a', /line 1, column 10: unterminated string literal/],
      ['root ::= ("a" | "b"', /missing \)/],
      ['root ::= "a"{3,2}', /max < min/],
      ['root ::= [a-', /unterminated character class/],
      ['root ::= "\\q"', /unknown escape/],
      ['root = "a"', /expected '::='/],
      ['', /empty/],
    ];
    for (const [g, why] of bad) {
      assert.throws(() => compileGrammar(parseGbnf(g)), (e: unknown) => e instanceof ConstraintError && why.test(e.message),
        `${JSON.stringify(g)} should fail with ${why}`);
    }
  });
});

describe('Lark -> pushdown automaton', () => {
  const lark = (text: string) => {
    const dfa = new GrammarDfa(compileGrammar(parseLark(text)));
    return (s: string) => fullMatch(dfa, s);
  };

  test('an expression grammar with %ignore: spaces anywhere between tokens, never inside one', () => {
    const m = lark(String.raw`
      // left-recursive, as Lark grammars often are
      start: sum
      ?sum: sum "+" atom -> add
          | atom
      ?atom: NUMBER | "(" sum ")" | "-" atom
      NUMBER: /[0-9]+/
      %ignore " "`);
    let yes = 0;
    for (const s of strings(['1', '+', '(', ')', ' '], 7)) {
      const expected = arithmetic(s.replace(/ /g, '')) && !/[0-9] +[0-9]/.test(s) && !s.replace(/ /g, '').includes('-');
      assert.equal(m(s), expected, JSON.stringify(s));
      if (expected && s.includes(' ')) yes++;
    }
    assert.ok(yes > 50);
  });

  test('strings, "i" any case, ranges, [optional], ~ counts, priorities, modifiers, comments', () => {
    const m = lark(String.raw`
      start: kw _SEP? id ("," id)~0..2 [END]   // a comment
      !kw.2: "select"i
      id: LOWER ~ 2 | "#" HEX+
      LOWER: "a".."z"
      HEX: /[0-9a-f]/
      _SEP: " "
      END: ';'`);
    for (const s of ['SELECT ab', 'Select ab,cd,#f0;', 'selectzz', 'select #0']) assert.ok(m(s), s);
    for (const s of ['select a', 'select ab,cd,ef,gh', 'sel ab', 'select #', 'select ab;;']) assert.ok(!m(s), s);
    const word = lark('start: /[a-cé]+x/i');
    for (const s of ['abcx', 'ABCX', 'aÉbX']) assert.ok(word(s), s);
    assert.ok(!word('abdx'));
  });

  test('common terminals: NUMBER, SIGNED_NUMBER, ESCAPED_STRING, CNAME, WS, with an alias and a list', () => {
    const m = lark(String.raw`
      start: pair ("," pair)*
      pair: CNAME "=" (NUM | ESCAPED_STRING | SIGNED_NUMBER)
      %import common.NUMBER -> NUM
      %import common (CNAME, ESCAPED_STRING, SIGNED_NUMBER, WS)
      %ignore WS`);
    for (const s of ['a=1', 'x_1 = -2.5e3 ,\n y="q \\" z"', '_k=.5']) assert.ok(m(s), s);
    for (const s of ['1a=1', 'a=', 'a="x', 'a=1,', 'a=1e']) assert.ok(!m(s), s);
  });

  test('what Lark allows and weft cannot run is refused with the reason', () => {
    const bad: [string, RegExp][] = [
      ['start: a\na: b "x" | "y"\nb: a', /left-recursive \(a → b → a/],
      ['start: "a"\n%declare X', /%declare is not supported/],
      ['start: X\n%import lexer.X', /only Lark's common terminals/],
      ['start: X\n%import common.NOPE', /common\.NOPE is not available/],
      ['start: /a/s', /flags other than i .* are not supported/],
      ['start: /(?=a)a/', /bad regular expression .*lookaround/],
      ['start: _sep{"a", ","}', /templates .* are not supported/],
      ['begin: "a"', /needs a 'start' rule/],
      ['start: x', /rule 'x' is used \(line 1, column 8\) but never defined/],
      ['start: "a".."bc"', /joins two one-character strings/],
      ['start: ("a"', /missing \)/],
    ];
    for (const [g, why] of bad) {
      assert.throws(() => compileConstraint({ pattern: g, syntax: 'lark' }), (e: unknown) => e instanceof ConstraintError && why.test(e.message),
        `${JSON.stringify(g)} should fail with ${why}`);
    }
  });
});

describe('token automaton with a grammar', () => {
  // Bytes of a small vocabulary: single characters plus multi-character pieces that cross rule boundaries.
  const pieces = ['(', ')', 'x', '()', '((', '))', 'x)', '(x', 'xx', ')(', 'y'];
  const vocab = sortedVocab([...pieces.map((p) => new Uint8Array(Buffer.from(p))), new Uint8Array(0)]);
  const EOS = pieces.length;

  test('every random walk through the masks ends in EOS with a text the grammar accepts', () => {
    const auto = new TokenAutomaton({ pattern: 'root ::= ( "(" root ")" | "x" )+', syntax: 'gbnf' }, vocab, [EOS]);
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let walk = 0; walk < 200; walk++) {
      let state = auto.start, text = '';
      for (let step = 0; step < 40; step++) {
        const mask = auto.mask(state);
        const allowed = [...Array(EOS + 1).keys()].filter((t) => (mask[t >> 3]! >> (t & 7)) & 1);
        assert.ok(allowed.length > 0);
        // Mostly end once allowed, so walks finish; otherwise a random allowed token.
        const t = allowed.includes(EOS) && rand() < 0.3 ? EOS : allowed[Math.floor(rand() * allowed.length)]!;
        assert.notEqual(auto.advance(state, t), -1, 'an allowed token never kills the state');
        if (t === EOS) break;
        text += pieces[t];
        state = auto.advance(state, t);
      }
      if (auto.mask(state)[EOS >> 3]! >> (EOS & 7) & 1) {
        assert.ok(balanced(text) && /^[()x]+$/.test(text) && !text.includes('()'), `walk ${walk}: ${text}`);
      }
    }
    // 'y' is never allowed; '()' never (an empty pair is not in the language); EOS not at the start.
    const start = auto.mask(auto.start);
    for (const t of [pieces.indexOf('y'), pieces.indexOf('()'), EOS]) assert.equal(start[t >> 3]! >> (t & 7) & 1, 0, pieces[t] ?? 'EOS');
  });
});
