// The success paths of the TGI routes through the real server: /generate (details, prefill, top
// tokens, return_full_text), /generate_stream (SSE framing and order), POST /, /tokenize, /health,
// /info and request ids.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { EOS_ID, post, renderScriptedChat, sseEvents, testServer, type TestServer } from './http-engine-double.test.js';

let s: TestServer;
before(async () => { s = await testServer(); });
after(async () => { await s.app.close(); });

interface StreamEvent {
  index: number;
  token: { id: number; text: string; logprob: number; special: boolean } | null;
  top_tokens?: { id: number; text: string; logprob: number; special: boolean }[];
  generated_text: string | null;
  details: Record<string, unknown> | null;
  error?: string;
  error_type?: string;
}

describe('POST /generate', () => {
  test('plain: only generated_text', async () => {
    const res = await post(s.app, '/generate', { inputs: 'hello world', parameters: { max_new_tokens: 3 } });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json(), { generated_text: ' w1 w2 w3' });
    assert.equal(res.headers['x-prompt-tokens'], '2');
    assert.equal(res.headers['x-generated-tokens'], '3');
  });

  test('details: TGI fields, tokens, empty prefill, null seed when greedy', async () => {
    const res = await post(s.app, '/generate', { inputs: 'hello world', parameters: { max_new_tokens: 2, details: true } });
    assert.deepEqual(res.json(), {
      generated_text: ' w1 w2',
      details: {
        finish_reason: 'length', prompt_tokens: 2, generated_tokens: 2, seed: null, prefill: [],
        tokens: [
          { id: 101, text: ' w1', logprob: -0.5, special: false },
          { id: 102, text: ' w2', logprob: -0.5, special: false },
        ],
      },
    });
  });

  test('decoder_input_details: prefill with a null first logprob (implies details)', async () => {
    const res = await post(s.app, '/generate', { inputs: 'hi there', parameters: { max_new_tokens: 1, decoder_input_details: true } });
    const details = res.json().details;
    assert.deepEqual(details.prefill, [{ id: 12, text: 'hi', logprob: null }, { id: 15, text: 'there', logprob: -1.1 }]);
    assert.equal(s.engine.requests.at(-1)?.promptLogprobs, true);
  });

  test('top_n_tokens: top_tokens per generated token; EOS alternatives marked special', async () => {
    const res = await post(s.app, '/generate', { inputs: 'a', parameters: { max_new_tokens: 2, details: true, top_n_tokens: 2 } });
    const top = res.json().details.top_tokens;
    assert.equal(top.length, 2);
    assert.deepEqual(top[0], [
      { id: EOS_ID, text: 't0', logprob: -0.25, special: true },
      { id: 102, text: 't1', logprob: -1.25, special: false },
    ]);
  });

  test('return_k_alternatives (LoRAX): alternative_tokens on each token, no top_tokens unless top_n_tokens asks', async () => {
    const res = await post(s.app, '/generate', { inputs: 'a', parameters: { max_new_tokens: 2, details: true, return_k_alternatives: 2 } });
    const details = res.json().details;
    assert.equal(s.engine.requests.at(-1)?.topN, 2);
    assert.equal(details.top_tokens, undefined);
    assert.deepEqual(details.tokens[0].alternative_tokens, [{ id: EOS_ID, text: 't0', logprob: -0.25 }, { id: 102, text: 't1', logprob: -1.25 }]);
    const both = await post(s.app, '/generate', { inputs: 'a', parameters: { max_new_tokens: 2, details: true, return_k_alternatives: 1, top_n_tokens: 2 } });
    assert.equal(s.engine.requests.at(-1)?.topN, 2, 'one top list of the larger size');
    assert.equal(both.json().details.tokens[0].alternative_tokens.length, 1);
    assert.equal(both.json().details.top_tokens[0].length, 2);
    const plain = await post(s.app, '/generate', { inputs: 'a', parameters: { max_new_tokens: 2, details: true, top_n_tokens: 2 } });
    assert.equal(plain.json().details.tokens[0].alternative_tokens, undefined, 'TGI token objects stay as TGI has them');
    const streamed = await post(s.app, '/generate_stream', { inputs: 'p', parameters: { max_new_tokens: 2, return_k_alternatives: 1 } });
    const events = sseEvents(streamed.body) as StreamEvent[];
    assert.deepEqual(events.map((e) => (e.token as { alternative_tokens?: unknown[] }).alternative_tokens?.length), [1, 1]);
    assert.ok(events.every((e) => e.top_tokens === undefined));
  });

  test('return_full_text prepends the prompt; eos finish keeps the special token text', async () => {
    const res = await post(s.app, '/generate', { inputs: 'say eos', parameters: { max_new_tokens: 10, return_full_text: true, details: true } });
    const body = res.json();
    assert.equal(body.generated_text, 'say eos w1 w2');
    assert.equal(body.details.finish_reason, 'eos_token');
    assert.deepEqual(body.details.tokens.at(-1), { id: EOS_ID, text: '</s>', logprob: -0.5, special: true });
  });

  test('stop sequence ends the request; sampling reports the chosen seed', async () => {
    const res = await post(s.app, '/generate', { inputs: 'a', parameters: { max_new_tokens: 10, stop: ['w2'], temperature: 0.8, details: true } });
    const body = res.json();
    assert.equal(body.details.finish_reason, 'stop_sequence');
    const sent = s.engine.requests.at(-1)!;
    assert.equal(sent.sampling.doSample, true);
    assert.equal(body.details.seed, sent.sampling.seed);
    assert.ok(Number.isSafeInteger(body.details.seed));
  });

  test('the engine receives the validated request, adapter and request id', async () => {
    await post(s.app, '/generate', { inputs: 'x y', parameters: { adapter_id: 'org/a', adapter_source: 's3', max_new_tokens: 1, top_k: 4, seed: 9 } },
      { 'x-request-id': 'req-42' });
    const req = s.engine.requests.at(-1)!;
    assert.equal(req.requestId, 'req-42');
    assert.deepEqual(req.adapter, { id: 'org/a', source: 's3' });
    assert.deepEqual(req.sampling, { temperature: 1, topK: 4, topP: 1, typicalP: 1, repetitionPenalty: 1, doSample: true, seed: 9 });
  });
});

