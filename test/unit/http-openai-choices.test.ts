// The OpenAI routes' multi-sequence and scoring paths through the real server: n choices, echo (the prompt scored
// with logprobs), token-id prompts, batches of prompts, and the model listing. (Single-sequence shapes:
// http-openai.test.ts.)
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { INFO, post, sseEvents as chunks, testServer, type TestServer } from './http-engine-double.test.js';

let s: TestServer;
before(async () => { s = await testServer(); });
after(async () => { await s.app.close(); });

const USER_HI = [{ role: 'user', content: 'hi there' }];
const last = () => s.engine.requests.at(-1)!;

describe('n > 1: one sequence per choice', () => {
  test('whole: n choices in index order, seeds seed+i, completion tokens summed, prompt counted once', async () => {
    const res = await post(s.app, '/v1/completions', { prompt: 'x y z', max_tokens: 2, n: 3, seed: 40 });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    assert.deepEqual(body.choices.map((c: { index: number; text: string }) => [c.index, c.text]), [[0, ' w1 w2'], [1, ' w1 w2'], [2, ' w1 w2']]);
    assert.deepEqual(body.usage, { prompt_tokens: 3, completion_tokens: 6, total_tokens: 9, prompt_tokens_details: { cached_tokens: 1 } });
    assert.deepEqual(s.engine.requests.slice(-3).map((r) => r.sampling.seed).sort(), [40, 41, 42]);
    const chat = (await post(s.app, '/v1/chat/completions', { messages: USER_HI, max_tokens: 1, n: 2 })).json();
    assert.deepEqual(chat.choices.map((c: { index: number; message: { role: string } }) => [c.index, c.message.role]), [[0, 'assistant'], [1, 'assistant']]);
  });

  test('streamed: every choice\'s chunks carry its index, each choice finishes, one usage chunk, one [DONE]', async () => {
    const res = await post(s.app, '/v1/chat/completions', { messages: USER_HI, max_tokens: 2, n: 2, stream: true, stream_options: { include_usage: true } });
    const events = chunks(res.body);
    assert.equal(events.at(-1), '[DONE]');
    assert.equal(events.filter((e) => e === '[DONE]').length, 1);
    const json = events.slice(0, -1) as { choices: { index: number; delta: { role?: string; content?: string }; finish_reason: string | null }[]; usage: unknown }[];
    for (const index of [0, 1]) {
      const mine = json.flatMap((c) => c.choices.filter((ch) => ch.index === index));
      assert.equal(mine[0]!.delta.role, 'assistant');
      assert.equal(mine.map((ch) => ch.delta.content ?? '').join(''), ' w1 w2');
      assert.deepEqual(mine.map((ch) => ch.finish_reason).filter((f) => f !== null), ['length']);
    }
    assert.deepEqual(json.at(-1)!.usage, { prompt_tokens: 4, completion_tokens: 4, total_tokens: 8, prompt_tokens_details: { cached_tokens: 2 } });
  });

  test('a choice that cannot start fails the request and cancels the others', async () => {
    const res = await post(s.app, '/v1/completions', { prompt: 'a', max_tokens: 2, n: INFO.maxConcurrentRequests + 1 });
    assert.equal(res.statusCode, 429, res.body);
    assert.equal(res.json().error.code, 'overloaded');
    for (let i = 0; i < 50 && s.engine.inFlight > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(s.engine.inFlight, 0, 'the choices that started were released');
  });
});

describe('echo (completions): the prompt before the completion, scored with logprobs', () => {
  test('echo alone: the text starts with the prompt; no prompt log-probs are asked for', async () => {
    const body = (await post(s.app, '/v1/completions', { prompt: 'a b', max_tokens: 2, echo: true })).json();
    assert.equal(body.choices[0].text, 'a b w1 w2');
    assert.equal(last().promptLogprobs, false);
  });

  test('echo + logprobs: prompt tokens first (the first with null log-prob and alternatives), then the completion', async () => {
    const body = (await post(s.app, '/v1/completions', { prompt: 'a bb', max_tokens: 1, echo: true, logprobs: 1 })).json();
    assert.equal(last().promptLogprobs, true);
    assert.equal(last().topN, 1);
    assert.deepEqual(body.choices[0].logprobs, {
      tokens: ['a', ' bb', ' w1'],
      token_logprobs: [null, -1.1, -0.5],
      top_logprobs: [null, { alt: -0.1 }, { t0: -0.25 }],
      text_offset: [0, 1, 4],
    });
    assert.equal(body.choices[0].text, 'a bb w1');
  });

  test('max_tokens 0 with echo scores the prompt only; without echo it is refused', async () => {
    const body = (await post(s.app, '/v1/completions', { prompt: 'a bb', max_tokens: 0, echo: true, logprobs: 0 })).json();
    assert.equal(last().maxNewTokens, 1, 'one token is computed and dropped');
    assert.equal(body.choices[0].text, 'a bb');
    assert.equal(body.choices[0].finish_reason, 'length');
    assert.deepEqual(body.choices[0].logprobs.token_logprobs, [null, -1.1]);
    assert.equal(body.usage.completion_tokens, 0);
    const refused = await post(s.app, '/v1/completions', { prompt: 'a', max_tokens: 0 });
    assert.equal(refused.statusCode, 422);
    assert.match(refused.json().error.message, /`max_tokens` must be strictly positive \(0 only with `echo`\)/);
  });

  test('streamed echo: the first chunk is the prompt (with its log-probs), then the completion', async () => {
    const res = await post(s.app, '/v1/completions', { prompt: 'a bb', max_tokens: 2, echo: true, logprobs: 0, stream: true });
    const json = chunks(res.body).slice(0, -1) as { choices: { text: string; logprobs: { token_logprobs: (number | null)[] } | null }[] }[];
    assert.equal(json[0]!.choices[0]!.text, 'a bb');
    assert.deepEqual(json[0]!.choices[0]!.logprobs!.token_logprobs, [null, -1.1]);
    assert.equal(json.map((c) => c.choices[0]!.text).join(''), 'a bb w1 w2');
  });
});

test('token-id prompts ([ids] or [[ids]]) go to the engine as ids; echo returns their text', async () => {
  const body = (await post(s.app, '/v1/completions', { prompt: [5, 6, 7], max_tokens: 1 })).json();
  assert.deepEqual(last().inputIds, [5, 6, 7]);
  assert.equal(body.usage.prompt_tokens, 3);
  await post(s.app, '/v1/completions', { prompt: [[8, 9]], max_tokens: 1 });
  assert.deepEqual(last().inputIds, [8, 9]);
  const echoed = (await post(s.app, '/v1/completions', { prompt: [5, 6], max_tokens: 1, echo: true })).json();
  assert.equal(echoed.choices[0].text, 't5 t6 w1');
});

test('GET /v1/models lists the base model and the preloaded adapter names; /v1/models/{id} one of them or a 404', async () => {
  const list = await s.app.inject({ method: 'GET', url: '/v1/models' });
  assert.equal(list.statusCode, 200, list.body);
  const body = list.json() as { object: string; data: { id: string; object: string; owned_by: string; parent?: string; created: number }[] };
  assert.equal(body.object, 'list');
  assert.deepEqual(body.data.map((m) => [m.id, m.parent ?? null]), [['scripted/echo', null], ['support', 'scripted/echo']]);
  assert.ok(body.data.every((m) => m.object === 'model' && m.owned_by === 'weft' && Number.isInteger(m.created)));
  assert.deepEqual(body.data.map((m) => (m as { max_model_len?: number }).max_model_len), [s.engine.info.maxTotalTokens, s.engine.info.maxTotalTokens]);
  const one = await s.app.inject({ method: 'GET', url: '/v1/models/support' });
  assert.equal(one.statusCode, 200);
  assert.equal((one.json() as { parent: string }).parent, 'scripted/echo');
  const missing = await s.app.inject({ method: 'GET', url: '/v1/models/nope' });
  assert.equal(missing.statusCode, 404);
  assert.match((missing.json() as { error: { message: string } }).error.message, /model 'nope' is not listed here/);
});

test('a batch of prompts: n choices per prompt, prompt by prompt; usage counts each prompt once; streamed alike', async () => {
  // 2 prompts x n 2: the scripted engine takes 4 requests at once.
  const prompts = ['say one thing', [5, 6, 7]];
  const alone: { choices: { text: string }[]; usage: { prompt_tokens: number } }[] = [];
  for (const prompt of prompts) alone.push((await post(s.app, '/v1/completions', { prompt, max_tokens: 3, seed: 5, temperature: 0.8, echo: true })).json());
  const before = s.engine.requests.length;
  const res = await post(s.app, '/v1/completions', { prompt: prompts, n: 2, max_tokens: 3, seed: 5, temperature: 0.8, echo: true });
  assert.equal(res.statusCode, 200, res.body);
  const body = res.json();
  assert.equal(body.choices.length, 4);
  const reqs = s.engine.requests.slice(before);
  assert.deepEqual(reqs.map((r) => r.inputIds ?? r.inputs), ['say one thing', 'say one thing', [5, 6, 7], [5, 6, 7]]);
  assert.deepEqual(reqs.map((r) => r.sampling.seed), [5, 6, 5, 6]);
  body.choices.forEach((c: { index: number; text: string }, i: number) => {
    assert.equal(c.index, i);
    if (i % 2 === 0) assert.equal(c.text, alone[i / 2]!.choices[0]!.text, `choice ${i} (seed 5) == its prompt alone`);
  });
  const promptTokens = alone.reduce((n, a) => n + a.usage.prompt_tokens, 0);
  assert.equal(body.usage.prompt_tokens, promptTokens);
  const streamed = await post(s.app, '/v1/completions', { prompt: prompts, n: 2, max_tokens: 3, seed: 5, temperature: 0.8, echo: true,
    stream: true, stream_options: { include_usage: true } });
  const frames = streamed.body.split('\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)));
  for (let i = 0; i < 4; i++) {
    const text = frames.filter((f) => f.choices[0]?.index === i).map((f) => f.choices[0].text).join('');
    assert.equal(text, body.choices[i].text, `streamed choice ${i}`);
  }
  assert.equal(frames.at(-1).usage.prompt_tokens, promptTokens);
});
