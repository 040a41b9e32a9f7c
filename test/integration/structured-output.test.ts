// Structured output through the real server on the built-in demo model (random weights, real byte-level BPE
// tokenizer): whatever the model would say, the text that comes back matches the schema or pattern and ends
// with EOS. Also: TP=2 (every rank runs the automaton and samples alike) equals TP=1, and a request
// preempted and recomputed (its automaton replayed from its generated tokens) equals the same request alone.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, type Launched } from '../../deploy/launch.js';
import { parseArgs } from '../../deploy/config/index.js';
import { startGoldenServer } from '../helpers/golden-server.js';
import { wholeAndStreamedCalls } from '../helpers/tool-calls.js';

const PERSON = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 12 },
    age: { type: 'integer' },
    member: { type: 'boolean' },
    color: { enum: ['red', 'green', 'blue'] },
    scores: { type: 'array', items: { type: 'number' }, maxItems: 3 },
  },
  required: ['name', 'age', 'member', 'color'],
};

/** Parentheses around one x, nested at random depth: only a pushdown automaton keeps the count. */
const NEST_GBNF = 'root ::= "(" inner ")"\ninner ::= "x" | "(" inner ")"';
function checkNest(text: string): void {
  const m = /^(\(+)x(\)+)$/.exec(text);
  assert.ok(m && m[1]!.length === m[2]!.length, `unbalanced: ${text}`);
}
/** Sums of small numbers and parenthesised sums, spaces ignored between tokens (Lark). */
const SUM_LARK = `
start: sum
sum: sum "+" term | term
term: NUMBER | "(" sum ")"
NUMBER: /[0-9]{1,3}/
%ignore " "`;
function checkSum(text: string): void {
  const t = text.replace(/ /g, '');
  assert.ok(/^[0-9()+]+$/.test(t) && !/[0-9] +[0-9]/.test(text), `not a sum: ${text}`);
  let depth = 0;
  for (const ch of t) {
    depth += ch === '(' ? 1 : ch === ')' ? -1 : 0;
    assert.ok(depth >= 0, `unbalanced: ${text}`);
  }
  assert.equal(depth, 0, `unbalanced: ${text}`);
  assert.doesNotThrow(() => Function(`return ${t}`)(), text);  // a well-formed expression
  assert.ok(!/\(\)|\+\)|\(\+|\+\+|^\+|\+$|[0-9]\(|\)[0-9]|\)\(/.test(t), `not a sum: ${text}`);
}

function checkPerson(text: string): void {
  const v = JSON.parse(text);
  assert.deepEqual(Object.keys(v).filter((k) => k !== 'scores'), ['name', 'age', 'member', 'color'], text);
  assert.ok(typeof v.name === 'string' && v.name.length <= 12, text);
  assert.ok(Number.isInteger(v.age), text);
  assert.equal(typeof v.member, 'boolean', text);
  assert.ok(['red', 'green', 'blue'].includes(v.color), text);
  if ('scores' in v) assert.ok(Array.isArray(v.scores) && v.scores.length <= 3 && v.scores.every((x: unknown) => typeof x === 'number'), text);
}

async function start(flags: string[]): Promise<Launched> {
  const cacheDir = mkdtempSync(join(tmpdir(), 'weft-structured-'));
  return launch(parseArgs('launch', ['--port', '0', '--hostname', '127.0.0.1', '--log-level', 'silent', ...flags], {}), { cacheDir });
}
const post = async (s: Launched, path: string, body: unknown) => {
  const r = await fetch(s.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, text: await r.text() };
};
const generate = (s: Launched, inputs: string, parameters: Record<string, unknown>) =>
  post(s, '/generate', { inputs, parameters: { max_new_tokens: 160, details: true, ...parameters } });