describe('POST /generate_stream', () => {
  test('one event per token; the last carries generated_text and details (when asked)', async () => {
    const res = await post(s.app, '/generate_stream', { inputs: 'hello world', parameters: { max_new_tokens: 3, details: true } });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'text/event-stream');
    assert.equal(res.headers['cache-control'], 'no-cache');
    assert.match(res.body, /^data: \{"index":1,"token":/);
    const events = sseEvents(res.body) as StreamEvent[];
    assert.deepEqual(events.map((e) => e.index), [1, 2, 3]);
    assert.deepEqual(events.map((e) => e.token?.id), [101, 102, 103]);
    assert.deepEqual(events.slice(0, 2).map((e) => [e.generated_text, e.details]), [[null, null], [null, null]]);
    assert.equal(events[2].generated_text, ' w1 w2 w3');
    assert.deepEqual(events[2].details, { finish_reason: 'length', prompt_tokens: 2, generated_tokens: 3, seed: null });
    assert.equal(events.map((e) => e.token?.text).join(''), events[2].generated_text);
  });

  test('without details the last event has details null (TGI); return_full_text applies', async () => {
    const res = await post(s.app, '/generate_stream', { inputs: 'p', parameters: { max_new_tokens: 2, return_full_text: true } });
    const last = sseEvents(res.body).at(-1) as StreamEvent;
    assert.equal(last.generated_text, 'p w1 w2');
    assert.equal(last.details, null);
  });

  test('top_tokens per event when top_n_tokens > 0', async () => {
    const res = await post(s.app, '/generate_stream', { inputs: 'p', parameters: { max_new_tokens: 2, top_n_tokens: 1 } });
    const events = sseEvents(res.body) as StreamEvent[];
    assert.deepEqual(Object.keys(events[0]), ['index', 'token', 'top_tokens', 'generated_text', 'details']);
    assert.deepEqual(events.map((e) => e.top_tokens?.length), [1, 1]);
  });

  test('an error after tokens: the tokens so far, then a final error event', async () => {
    const res = await post(s.app, '/generate_stream', { inputs: 'p', parameters: { max_new_tokens: 5, adapter_id: 'flaky' } });
    assert.equal(res.statusCode, 200);
    const events = sseEvents(res.body) as StreamEvent[];
    assert.deepEqual(events.map((e) => e.index ?? 'error'), [1, 2, 'error']);
    assert.deepEqual(events.at(-1), { error: 'CUDA error: device-side assert', error_type: 'generation' });
  });
});

describe('POST / (TGI compat)', () => {
  test('stream false → a one-element list; stream true → SSE', async () => {
    const plain = await post(s.app, '/', { inputs: 'a', parameters: { max_new_tokens: 1 }, stream: false });
    assert.deepEqual(plain.json(), [{ generated_text: ' w1' }]);
    const streamed = await post(s.app, '/', { inputs: 'a', parameters: { max_new_tokens: 2 }, stream: true });
    assert.equal(streamed.headers['content-type'], 'text/event-stream');
    assert.equal(sseEvents(streamed.body).length, 2);
  });

  test('/generate ignores a `stream` flag (clients send it)', async () => {
    const res = await post(s.app, '/generate', { inputs: 'a', parameters: { max_new_tokens: 1 }, stream: false });
    assert.deepEqual(res.json(), { generated_text: ' w1' });
  });
});

