// The success paths of the OpenAI-compatible routes through the real server: /v1/completions and
// /v1/chat/completions, whole and streamed — exact JSON shapes, usage, finish_reason mapping, stop
// trimming, log-probs, `model` → adapter, and the sampling parameters the engine receives (vLLM's extra fields:
// http-openai-vllm.test.ts).
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { StopTrimmer } from '../../coordinator/http/openai-responses.js';
import { EOS_ID, INFO, post, renderScriptedChat, sseEvents as chunks, testServer, type TestServer } from './http-engine-double.test.js';

let s: TestServer;
before(async () => { s = await testServer(); });
after(async () => { await s.app.close(); });

const USER_HI = [{ role: 'user', content: 'hi there' }];
const last = () => s.engine.requests.at(-1)!;

/** id / created are fresh per request: checked for form, then dropped so the rest compares exactly. */
function stripHead(body: Record<string, unknown>, prefix: 'cmpl-' | 'chatcmpl-'): Record<string, unknown> {
  const { id, created, ...rest } = body;
  assert.match(String(id), new RegExp(`^${prefix}[0-9a-f-]{36}$`));
  assert.ok(Number.isInteger(created) && Math.abs((created as number) - Date.now() / 1000) < 60, `created ${created}`);
  return rest;
}

describe('POST /v1/completions', () => {
  test('whole: OpenAI text_completion shape, usage, length finish', async () => {
    const res = await post(s.app, '/v1/completions', { model: INFO.modelId, prompt: 'hello world', max_tokens: 3 });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(stripHead(res.json(), 'cmpl-'), {
      object: 'text_completion', model: INFO.modelId,
      choices: [{ index: 0, text: ' w1 w2 w3', logprobs: null, finish_reason: 'length' }],
      usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5, prompt_tokens_details: { cached_tokens: 0 } },
    });
    assert.equal(last().inputs, 'hello world');
    assert.equal(last().adapter, null);
    assert.equal(last().merge, null);
  });

  test('prompt as a one-element array; EOS → finish_reason stop, the special token adds no text', async () => {
    const res = await post(s.app, '/v1/completions', { prompt: ['say eos'], max_tokens: 10 });
    const body = res.json();
    assert.equal(body.choices[0].text, ' w1 w2');
    assert.equal(body.choices[0].finish_reason, 'stop');
    assert.deepEqual(body.usage, { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5, prompt_tokens_details: { cached_tokens: 0 } });
    assert.equal(body.model, INFO.modelId, 'no model → the base model id is echoed');
  });

  test('presence / frequency penalties reach the engine (0 is left out), also for greedy requests', async () => {
    await post(s.app, '/v1/completions', { prompt: 'hi', max_tokens: 1, presence_penalty: 0.5, frequency_penalty: -1, temperature: 0 });
    assert.deepEqual([last().sampling.presencePenalty, last().sampling.frequencyPenalty, last().sampling.doSample], [0.5, -1, false]);
    await post(s.app, '/v1/chat/completions', { messages: USER_HI, max_tokens: 1, presence_penalty: 0, frequency_penalty: 2 });
    assert.equal('presencePenalty' in last().sampling, false);
    assert.equal(last().sampling.frequencyPenalty, 2);
  });

  test('a chat prompt is tokenized without the tokenizer adding special tokens (the template writes them); completions keep them', async () => {
    await post(s.app, '/v1/chat/completions', { messages: USER_HI, max_tokens: 1 });
    assert.equal(last().templated, true);
    await post(s.app, '/v1/completions', { prompt: 'hi', max_tokens: 1 });
    assert.ok(!last().templated);
  });

  test('logit_bias reaches the engine as (token, bias) pairs by token id, zero biases left out', async () => {
    await post(s.app, '/v1/completions', { prompt: 'hi', max_tokens: 1, logit_bias: { '30': -100, '7': 2.5, '9': 0 } });
    assert.deepEqual(last().sampling.logitBias, [{ token: 7, bias: 2.5 }, { token: 30, bias: -100 }]);
    await post(s.app, '/v1/chat/completions', { messages: USER_HI, max_tokens: 1, logit_bias: {} });
    assert.equal('logitBias' in last().sampling, false);
  });

  test('ignore_eos_token (LoRAX) and ignore_eos (vLLM) reach the engine; absent means stop at EOS', async () => {
    for (const [extra, want] of [[{}, false], [{ ignore_eos: true }, true], [{ ignore_eos_token: true }, true], [{ ignore_eos: false }, false]] as const) {
      const res = await post(s.app, '/v1/completions', { prompt: 'hi', max_tokens: 2, ...extra });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(last().ignoreEos, want, JSON.stringify(extra));
    }
  });

  test('stop sequence: finish_reason stop, the text is cut before the stop sequence', async () => {
    const res = await post(s.app, '/v1/completions', { prompt: 'a', max_tokens: 10, stop: 'w3' });
    const body = res.json();
    assert.deepEqual(body.choices[0], { index: 0, text: ' w1 w2 ', logprobs: null, finish_reason: 'stop' });
    assert.deepEqual(last().stop, ['w3']);
    assert.equal(body.usage.completion_tokens, 3);
  });

  test('logprobs n → top-n alternatives per token, offsets into the text', async () => {
    const res = await post(s.app, '/v1/completions', { prompt: 'a', max_tokens: 2, logprobs: 2 });
    assert.equal(last().topN, 2);
    assert.deepEqual(res.json().choices[0].logprobs, {
      tokens: [' w1', ' w2'],
      token_logprobs: [-0.5, -0.5],
      top_logprobs: [{ t0: -0.25, t1: -1.25 }, { t0: -0.25, t1: -1.25 }],
      text_offset: [0, 3],
    });
  });

  test('logprobs 0 → token log-probs without alternatives', async () => {
    const res = await post(s.app, '/v1/completions', { prompt: 'a', max_tokens: 1, logprobs: 0 });
    assert.equal(last().topN, 0);
    assert.deepEqual(res.json().choices[0].logprobs, { tokens: [' w1'], token_logprobs: [-0.5], top_logprobs: [{}], text_offset: [0] });
  });

  test('streamed: a chunk per token, a finish chunk, then [DONE]', async () => {
    const res = await post(s.app, '/v1/completions', { prompt: 'a', max_tokens: 2, stream: true });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'text/event-stream');
    assert.equal(res.headers['cache-control'], 'no-cache');
    const events = chunks(res.body);
    assert.equal(events.at(-1), '[DONE]');
    const json = events.slice(0, -1) as Record<string, unknown>[];
    const ids = new Set(json.map((c) => c.id));
    assert.equal(ids.size, 1, 'every chunk has the same id');
    assert.deepEqual(json.map((c) => stripHead(c, 'cmpl-')), [
      { object: 'text_completion', model: INFO.modelId, choices: [{ index: 0, text: ' w1', logprobs: null, finish_reason: null }] },
      { object: 'text_completion', model: INFO.modelId, choices: [{ index: 0, text: ' w2', logprobs: null, finish_reason: null }] },
      { object: 'text_completion', model: INFO.modelId, choices: [{ index: 0, text: '', logprobs: null, finish_reason: 'length' }] },
    ]);
  });

  test('streamed with include_usage: usage null on every chunk, then a usage chunk with no choices', async () => {
    const res = await post(s.app, '/v1/completions', { prompt: 'x y z', max_tokens: 2, stream: true, stream_options: { include_usage: true } });
    const json = chunks(res.body).slice(0, -1) as Record<string, unknown>[];
    assert.deepEqual(json.slice(0, -1).map((c) => c.usage), [null, null, null]);
    assert.deepEqual(stripHead(json.at(-1)!, 'cmpl-'), {
      object: 'text_completion', model: INFO.modelId, choices: [],
      usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5, prompt_tokens_details: { cached_tokens: 1 } },
    });
  });

  test('streamed stop sequence: no part of it is ever sent', async () => {
    const res = await post(s.app, '/v1/completions', { prompt: 'a', max_tokens: 10, stop: ['w3'], stream: true });
    const json = chunks(res.body).slice(0, -1) as { choices: { text: string; finish_reason: string | null }[] }[];
    assert.equal(json.map((c) => c.choices[0].text).join(''), ' w1 w2 ');
    assert.equal(json.at(-1)!.choices[0].finish_reason, 'stop');
  });

  test('streamed logprobs: each token chunk carries its own, with absolute offsets', async () => {
    const res = await post(s.app, '/v1/completions', { prompt: 'a', max_tokens: 2, logprobs: 1, stream: true });
    const json = chunks(res.body).slice(0, -1) as { choices: { logprobs: { text_offset: number[] } | null }[] }[];
    assert.deepEqual(json.map((c) => c.choices[0].logprobs?.text_offset ?? null), [[0], [3], null]);
  });
});