describe('structured output (demo model)', () => {
  let s: Launched;
  before(async () => { s = await start([]); });
  after(async () => { await s.close(); });

  test('TGI grammar json: greedy and sampled outputs are objects of the schema, finished by EOS', async () => {
    const runs = await Promise.all([{}, ...[1, 2, 3, 4, 5].map((seed) => ({ do_sample: true, temperature: 1.3, seed }))].map((p) =>
      generate(s, 'Describe a person as JSON:', { grammar: { type: 'json', value: PERSON }, ...p })));
    for (const r of runs) {
      assert.equal(r.status, 200, r.text);
      const j = JSON.parse(r.text);
      assert.equal(j.details.finish_reason, 'eos_token', r.text);
      checkPerson(j.generated_text);
    }
  });

  test('TGI grammar regex and LoRAX response_format', async () => {
    const r = await generate(s, 'A date:', { grammar: { type: 'regex', value: '(19|20)\\d\\d-(0[1-9]|1[0-2])-[0-3]\\d' }, do_sample: true, seed: 9 });
    assert.equal(r.status, 200, r.text);
    assert.match(JSON.parse(r.text).generated_text, /^(19|20)\d\d-(0[1-9]|1[0-2])-[0-3]\d$/);
    const lorax = await generate(s, 'Person:', { response_format: { type: 'json_object', schema: PERSON }, do_sample: true, seed: 4 });
    assert.equal(lorax.status, 200, lorax.text);
    checkPerson(JSON.parse(lorax.text).generated_text);
    // With prompt log-probs the shard samples from the full logits it returns (another path): same output.
    const scored = await generate(s, 'Person:', { response_format: { type: 'json_object', schema: PERSON }, do_sample: true, seed: 4,
      decoder_input_details: true });
    assert.equal(scored.status, 200, scored.text);
    assert.equal(JSON.parse(scored.text).generated_text, JSON.parse(lorax.text).generated_text);
    assert.ok(JSON.parse(scored.text).details.prefill.length > 1);
  });

  test('OpenAI json_schema with n choices, streamed and whole alike; json_object gives an object', async () => {
    const body = { messages: [{ role: 'user', content: 'A person, please.' }], max_tokens: 160, n: 2, seed: 11,
      response_format: { type: 'json_schema', json_schema: { name: 'person', schema: PERSON, strict: true } } };
    const whole = await post(s, '/v1/chat/completions', body);
    assert.equal(whole.status, 200, whole.text);
    const choices = JSON.parse(whole.text).choices;
    assert.equal(choices.length, 2);
    for (const c of choices) {
      assert.equal(c.finish_reason, 'stop');
      checkPerson(c.message.content);
    }
    const streamed = await post(s, '/v1/chat/completions', { ...body, stream: true });
    const chunks = streamed.text.split('\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)));
    for (const i of [0, 1]) {
      const text = chunks.filter((c) => c.choices[0]?.index === i).map((c) => c.choices[0].delta?.content ?? '').join('');
      assert.equal(text, choices[i].message.content);
    }
    const obj = await post(s, '/v1/completions', { prompt: 'JSON:', max_tokens: 200, seed: 2, response_format: { type: 'json_object' } });
    assert.equal(obj.status, 200, obj.text);
    const c = JSON.parse(obj.text).choices[0];
    if (c.finish_reason === 'stop') assert.equal(typeof JSON.parse(c.text), 'object');
    else assert.ok(c.text.startsWith('{'), c.text);
  });

  test('vLLM guided decoding: guided_choice / structured_outputs.choice, guided_regex, guided_json', async () => {
    const choices = ['yes', 'no', 'a.b (maybe)'];
    for (const [i, extra] of [{ guided_choice: choices }, { structured_outputs: { choice: choices } }].entries()) {
      for (const seed of [1, 2, 3]) {
        const r = await post(s, '/v1/completions', { prompt: 'Answer:', max_tokens: 20, seed: seed + 10 * i, ...extra });
        assert.equal(r.status, 200, r.text);
        assert.ok(choices.includes(JSON.parse(r.text).choices[0].text), r.text);
      }
    }
    const re = await post(s, '/v1/completions', { prompt: 'A year:', max_tokens: 8, seed: 5, guided_regex: '(19|20)\\d\\d' });
    assert.match(JSON.parse(re.text).choices[0].text, /^(19|20)\d\d$/);
    const js = await post(s, '/v1/chat/completions', { messages: [{ role: 'user', content: 'A person.' }], max_tokens: 160, seed: 3,
      guided_json: PERSON });
    assert.equal(js.status, 200, js.text);
    checkPerson(JSON.parse(js.text).choices[0].message.content);
    for (const [body, why] of [
      [{ guided_choice: ['a'], guided_regex: 'b' }, /give one guided decoding field/],
      [{ guided_regex: 'b', response_format: { type: 'json_object' } }, /either `response_format` or vLLM's guided decoding/],
      [{ guided_grammar: 'root ::= x\nx ::= y "a" | "b"\ny ::= x' }, /rule 'x' is left-recursive \(x → y → x/],
      [{ structured_outputs: { grammar: 'start: "a' } }, /Lark grammar line 1, column 8: unterminated string literal/],
      [{ guided_grammar: '' }, /`guided_grammar` must be a non-empty grammar/],
      [{ guided_choice: [] }, /`guided_choice` must be a non-empty list/],
    ] as const) {
      const r = await post(s, '/v1/completions', { prompt: 'x', max_tokens: 4, ...body });
      assert.equal(r.status, 422, r.text);
      assert.match(r.text, why);
    }
  });

  test('context-free grammars: GBNF and Lark through guided_grammar, structured_outputs.grammar and TGI grammar', async () => {
    // Nesting a regular expression cannot count: the output closes exactly the parentheses it opened.
    for (const seed of [1, 2, 3, 4]) {
      const r = await generate(s, 'Nest:', { grammar: { type: 'grammar', value: NEST_GBNF }, do_sample: true, temperature: 1.5, seed });
      assert.equal(r.status, 200, r.text);
      const j = JSON.parse(r.text);
      assert.equal(j.details.finish_reason, 'eos_token', r.text);
      checkNest(j.generated_text);
    }
    const sums: string[] = [];
    for (const [i, extra] of [{ guided_grammar: SUM_LARK }, { structured_outputs: { grammar: SUM_LARK } }, { guided_grammar: NEST_GBNF }].entries()) {
      for (const seed of [1, 2, 3]) {
        const r = await post(s, '/v1/completions', { prompt: 'Sum:', max_tokens: 150, seed, temperature: 1.2, ...extra });
        assert.equal(r.status, 200, r.text);
        const c = JSON.parse(r.text).choices[0];
        assert.equal(c.finish_reason, 'stop', r.text);
        if (i === 2) checkNest(c.text);
        else {
          checkSum(c.text);
          sums.push(c.text);
        }
      }
    }
    assert.deepEqual(sums.slice(0, 3), sums.slice(3), 'guided_grammar and structured_outputs.grammar: the same constraint');
    const chat = await post(s, '/v1/chat/completions', { messages: [{ role: 'user', content: 'Add things.' }], max_tokens: 150, seed: 8,
      guided_grammar: SUM_LARK, stream: true });
    const text = chat.text.split('\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)).choices[0]?.delta?.content ?? '').join('');
    checkSum(text);
  });

  test('a recursive JSON Schema ($ref "#") through json_schema, guided_json and TGI grammar json: every level of the schema', async () => {
    const LIST = { type: 'object', required: ['id', 'next'], properties: { id: { type: 'integer' }, next: { anyOf: [{ type: 'null' }, { $ref: '#' }] } } };
    const checkList = (text: string) => {
      for (let node = JSON.parse(text); node !== null; node = node.next) {
        assert.deepEqual(Object.keys(node), ['id', 'next'], text);
        assert.ok(Number.isInteger(node.id), text);
      }
    };
    let levels = 0;
    for (const seed of [1, 2, 3]) {
      const chat = await post(s, '/v1/chat/completions', { messages: [{ role: 'user', content: 'A list' }], max_tokens: 200, seed,
        response_format: { type: 'json_schema', json_schema: { name: 'list', schema: LIST } } });
      assert.equal(chat.status, 200, chat.text);
      const c = JSON.parse(chat.text).choices[0];
      assert.equal(c.finish_reason, 'stop', chat.text);
      checkList(c.message.content);
      levels = Math.max(levels, c.message.content.split('"id"').length - 1);
      const guided = await post(s, '/v1/completions', { prompt: 'List:', max_tokens: 200, seed, guided_json: LIST });
      checkList(JSON.parse(guided.text).choices[0].text);
      const tgi = await generate(s, 'List:', { grammar: { type: 'json', value: LIST }, do_sample: true, seed });
      checkList(JSON.parse(tgi.text).generated_text);
    }
    assert.ok(levels >= 2, 'some answer nests a list in a list');
    // Tool parameters are one regular expression with the other tools': a recursive one is refused there.
    const tool = await post(s, '/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], max_tokens: 4, tool_choice: 'required',
      tools: [{ type: 'function', function: { name: 'f', parameters: LIST } }] });
    assert.equal(tool.status, 422, tool.text);
    assert.match(tool.text, /recursive schemas are supported in response_format and guided_json, not here/);
  });

  test('a constrained request batched with unconstrained ones: each equals itself served alone', async () => {
    const reqs = [
      { inputs: 'Person:', parameters: { grammar: { type: 'json', value: PERSON }, do_sample: true, seed: 21 } },
      { inputs: 'Free text here', parameters: { do_sample: true, seed: 22, max_new_tokens: 30 } },
      { inputs: 'Digits:', parameters: { grammar: { type: 'regex', value: '[0-9]{5,9}' } } },
      { inputs: 'More free text', parameters: { max_new_tokens: 25 } },
    ];
    const alone: { status: number; text: string }[] = [];
    for (const r of reqs) alone.push(await generate(s, r.inputs, r.parameters));
    const together = await Promise.all(reqs.map((r) => generate(s, r.inputs, r.parameters)));
    together.forEach((t, i) => {
      assert.equal(t.status, 200, t.text);
      assert.equal(JSON.parse(t.text).generated_text, JSON.parse(alone[i].text).generated_text, `request ${i}`);
    });
    assert.match(JSON.parse(together[2].text).generated_text, /^[0-9]{5,9}$/);
  });

  const WEATHER = { type: 'function', function: { name: 'get_weather', description: 'Weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 16 }, unit: { enum: ['c', 'f'] } }, required: ['city', 'unit'] } } };
  const CLOCK = { type: 'function', function: { name: 'now', parameters: { type: 'object', properties: {}, additionalProperties: false } } };

  test('tools: tool_choice required / named gives tool calls with arguments of the schema; streamed == whole', async () => {
    for (const [tool_choice, parallel] of [['required', true], [{ type: 'function', function: { name: 'get_weather' } }, true],
      ['required', false]] as const) {
      for (const seed of [1, 2, 3]) {
        const body = { messages: [{ role: 'user', content: 'Weather in Paris?' }], max_tokens: 120, seed, tools: [WEATHER, CLOCK], tool_choice,
          parallel_tool_calls: parallel };
        await wholeAndStreamedCalls((path, b) => post(s, path, b), body, parallel, /^call_[0-9a-f]{24}$/, (call) => {
          if (typeof tool_choice === 'object') assert.equal(call.function.name, 'get_weather');
          const args = JSON.parse(call.function.arguments);
          if (call.function.name === 'get_weather') {
            assert.ok(typeof args.city === 'string' && args.city.length <= 16 && ['c', 'f'].includes(args.unit), call.function.arguments);
          } else assert.deepEqual(args, {});
        });
      }
    }
  });

  test('legacy functions: function_call {name} answers as one function_call, the same call as the equivalent tools request', async () => {
    const user = { role: 'user', content: 'Weather in Paris?' };
    let compared = 0;
    for (const seed of [1, 2, 3]) {
      const legacyBody = { messages: [user], max_tokens: 120, seed, functions: [WEATHER.function, CLOCK.function],
        function_call: { name: 'get_weather' } };
      const whole = await post(s, '/v1/chat/completions', legacyBody);
      assert.equal(whole.status, 200, whole.text);
      const c = JSON.parse(whole.text).choices[0];
      if (c.finish_reason === 'length') continue;
      assert.equal(c.finish_reason, 'function_call', whole.text);
      assert.equal(c.message.content, null);
      assert.equal(c.message.tool_calls, undefined);
      assert.equal(c.message.function_call.name, 'get_weather');
      const args = JSON.parse(c.message.function_call.arguments);
      assert.ok(typeof args.city === 'string' && args.city.length <= 16 && ['c', 'f'].includes(args.unit), c.message.function_call.arguments);
      // The same prompt and constraint as tools + a named tool_choice without parallel calls: the same call.
      const asTools = await post(s, '/v1/chat/completions', { messages: [user], max_tokens: 120, seed, tools: [WEATHER, CLOCK],
        tool_choice: { type: 'function', function: { name: 'get_weather' } }, parallel_tool_calls: false });
      const t = JSON.parse(asTools.text).choices[0];
      assert.equal(t.finish_reason, 'tool_calls', asTools.text);
      assert.equal(t.message.tool_calls[0].function.arguments, c.message.function_call.arguments);
      const streamed = await post(s, '/v1/chat/completions', { ...legacyBody, stream: true });
      const chunks = streamed.text.split('\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)));
      assert.deepEqual(chunks.flatMap((ch) => ch.choices[0].delta.function_call ?? []), [c.message.function_call]);
      assert.equal(chunks.at(-1).choices[0].finish_reason, 'function_call');
      compared++;
    }
    assert.ok(compared >= 1, 'at least one seed finished its call within max_tokens');
    // A legacy history: the assistant's function_call and the function's result, then another call.
    const history = [user, { role: 'assistant', content: null, function_call: { name: 'now', arguments: '{}' } },
      { role: 'function', name: 'now', content: '12:00' }];
    const next = await post(s, '/v1/chat/completions', { messages: history, max_tokens: 120, seed: 5, functions: [WEATHER.function],
      function_call: { name: 'get_weather' } });
    assert.equal(next.status, 200, next.text);
    const n = JSON.parse(next.text).choices[0];
    assert.ok(n.finish_reason === 'length' || n.message.function_call.name === 'get_weather', next.text);
  });

  test('tools: auto answers in text or with a call; a history with calls and tool results is rendered', async () => {
    const history = [{ role: 'user', content: 'What time is it?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_7', type: 'function', function: { name: 'now', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'call_7', content: '12:00' }];
    for (const seed of [1, 2, 3, 4]) {
      const r = await post(s, '/v1/chat/completions', { messages: history, max_tokens: 40, seed, tools: [WEATHER, CLOCK] });
      assert.equal(r.status, 200, r.text);
      const c = JSON.parse(r.text).choices[0];
      if (c.finish_reason === 'tool_calls') assert.ok(['now', 'get_weather'].includes(c.message.tool_calls[0].function.name));
      else assert.ok(typeof c.message.content === 'string' && !/^[{[]/.test(c.message.content), r.text);
    }
    const none = await post(s, '/v1/chat/completions', { messages: history, max_tokens: 5, seed: 1, tools: [WEATHER], tool_choice: 'none' });
    assert.equal(none.status, 200, none.text);
    assert.equal(JSON.parse(none.text).choices[0].message.tool_calls, undefined);
  });

  test('under load: 48 concurrent requests over 4 schemas, a regex and tools all finish valid; nothing held after', async () => {
    const schemas = [PERSON, { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] },
      { type: 'array', items: { enum: ['x', 'y'] }, minItems: 1, maxItems: 4 }, { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] }];
    const jobs = Array.from({ length: 48 }, (_, i) => {
      const kind = i % 6;
      const sampled = { do_sample: true, seed: 100 + i, temperature: 1.2 };
      if (kind < 4) {
        return generate(s, `Item ${i}:`, { ...sampled, grammar: { type: 'json', value: schemas[kind] } }).then((r) => {
          assert.equal(r.status, 200, r.text);
          const j = JSON.parse(r.text);
          assert.equal(j.details.finish_reason, 'eos_token', r.text);
          const v = JSON.parse(j.generated_text);
          if (kind === 0) checkPerson(j.generated_text);
          else if (kind === 1) assert.equal(typeof v.ok, 'boolean');
          else if (kind === 2) assert.ok(Array.isArray(v) && v.length >= 1 && v.length <= 4 && v.every((x: string) => x === 'x' || x === 'y'));
          else assert.ok(Number.isInteger(v.n));
        });
      }
      if (kind === 4) {
        return generate(s, `Code ${i}:`, { ...sampled, grammar: { type: 'regex', value: '[A-Z]{3}-[0-9]{4}' } }).then((r) => {
          assert.equal(r.status, 200, r.text);
          assert.match(JSON.parse(r.text).generated_text, /^[A-Z]{3}-[0-9]{4}$/);
        });
      }
      return post(s, '/v1/chat/completions', { messages: [{ role: 'user', content: `Question ${i}` }], max_tokens: 60, seed: i,
        tools: [WEATHER], tool_choice: 'required' }).then((r) => {
        assert.equal(r.status, 200, r.text);
        const c = JSON.parse(r.text).choices[0];
        if (c.finish_reason !== 'length') assert.equal(c.message.tool_calls[0].function.name, 'get_weather');
      });
    });
    await Promise.all(jobs);
    const stats = s.engine.stats();
    assert.equal((await (await fetch(`${s.url}/info`)).json()).structured_output, true);
    assert.equal(stats.usedBlocks, 0);
    assert.equal(stats.running + stats.waiting, 0);
  });

  test('bad schemas and patterns are 422s that say why', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ grammar: { type: 'json', value: { type: 'integer', multipleOf: 3 } } }, /'multipleOf'.*not supported/],
      [{ grammar: { type: 'regex', value: '(a' } }, /missing \)/],
      [{ grammar: { type: 'yaml', value: 'x' } }, /`grammar.type` must be "json", "regex" or "grammar"/],
      [{ grammar: { type: 'grammar', value: 'root ::= "a" root' } }, /rule 'root' derives no finite text/],
      [{ grammar: { type: 'json', value: PERSON }, response_format: { type: 'json_object' } }, /either `grammar` or `response_format`/],
      [{ grammar: { type: 'json', value: PERSON }, min_new_tokens: 5 }, /`min_tokens` cannot be combined with structured output/],
    ];
    for (const [params, why] of cases) {
      const r = await generate(s, 'x', params);
      assert.equal(r.status, 422, r.text);
      assert.match(JSON.parse(r.text).error, why);
    }
  });
});

describe('structured output across ranks and preemption', () => {
  let one: Launched;
  let two: Launched;
  let tight: Launched;
  before(async () => {
    one = await start([]);
    two = await start(['--num-shard', '2']);
    // 10 blocks of 16 tokens for 6 requests of ~100 tokens: sequences are preempted and recomputed.
    tight = await start(['--kv-cache-blocks', '10', '--max-total-tokens', '160', '--max-input-length', '32']);
  });
  after(async () => { await Promise.all([one.close(), two.close(), tight.close()]); });

  // JSON-schema requests, and grammars (whose automaton is a pushdown one) beside them.
  const reqs = [1, 2, 3, 4, 5, 6].map((seed) => ({ inputs: `Person number ${seed}:`, parameters: {
    grammar: seed <= 4 ? { type: 'json', value: PERSON } : { type: 'grammar', value: seed === 5 ? NEST_GBNF : SUM_LARK },
    do_sample: true, seed, max_new_tokens: 120 } }));
  const check = (i: number, text: string) => (i < 4 ? checkPerson(text) : i === 4 ? checkNest(text) : checkSum(text));

  test('TP=2 gives exactly the TP=1 outputs (async scheduling feeds each rank its own sample)', async () => {
    const a = await Promise.all(reqs.map((r) => generate(one, r.inputs, r.parameters)));
    const b = await Promise.all(reqs.map((r) => generate(two, r.inputs, r.parameters)));
    a.forEach((x, i) => {
      assert.equal(x.status, 200, x.text);
      assert.equal(b[i].status, 200, b[i].text);
      const tx = JSON.parse(x.text).generated_text;
      assert.equal(JSON.parse(b[i].text).generated_text, tx, `request ${i}`);
      check(i, tx);
    });
  });

  test('preempted and recomputed sequences continue their automaton where they were', async () => {
    const alone: { status: number; text: string }[] = [];
    for (const r of reqs) alone.push(await generate(tight, r.inputs, r.parameters));
    const before = tight.engine.stats().preemptions;
    const together = await Promise.all(reqs.map((r) => generate(tight, r.inputs, r.parameters)));
    assert.ok(tight.engine.stats().preemptions > before, 'the load preempted some sequence');
    together.forEach((t, i) => {
      assert.equal(t.status, 200, t.text);
      assert.equal(JSON.parse(t.text).generated_text, JSON.parse(alone[i].text).generated_text, `request ${i}`);
      check(i, JSON.parse(t.text).generated_text);
    });
    assert.equal(tight.engine.stats().usedBlocks, 0);
  });
});

test('a model whose tokenizer has no text pieces (WordLevel) refuses structured output with a 422, before the shards', async () => {
  const g = await startGoldenServer();
  try {
    const r = await g.post('/generate', { inputs: 't1 t2', parameters: { grammar: { type: 'regex', value: 't[0-9]+' } } });
    assert.equal(r.status, 422, r.text);
    assert.match(r.json.error, /structured output is not available for this model: .*byte-level BPE or SentencePiece/);
    assert.equal((await (await fetch(`${g.url}/info`)).json()).structured_output, false);
    const plain = await g.post('/generate', { inputs: 't1 t2', parameters: { max_new_tokens: 2 } });
    assert.equal(plain.status, 200, plain.text);
  } finally {
    await g.close();
  }
});