describe('service routes', () => {
  test('apply_chat_template (LoRAX): the messages in inputs are rendered with the chat template', async () => {
    const messages = [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi there' }];
    const res = await post(s.app, '/generate', { inputs: JSON.stringify(messages),
      parameters: { max_new_tokens: 2, apply_chat_template: true } });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(s.engine.requests.at(-1)?.inputs, renderScriptedChat(messages));
    // The template writes the special tokens itself: the engine must not add BOS again.
    assert.equal(s.engine.requests.at(-1)?.templated, true);
    const tokenized = await post(s.app, '/tokenize', { inputs: JSON.stringify(messages), parameters: { apply_chat_template: true } });
    assert.equal(s.engine.lastTokenizeTemplated, true);
    const plain = await post(s.app, '/tokenize', { inputs: renderScriptedChat(messages) });
    assert.ok(!s.engine.lastTokenizeTemplated, 'plain text gets the tokenizer\'s special tokens');
    assert.ok(!(await post(s.app, '/generate', { inputs: 'hi', parameters: { max_new_tokens: 1 } })).json().error);
    assert.ok(!s.engine.requests.at(-1)?.templated);
    assert.deepEqual(tokenized.json(), plain.json());
    s.engine.hasChatTemplate = false;
    try {
      const refused = await post(s.app, '/generate', { inputs: JSON.stringify(messages), parameters: { apply_chat_template: true } });
      assert.equal(refused.statusCode, 422);
      assert.match(refused.json().error, /the model has no chat template/);
    } finally {
      s.engine.hasChatTemplate = true;
    }
  });

  test('POST /tokenize → [{id, text, start, stop}]', async () => {
    const res = await post(s.app, '/tokenize', { inputs: 'hi  you' });
    assert.deepEqual(res.json(), [{ id: 12, text: 'hi', start: 0, stop: 2 }, { id: 13, text: 'you', start: 4, stop: 7 }]);
  });

  test('GET /health → 200 with an empty body when healthy', async () => {
    const res = await s.app.inject({ method: 'GET', url: '/health' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, '');
  });

  test('GET /info → TGI field names plus weft fields', async () => {
    const info = (await s.app.inject({ method: 'GET', url: '/info' })).json();
    assert.equal(info.model_id, 'scripted/echo');
    assert.equal(info.model_dtype, 'float32');
    assert.equal(info.model_device_type, 'cpu');
    assert.equal(info.max_input_length, 255);
    assert.equal(info.max_total_tokens, 256);
    assert.equal(info.max_batch_prefill_tokens, 256);
    assert.equal(info.max_concurrent_requests, 4);
    assert.equal(info.max_stop_sequences, 4);
    assert.equal(info.max_best_of, 16, "best_of is served up to 16");
    assert.equal(info.version, '0.1.0-test');
    assert.equal(info.architecture, 'ScriptedForCausalLM');
    assert.equal(info.num_shard, 1);
    assert.equal(info.adapter_slots, 8);
    assert.equal(info.structured_output, true);
    assert.equal(info.reasoning_parser, 'none');
  });
});

describe('request ids', () => {
  test('a plain x-request-id is honoured and echoed; otherwise one is generated', async () => {
    const given = await s.app.inject({ method: 'GET', url: '/info', headers: { 'x-request-id': 'client-abc_1.2:3' } });
    assert.equal(given.headers['x-request-id'], 'client-abc_1.2:3');
    const made = await s.app.inject({ method: 'GET', url: '/info' });
    assert.match(String(made.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    const odd = await s.app.inject({ method: 'GET', url: '/info', headers: { 'x-request-id': 'has spaces<script>' } });
    assert.match(String(odd.headers['x-request-id']), /^[0-9a-f-]{36}$/);
  });

  test('errors and streams carry the request id too', async () => {
    const err = await post(s.app, '/generate', {}, { 'x-request-id': 'bad-1' });
    assert.equal(err.headers['x-request-id'], 'bad-1');
    const stream = await post(s.app, '/generate_stream', { inputs: 'a', parameters: { max_new_tokens: 1 } }, { 'x-request-id': 'st-1' });
    assert.equal(stream.headers['x-request-id'], 'st-1');
    assert.equal(s.engine.requests.at(-1)?.requestId, 'st-1');
  });
});

test('best_of 3: three sequences with their own random seeds; the best answers, the others are best_of_sequences', async () => {
  const before = s.engine.requests.length;
  const res = await post(s.app, '/generate', { inputs: 'a b', parameters: { max_new_tokens: 2, best_of: 3, do_sample: true, details: true } });
  assert.equal(res.statusCode, 200, res.body);
  const body = res.json();
  const sent = s.engine.requests.slice(before);
  assert.equal(sent.length, 3);
  assert.equal(new Set(sent.map((r) => r.sampling.seed)).size, 3, 'each sequence its own seed');
  assert.equal(body.generated_text, ' w1 w2');
  assert.equal(body.details.best_of_sequences.length, 2);
  const seeds = [body.details.seed, ...body.details.best_of_sequences.map((b: { seed: number }) => b.seed)].sort();
  assert.deepEqual(seeds, sent.map((r) => r.sampling.seed).sort());
  for (const b of body.details.best_of_sequences) {
    assert.deepEqual(Object.keys(b).sort(), ['finish_reason', 'generated_text', 'generated_tokens', 'prefill', 'seed', 'tokens']);
  }
  const plain = (await post(s.app, '/generate', { inputs: 'a b', parameters: { max_new_tokens: 2, best_of: 2, do_sample: true } })).json();
  assert.deepEqual(Object.keys(plain), ['generated_text'], 'without details only the text');
});
