// Native tool-call formats through the real server (demo model: random weights, byte-level BPE tokenizer). The
// model directory gets a Hermes-style chat template (written for this test: tools listed as JSON, calls in
// <tool_call> tags), so `--tool-call-parser auto` picks hermes; a second server is told llama3_json; three more get
// Mistral-, pythonic- (Llama 3.2) and Qwen3-Coder-style templates, which auto tells apart. Required and
// named calls come back as tool_calls — whole, streamed, and through the Responses API — from answers the model
// wrote in the native markup (checked in the raw text), and a history with calls and results reaches the
// template structured (the prompt's token count shows the template rendered them natively).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, type Launched } from '../../deploy/launch.js';
import { parseArgs } from '../../deploy/config/index.js';
import { ensureDemoModel } from '../../deploy/demo-model/index.js';
import { wholeAndStreamedCalls, type Call } from '../helpers/tool-calls.js';

const TEMPLATE = [
  '{%- if tools %}<|system|>You may call these tools:{% for t in tools %}\n{{ t | tojson }}{% endfor %}\n',
  'Call one as <tool_call>{"name": ..., "arguments": ...}</tool_call>.\n{% endif %}',
  '{%- for m in messages %}<|{{ m.role }}|>',
  '{%- if m.role == "assistant" and m.tool_calls %}{{ m.content }}{% for c in m.tool_calls %}<tool_call>\n{"name": "{{ c.function.name }}", "arguments": {{ c.function.arguments | tojson }}}\n</tool_call>{% endfor %}',
  '{%- elif m.role == "tool" %}<tool_response>{{ m.name }}: {{ m.content }}</tool_response>',
  '{%- else %}{{ m.content }}{% endif %}\n{% endfor %}',
  '{%- if add_generation_prompt %}<|assistant|>{% endif %}',
].join('');

// A Mistral-style template (also written for this test): tools in [AVAILABLE_TOOLS], calls after [TOOL_CALLS].
const MISTRAL_TEMPLATE = [
  '{%- if tools %}[AVAILABLE_TOOLS]{{ tools | tojson }}[/AVAILABLE_TOOLS]{% endif %}',
  '{%- for m in messages %}{% if m.role == "user" %}[INST]{{ m.content }}[/INST]',
  '{%- elif m.role == "assistant" and m.tool_calls %}[TOOL_CALLS]{{ m.tool_calls | tojson }}',
  '{%- elif m.role == "tool" %}[TOOL_RESULTS]{{ m.tool_call_id }}: {{ m.content }}[/TOOL_RESULTS]',
  '{%- else %}{{ m.content }}{% endif %}{% endfor %}',
].join('');

// A pythonic template (written for this test, after Llama 3.2's): the tools as JSON, calls as a Python list.
const PYTHONIC_TEMPLATE = [
  '{%- if tools %}<|system|>Respond in the format [func_name1(params_name1=params_value1, params_name2=params_value2...), func_name2(params)]',
  '{% for t in tools %}\n{{ t | tojson }}{% endfor %}\n{% endif %}',
  '{%- for m in messages %}<|{{ m.role }}|>',
  '{%- if m.role == "assistant" and m.tool_calls %}[{% for c in m.tool_calls %}{{ c.function.name }}(',
  '{%- for k, v in c.function.arguments | items %}{{ k }}={{ v | tojson }}{% if not loop.last %}, {% endif %}{% endfor %})',
  '{%- if not loop.last %}, {% endif %}{% endfor %}]',
  '{%- else %}{{ m.content }}{% endif %}\n{% endfor %}',
  '{%- if add_generation_prompt %}<|assistant|>{% endif %}',
].join('');

// A Qwen3-Coder-style template (also written for this test): calls as <function=…> blocks of <parameter=…> values.
const QWEN3_CODER_TEMPLATE = [
  '{%- if tools %}<|system|>Tools:{% for t in tools %}\n{{ t | tojson }}{% endfor %}\nCall one as:\n',
  '<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n</parameter>\n</function>\n</tool_call>\n{% endif %}',
  '{%- for m in messages %}<|{{ m.role }}|>',
  '{%- if m.role == "assistant" and m.tool_calls %}{% for c in m.tool_calls %}\n<tool_call>\n<function={{ c.function.name }}>\n',
  '{%- for k, v in c.function.arguments | items %}<parameter={{ k }}>\n{{ v }}\n</parameter>\n{% endfor %}</function>\n</tool_call>{% endfor %}',
  '{%- else %}{{ m.content }}{% endif %}\n{% endfor %}',
  '{%- if add_generation_prompt %}<|assistant|>{% endif %}',
].join('');

const WEATHER = { type: 'function', function: { name: 'get_weather', description: 'Weather in a city',
  parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 16 }, unit: { enum: ['c', 'f'] } }, required: ['city', 'unit'] } } };
const CLOCK = { type: 'function', function: { name: 'now', parameters: { type: 'object', properties: {} } } };

async function start(modelDir: string, flags: string[] = []): Promise<Launched> {
  const cacheDir = mkdtempSync(join(tmpdir(), 'weft-native-tools-'));
  return launch(parseArgs('launch', ['--model-id', modelDir, '--port', '0', '--hostname', '127.0.0.1', '--log-level', 'silent', ...flags], {}), { cacheDir });
}
const post = async (s: Launched, path: string, body: unknown) => {
  const r = await fetch(s.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, text: await r.text() };
};
function checkArgs(call: Call, only?: string): void {
  if (only) assert.equal(call.function.name, only);
  const args = JSON.parse(call.function.arguments);
  if (call.function.name === 'get_weather') assert.ok(typeof args.city === 'string' && ['c', 'f'].includes(args.unit), call.function.arguments);
  else assert.deepEqual(args, {});
}

