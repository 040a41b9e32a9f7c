// --tool-call-parser qwen3_coder (coordinator/http/tool-format-qwen3-coder.ts, qwen3-coder-values.ts): XML call
// blocks after optional text, raw parameter text read as the schema's type; the streamed split; the constraint of
// required / named calls (Qwen3-Coder's template layout, values matching their schemas) and what it refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ToolCallStream, answerCalls, toolFormat } from '../../coordinator/http/tool-formats.js';
import { FREE_TEXT } from '../../coordinator/http/qwen3-coder-values.js';
import type { ToolUse } from '../../coordinator/http/openai-tools.js';
import { HttpError } from '../../coordinator/http/errors.js';
import { LazyDfa, compileRegex, fullMatch } from '../../protocol/index.js';

const matcher = (pattern: string) => {
  const dfa = new LazyDfa(compileRegex(pattern));
  return (text: string) => fullMatch(dfa, text);
};

const EDIT = { name: 'edit_file', description: 'Edit a file', parameters: { type: 'object', properties: {
  path: { type: 'string' }, line: { type: 'integer' }, ratio: { type: 'number' }, dry_run: { type: 'boolean' }, tags: { type: 'array', items: { type: 'string' } },
  opts: { type: 'object' }, note: { anyOf: [{ type: 'string' }, { type: 'null' }] }, mode: { enum: ['a', 'b'] }, code: { type: 'string' }, any: {} },
  required: ['path'] } };
const CLOCK = { name: 'get_time', description: undefined, parameters: undefined };
const USE: ToolUse = { tools: [EDIT, CLOCK], choice: 'auto', parallel: true, legacy: false };
const qwen = toolFormat('qwen3_coder');
const brief = (answer: string, use = USE) => {
  const p = qwen.parse(answer, use);
  return p && { content: p.content, calls: p.calls.map((c) => [c.name, JSON.parse(c.arguments)]) };
};
const param = (name: string, value: string) => `<parameter=${name}>\n${value}\n</parameter>\n`;
const block = (fn: string, ...params: string[]) => `<tool_call>\n<function=${fn}>\n${params.join('')}</function>\n</tool_call>`;

test('qwen3_coder: text, then <tool_call><function=…> blocks; values read as their schema\'s types', () => {
  const answer = 'I will edit it.\n' + block('edit_file', param('path', 'src/a.ts'), param('line', '42'), param('ratio', '0.5'), param('dry_run', 'True'),
    param('tags', '["x", "y"]'), param('opts', "{'depth': 2, 'all': True}"), param('note', 'null'), param('mode', 'b'),
    param('code', 'if (a < b) {\n    return "</function></tool_call>";\n}\n'), param('any', '[1]'), param('extra', '7'));
  assert.deepEqual(brief(answer), { content: 'I will edit it.', calls: [['edit_file', { path: 'src/a.ts', line: 42, ratio: 0.5, dry_run: true,
    tags: ['x', 'y'], opts: { depth: 2, all: true }, note: null, mode: 'b', code: 'if (a < b) {\n    return "</function></tool_call>";\n}\n', any: [1], extra: '7' }]] });
  // Text that is not a value of the type stays a string (as vLLM keeps it); a string keeps what looks like JSON.
  assert.deepEqual(brief(block('edit_file', param('path', '42'), param('line', 'soon'), param('note', 'maybe'), param('any', 'hello world'))),
    { content: null, calls: [['edit_file', { path: '42', line: 'soon', note: 'maybe', any: 'hello world' }]] });
  // Only the line breaks next to the tags are markup; a value's own ones stay.
  assert.deepEqual(brief(block('edit_file', param('path', '\n  x\n'))), { content: null, calls: [['edit_file', { path: '\n  x\n' }]] });
  assert.deepEqual(brief(`${block('get_time')}\n${block('edit_file', param('path', 'b'))}\n`),
    { content: null, calls: [['get_time', {}], ['edit_file', { path: 'b' }]] });
  // The last block may lack </tool_call> (the model stopped at its end-of-turn token).
  assert.deepEqual(brief('<tool_call>\n<function=get_time>\n</function>\n'), { content: null, calls: [['get_time', {}]] });
  const text = ['Just text, no tools.', `${block('get_time')} and then more text`, `${block('get_time')}\nthen\n${block('get_time')}`, block('rm_rf', param('path', '/')),
    '<tool_call>\n<function=edit_file>\n<parameter=path>\nx\n</function>\n</tool_call>', '<tool_call>\n<function=get_time>\n</tool_call>',
    '<tool_call>\n<function=edit_file>\nstray <parameter=path>\nx\n</parameter>\n</function>\n</tool_call>', '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>'];
  for (const answer of text) assert.equal(qwen.parse(answer, USE), null, answer);
  assert.equal(answerCalls(qwen, `${block('get_time')}\n${block('get_time')}`, { ...USE, parallel: false })?.calls.length, 1);
});

