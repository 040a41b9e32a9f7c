// Native tool-call formats (coordinator/http/tool-formats.ts): parsing the model's own markup, the streamed
// split of text before calls from the calls, the constraint of required calls, the auto detection, and the
// chat template receiving tools, calls and results structured (a Hermes-style template written for this test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ToolCallStream, answerCalls, answerDelta, toolFormat } from '../../coordinator/http/tool-formats.js';
import { detectToolFormat } from '../../coordinator/engine/tool-format-detect.js';
import type { ToolUse } from '../../coordinator/http/openai-tools.js';
import { validateChatBody } from '../../coordinator/http/openai-validate.js';
import { renderChat } from '../../coordinator/tokenizer/index.js';
import { LazyDfa, compileRegex, fullMatch } from '../../protocol/index.js';

const matcher = (pattern: string) => {
  const dfa = new LazyDfa(compileRegex(pattern));
  return { matches: (text: string) => fullMatch(dfa, text) };
};

const WEATHER = { name: 'get_weather', description: 'Weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } };
const CLOCK = { name: 'get_time', description: undefined, parameters: undefined };
const USE: ToolUse = { tools: [WEATHER, CLOCK], choice: 'auto', parallel: true, legacy: false };
const hermes = toolFormat('hermes');
const llama = toolFormat('llama3_json');
const mistral = toolFormat('mistral');
const harmony = toolFormat('harmony');
const brief = (p: ReturnType<typeof hermes.parse>) => p && { content: p.content, calls: p.calls.map((c) => [c.name, JSON.parse(c.arguments)]) };

test('hermes: text, then <tool_call> blocks of offered functions; anything else is text', () => {
  assert.deepEqual(brief(hermes.parse('Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', USE)),
    { content: 'Let me check.', calls: [['get_weather', { city: 'Paris' }]] });
  assert.deepEqual(brief(hermes.parse('<tool_call>{"name":"get_weather","arguments":{"city":"Oslo"}}</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>\n', USE)),
    { content: null, calls: [['get_weather', { city: 'Oslo' }], ['get_time', {}]] });
  // The last block may end without its closing tag (the end-of-turn token came right after the JSON).
  assert.deepEqual(brief(hermes.parse('<tool_call>\n{"name": "get_time", "arguments": {}}', USE)), { content: null, calls: [['get_time', {}]] });
  assert.equal(hermes.parse('No tools needed: it is sunny.', USE), null);
  // parallel_tool_calls false: an (unconstrained) answer with two calls gives the first.
  const two = '<tool_call>{"name": "get_time", "arguments": {}}</tool_call><tool_call>{"name": "get_weather", "arguments": {"city": "x"}}</tool_call>';
  assert.deepEqual(answerCalls(hermes, two, { ...USE, parallel: false })?.calls.map((c) => c.name), ['get_time']);
  assert.deepEqual(answerCalls(hermes, two, USE)?.calls.map((c) => c.name), ['get_time', 'get_weather']);
  assert.equal(hermes.parse('<tool_call>{"name": "get_weather", "arguments": {"city": </tool_call>', USE), null, 'broken JSON');
  assert.equal(hermes.parse('<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>', USE), null, 'a function not offered');
  assert.equal(hermes.parse('<tool_call>{"name": "get_time", "arguments": {}}</tool_call> and then some text', USE), null);
});

test('llama3_json: the answer is one or more {"name", "parameters"} objects joined by ";"', () => {
  assert.deepEqual(brief(llama.parse(' {"name": "get_weather", "parameters": {"city": "Rome"}}', USE)), { content: null, calls: [['get_weather', { city: 'Rome' }]] });
  assert.deepEqual(brief(llama.parse('{"name": "get_time", "parameters": {}}; {"name": "get_weather", "parameters": {"city": "a;b}"}}', USE)),
    { content: null, calls: [['get_time', {}], ['get_weather', { city: 'a;b}' }]] });
  assert.equal(llama.parse('The weather is {"fine"}', USE), null);
  assert.equal(llama.parse('{"name": "get_time", "parameters": {}} trailing', USE), null);
  assert.equal(llama.parse('{"name": "get_time", "parameters": {}', USE), null, 'unclosed');
});

test('mistral: [TOOL_CALLS] then a JSON array (v3) or name[ARGS]{…} per call (v11+); 9-character call ids', () => {
  const v3 = mistral.parse('[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Lyon"}}, {"name": "get_time", "arguments": {}}]', USE);
  assert.deepEqual(brief(v3), { content: null, calls: [['get_weather', { city: 'Lyon' }], ['get_time', {}]] });
  for (const c of v3!.calls) assert.match(c.id, /^[A-Za-z0-9]{9}$/);
  assert.deepEqual(brief(mistral.parse('Checking.[TOOL_CALLS]get_weather[ARGS]{"city": "Nice"}[TOOL_CALLS]get_time[ARGS]{}', USE)),
    { content: 'Checking.', calls: [['get_weather', { city: 'Nice' }], ['get_time', {}]] });
  assert.deepEqual(brief(mistral.parse('[TOOL_CALLS]get_time[CALL_ID]a1b2c3d4e[ARGS]{}', USE)), { content: null, calls: [['get_time', {}]] });
  // Arguments given as JSON text (some fine-tunes) are parsed.
  assert.deepEqual(brief(mistral.parse('[TOOL_CALLS][{"name": "get_time", "arguments": "{}"}]', USE)), { content: null, calls: [['get_time', {}]] });
  assert.equal(mistral.parse('plain text', USE), null);
  assert.equal(mistral.parse('[TOOL_CALLS][{"name": "get_time"', USE), null);
  assert.equal(mistral.parse('[TOOL_CALLS]nope[ARGS]{}', USE), null);
  // The marker is a special token: it reaches the answer (other special tokens do not).
  assert.equal(answerDelta(mistral, { text: '[TOOL_CALLS]', special: true }, ''), '[TOOL_CALLS]');
  assert.equal(answerDelta(mistral, { text: '</s>', special: true }, ''), '');
  assert.equal(answerDelta(hermes, { text: '[TOOL_CALLS]', special: true }, ''), '');
  assert.equal(answerDelta(mistral, { text: 'Hi', special: false }, 'Hi'), 'Hi');
  const s = new ToolCallStream(mistral, USE);
  assert.equal(s.push('Let me look. '), 'Let me look.');
  assert.equal(s.push('[TOOL_CALLS]'), '');
  assert.equal(s.push('get_time[ARGS]'), '');
  assert.deepEqual(s.finish('{}', true).calls?.map((c) => c.name), ['get_time']);
  const required = matcher(mistral.constraint({ ...USE, choice: 'required' })!);
  assert.ok(required.matches('[TOOL_CALLS][{"name": "get_time", "arguments": {}}, {"name": "get_weather", "arguments": {"city": "x"}}]'));
  assert.ok(!required.matches('[TOOL_CALLS][]'));
});

test('harmony: the calls the harmony reasoning parser marks; auto only (its markers are special tokens)', () => {
  const call = (name: string, args: string, close = true) => `\uE000${name}\uE001${args}${close ? '\uE002' : ''}`;
  assert.deepEqual(brief(harmony.parse(`Checking. ${call('get_weather', '{"city": "Oslo"}')}${call('get_time', '{}', false)}`, USE)),
    { content: 'Checking.', calls: [['get_weather', { city: 'Oslo' }], ['get_time', {}]] });
  assert.equal(harmony.parse('just text', USE), null);
  assert.equal(harmony.parse(call('get_weather', '{"city":'), USE), null, 'arguments that do not parse: text');
  assert.equal(harmony.parse(call('rm', '{}'), USE), null);
  assert.equal(harmony.constraint(USE), undefined);
  assert.throws(() => harmony.constraint({ ...USE, choice: 'required' }), /use tool_choice "auto"/);
  const s = new ToolCallStream(harmony, USE);
  assert.equal(s.push('Sure. '), 'Sure.');
  assert.equal(s.push('\uE000get_time\uE001'), '');
  assert.deepEqual(s.finish('{}\uE002', true).calls?.map((c) => c.name), ['get_time']);
});

test('streaming: text goes out until the calls begin (a marker split over deltas is held), then the calls at the end', () => {
  const answer = 'Sure.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>';
  for (const size of [1, 2, 3, 7, 50]) {
    const s = new ToolCallStream(hermes, USE);
    let out = '';
    for (let i = 0; i < answer.length; i += size) {
      const sent = s.push(answer.slice(i, i + size));
      assert.ok(!sent.includes('<'), `size ${size}: markup went out: ${JSON.stringify(sent)}`);
      out += sent;
    }
    const end = s.finish('', true);
    assert.equal(out, 'Sure.', `size ${size}`);
    assert.deepEqual(end.calls?.map((c) => c.name), ['get_weather']);
  }
  // A '<' that turns out not to start a call goes out once it is clear; so does a block that does not parse.
  const s = new ToolCallStream(hermes, USE);
  assert.equal(s.push('a <'), 'a');
  assert.equal(s.push('b'), ' <b');
  assert.equal(s.push(' <tool_call>{oops'), '');
  assert.deepEqual(s.finish('}', true), { text: ' <tool_call>{oops}', calls: null });
  // Cut short by the length limit: the held text comes back as text.
  const cut = new ToolCallStream(hermes, USE);
  cut.push('<tool_call>{"name": "get_time", "arguments": {}}');
  assert.deepEqual(cut.finish('', false), { text: '<tool_call>{"name": "get_time", "arguments": {}}', calls: null });
  // llama3_json decides on the first non-space character.
  const l = new ToolCallStream(llama, USE);
  assert.equal(l.push('  '), '');
  assert.equal(l.push('{"name"'), '');
  assert.deepEqual(l.finish(': "get_time", "parameters": {}}', true).calls?.map((c) => c.name), ['get_time']);
  const t = new ToolCallStream(llama, USE);
  assert.equal(t.push(' Hi'), ' Hi');
  assert.equal(t.push(' {x}'), ' {x}');
});

test('required / named calls are constrained to the native markup with schema arguments', () => {
  const required = matcher(hermes.constraint({ ...USE, choice: 'required', parallel: false })!);
  assert.ok(required.matches('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'));
  assert.ok(!required.matches('<tool_call>\n{"name": "get_weather", "arguments": {"town": "Paris"}}\n</tool_call>'));
  assert.ok(!required.matches('Hello'));
  const parallel = matcher(hermes.constraint({ ...USE, choice: 'required' })!);
  assert.ok(parallel.matches('<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'));
  const named = matcher(llama.constraint({ ...USE, choice: { name: 'get_weather' }, parallel: false })!);
  assert.ok(named.matches('{"name": "get_weather", "parameters": {"city": "x"}}'));
  assert.ok(!named.matches('{"name": "get_time", "parameters": {}}'));
  assert.equal(hermes.constraint(USE), undefined, 'auto: the model decides, free');
  assert.equal(llama.constraint(USE), undefined);
});

test('auto detection: the format the chat template renders tools in', () => {
  const none = () => false;
  assert.equal(detectToolFormat('auto', '{% for tool in tools %}<tools>{{ tool | tojson }}</tools>{% endfor %}<tool_call>', none), 'hermes');
  assert.equal(detectToolFormat('auto', '{% if tools %}{{ tools | tojson }}{% endif %}', (t) => t === '<|python_tag|>'), 'llama3_json');
  assert.equal(detectToolFormat('auto', '{% if tools %}{{ tools | tojson }}{% endif %}', none), 'weft');
  assert.equal(detectToolFormat('auto', '{{ messages[0].content }} <tool_call>', none), 'weft', 'a template that does not render tools');
  assert.equal(detectToolFormat('auto', '{%- if tools %}[AVAILABLE_TOOLS]{{ tools|tojson }}[/AVAILABLE_TOOLS]{% endif %}[TOOL_CALLS]', none), 'mistral');
  assert.equal(detectToolFormat('auto', null, none), 'weft');
  assert.equal(detectToolFormat('llama3_json', null, none), 'llama3_json');
  assert.equal(detectToolFormat('auto', '{% if tools %}namespace functions{% endif %}', none, 'harmony'), 'harmony');
  assert.equal(detectToolFormat('auto', '{{ messages }}', none, 'harmony'), 'weft', 'a template without tools');
  assert.throws(() => detectToolFormat('harmony', '{{ tools }}', none, null), /needs --reasoning-parser harmony/);
});

test('auto detection: qwen3_coder (before hermes: its template writes <tool_call> too) and pythonic', () => {
  const none = () => false;
  // Qwen3-Coder's template: the XML layout inside <tool_call> tags.
  const qwen3Coder = '{%- if tools %}<tools>{% for tool in tools %}<function><name>{{ tool.name }}</name></function>{% endfor %}</tools>' +
    'reply in the following format:\n<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n</parameter>\n' +
    '</function>\n</tool_call>{% endif %}';
  assert.equal(detectToolFormat('auto', qwen3Coder, none), 'qwen3_coder');
  assert.equal(detectToolFormat('auto', qwen3Coder.replace(/<parameter=/g, '<arg='), none), 'hermes', '<function= alone (a JSON-in-tags layout) is not it');
  assert.equal(detectToolFormat('auto', '{{ messages }} <function=x><parameter=y>', none), 'weft', 'a template that does not render tools');
  // Llama 3.2's pythonic template and Llama 4's ask for a Python list of calls.
  const llama32 = '{%- if tools is not none %}Respond in the format [func_name1(params_name1=params_value1, params_name2=params_value2...), func_name2(params)] ' +
    '{% for t in tools %}{{ t | tojson(indent=4) }}{% endfor %}{% endif %}';
  assert.equal(detectToolFormat('auto', llama32, (t) => t === '<|python_tag|>'), 'pythonic', 'the template says pythonic though the vocabulary is Llama 3\'s');
  assert.equal(detectToolFormat('auto', '{% if tools %}{{ tools | tojson }}{% endif %}', (t) => t === '<|python_start|>'), 'weft', 'Llama 4\'s vocabulary alone: its own template asks for JSON');
  assert.equal(detectToolFormat('auto', '{% if tools %}{{ tools | tojson }}{% endif %}', (t) => t === '<|python_tag|>'), 'llama3_json');
  assert.equal(detectToolFormat('pythonic', null, none), 'pythonic');
  assert.equal(detectToolFormat('qwen3_coder', '{{ messages }}', none), 'qwen3_coder', 'named, it is taken as told');
});

// A Hermes-style template (written for this test): tools as JSON lines, calls in tags, results as tool turns.
const TEMPLATE = [
  '{%- if tools %}<|system|>Tools:{% for t in tools %}\n{{ t | tojson }}{% endfor %}\nCall as <tool_call>{json}</tool_call>.\n{% endif %}',
  '{%- for m in messages %}<|{{ m.role }}|>',
  '{%- if m.role == "assistant" and m.tool_calls %}{{ m.content }}{% for c in m.tool_calls %}<tool_call>{"name": "{{ c.function.name }}", "arguments": {{ c.function.arguments | tojson }}}</tool_call>{% endfor %}',
  '{%- elif m.role == "tool" %}<tool_response>{{ m.name }}: {{ m.content }}</tool_response>',
  '{%- else %}{{ m.content }}{% endif %}\n{% endfor %}',
  '{%- if add_generation_prompt %}<|assistant|>{% endif %}',
].join('');

test('a native format hands the template the tools, the calls (arguments as objects) and the results', () => {
  const body = {
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '21 C' },
    ],
    tools: [{ type: 'function', function: WEATHER }],
  };
  const native = validateChatBody(body, { maxTotalTokens: 100, toolFormat: 'hermes' });
  assert.equal(native.constraint, undefined);
  const text = renderChat(TEMPLATE, native.messages, { addGenerationPrompt: true, ...(native.render.templateKwargs ? { extra: native.render.templateKwargs } : {}) });
  assert.equal(text, '<|system|>Tools:{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", ' +
    '"parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}Call as <tool_call>{json}</tool_call>.\n' +
    '<|user|>Weather in Paris?<|assistant|><tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>' +
    '<|tool|><tool_response>get_weather: 21 C</tool_response><|assistant|>');
  // weft's own format: the same history as text any template takes, and the constraint.
  const weft = validateChatBody(body, { maxTotalTokens: 100 });
  assert.deepEqual(weft.messages.map((m) => m.role), ['user', 'assistant', 'user']);
  assert.match(weft.messages[2]!.content, /^Result of function get_weather \(call_1\):\n21 C$/);
  assert.equal(weft.render.templateKwargs, undefined);
  assert.ok(weft.constraint !== undefined);
});
