// OpenAI's Responses API (POST /v1/responses) on the built-in demo model (real tokenizer and chat template): the
// response object, the streamed events (their order, and their text equal to the whole answer), function calls
// with tool_choice required, a conversation of input items with a call and its output, text.format json_schema,
// stored responses (GET, DELETE, previous_response_id equal to sending the conversation, other credentials see
// nothing), output_text log-probs (include), and the refusals (non-function tools, unknown fields).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, type Launched } from '../../deploy/launch.js';
import { parseArgs } from '../../deploy/config/index.js';

let server: Launched;
before(async () => {
  server = await launch(parseArgs('launch', ['--port', '0', '--hostname', '127.0.0.1', '--log-level', 'silent'], {}),
    { cacheDir: mkdtempSync(join(tmpdir(), 'weft-responses-')) });
});
after(async () => { await server.close(); });

const post = async (body: unknown, headers: Record<string, string> = {}) => {
  const r = await fetch(`${server.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const text = await r.text();
  let json: any = null;
  try { json = JSON.parse(text); } catch { /* a stream */ }
  return { status: r.status, json, text };
};

/** `event: X` / `data: {...}` pairs of a Responses stream. */
function events(text: string): { event: string; data: any }[] {
  return text.split('\n\n').filter((b) => b.trim() !== '').map((b) => {
    const event = /^event: (.*)$/m.exec(b)![1]!;
    return { event, data: JSON.parse(/^data: (.*)$/m.exec(b)![1]!) };
  });
}

test('a response: one message item with output_text, usage, the settings echoed; streamed events add up to it', async () => {
  const body = { input: 'Tell me about adapters.', instructions: 'Be brief.', max_output_tokens: 10, temperature: 0, metadata: { k: 'v' } };
  const r = await post(body);
  assert.equal(r.status, 200, r.text);
  const j = r.json;
  assert.match(j.id, /^resp_[0-9a-f]{32}$/);
  assert.equal(j.object, 'response');
  assert.ok(['completed', 'incomplete'].includes(j.status));
  assert.equal(j.incomplete_details?.reason ?? null, j.status === 'incomplete' ? 'max_output_tokens' : null);
  assert.deepEqual([j.instructions, j.max_output_tokens, j.temperature, j.metadata, j.store], ['Be brief.', 10, 0, { k: 'v' }, true]);
  assert.equal(j.output.length, 1);
  const msg = j.output[0];
  assert.deepEqual([msg.type, msg.role, msg.content[0].type], ['message', 'assistant', 'output_text']);
  assert.ok(msg.content[0].text.length > 0);
  assert.equal(j.usage.total_tokens, j.usage.input_tokens + j.usage.output_tokens);
  assert.ok(j.usage.input_tokens > 5 && j.usage.output_tokens > 0 && j.usage.output_tokens <= 10);

  const s = await post({ ...body, stream: true });
  assert.equal(s.status, 200);
  const ev = events(s.text);
  assert.deepEqual(ev.slice(0, 2).map((e) => e.event), ['response.created', 'response.in_progress']);
  assert.equal(ev.at(-1)!.event, j.status === 'incomplete' ? 'response.incomplete' : 'response.completed');
  assert.deepEqual(ev.map((e) => e.data.sequence_number), ev.map((_, i) => i));
  assert.ok(ev.every((e) => e.data.type === e.event));
  const order = ev.map((e) => e.event).filter((e) => !e.endsWith('.delta'));
  assert.deepEqual(order.slice(2, -1), ['response.output_item.added', 'response.content_part.added', 'response.output_text.done',
    'response.content_part.done', 'response.output_item.done']);
  const deltas = ev.filter((e) => e.event === 'response.output_text.delta').map((e) => e.data.delta).join('');
  assert.equal(deltas, msg.content[0].text);  // greedy: the stream says what the whole answer said
  assert.equal(ev.at(-1)!.data.response.output[0].content[0].text, msg.content[0].text);
});

const WEATHER = { type: 'function', name: 'get_weather', parameters: { type: 'object',
  properties: { city: { type: 'string', maxLength: 16 } }, required: ['city'] } };

test('tools: function_call items with arguments of the schema, whole and streamed; a call and its output as input', async () => {
  let checked = 0;
  for (const seed of [1, 2, 3]) {
    const body = { input: 'Weather in Paris?', tools: [WEATHER], tool_choice: 'required', parallel_tool_calls: false, max_output_tokens: 80, seed };
    const r = await post(body);
    assert.equal(r.status, 200, r.text);
    if (r.json.status === 'incomplete') continue;  // a call cut short is text (not the point here)
    const calls = r.json.output.filter((o: any) => o.type === 'function_call');
    assert.equal(calls.length, 1, r.text);
    assert.equal(calls[0].name, 'get_weather');
    assert.match(calls[0].call_id, /^call_/);
    assert.ok(typeof JSON.parse(calls[0].arguments).city === 'string');
    const ev = events((await post({ ...body, stream: true })).text);
    const done = ev.filter((e) => e.event === 'response.function_call_arguments.done').map((e) => e.data.arguments);
    assert.deepEqual(done, [calls[0].arguments]);
    assert.equal(ev.filter((e) => e.event === 'response.output_text.delta').length, 0);
    // the conversation goes on with the call and its result as input items
    const next = await post({ input: [{ role: 'user', content: 'Weather in Paris?' }, { type: 'function_call', call_id: calls[0].call_id,
      name: 'get_weather', arguments: calls[0].arguments }, { type: 'function_call_output', call_id: calls[0].call_id, output: '21 C' }],
    tools: [WEATHER], max_output_tokens: 5, seed });
    assert.equal(next.status, 200, next.text);
    checked++;
  }
  assert.ok(checked >= 1, 'a call finished within max_output_tokens');
});

test('text.format json_schema: the output text is JSON of the schema', async () => {
  const schema = { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'], additionalProperties: false };
  const r = await post({ input: 'Answer in JSON.', text: { format: { type: 'json_schema', name: 'a', schema, strict: true } }, max_output_tokens: 40, seed: 3 });
  assert.equal(r.status, 200, r.text);
  if (r.json.status === 'completed') assert.equal(typeof JSON.parse(r.json.output[0].content[0].text).ok, 'boolean');
  assert.deepEqual(r.json.text.format.type, 'json_schema');
});

test('include message.output_text.logprobs: the answer\'s tokens with top_logprobs alternatives, whole and streamed, equal to chat\'s', async () => {
  const body = { input: 'Name three colours.', max_output_tokens: 8, temperature: 0, include: ['message.output_text.logprobs'], top_logprobs: 3 };
  const r = await post(body);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.top_logprobs, 3);
  const part = r.json.output.at(-1).content[0];
  assert.equal(part.logprobs.length, r.json.usage.output_tokens - r.json.usage.output_tokens_details.reasoning_tokens);
  assert.equal(part.logprobs.map((l: { token: string }) => l.token).join(''), part.text, 'the tokens spell the text');
  for (const l of part.logprobs) {
    assert.ok(l.logprob <= 0 && l.top_logprobs.length === 3 && l.top_logprobs[0].logprob >= l.top_logprobs[2].logprob);
    assert.deepEqual(l.bytes, [...Buffer.from(l.token)]);
  }
  const chat = await (await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: body.input }], max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 3 }) })).json();
  assert.deepEqual(part.logprobs, chat.choices[0].logprobs.content, 'as /v1/chat/completions gives them');
  const s = events((await post({ ...body, stream: true })).text);
  const deltas = s.filter((e) => e.event === 'response.output_text.delta');
  assert.deepEqual(deltas.flatMap((e) => e.data.logprobs), part.logprobs, 'the deltas carry them in order');
  assert.deepEqual(s.at(-1)!.data.response.output.at(-1).content[0].logprobs, part.logprobs);
  const plain = await post({ ...body, include: undefined });
  assert.equal(plain.json.output.at(-1).content[0].logprobs, undefined, 'not without include');
  for (const [bad, message] of [[{ include: ['reasoning.encrypted_content'] }, /include: "reasoning.encrypted_content"/],
    [{ top_logprobs: 21 }, /`top_logprobs` must be an integer from 0 to 20/], [{ include: 'x' }, /`include` must be an array/]] as const) {
    const e = await post({ ...body, ...bad });
    assert.equal(e.status, 422, e.text);
    assert.match(e.json.error.message, message);
  }
});

test('refusals: non-function tools, unsupported input items, unknown fields', async () => {
  for (const [body, message] of [
    [{ input: 'x', tools: [{ type: 'web_search' }] }, /`tools\[0\].type` 'web_search' is not supported \(function tools only\)/],
    [{ input: [{ type: 'input_image', image_url: 'x' }] }, /`input\[0\].type` 'input_image' is not supported/],
    [{ input: 'x', frobnicate: 1 }, /unknown field `frobnicate`/],
    [{ input: [] }, /`input` cannot be empty/],
    [{}, /missing field `input`/],
  ] as const) {
    const r = await post(body);
    assert.equal(r.status, 422, r.text);
    assert.match(r.json.error.message, message);
  }
});

test('a client that leaves a response stream mid-generation frees its KV blocks', async () => {
  const ac = new AbortController();
  const res = await fetch(`${server.url}/v1/responses`, { method: 'POST', signal: ac.signal, headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ input: 'Tell me a long story about adapters.', max_output_tokens: 200, stream: true, temperature: 0,
      text: { format: { type: 'text' } } }) });
  const reader = res.body!.getReader();
  let seen = '';
  while (!seen.includes('response.output_text.delta')) seen += new TextDecoder().decode((await reader.read()).value);
  assert.ok(server.engine.stats().usedBlocks > 0, 'the response holds KV blocks while it generates');
  ac.abort();
  const deadline = Date.now() + 5000;
  while (server.engine.stats().usedBlocks > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(server.engine.stats().usedBlocks, 0, 'blocks freed after the disconnect');
});

test('stored responses: GET returns it, previous_response_id continues it exactly as sending the conversation does', async () => {
  const first = await post({ input: 'Name a color.', instructions: 'Answer in one word.', max_output_tokens: 6, temperature: 0 });
  assert.equal(first.status, 200, first.text);
  assert.equal(first.json.store, true);
  const got = await fetch(`${server.url}/v1/responses/${first.json.id}`);
  assert.equal(got.status, 200);
  assert.deepEqual(await got.json(), first.json);
  // The follow-up: the stored conversation (without the first request's instructions) comes before the new input.
  const follow = { input: 'And another?', instructions: 'Answer in one word.', max_output_tokens: 6, temperature: 0 };
  const chained = await post({ ...follow, previous_response_id: first.json.id });
  assert.equal(chained.status, 200, chained.text);
  assert.equal(chained.json.previous_response_id, first.json.id);
  const answer = first.json.output.find((i: { type: string }) => i.type === 'message');
  const whole = await post({ ...follow, input: [{ role: 'user', content: 'Name a color.' },
    { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: answer.content[0].text }] },
    { role: 'user', content: 'And another?' }] });
  assert.equal(whole.status, 200, whole.text);
  assert.equal(chained.json.usage.input_tokens, whole.json.usage.input_tokens);
  assert.ok(chained.json.usage.input_tokens > first.json.usage.input_tokens + first.json.usage.output_tokens);
  assert.deepEqual(chained.json.output.map((i: any) => i.content?.[0]?.text), whole.json.output.map((i: any) => i.content?.[0]?.text));
  // A chain of three: the second's stored conversation holds the first's.
  const third = await post({ input: 'One more.', max_output_tokens: 4, temperature: 0, previous_response_id: chained.json.id });
  assert.equal(third.status, 200, third.text);
  assert.ok(third.json.usage.input_tokens > chained.json.usage.input_tokens);
  // input_items: what the third response was generated from — the whole conversation before its output.
  const items = async (q = '') => (await fetch(`${server.url}/v1/responses/${third.json.id}/input_items${q}`)).json();
  const all = await items('?order=asc&limit=100');
  assert.deepEqual(all.data.map((i: any) => [i.type, i.role ?? null]), [['message', 'user'], ['message', 'assistant'],
    ['message', 'user'], ['message', 'assistant'], ['message', 'user']]);
  assert.deepEqual(all.data.map((i: any) => i.content?.[0]?.text), ['Name a color.', answer.content[0].text, 'And another?',
    chained.json.output.at(-1).content[0].text, 'One more.']);
  assert.ok(all.data.every((i: any) => typeof i.id === 'string') && !all.has_more);
  const page = await items('?limit=2');  // newest first by default
  assert.deepEqual([page.data.map((i: any) => i.id), page.has_more], [[all.data[4].id, all.data[3].id], true]);
  const next = await items(`?limit=2&after=${page.last_id}`);
  assert.deepEqual(next.data.map((i: any) => i.id), [all.data[2].id, all.data[1].id]);
  assert.equal((await fetch(`${server.url}/v1/responses/${third.json.id}/input_items?limit=0`)).status, 422);
  // A streamed response is stored as its completed event has it.
  const streamed = await post({ input: 'Hi', max_output_tokens: 4, temperature: 0, stream: true });
  const done = events(streamed.text).at(-1)!.data.response;
  assert.deepEqual(await (await fetch(`${server.url}/v1/responses/${done.id}`)).json(), done);
});

test('stored responses belong to the credentials that made them; DELETE; store: false keeps nothing; unknown ids are 404', async () => {
  const mine = { authorization: 'Bearer key-a' };
  const r = await post({ input: 'Hello', max_output_tokens: 3, temperature: 0 }, mine);
  assert.equal(r.status, 200, r.text);
  const url = `${server.url}/v1/responses/${r.json.id}`;
  assert.equal((await fetch(url)).status, 404, 'another caller (no credentials) does not see it');
  assert.equal((await fetch(url, { headers: { authorization: 'Bearer key-b' } })).status, 404);
  const other = await post({ input: 'x', previous_response_id: r.json.id }, { authorization: 'Bearer key-b' });
  assert.equal(other.status, 404, other.text);
  assert.match(other.json.error.message, /no stored response 'resp_[0-9a-f]+' \(the last 1024 stored responses are kept/);
  assert.equal((await fetch(url, { headers: mine })).status, 200);
  const del = await fetch(url, { method: 'DELETE', headers: mine });
  assert.deepEqual(await del.json(), { id: r.json.id, object: 'response', deleted: true });
  assert.equal((await fetch(url, { headers: mine })).status, 404);
  assert.equal((await fetch(url, { method: 'DELETE', headers: mine })).status, 404);
  const unstored = await post({ input: 'Hello', max_output_tokens: 3, temperature: 0, store: false });
  assert.equal(unstored.json.store, false);
  assert.equal((await fetch(`${server.url}/v1/responses/${unstored.json.id}`)).status, 404);
  assert.equal((await post({ input: 'x', previous_response_id: 'resp_nope' })).status, 404);
  assert.equal((await post({ input: 'x', previous_response_id: 7 })).status, 422);
});