test('qwen3_coder streaming: text goes out until <tool_call> (split over deltas: held), then the calls at the end', () => {
  const answer = `Sure.\n${block('edit_file', param('path', 'a <b>'))}`;
  for (const size of [1, 4, 200]) {
    const s = new ToolCallStream(qwen, USE);
    let out = '';
    for (let i = 0; i < answer.length; i += size) out += s.push(answer.slice(i, i + size));
    assert.equal(out, 'Sure.', `size ${size}`);
    assert.deepEqual(s.finish('', true).calls?.map((c) => JSON.parse(c.arguments)), [{ path: 'a <b>' }]);
  }
  const cut = new ToolCallStream(qwen, USE);
  assert.equal(cut.push('<tool_call>\n<function=get_time>'), '');
  assert.deepEqual(cut.finish('', false), { text: '<tool_call>\n<function=get_time>', calls: null }, 'cut short by max_tokens: text');
});

test('qwen3_coder values: any text without </parameter>', () => {
  const free = matcher(FREE_TEXT);
  for (const t of ['', 'plain', 'a < b && c > d', '<parameter=x>', '<</parameter', '</param', 'line\n</paramete\nr>']) assert.ok(free(t), JSON.stringify(t));
  for (const t of ['</parameter>', 'x</parameter>y', '<</parameter>']) assert.ok(!free(t), JSON.stringify(t));
});

test('qwen3_coder constraint: the template\'s blocks, parameters in order, each value\'s text matching its schema', () => {
  const weather = { name: 'get_weather', description: undefined, parameters: { type: 'object', properties: {
    city: { type: 'string', maxLength: 8 }, unit: { enum: ['c', 'f'] }, days: { type: 'integer', minimum: 1, maximum: 7 }, when: { type: 'string', format: 'date' },
    alt: { type: ['string', 'null'] } }, required: ['city', 'unit'] } };
  const use: ToolUse = { ...USE, tools: [weather, EDIT, CLOCK], choice: 'required' };
  const required = matcher(qwen.constraint(use)!);
  const good = [block('get_weather', param('city', 'Paris'), param('unit', 'c')),
    block('get_weather', param('city', 'Oslo'), param('unit', 'f'), param('days', '3'), param('when', '2025-01-31'), param('alt', 'null')),
    `${block('get_time')}\n${block('edit_file', param('path', 'a.ts'), param('line', '3'), param('dry_run', 'false'), param('opts', '{"a": [1]}'),
      param('code', 'x = "<b></tool_call>"\nif a</parameter\n  y'), param('any', '{}'))}`];
  for (const answer of good) {
    assert.ok(required(answer), answer);
    assert.ok(qwen.parse(answer, use), `what the constraint allows parses: ${answer}`);
  }
  assert.deepEqual(brief(good[1]!, use)?.calls, [['get_weather', { city: 'Oslo', unit: 'f', days: 3, when: '2025-01-31', alt: null }]]);
  const bad = [block('get_weather', param('city', 'Paris')), block('get_weather', param('unit', 'c'), param('city', 'Paris')),
    block('get_weather', param('city', 'Ouagadougou'), param('unit', 'c')), block('get_weather', param('city', 'a<b'), param('unit', 'c')),
    block('get_weather', param('city', 'x'), param('unit', 'k')), block('get_weather', param('city', 'x'), param('unit', 'c'), param('days', '9')),
    block('get_weather', param('city', 'x'), param('unit', 'c'), param('when', 'tomorrow')),
    block('edit_file', param('path', 'a</parameter>b')), block('edit_file', param('path', 'a'), param('line', 'one')),
    block('edit_file', param('path', 'a'), param('dry_run', 'True')), `Sure.\n${block('get_time')}`, '<tool_call>\n<function=get_time>\n</function>\n'];
  for (const answer of bad) assert.ok(!required(answer), answer);
  const named = matcher(qwen.constraint({ ...use, choice: { name: 'get_time' }, parallel: false })!);
  assert.ok(named(block('get_time')));
  assert.ok(!named(`${block('get_time')}\n${block('get_time')}`), 'parallel_tool_calls false: one block');
  assert.ok(!named(block('edit_file', param('path', 'a'))), 'only the named function');
  assert.equal(qwen.constraint(USE), undefined, 'auto: free, parsed afterwards');
});

test('qwen3_coder constraint refuses (422, saying what to do) what raw text cannot carry faithfully', () => {
  const refuse = (properties: Record<string, unknown>, why: RegExp) => assert.throws(
    () => qwen.constraint({ ...USE, tools: [{ name: 'f', description: undefined, parameters: { type: 'object', properties } }], choice: 'required' }),
    (e: unknown) => e instanceof HttpError && e.status === 422 && why.test(e.message), JSON.stringify(properties));
  refuse({ id: { type: 'string', pattern: '^[a-z]+$' } }, /'pattern' at #\/properties\/id is not supported for qwen3_coder.*tool_choice "auto"/);
  refuse({ id: { type: ['string', 'integer'] } }, /allows string or integer values.*give the parameter one type/);
  refuse({ 'a>b': { type: 'string' } }, /parameter 'a>b' has a character.*tool_choice "auto"/);
  assert.throws(() => qwen.constraint({ ...USE, tools: [{ name: 'f', description: undefined, parameters: { type: 'object', properties: {}, patternProperties: { '^x': {} } } }],
    choice: 'required' }), (e: unknown) => e instanceof HttpError && /top-level keyword 'patternProperties'/.test(e.message));
});