describe('POST /v1/chat/completions', () => {
  test('whole: chat.completion shape; messages rendered with the chat template', async () => {
    const messages = [{ role: 'system', content: 'be brief' }, ...USER_HI];
    const res = await post(s.app, '/v1/chat/completions', { model: '', messages, max_tokens: 2 });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(stripHead(res.json(), 'chatcmpl-'), {
      object: 'chat.completion', model: INFO.modelId,
      choices: [{ index: 0, message: { role: 'assistant', content: ' w1 w2' }, logprobs: null, finish_reason: 'length' }],
      usage: { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9, prompt_tokens_details: { cached_tokens: 5 } },
    });
    assert.equal(last().inputs, renderScriptedChat([{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi there' }]));
  });

  test('content parts are joined; developer is system; assistant turns and names pass', async () => {
    await post(s.app, '/v1/chat/completions', {
      messages: [
        { role: 'developer', content: 'rules' },
        { role: 'user', name: 'ann', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] },
        { role: 'assistant', content: 'ok', refusal: null, tool_calls: null },
        { role: 'user', content: 'go' },
      ],
      max_tokens: 1,
    });
    assert.equal(last().inputs, renderScriptedChat([
      { role: 'system', content: 'rules' }, { role: 'user', content: 'ab' }, { role: 'assistant', content: 'ok' }, { role: 'user', content: 'go' },
    ]));
  });

  test('logprobs + top_logprobs: OpenAI content entries with bytes', async () => {
    const res = await post(s.app, '/v1/chat/completions', { messages: USER_HI, max_tokens: 1, logprobs: true, top_logprobs: 1 });
    assert.equal(last().topN, 1);
    assert.deepEqual(res.json().choices[0].logprobs, {
      content: [{ token: ' w1', logprob: -0.5, bytes: [32, 119, 49], top_logprobs: [{ token: 't0', logprob: -0.25, bytes: [116, 48] }] }],
      refusal: null,
    });
  });

  test('logprobs false → logprobs null and no alternatives asked of the engine', async () => {
    const res = await post(s.app, '/v1/chat/completions', { messages: USER_HI, max_tokens: 1, logprobs: false });
    assert.equal(res.json().choices[0].logprobs, null);
    assert.equal(last().topN, 0);
  });

  test('streamed: role chunk, content chunks, an empty-delta finish chunk, usage, [DONE]', async () => {
    const res = await post(s.app, '/v1/chat/completions', {
      model: 'support', messages: USER_HI, max_tokens: 10, stop: ['w3'], stream: true, stream_options: { include_usage: true },
    });
    const events = chunks(res.body);
    assert.equal(events.at(-1), '[DONE]');
    const json = (events.slice(0, -1) as Record<string, unknown>[]).map((c) => stripHead(c, 'chatcmpl-'));
    const choice = (delta: object, finish: string | null) => ({
      object: 'chat.completion.chunk', model: 'support', choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], usage: null,
    });
    assert.deepEqual(json, [
      choice({ role: 'assistant', content: '' }, null),
      choice({ content: ' w1' }, null),
      choice({ content: ' w2' }, null),
      choice({ content: ' ' }, null),
      choice({}, 'stop'),
      { object: 'chat.completion.chunk', model: 'support', choices: [], usage: { prompt_tokens: 4, completion_tokens: 3, total_tokens: 7, prompt_tokens_details: { cached_tokens: 2 } } },
    ]);
  });

  test('streamed without include_usage: no usage key at all', async () => {
    const res = await post(s.app, '/v1/chat/completions', { messages: USER_HI, max_tokens: 1, stream: true });
    const json = chunks(res.body).slice(0, -1) as Record<string, unknown>[];
    assert.equal(json.length, 3);
    assert.ok(json.every((c) => !('usage' in c)));
  });

  test('streamed EOS: the special token sends no chunk; finish_reason stop', async () => {
    const res = await post(s.app, '/v1/chat/completions', { messages: [{ role: 'user', content: 'eos' }], max_tokens: 9, stream: true });
    const json = chunks(res.body).slice(0, -1) as { choices: { delta: { content?: string }; finish_reason: string | null }[] }[];
    assert.deepEqual(json.map((c) => c.choices[0].delta.content ?? null), ['', ' w1', ' w2', null]);
    assert.equal(json.at(-1)!.choices[0].finish_reason, 'stop');
  });

  test('streamed logprobs: one content entry per token chunk', async () => {
    const res = await post(s.app, '/v1/chat/completions', { messages: USER_HI, max_tokens: 2, stream: true, logprobs: true });
    const json = chunks(res.body).slice(0, -1) as { choices: { logprobs: { content: { token: string }[] } | null }[] }[];
    assert.deepEqual(json.map((c) => c.choices[0].logprobs?.content.map((e) => e.token) ?? null), [null, [' w1'], [' w2'], null]);
  });
});

describe('model → adapter, parameters → engine request', () => {
  test('a preloaded name maps to its ref; the bearer token rides along; model echoed as sent', async () => {
    const res = await post(s.app, '/v1/completions', { model: 'support', prompt: 'a', max_tokens: 1 }, { authorization: 'Bearer tok-9' });
    assert.equal(res.json().model, 'support');
    assert.deepEqual(last().adapter, { id: 'org/support-lora', source: 'local', apiToken: 'tok-9' });
  });

  test('any other model is an adapter id in the default source; api_token wins over the bearer', async () => {
    await post(s.app, '/v1/chat/completions', { model: 'org/x', messages: USER_HI, max_tokens: 1, api_token: 'tok-1' }, { authorization: 'Bearer tok-2' });
    assert.deepEqual(last().adapter, { id: 'org/x', source: 'hub', apiToken: 'tok-1' });
  });

  test('adapter_source makes model an adapter id in that source', async () => {
    await post(s.app, '/v1/completions', { model: 'support', adapter_source: 's3', prompt: 'a', max_tokens: 1 });
    assert.deepEqual(last().adapter, { id: 'support', source: 's3' });
    await post(s.app, '/v1/completions', { model: INFO.modelId, adapter_source: 's3', prompt: 'a', max_tokens: 1 });
    assert.equal(last().adapter, null, 'the base model stays the base model');
  });

  test('OpenAI sampling: default temperature 1 samples with a chosen seed; 0 is greedy', async () => {
    await post(s.app, '/v1/completions', { prompt: 'a', max_tokens: 1 });
    const sampled = last().sampling;
    assert.equal(sampled.doSample, true);
    assert.equal(sampled.temperature, 1);
    assert.ok(Number.isSafeInteger(sampled.seed));
    await post(s.app, '/v1/completions', { prompt: 'a', max_tokens: 1, temperature: 0, top_p: 0.5, seed: 7 });
    assert.deepEqual(last().sampling, { temperature: 1, topK: 0, topP: 1, typicalP: 1, repetitionPenalty: 1, doSample: false, seed: 7 });
  });

  test('temperature, top_p, top_k, repetition_penalty, seed and max_tokens reach the engine', async () => {
    await post(s.app, '/v1/chat/completions', {
      messages: USER_HI, temperature: 1.5, top_p: 0.9, top_k: 40, repetition_penalty: 1.1, seed: 3, max_completion_tokens: 4,
    });
    assert.deepEqual(last().sampling, { temperature: 1.5, topK: 40, topP: 0.9, typicalP: 1, repetitionPenalty: 1.1, doSample: true, seed: 3 });
    assert.equal(last().maxNewTokens, 4);
    assert.equal(last().promptLogprobs, false);
  });

  test('max_tokens default: 100 (as the TGI routes)', async () => {
    await post(s.app, '/v1/completions', { prompt: 'a' });
    assert.equal(last().maxNewTokens, 100);
  });

  test('neutral values of unsupported OpenAI keys are accepted', async () => {
    const res = await post(s.app, '/v1/chat/completions', {
      messages: USER_HI, max_tokens: 1, n: 1, presence_penalty: 0, frequency_penalty: 0, logit_bias: {}, user: 'u-1',
      tools: [], tool_choice: 'none', parallel_tool_calls: true, response_format: { type: 'text' }, store: false,
      functions: [], function_call: 'none',
      metadata: {}, service_tier: 'auto', modalities: ['text'], stream: false, stream_options: null, seed: null,
    });
    assert.equal(res.statusCode, 200, res.body);
    const done = await post(s.app, '/v1/completions', { prompt: 'a', max_tokens: 1, best_of: 1, echo: false, suffix: '', n: null });
    assert.equal(done.statusCode, 200, done.body);
  });

  test('tools: offered in a system message, the history\'s calls and results rendered as text, the answer constrained', async () => {
    const tools = [{ type: 'function', function: { name: 'now', description: 'The time', parameters: { type: 'object', properties: {} } } }];
    const res = await post(s.app, '/v1/chat/completions', { max_tokens: 4, tools, tool_choice: 'required', messages: [
      { role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Time?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'now', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '12:00' }] });
    assert.equal(res.statusCode, 200, res.body);
    const inputs = last().inputs;
    assert.match(inputs, /Be brief\.\n\nYou can call these functions:\n\{"name":"now","description":"The time"/);
    assert.match(inputs, /\{"name":"now","arguments":\{\}\}/);
    assert.match(inputs, /Result of function now \(call_1\):\n12:00/);
    assert.ok(last().constraint?.pattern.startsWith('(?:(?:\\{"name":'), 'required: calls only');
    await post(s.app, '/v1/chat/completions', { max_tokens: 4, tools, messages: USER_HI });
    assert.ok(last().constraint?.pattern.startsWith('(?:[^{[]'), 'auto: text or calls');
    assert.match(last().inputs, /or a JSON array of such objects to call several/);
    await post(s.app, '/v1/chat/completions', { max_tokens: 4, tools, tool_choice: 'required', parallel_tool_calls: false, messages: USER_HI });
    const single = last().constraint!.pattern;
    assert.doesNotMatch(last().inputs, /array of such objects/);
    await post(s.app, '/v1/chat/completions', { max_tokens: 4, tools, tool_choice: 'required', messages: USER_HI });
    assert.ok(last().constraint?.pattern === `(?:${single}|\\[${single}(?:, ?${single})*\\])`, 'parallel: one call, or an array of them');
    // A function without parameters (omitted, or an object schema declaring none) takes exactly {}.
    assert.equal(single, '(?:\\{"name": ?"now", ?"arguments": ?\\{\\}\\})');
    await post(s.app, '/v1/chat/completions', { max_tokens: 4, tool_choice: 'required', parallel_tool_calls: false, messages: USER_HI,
      tools: [{ type: 'function', function: { name: 'now' } }] });
    assert.equal(last().constraint?.pattern, single);
    await post(s.app, '/v1/chat/completions', { max_tokens: 4, tool_choice: 'required', parallel_tool_calls: false, messages: USER_HI,
      tools: [{ type: 'function', function: { name: 'now', parameters: { type: 'object', properties: { x: { type: 'integer' } } } } }] });
    assert.notEqual(last().constraint?.pattern, single);
    await post(s.app, '/v1/chat/completions', { max_tokens: 4, tools, tool_choice: 'none', messages: USER_HI });
    assert.equal(last().constraint, undefined);
    assert.doesNotMatch(last().inputs, /You can call/);
  });

  test('legacy functions / function_call: the same constraint as one tool without parallel calls; function messages rendered', async () => {
    const fn = { name: 'now', description: 'The time', parameters: { type: 'object', properties: { tz: { type: 'string' } } } };
    await post(s.app, '/v1/chat/completions', { max_tokens: 4, messages: USER_HI, tool_choice: 'required', parallel_tool_calls: false,
      tools: [{ type: 'function', function: fn }] });
    const asTool = last().constraint!.pattern;
    const res = await post(s.app, '/v1/chat/completions', { max_tokens: 4, functions: [fn], function_call: { name: 'now' }, messages: [
      { role: 'user', content: 'Time?' },
      { role: 'assistant', content: null, function_call: { name: 'now', arguments: '{"tz":"UTC"}' } },
      { role: 'function', name: 'now', content: '12:00' }] });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(last().constraint?.pattern, asTool, 'named function: one call of it, no array');
    assert.match(last().inputs, /You can call these functions:\n\{"name":"now","description":"The time"/);
    assert.doesNotMatch(last().inputs, /array of such objects/);
    assert.match(last().inputs, /\{"name":"now","arguments":\{"tz":"UTC"\}\}/);
    assert.match(last().inputs, /Result of function now:\n12:00/);
    await post(s.app, '/v1/chat/completions', { max_tokens: 4, functions: [fn], messages: USER_HI });
    assert.ok(last().constraint?.pattern.startsWith('(?:[^{[]'), 'function_call defaults to auto');
    await post(s.app, '/v1/chat/completions', { max_tokens: 4, functions: [fn], function_call: 'none', messages: USER_HI });
    assert.equal(last().constraint, undefined);
    // What some clients always send beside tools: an empty functions list and function_call "auto".
    const both = await post(s.app, '/v1/chat/completions', { max_tokens: 4, functions: [], function_call: 'auto', messages: USER_HI,
      tools: [{ type: 'function', function: fn }] });
    assert.equal(both.statusCode, 200, both.body);
    assert.match(last().inputs, /array of such objects/, 'the tools, with parallel calls');
  });

  test('the request id reaches the engine; x-request-id is echoed', async () => {
    const res = await post(s.app, '/v1/completions', { prompt: 'a', max_tokens: 1 }, { 'x-request-id': 'oa-1' });
    assert.equal(res.headers['x-request-id'], 'oa-1');
    assert.equal(last().requestId, 'oa-1');
    assert.equal(EOS_ID, INFO.eosTokenIds[0]);
  });
});

describe('client disconnect', () => {
  let url = '';
  before(async () => { url = await s.app.listen({ port: 0, host: '127.0.0.1' }); });

  /** Sends a request over a real socket and drops it at the first byte (streamed) or after `ms`. */
  async function dropped(path: string, body: object, requestId: string, ms?: number): Promise<void> {
    s.engine.tokenDelayMs = 20;
    try {
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': requestId } }, (res) => {
          res.once('data', () => { if (ms === undefined) req.destroy(); });
          res.on('error', () => undefined);
        });
        req.on('error', () => undefined);
        req.on('close', () => resolve());
        req.end(JSON.stringify(body));
        if (ms !== undefined) setTimeout(() => req.destroy(), ms);
        setTimeout(() => reject(new Error('request did not close')), 5000);
      });
      const deadline = Date.now() + 3000;
      while (!s.engine.aborted.includes(requestId) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    } finally {
      s.engine.tokenDelayMs = 0;
    }
  }

  test('closing a stream mid-way aborts the engine request', async () => {
    await dropped('/v1/chat/completions', { messages: USER_HI, max_tokens: 60, stream: true }, 'oa-gone-stream');
    assert.ok(s.engine.aborted.includes('oa-gone-stream'), 'engine saw the abort');
    assert.equal(s.engine.inFlight, 0);
  });

  test('closing a pending whole completion aborts the engine request', async () => {
    await dropped('/v1/completions', { prompt: 'a', max_tokens: 60 }, 'oa-gone-plain', 100);
    assert.ok(s.engine.aborted.includes('oa-gone-plain'), 'engine saw the abort');
  });
});

describe('StopTrimmer', () => {
  test('holds back a possible stop prefix and releases it when it is not one', () => {
    const t = new StopTrimmer(['END']);
    assert.equal(t.push('abc E'), 'abc ');
    assert.equal(t.push('N'), '');
    assert.equal(t.push('x'), 'ENx');
    assert.equal(t.push('yEND more'), 'y');
    assert.equal(t.stopped, true);
    assert.equal(t.push('zzz'), '');
  });

  test('the earliest of several stops wins; finish adds text no token carried', () => {
    const t = new StopTrimmer(['bb', 'a']);
    assert.equal(t.push('xxb'), 'xx');
    assert.equal(t.finish('xxbza'), 'bz');
    assert.equal(new StopTrimmer([]).finish('all of it'), 'all of it');
    assert.equal(new StopTrimmer(['<']).finish('ab<cd'), 'ab');
  });

  test('min_tokens: the first min_tokens - 1 tokens are never cut; from the min_tokens-th token on a stop counts', () => {
    const t = new StopTrimmer(['x'], 3);
    assert.equal(t.push('ax'), 'ax', 'token 1: a stop here does not count');
    assert.equal(t.push(''), '', 'token 2: a special token counts too');
    assert.equal(t.push('bxc'), 'b', 'token 3 reaches min_tokens: cut at its stop');
    assert.ok(t.stopped);
    const inc = new StopTrimmer(['END', 'x'], 0, true);
    assert.equal(inc.push('abc E'), 'abc ');
    assert.equal(inc.push('ND and x'), 'END', 'include_stop_str_in_output: the stop stays, nothing after it');
    const u = new StopTrimmer(['x'], 2);
    assert.equal(u.push('x'), 'x');
    assert.equal(u.finish('xyz'), 'yz', 'the final text is not a token: nothing more to cut');
  });
});