describe('native tool-call formats (demo model with a Hermes-style template)', () => {
  let hermes: Launched;
  let llama: Launched;
  let mistral: Launched;
  let pythonic: Launched;
  let qwen3Coder: Launched;
  before(async () => {
    const model = async (template: string) => {
      const dir = await ensureDemoModel(join(mkdtempSync(join(tmpdir(), 'weft-native-model-')), 'demo'));
      writeFileSync(join(dir, 'chat_template.jinja'), template);
      return dir;
    };
    const dir = await model(TEMPLATE);
    hermes = await start(dir);
    llama = await start(dir, ['--tool-call-parser', 'llama3_json']);
    mistral = await start(await model(MISTRAL_TEMPLATE));
    pythonic = await start(await model(PYTHONIC_TEMPLATE));
    qwen3Coder = await start(await model(QWEN3_CODER_TEMPLATE));
  });
  after(async () => { await Promise.all([hermes, llama, mistral, pythonic, qwen3Coder].map((s) => s.close())); });

  test('/info names the parser: auto found hermes / mistral / pythonic / qwen3_coder in the templates', async () => {
    const info = await Promise.all([hermes, llama, mistral, pythonic, qwen3Coder].map(async (s) => (await fetch(`${s.url}/info`)).json()));
    assert.deepEqual(info.map((i) => i.tool_call_parser), ['hermes', 'llama3_json', 'mistral', 'pythonic', 'qwen3_coder']);
  });

  for (const [name, server, markup] of [['hermes', () => hermes, /^<tool_call>\n\{"name": ?"(get_weather|now)"/],
    ['llama3_json', () => llama, /^\{"name": ?"(get_weather|now)", ?"parameters"/],
    ['mistral', () => mistral, /^\[TOOL_CALLS\]\[\{"name": ?"(get_weather|now)", ?"arguments"/],
    ['pythonic', () => pythonic, /^\[(get_weather\(city="|now\(\))/],
    ['qwen3_coder', () => qwen3Coder, /^<tool_call>\n<function=(get_weather>\n<parameter=city>\n|now>\n<\/function>)/]] as const) {
    test(`${name}: required and named calls come back as tool_calls, whole == streamed == Responses API; the raw answer is the native markup`, async () => {
      const s = server();
      let checked = 0;
      for (const [tool_choice, parallel] of [['required', true], [{ type: 'function', function: { name: 'get_weather' } }, false]] as const) {
        for (const seed of [1, 2, 3]) {
          const body = { messages: [{ role: 'user', content: 'Weather in Paris?' }], max_tokens: 120, seed, tools: [WEATHER, CLOCK], tool_choice,
            parallel_tool_calls: parallel };
          const calls = await wholeAndStreamedCalls((path, b) => post(s, path, b), body, parallel,
            name === 'mistral' ? /^[A-Za-z0-9]{9}$/ : /^call_[0-9a-f]{24}$/, (call) => checkArgs(call, typeof tool_choice === 'object' ? 'get_weather' : undefined));
          if (calls === null) continue;
          checked++;
          // The raw answer (its tokens, from logprobs) is the native markup.
          const withLogprobs = await post(s, '/v1/chat/completions', { ...body, logprobs: true });
          const lp = JSON.parse(withLogprobs.text).choices[0].logprobs.content as { token: string }[];
          assert.match(lp.map((t) => t.token).join(''), markup);
          const resp = await post(s, '/v1/responses', { input: 'Weather in Paris?', max_output_tokens: 120, seed,
            tools: [WEATHER, CLOCK].map((t) => ({ type: 'function', ...t.function })),
            tool_choice: typeof tool_choice === 'object' ? { type: 'function', name: 'get_weather' } : tool_choice, parallel_tool_calls: parallel });
          assert.equal(resp.status, 200, resp.text);
          const items = JSON.parse(resp.text).output as { type: string; name: string; arguments: string }[];
          assert.deepEqual(items.map((i) => [i.type, i.name, i.arguments]), calls.map((x) => ['function_call', x.function.name, x.function.arguments]));
        }
      }
      assert.ok(checked >= 3, `only ${checked} answers finished`);
      const smuggled = await post(s, '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], chat_template_kwargs: { tools: [WEATHER] } });
      assert.equal(smuggled.status, 422, 'tools as a template kwarg are refused: the server sets them');
    });
  }

  test('a history with calls and results is rendered by the template (native), not as weft\'s text', async () => {
    const history = [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","unit":"c"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '21 C' },
    ];
    // The prompt the server renders is what /tokenize of the same text gives: count its tokens both ways.
    const expected = TEMPLATE_RENDER;
    const tokens = async (s: Launched, inputs: string) => JSON.parse((await post(s, '/tokenize', { inputs })).text).length as number;
    const r = await post(hermes, '/v1/chat/completions', { messages: history, max_tokens: 3, seed: 1, tools: [WEATHER] });
    assert.equal(r.status, 200, r.text);
    assert.equal(JSON.parse(r.text).usage.prompt_tokens, await tokens(hermes, expected));
  });
});

// What TEMPLATE renders for the history above with tools [WEATHER] (tojson as transformers writes it; trim_blocks
// drops the newline after each block tag, as transformers' environment does).
const TEMPLATE_RENDER = '<|system|>You may call these tools:' + JSON.stringify(WEATHER).replace(/":/g, '": ').replace(/,"/g, ', "') +
  'Call one as <tool_call>{"name": ..., "arguments": ...}</tool_call>.\n<|user|>Weather in Paris?<|assistant|><tool_call>\n' +
  '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}\n</tool_call><|tool|><tool_response>get_weather: 21 C</tool_response><|assistant|>';
