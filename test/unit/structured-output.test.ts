// Structured output: the regex compiler (UTF-8 exact), the lazy DFA, JSON Schema -> regex, the token-level
// automaton a shard samples through, and tokenizer.json -> token bytes.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConstraintError, DEAD, LazyDfa, compileConstraint, compileRegex, fullMatch, loadTokenVocab, sortedVocab, tokenizerJsonProblem
} from '../../protocol/index.js';
import { freeJsonObject, jsonSchemaConstraint, jsonSchemaRegex } from '../../coordinator/constraints/json-schema.js';
import { TokenAutomaton } from '../../shard/constraints/token-constraint.js';
import { cpuOps } from '../../kernels/index.js';

const matcher = (pattern: string) => {
  const dfa = new LazyDfa(compileRegex(pattern));
  return (text: string) => fullMatch(dfa, text);
};

describe('regex -> byte DFA', () => {
  const cases: [string, string[], string[]][] = [
    ['a|bc', ['a', 'bc'], ['', 'b', 'abc']],
    ['(?:ab)*c?', ['', 'abab', 'abc', 'c'], ['a', 'abb', 'cc']],
    ['\\d{2,3}', ['12', '123'], ['1', '1234', 'ab']],
    ['x{2,}', ['xx', 'xxxxx'], ['x']],
    ['[a-c]+[^a-c]', ['abz', 'cé'], ['abc', 'ab']],
    ['[à-ÿ]+', ['éü', 'ÿ'], ['e', 'éa']],
    ['.', ['a', 'é', '😀', '中'], ['\n', 'ab']],
    ['\\w+\\s\\S', ['ab_1 x'], ['ab  x']],
    ['^\\$\\.\\(\\)\\[\\]$', ['$.()[]'], ['$a()[]']],
    ['\\u00e9\\x41\\u{1F600}', ['éA😀'], ['eA😀']],
    ['(?<year>\\d{4})-(?P<m>\\d\\d)', ['2026-11'], ['26-11']],
    ['a+?b??', ['a', 'aab'], ['b']],
    ['[\\d.-]+', ['-1.5', '3'], ['x']],
  ];
  for (const [pattern, yes, no] of cases) {
    test(`${pattern}`, () => {
      const m = matcher(pattern);
      for (const s of yes) assert.ok(m(s), `${pattern} should match ${JSON.stringify(s)}`);
      for (const s of no) assert.ok(!m(s), `${pattern} should not match ${JSON.stringify(s)}`);
    });
  }

  test('a token holding part of a character: bytes split anywhere walk to the same state', () => {
    const dfa = new LazyDfa(compileRegex('é+'));
    const e = Buffer.from('é');
    const half = dfa.walk(dfa.start, e.subarray(0, 1));
    assert.ok(dfa.live(half) && !dfa.accepting(half));
    assert.ok(dfa.accepting(dfa.walk(half, e.subarray(1))));
    assert.equal(dfa.walk(half, Buffer.from('a')), DEAD);
  });

  test('what is not regular, or too big, is refused with the reason', () => {
    const bad: [string, RegExp][] = [
      ['(a)\\1', /backreferences are not supported/],
      ['a(?=b)', /lookaround/],
      ['(a', /missing \)/],
      ['a)', /unbalanced \)/],
      ['*a', /nothing to repeat/],
      ['a{2000}', /repeat counts above 1000/],
      ['[b-a]', /range out of order/],
      ['\\bword', /word boundary/],
      ['a^b', /anchors/],
      ['(?:[0-9]{1000}){1000}', /more than 200000 NFA states/],
    ];
    for (const [p, why] of bad) assert.throws(() => compileRegex(p), (e: unknown) => e instanceof ConstraintError && why.test(e.message), p);
  });
});

