// --tool-call-parser pythonic (coordinator/http/tool-format-pythonic.ts, python-literal.ts): Python call lists read
// into calls with JSON arguments (literals only, nothing evaluated), everything else left as text; the streamed
// split; the constraint of required / named calls (Python literals of the schemas) and what it refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ToolCallStream, answerCalls, toolFormat } from '../../coordinator/http/tool-formats.js';
import { parsePythonCallList, parsePythonLiteral } from '../../coordinator/http/python-literal.js';
import type { ToolUse } from '../../coordinator/http/openai-tools.js';
import { HttpError } from '../../coordinator/http/errors.js';
import { LazyDfa, compileRegex, fullMatch } from '../../protocol/index.js';

const matcher = (pattern: string) => {
  const dfa = new LazyDfa(compileRegex(pattern));
  return (text: string) => fullMatch(dfa, text);
};

const WEATHER = { name: 'get_weather', description: 'Weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } };
const CLOCK = { name: 'get_time', description: undefined, parameters: undefined };
const USE: ToolUse = { tools: [WEATHER, CLOCK], choice: 'auto', parallel: true, legacy: false };
const pythonic = toolFormat('pythonic');
const brief = (answer: string, use = USE) => {
  const p = pythonic.parse(answer, use);
  return p && { content: p.content, calls: p.calls.map((c) => [c.name, JSON.parse(c.arguments)]) };
};

test('python literals: strings with their escapes and prefixes, numbers, constants, containers; anything else is not one', () => {
  const cases: [string, unknown][] = [
    [`'it\\'s'`, "it's"], [`"tab\\there"`, 'tab\there'], [`"\\u00e9\\x41\\101"`, 'éAA'],
    [`"\\ud83d\\ude00"`, '😀'], [`"\\U0001F600"`, '😀'], [`r'\\d+\\''`, "\\d+\\'"], [`"\\q"`, '\\q'],
    [`'''two\nlines'''`, 'two\nlines'], [`"""say "hi" """`, 'say "hi" '], [`"ab" 'cd'`, 'abcd'], [`u"x"`, 'x'],
    ['42', 42], ['-1.5e3', -1500], ['+ 7', 7], ['.5', 0.5], ['1_000', 1000], ['0x1F', 31], ['0o17', 15], ['0b101', 5], ['00', 0],
    ['True', true], ['False', false], ['None', null],
    ['[1, [2, (3,)], ]', [1, [2, [3]]]], ['(1)', 1], ['()', []], ['(1, "a")', [1, 'a']],
    ['{"a": None, \'b\': {"c": [True]}, 1: 2, None: 0}', { a: null, b: { c: [true] }, 1: 2, null: 0 }],
    ['[1,\n  2,  # a comment\n 3]', [1, 2, 3]],
  ];
  for (const [text, value] of cases) assert.deepEqual(parsePythonLiteral(text), value, text);
  const notLiterals = ['Paris', 'x + 1', '{1, 2}', "b'bytes'", "f'{x}'", '1j', '012', '1.2.3', '"unclosed', "'two\nlines'",
    '"\\N{BULLET}"', '{[1]: 2}', '1e999', '[1 2]', '"\\x4"', '"\\U00110000"', 'len("x")', '--1'];
  for (const text of notLiterals) assert.equal(parsePythonLiteral(text), undefined, text);
  // Deep nesting is refused, not a stack overflow.
  assert.equal(parsePythonLiteral('['.repeat(10_000) + ']'.repeat(10_000)), undefined);
  let nested: unknown = [];
  for (let i = 1; i < 10; i++) nested = [nested];
  assert.deepEqual(parsePythonLiteral('['.repeat(10) + ']'.repeat(10)), nested);
  // Keyword names become own properties, __proto__ too (no prototype is set).
  const [call] = parsePythonCallList('[f(__proto__={"polluted": 1})]')!;
  assert.equal(JSON.stringify(call!.args), '{"__proto__":{"polluted":1}}');
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('pythonic: the answer is a list of calls with keyword arguments; anything else is text', () => {
  assert.deepEqual(brief(`[get_weather(city="Paris", unit='c')]`), { content: null, calls: [['get_weather', { city: 'Paris', unit: 'c' }]] });
  assert.deepEqual(brief(` [get_weather(city='Oslo', days=[1, 2], opts={"a": None, "b": True}, span=(1, 2.5)),\n get_time()] `),
    { content: null, calls: [['get_weather', { city: 'Oslo', days: [1, 2], opts: { a: null, b: true }, span: [1, 2.5] }], ['get_time', {}]] });
  assert.deepEqual(brief('[get_time(),]'), { content: null, calls: [['get_time', {}]] }, 'a trailing comma');
  assert.deepEqual(brief('[get_time()]  # a Python comment after the list'), { content: null, calls: [['get_time', {}]] });
  // Llama 4's wrapper, where the tokenizer writes it as text.
  assert.deepEqual(brief('<|python_start|>[get_time()]<|python_end|>'), { content: null, calls: [['get_time', {}]] });
  const text = ['The weather is fine.', 'Let me check: [get_time()]', '[get_time()] and more', '[]', '[get_time]', '[get_time(]',
    '[get_weather(city=Paris)]', '[get_weather("Paris")]', '[get_weather(city="a", city="b")]', '[get_weather(city == "a")]',
    '[rm_rf(path="/")]', '# note\n[get_time()]', 'get_time()', '[get_time()'];
  for (const answer of text) assert.equal(pythonic.parse(answer, USE), null, answer);
  // parallel_tool_calls false: the first call of an (unconstrained) answer with two.
  assert.deepEqual(answerCalls(pythonic, '[get_time(), get_time()]', { ...USE, parallel: false })?.calls.length, 1);
});

test('pythonic streaming: a call list is held from its first character; other text goes out once it cannot be one', () => {
  const answer = '[get_weather(city="Paris")]';
  for (const size of [1, 3, 50]) {
    const s = new ToolCallStream(pythonic, USE);
    let out = '';
    for (let i = 0; i < answer.length; i += size) out += s.push(answer.slice(i, i + size));
    assert.equal(out, '', `size ${size}`);
    assert.deepEqual(s.finish('', true).calls?.map((c) => c.name), ['get_weather']);
  }
  const text = new ToolCallStream(pythonic, USE);
  assert.equal(text.push('  '), '');
  assert.equal(text.push('['), '');
  assert.equal(text.push('Note'), '', '"[Note" may still be a call of Note(');
  assert.equal(text.push('] it rains'), '  [Note] it rains');
  assert.equal(text.push(' [x('), ' [x(', 'once text, always text');
  assert.deepEqual(text.finish(')]', true), { text: ')]', calls: null });
  const plain = new ToolCallStream(pythonic, USE);
  assert.equal(plain.push('Sure'), 'Sure');
  const wrapped = new ToolCallStream(pythonic, USE);
  assert.equal(wrapped.push('<|python'), '', 'the start of the wrapper, written as text');
  assert.equal(wrapped.push('_start|>[get_time('), '');
  assert.deepEqual(wrapped.finish(')]<|python_end|>', true).calls?.map((c) => c.name), ['get_time']);
  // A list that does not parse comes back as text at the end.
  const broken = new ToolCallStream(pythonic, USE);
  assert.equal(broken.push('[get_time(x=y)]'), '');
  assert.deepEqual(broken.finish('', true), { text: '[get_time(x=y)]', calls: null });
});

const ALARM = { name: 'set_alarm', description: undefined, parameters: { type: 'object', $defs: { Day: { enum: ['mon', 'tue'] } }, properties: {
  at: { type: 'string', format: 'time' }, loud: { type: 'boolean' }, label: { type: ['string', 'null'] }, days: { type: 'array', items: { $ref: '#/$defs/Day' } },
  snooze: { type: 'object', properties: { minutes: { type: 'integer', minimum: 1, maximum: 30 }, on: { const: true } }, required: ['minutes'] } }, required: ['at', 'loud'] } };

test('pythonic constraint: [name(arg=value, …)] with the schema\'s arguments in order, values Python literals of their schemas', () => {
  const use: ToolUse = { ...USE, tools: [WEATHER, CLOCK, ALARM], choice: 'required' };
  const required = matcher(pythonic.constraint(use)!);
  const good = ['[get_weather(city="Paris")]', '[get_time(), get_weather(city="x\\"y")]',
    '[set_alarm(at="07:30:00", loud=True)]', '[set_alarm(at="07:30:00", loud=False, label=None, days=["mon", "tue"], snooze={"minutes": 5, "on": True})]',
    '[set_alarm(at="07:30:00",loud=True,label="wake up")]'];
  for (const answer of good) {
    assert.ok(required(answer), answer);
    assert.ok(pythonic.parse(answer, use), `what the constraint allows parses: ${answer}`);
  }
  assert.deepEqual(JSON.parse(pythonic.parse(good[3]!, use)!.calls[0]!.arguments),
    { at: '07:30:00', loud: false, label: null, days: ['mon', 'tue'], snooze: { minutes: 5, on: true } });
  const bad = ['[]', 'get_time()', '[get_weather(town="Paris")]', '[get_weather()]', "[get_weather(city='Paris')]",
    '[set_alarm(at="07:30:00", loud=true)]', '[set_alarm(loud=True, at="07:30:00")]', '[set_alarm(at="7 am", loud=True)]',
    '[set_alarm(at="07:30:00", loud=True, days=["sun"])]', '[set_alarm(at="07:30:00", loud=True, snooze={"minutes": 45})]',
    '[set_alarm(at="07:30:00", loud=True, label=null)]', '[get_weather(city="a")] ', 'Sure: [get_time()]'];
  for (const answer of bad) assert.ok(!required(answer), answer);
  const one = matcher(pythonic.constraint({ ...use, choice: { name: 'get_weather' }, parallel: false })!);
  assert.ok(one('[get_weather(city="x")]'));
  assert.ok(!one('[get_weather(city="x"), get_weather(city="y")]'), 'parallel_tool_calls false: one call');
  assert.ok(!one('[get_time()]'), 'only the named function');
  const optional = { name: 'f', description: undefined, parameters: { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'integer' } } } };
  const free = matcher(pythonic.constraint({ ...use, tools: [optional] })!);
  for (const answer of ['[f()]', '[f(b=2)]', '[f(a=1, b=2)]']) assert.ok(free(answer), answer);
  assert.ok(!free('[f(b=2, a=1)]'), 'declared order');
  assert.equal(pythonic.constraint(USE), undefined, 'auto: free, parsed afterwards');
});

test('pythonic constraint refuses (422, saying what to do) what a keyword call cannot write', () => {
  const refuse = (parameters: Record<string, unknown>, why: RegExp) => assert.throws(
    () => pythonic.constraint({ ...USE, tools: [{ name: 'f', description: undefined, parameters }], choice: 'required' }),
    (e: unknown) => e instanceof HttpError && e.status === 422 && why.test(e.message) && /tool_choice "auto"/.test(e.message), JSON.stringify(parameters));
  refuse({ type: 'object', properties: { 'first-name': { type: 'string' } } }, /'first-name' is not a Python identifier/);
  refuse({ anyOf: [{ type: 'object', properties: { a: { type: 'integer' } } }] }, /top-level keyword 'anyOf'/);
  refuse({ type: 'object', properties: { a: { type: 'integer' } }, required: ['b'] }, /`required` must list names of `properties`/);
  assert.throws(() => pythonic.constraint({ ...USE, tools: [{ name: 'f', description: undefined, parameters: { type: 'object', properties: { a: { type: 'string', maxLength: -1 } } } }],
    choice: 'required' }), (e: unknown) => e instanceof HttpError && e.status === 422 && /function 'f' parameters: 'maxLength'/.test(e.message));
});