describe('JSON Schema -> regex', () => {
  const person = {
    type: 'object',
    properties: {
      name: { type: 'string', maxLength: 8 },
      age: { type: 'integer' },
      email: { type: ['string', 'null'] },
      tags: { type: 'array', items: { enum: ['a', 'b'] }, minItems: 1, maxItems: 2 },
      kind: { $ref: '#/$defs/kind' },
    },
    required: ['name', 'age', 'kind'],
    $defs: { kind: { anyOf: [{ const: 'x' }, { type: 'number' }] } },
  };
  const m = matcher(jsonSchemaRegex(person));

  test('accepts the schema\'s objects, compact or with one space after : and ,', () => {
    for (const v of [{ name: 'bo', age: 3, kind: 'x' }, { name: '', age: -12, email: null, tags: ['a', 'b'], kind: 1.5e3 },
      { name: 'é"\\', age: 0, email: 'a@b', kind: -0.25 }]) {
      assert.ok(m(JSON.stringify(v)), JSON.stringify(v));
    }
    assert.ok(m('{"name": "bo", "age": 3, "kind": "x"}'));
  });

  test('refuses what the schema does not allow', () => {
    for (const s of ['{"age":3,"kind":"x"}', '{"name":"bo","age":3.5,"kind":"x"}', '{"name":"123456789","age":3,"kind":"x"}',
      '{"name":"bo","age":3,"tags":[],"kind":"x"}', '{"name":"bo","age":3,"tags":["c"],"kind":"x"}', '{"name":"bo","age":03,"kind":"x"}',
      '{"name":"bo","age":3,"kind":"y"}', '{"age":3,"name":"bo","kind":"x"}', '{"name":"bo","age":3,"kind":"x",}',
      '{"name":"bo","age":3,"kind":"x"} ', '{"name":"a\nb","age":3,"kind":"x"}', '{"name":"bo"  ,"age":3,"kind":"x"}']) {
      assert.ok(!m(s), s);
    }
  });

  test('all-optional properties: any subset in order, and {}', () => {
    const o = matcher(jsonSchemaRegex({ type: 'object', properties: { a: { type: 'boolean' }, b: { type: 'null' }, c: { type: 'integer' } } }));
    for (const s of ['{}', '{"a":true}', '{"b":null}', '{"a":false,"c":1}', '{"b":null, "c":2}', '{"a":true,"b":null,"c":3}']) assert.ok(o(s), s);
    for (const s of ['{,}', '{"c":1,"a":true}', '{"a":true,}']) assert.ok(!o(s), s);
  });

  test('formats, patterns and free values', () => {
    const f = matcher(jsonSchemaRegex({ type: 'object', properties: { d: { type: 'string', format: 'date' },
      u: { type: 'string', format: 'uuid' }, p: { type: 'string', pattern: '^[A-Z]{2}\\d$' }, any: {} }, required: ['d', 'u', 'p', 'any'] }));
    assert.ok(f('{"d":"2026-11-22","u":"123e4567-e89b-12d3-a456-426614174000","p":"AB3","any":{"x":[1,{"y":null}]}}'));
    assert.ok(!f('{"d":"2026-13-22","u":"123e4567-e89b-12d3-a456-426614174000","p":"AB3","any":1}'));
    assert.ok(!f('{"d":"2026-11-22","u":"123e4567-e89b-12d3-a456-426614174000","p":"ab3","any":1}'));
  });

  test('string patterns: only valid JSON strings (no raw quote, backslash or control character), one-sided anchors leave the other end open', () => {
    const any = matcher(jsonSchemaRegex({ type: 'string', pattern: '^.{1,4}$' }));
    for (const v of ['"a"', '"ab c"', '"é"']) assert.ok(any(v), v);
    for (const v of ['"a"b"', '"\\"', '"a\nb"', '"\u0000"']) assert.ok(!any(v), v);
    const neg = matcher(jsonSchemaRegex({ type: 'string', pattern: '[^a]+' }));
    assert.ok(neg('"xyz"'));
    assert.ok(!neg('"x"y"'), 'a negated class does not write a quote');
    const starts = matcher(jsonSchemaRegex({ type: 'string', pattern: '^id-[0-9]' }));
    for (const v of ['"id-1"', '"id-7 and more \\" escaped"']) assert.ok(starts(v), v);
    assert.ok(!starts('"xid-1"'));
    const ends = matcher(jsonSchemaRegex({ type: 'string', pattern: '\\.json$' }));
    assert.ok(ends('"a/b.json"') && !ends('"a.jsonx"'));
    const dollar = matcher(jsonSchemaRegex({ type: 'string', pattern: '^[0-9]+\\$' }));
    assert.ok(dollar('"12$"') && dollar('"12$ more"') && !dollar('"12"'), 'an escaped $ is a character, not an anchor');
    assert.throws(() => jsonSchemaRegex({ type: 'string', pattern: '^say "hi"$' }), /needs a character JSON escapes/);
  });

  test('json_object without a schema: any object, containers nested up to the depth limit', () => {
    const o = matcher(freeJsonObject());
    for (const s of ['{}', '{"a":[1,2.5,"x",true,null]}', '{"a":{"b":{"c":1}}}']) assert.ok(o(s), s);
    for (const s of ['[]', '"a"', '{"a":{"b":{"c":{"d":1}}}}', '{"a":1']) assert.ok(!o(s), s);
  });

  test('a recursive schema ($ref to an enclosing schema, # included) becomes a grammar of its $ref targets', () => {
    const tree = { type: 'object', required: ['value', 'children'], properties: { value: { type: 'integer' },
      children: { type: 'array', items: { $ref: '#' }, maxItems: 3 } } };
    const src = jsonSchemaConstraint(tree);
    assert.equal(src.syntax, 'rules');
    const dfa = compileConstraint(src);
    const ok = (v: unknown) => fullMatch(dfa, JSON.stringify(v));
    let deep: unknown = { value: 0, children: [] };
    for (let d = 1; d < 30; d++) deep = { value: d, children: [deep, { value: -d, children: [] }] };
    assert.ok(ok(deep), 'nested 30 deep');
    assert.ok(fullMatch(dfa, '{"value": 1, "children": [{"value": 2, "children": []}]}'));
    assert.ok(!ok({ value: 1, children: [{ value: 2 }] }), 'a child without children');
    assert.ok(!ok({ value: 1, children: [{ value: 2, children: [] }, 3] }), 'a child that is not a node');
    assert.ok(!ok({ value: 1, children: [1, 2, 3, 4].map((value) => ({ value, children: [] })) }), 'maxItems holds at every level');
    // Mutual recursion through $defs, beside a plain $ref.
    const expr = { $ref: '#/$defs/expr', $defs: {
      expr: { anyOf: [{ type: 'integer' }, { $ref: '#/$defs/op' }] },
      op: { type: 'object', required: ['op', 'args'], properties: { op: { enum: ['+', '*'] }, args: { type: 'array', items: { $ref: '#/$defs/expr' }, minItems: 2, maxItems: 2 } } } } };
    const e = compileConstraint(jsonSchemaConstraint(expr));
    assert.ok(fullMatch(e, '{"op":"+","args":[1,{"op":"*","args":[2,{"op":"+","args":[3,4]}]}]}'));
    assert.ok(!fullMatch(e, '{"op":"+","args":[1]}'));
    // Not recursive: still one regular expression.
    assert.equal(jsonSchemaConstraint(person).syntax, undefined);
    assert.equal(jsonSchemaConstraint(person).pattern, jsonSchemaRegex(person));
    // A recursion that never ends derives nothing: refused when compiled (the coordinator's 422).
    assert.throws(() => compileConstraint(jsonSchemaConstraint({ type: 'object', required: ['next'], properties: { next: { $ref: '#' } } })),
      /derives no finite text/);
  });

  test('numeric bounds: minimum, maximum and their exclusive forms (draft 6+ numbers, draft 4 booleans), exactly', () => {
    const age = matcher(jsonSchemaRegex({ type: 'object', properties: { age: { type: 'integer', minimum: 0, maximum: 150 } }, required: ['age'] }));
    for (const v of [0, 7, 99, 150]) assert.ok(age(`{"age":${v}}`), String(v));
    for (const v of ['-1', '151', '1000', '-0', '1.5']) assert.ok(!age(`{"age":${v}}`), v);
    const p = matcher(jsonSchemaRegex({ type: 'number', exclusiveMinimum: 0, maximum: 1 }));
    for (const v of ['0.5', '1', '1.000', '0.001']) assert.ok(p(v), v);
    for (const v of ['0', '0.000', '1.01', '-0.5', '2', '5e-1']) assert.ok(!p(v), v);
    const d4 = matcher(jsonSchemaRegex({ type: 'integer', minimum: 1, exclusiveMinimum: true, maximum: 3, exclusiveMaximum: true }));
    assert.deepEqual(['0', '1', '2', '3'].filter(d4), ['2']);
    const both = matcher(jsonSchemaRegex({ type: 'integer', minimum: -3, exclusiveMinimum: -1 }));  // the tighter bound wins
    assert.deepEqual(['-2', '-1', '0', '9'].filter(both), ['0', '9']);
    assert.ok(matcher(jsonSchemaRegex({ type: 'number' }))('1.5e3'), 'unbounded numbers keep their exponent');
  });

  test('tuples: prefixItems (pydantic\'s tuple[int, str]) and draft 7\'s items array, with the rest and min/maxItems', () => {
    const pair = matcher(jsonSchemaRegex({ type: 'array', prefixItems: [{ type: 'integer' }, { type: 'string' }], minItems: 2, maxItems: 2 }));
    for (const v of ['[1, "a"]', '[-3,""]']) assert.ok(pair(v), v);
    for (const v of ['[1]', '["a", 1]', '[1, "a", 2]', '[]']) assert.ok(!pair(v), v);
    const open = matcher(jsonSchemaRegex({ prefixItems: [{ type: 'boolean' }], items: { type: 'integer' }, maxItems: 3 }));
    for (const v of ['[]', '[true]', '[false, 1, 2]']) assert.ok(open(v), v);
    for (const v of ['[1]', '[true, false]', '[true, 1, 2, 3]']) assert.ok(!open(v), v);
    const closed = matcher(jsonSchemaRegex({ type: 'array', items: [{ const: 'x' }, { type: 'null' }], additionalItems: false, minItems: 1 }));
    for (const v of ['["x"]', '["x", null]']) assert.ok(closed(v), v);
    for (const v of ['[]', '["x", null, null]', '[null]']) assert.ok(!closed(v), v);
    const anyRest = matcher(jsonSchemaRegex({ prefixItems: [{ type: 'integer' }] }));
    assert.ok(anyRest('[1, "anything", {"a": [null]}]'), 'items absent: any further values');
    assert.throws(() => jsonSchemaRegex({ prefixItems: [{ type: 'integer' }], items: false, minItems: 2 }), /minItems 2 at # is more than the 1 items/);
  });

  test('string formats: ipv4, ipv6, hostname, email, duration', () => {
    const f = (format: string) => matcher(jsonSchemaRegex({ type: 'string', format }));
    const cases: [string, string[], string[]][] = [
      ['ipv4', ['192.168.0.1', '0.0.0.0', '255.255.255.255'], ['256.1.1.1', '1.2.3', '01.2.3.4', '1.2.3.4.5']],
      ['ipv6', ['::1', '::', '2001:db8::8a2e:370:7334', 'fe80::', '1:2:3:4:5:6:7:8', 'a::b:c'], ['1::2::3', '12345::', '1:2:3:4:5:6:7:8:9', ':1', 'g::1']],
      ['hostname', ['example.com', 'a-b.c0.io', 'localhost'], ['-a.com', 'a..b', 'a_b.com', `${'a'.repeat(64)}.com`]],
      ['email', ['x.y+z@mail.example.org', "o'neil@ex.co"], ['a@@b', '@b.com', 'a.@b.com', 'a b@c.d']],
      ['duration', ['P1Y2M3DT4H5M6S', 'P2W', 'PT30M', 'P3D', 'PT1H30M'], ['P', 'PT', 'P1H', 'P1D2Y', 'P1W2D', '1D']],
    ];
    for (const [format, yes, no] of cases) {
      const m = f(format);
      for (const s of yes) assert.ok(m(JSON.stringify(s)), `${format}: ${s}`);
      for (const s of no) assert.ok(!m(JSON.stringify(s)), `${format}: not ${s}`);
    }
  });

  test('maps (pydantic\'s dict[K, V]): additionalProperties as a schema, propertyNames, patternProperties, min/maxProperties', () => {
    const counts = matcher(jsonSchemaRegex({ type: 'object', additionalProperties: { type: 'integer', minimum: 0 } }));
    for (const v of ['{}', '{"a":1}', '{"a": 1, "b c": 22}']) assert.ok(counts(v), v);
    for (const v of ['{"a":-1}', '{"a":"1"}', '{"a":1,"b":{}}', '{"a"}']) assert.ok(!counts(v), v);
    const named = matcher(jsonSchemaRegex({ type: 'object', propertyNames: { pattern: '^[a-z]+$', maxLength: 3 },
      additionalProperties: { type: 'boolean' }, minProperties: 1, maxProperties: 2 }));
    for (const v of ['{"ab":true}', '{"x":false, "y":true}']) assert.ok(named(v), v);
    for (const v of ['{}', '{"A":true}', '{"x":true,"y":true,"z":true}', '{"x":1}']) assert.ok(!named(v), v);
    const keys = matcher(jsonSchemaRegex({ type: 'object', propertyNames: { enum: ['red', 'blue'] }, additionalProperties: { type: 'number' } }));
    for (const v of ['{"red":1.5}', '{"blue":2,"red":0}']) assert.ok(keys(v), v);
    assert.ok(!keys('{"green":1}'));
    const pat = matcher(jsonSchemaRegex({ type: 'object', patternProperties: { '^s_': { type: 'string' }, '^n_': { type: 'integer' } }, additionalProperties: false }));
    for (const v of ['{}', '{"s_a":"x","n_b":2}', '{"n_":0}']) assert.ok(pat(v), v);
    for (const v of ['{"s_a":2}', '{"n_b":"x"}', '{"q":1}']) assert.ok(!pat(v), v);
    const closed = matcher(jsonSchemaRegex({ type: 'object', additionalProperties: false }));
    assert.deepEqual(['{}', '{"a":1}'].filter(closed), ['{}']);
    const declared = matcher(jsonSchemaRegex({ type: 'object', properties: { a: { type: 'integer' } }, required: ['a'], minProperties: 1, maxProperties: 3 }));
    assert.ok(declared('{"a":1}'), 'bounds the declared members always meet');
    const once = matcher(jsonSchemaRegex({ type: 'array', items: { type: 'integer' }, uniqueItems: true, maxItems: 1 }));
    assert.deepEqual(['[]', '[1]', '[1,2]'].filter(once), ['[]', '[1]']);
  });

  test('keywords that would be ignored are refused by name', () => {
    for (const [schema, why] of [
      [{ type: 'integer', multipleOf: 5 }, /'multipleOf'/],
      [{ type: 'array', uniqueItems: true }, /'uniqueItems: true' \(at #\) is not supported/],
      [{ type: 'object', patternProperties: { '^a': {} }, additionalProperties: { type: 'integer' } }, /'additionalProperties' other than false beside 'patternProperties'/],
      [{ type: 'object', properties: { a: {} }, patternProperties: { '^a': {} } }, /'patternProperties' beside 'properties'/],
      [{ type: 'object', properties: { a: {} }, minProperties: 1 }, /'minProperties' 1 at # is more than the 0 required/],
      [{ type: 'object', propertyNames: { type: 'integer' } }, /must describe strings/],
      [{ type: 'object', additionalProperties: false, minProperties: 1 }, /allows no property/],
      [{ type: 'object', maxProperties: 1, minProperties: 2 }, /maxProperties < minProperties/],
      [{ type: 'integer', minimum: 5, maximum: 2 }, /no integer satisfies the bounds at #/],
      [{ type: 'number', minimum: '1' }, /'minimum' at # must be a number/],
      [{ type: 'object', properties: { a: {} }, required: ['b'] }, /required property 'b'/],
      [{ type: 'string', format: 'uri' }, /format 'uri'/],
      [{ $ref: 'http://x' }, /must point into this schema/],
      [{ $ref: '#/$defs/a', $defs: { a: { $ref: '#/$defs/a' } } }, /recursive schemas are supported in response_format and guided_json, not here/],
      [{ type: 'string', pattern: 'a\\R{1}' }, /unknown escape \\R/],
      [[], /must be an object/],
    ] as [unknown, RegExp][]) {
      assert.throws(() => jsonSchemaRegex(schema), (e: unknown) => e instanceof ConstraintError && why.test(e.message), JSON.stringify(schema));
    }
  });
});

describe('token automaton', () => {
  // A small byte vocabulary with multi-character tokens, a token splitting 'é', and EOS (id 0, no bytes).
  const pieces = ['', '{', '}', '"', 'a', 'b', '"a', 'ab"', ':', ',', ' ', '1', '12', 'true', 'fa', 'lse', '{"', '"}', 'x',
    Buffer.from('é').subarray(0, 1), Buffer.from('é').subarray(1), 'é'];
  const bytes = pieces.map((p) => new Uint8Array(typeof p === 'string' ? Buffer.from(p) : p));
  const vocab = sortedVocab(bytes);
  const EOS = 0;

  test('every random walk through the masks ends in EOS with a text the pattern matches', () => {
    const pattern = jsonSchemaRegex({ type: 'object', properties: { a: { type: 'string', maxLength: 3 }, b: { type: 'boolean' } }, required: ['a'] });
    const auto = new TokenAutomaton(pattern, vocab, [EOS]);
    const m = matcher(pattern);
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let walk = 0; walk < 300; walk++) {
      let state = auto.start;
      const out: number[] = [];
      for (let step = 0; step < 200; step++) {
        const mask = auto.mask(state);
        const allowed = [...bytes.keys()].filter((t) => mask[t >> 3] & (1 << (t & 7)));
        assert.ok(allowed.length > 0, `walk ${walk}: no token allowed after ${out.join(',')}`);
        const t = allowed[Math.floor(rand() * allowed.length)];
        if (t === EOS) break;
        state = auto.advance(state, t);
        assert.notEqual(state, DEAD);
        out.push(t);
      }
      const text = Buffer.concat(out.map((t) => bytes[t])).toString('utf8');
      assert.ok(m(text), `walk ${walk}: ${text}`);
      const v = JSON.parse(text);
      assert.equal(typeof v.a, 'string');
    }
  });

  test('the mask allows exactly the tokens that keep the text completable; EOS only when complete', () => {
    const auto = new TokenAutomaton('(?:ab|é)x', vocab, [EOS]);
    const names = (mask: Uint8Array) => [...bytes.keys()].filter((t) => mask[t >> 3] & (1 << (t & 7))).map((t) => Buffer.from(bytes[t]).toString('latin1'));
    assert.deepEqual(names(auto.mask(auto.start)).sort(), ['a', 'Ã', 'Ã©'].sort());
    const afterA = auto.advance(auto.start, pieces.indexOf('a'));
    assert.deepEqual(names(auto.mask(afterA)), ['b']);
    const done = auto.advance(auto.advance(afterA, pieces.indexOf('b')), pieces.indexOf('x'));
    assert.deepEqual(names(auto.mask(done)), ['']);  // EOS only
    assert.equal(auto.advance(auto.start, EOS), DEAD);
    // A pattern that needs a byte no token has: EOS rather than an empty distribution.
    const stuck = new TokenAutomaton('a#', vocab, [EOS]);
    assert.deepEqual(names(stuck.mask(stuck.advance(stuck.start, pieces.indexOf('a')))), ['']);
  });
});

describe('tokenizer.json -> token bytes', () => {
  const write = (tok: unknown) => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-vocab-'));
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tok));
    return dir;
  };
  const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');

  test('byte-level BPE: GPT-2 characters back to bytes; special added tokens have none', () => {
    const dir = write({ model: { type: 'BPE', vocab: { 'Ġhello': 0, 'Ċ': 1, 'Ã©': 2, a: 3 } }, decoder: { type: 'ByteLevel' },
      added_tokens: [{ id: 4, content: '<|eos|>', special: true }, { id: 5, content: '<tool>', special: false }] });
    const v = loadTokenVocab(dir, 6);
    assert.deepEqual(v.bytes.map(text), [' hello', '\n', 'é', 'a', '', '<tool>']);
    assert.equal(v.order.length, 5);
  });

  test('SentencePiece: ▁ is a space, <0xHH> a byte', () => {
    const dir = write({ model: { type: 'BPE', vocab: { '▁hi': 0, '<0x0A>': 1, 'x': 2 } },
      decoder: { type: 'Sequence', decoders: [{ type: 'Replace' }, { type: 'ByteFallback' }, { type: 'Fuse' }] } });
    assert.deepEqual(loadTokenVocab(dir, 3).bytes.map(text), [' hi', '\n', 'x']);
  });

  test('a tokenizer whose tokens are not text pieces is refused with the reason', () => {
    const dir = write({ model: { type: 'WordLevel', vocab: { t0: 0 } }, decoder: null, pre_tokenizer: { type: 'WhitespaceSplit' } });
    assert.throws(() => loadTokenVocab(dir, 1), /needs a byte-level BPE or SentencePiece tokenizer/);
    const parsed = (d: string) => JSON.parse(readFileSync(join(d, 'tokenizer.json'), 'utf8'));
    assert.match(tokenizerJsonProblem(parsed(dir))!, /needs a byte-level BPE or SentencePiece tokenizer; this tokenizer.json has model WordLevel/);
    assert.throws(() => loadTokenVocab(join(dir, 'nowhere'), 1), /needs the model's tokenizer.json/);
    assert.equal(tokenizerJsonProblem(parsed(write({ model: { type: 'BPE', vocab: { a: 0 } }, decoder: { type: 'ByteLevel' } }))), null);
  });
});

test('the sampler draws only masked-in tokens, and reports log-probs of the renormalized distribution', () => {
  const V = 50;
  const logits = Float32Array.from({ length: V }, (_, i) => Math.sin(i * 1.7) * 4);
  const allowed = [3, 17, 40];
  const mask = new Uint8Array((V + 7) >> 3);
  for (const t of allowed) mask[t >> 3] |= 1 << (t & 7);
  const base = { temperature: 1, topK: 0, topP: 1, typicalP: 1, repetitionPenalty: 1, doSample: false, seed: 0, drawIndex: 0 };
  const best = allowed.reduce((a, b) => (logits[b] > logits[a] ? b : a));
  const lse = Math.log(allowed.reduce((s, t) => s + Math.exp(logits[t]), 0));
  const g = cpuOps.sample(logits, { ...base, allowedMask: mask }, new Int32Array(0), 5);
  assert.equal(g.token, best);
  assert.ok(Math.abs(g.logprob - (logits[best] - lse)) < 1e-5);
  assert.deepEqual(g.top.slice(0, 3).map(([t]) => t).sort((a, b) => a - b), allowed);
  assert.ok(g.top.slice(3).every(([, lp]) => lp === -Infinity));
  const drawn = new Set<number>();
  for (let i = 0; i < 200; i++) drawn.add(cpuOps.sample(logits, { ...base, doSample: true, seed: 5, drawIndex: i, allowedMask: mask }, new Int32Array(0), 0).token);
  assert.deepEqual([...drawn].sort((a, b) => a - b), allowed);
  assert.notEqual(cpuOps.sample(logits, base, new Int32Array(0), 0).token, best, 'without the mask another token wins');
});
