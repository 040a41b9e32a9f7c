// Every way a request can fail, through the real server (fastify inject): status, error_type, message,
// and the `{"error", "error_type"}` shape — for validation, engine errors and fastify's own errors.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PRIVATE_TOKEN, post, testServer, type TestServer } from './http-engine-double.test.js';

let s: TestServer;
before(async () => { s = await testServer({ bodyLimitBytes: 4096 }); });
after(async () => { await s.app.close(); });

type Res = Awaited<ReturnType<typeof post>>;

function assertError(res: Res, status: number, errorType: string, message: string | RegExp): void {
  assert.equal(res.statusCode, status, res.body);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const body = res.json() as Record<string, unknown>;
  assert.deepEqual(Object.keys(body).sort(), ['error', 'error_type']);
  assert.equal(body.error_type, errorType);
  if (typeof message === 'string') assert.equal(body.error, message);
  else assert.match(String(body.error), message);
}

const gen = (parameters: Record<string, unknown>) => ({ inputs: 'hello world', parameters });

describe('bad input → 422 validation, on /generate and /generate_stream alike', () => {
  const cases: [string, unknown, string | RegExp][] = [
    ['missing inputs', { parameters: { max_new_tokens: 2 } }, 'missing field `inputs`'],
    ['empty inputs', { inputs: '' }, '`inputs` cannot be empty'],
    ['inputs not a string', { inputs: { text: 'a' } }, '`inputs` must be a string'],
    ['body is an array', [{ inputs: 'a' }], 'request body must be a JSON object'],
    ['negative max_new_tokens', gen({ max_new_tokens: -1 }), '`max_new_tokens` must be strictly positive'],
    ['zero max_new_tokens', gen({ max_new_tokens: 0 }), '`max_new_tokens` must be strictly positive'],
    ['float max_new_tokens', gen({ max_new_tokens: 1.5 }), '`max_new_tokens` must be an integer'],
    ['huge max_new_tokens', gen({ max_new_tokens: 100000 }), '`max_new_tokens` must be <= 256. Given: 100000'],
    ['string max_new_tokens', gen({ max_new_tokens: '5' }), '`max_new_tokens` must be a number'],
    ['unknown parameter', gen({ max_new_tokens: 2, bogus: 1 }), 'unknown parameter `bogus`'],
    ['unknown top-level field', { inputs: 'a', extra: true }, 'unknown field `extra`'],
    ['too many stop sequences', gen({ stop: ['a', 'b', 'c', 'd', 'e'] }), '`stop` supports up to 4 stop sequences. Given: 5'],
    ['stop not an array', gen({ stop: 'a' }), '`stop` must be an array of strings'],
    ['top_p = 1', gen({ top_p: 1.0 }), '`top_p` must be > 0.0 and < 1.0'],
    ['top_p < 0', gen({ top_p: -0.1 }), '`top_p` must be > 0.0 and < 1.0'],
    ['typical_p = 0', gen({ typical_p: 0 }), '`typical_p` must be > 0.0 and < 1.0'],
    ['temperature 0', gen({ temperature: 0 }), '`temperature` must be at least 0.00001 (for greedy decoding leave do_sample false)'],
    ['top_k 0', gen({ top_k: 0 }), '`top_k` must be strictly positive and at most 2147483647'],
    ['repetition_penalty negative', gen({ repetition_penalty: -2 }), '`repetition_penalty` must be >= 0.01 and <= 100 (1: off)'],
    ['seed negative', gen({ seed: -5 }), '`seed` must be an integer >= 0 and <= 2^53 - 1'],
    ['top_n_tokens 6', gen({ top_n_tokens: 6 }), '`top_n_tokens` must be >= 0 and <= 5. Given: 6'],
    ['return_k_alternatives 6', gen({ return_k_alternatives: 6 }), '`return_k_alternatives` must be >= 0 and <= 5. Given: 6'],
    ['details not boolean', gen({ details: 'yes' }), '`details` must be a boolean'],
    ['adapter_id not a string', gen({ adapter_id: 5 }), '`adapter_id` must be a string'],
    ['bad adapter_source', gen({ adapter_id: 'a', adapter_source: 'ftp' }), '`adapter_source` must be one of hub, s3, local'],
    ['merged_adapters', gen({ merged_adapters: { ids: [], weights: [] } }), 'at least one adapter id must be provided in `merged_adapters.ids`'],
    ['watermark true', gen({ watermark: true }), '`watermark` is not supported yet'],
    ['best_of 17', gen({ best_of: 17 }), '`best_of` must be > 0 and <= 16. Given: 17'],
  ];
  for (const [name, body, message] of cases) {
    test(name, async () => {
      assertError(await post(s.app, '/generate', body), 422, 'validation', message);
      assertError(await post(s.app, '/generate_stream', body), 422, 'validation', message);
    });
  }

  test('prompt + max_new_tokens over the model limit (engine validation) → 422', async () => {
    assertError(await post(s.app, '/generate', gen({ max_new_tokens: 255 })), 422, 'validation', /must be <= 256/);
  });
});

describe('body format errors (TGI/axum statuses)', () => {
  test('malformed JSON → 400', async () => {
    const res = await s.app.inject({ method: 'POST', url: '/generate', payload: '{"inputs": ', headers: { 'content-type': 'application/json' } });
    assertError(res, 400, 'validation', 'Failed to parse the request body as JSON');
  });

  test('empty JSON body → 400', async () => {
    const res = await s.app.inject({ method: 'POST', url: '/generate', payload: '', headers: { 'content-type': 'application/json' } });
    assertError(res, 400, 'validation', 'Failed to parse the request body as JSON: the body is empty');
  });

  test('not declared as JSON → 415', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
      const res = await s.app.inject({ method: 'POST', url: '/generate', payload: 'inputs=a', headers: { 'content-type': type } });
      assertError(res, 415, 'validation', 'Expected request with `Content-Type: application/json`');
    }
  });

  test('body over the limit → 413', async () => {
    assertError(await post(s.app, '/generate', { inputs: 'x'.repeat(5000) }), 413, 'validation', 'Request body is larger than 4096 bytes');
  });

  test('unknown route → 404 not_found, without the query string', async () => {
    const res = await s.app.inject({ method: 'GET', url: '/v2/generate?api_token=abc' });
    assertError(res, 404, 'not_found', 'Route GET /v2/generate not found');
  });
});

describe('engine errors → status by kind', () => {
  test('adapter_not_found → 404', async () => {
    assertError(await post(s.app, '/generate', gen({ adapter_id: 'missing' })), 404, 'adapter_not_found', "adapter 'missing' not found");
  });

  test('adapter_forbidden → 403; the right token (parameter or bearer) passes', async () => {
    assertError(await post(s.app, '/generate', gen({ adapter_id: 'private', max_new_tokens: 1 })), 403, 'adapter_forbidden', /denied/);
    const viaParam = await post(s.app, '/generate', gen({ adapter_id: 'private', max_new_tokens: 1, api_token: PRIVATE_TOKEN }));
    assert.equal(viaParam.statusCode, 200, viaParam.body);
    const viaHeader = await post(s.app, '/generate', gen({ adapter_id: 'private', max_new_tokens: 1 }), { authorization: `Bearer ${PRIVATE_TOKEN}` });
    assert.equal(viaHeader.statusCode, 200, viaHeader.body);
  });

  test('adapter_load before admission → 424, also on the stream route (no stream started)', async () => {
    assertError(await post(s.app, '/generate', gen({ adapter_id: 'broken' })), 424, 'adapter_load', 'adapter weights are corrupt');
    assertError(await post(s.app, '/generate_stream', gen({ adapter_id: 'broken' })), 424, 'adapter_load', 'adapter weights are corrupt');
  });

  test('generation error after some tokens → 424 on /generate', async () => {
    assertError(await post(s.app, '/generate', gen({ adapter_id: 'flaky', max_new_tokens: 5 })), 424, 'generation', /device-side assert/);
  });

  test('overloaded → 429', async () => {
    s.engine.inFlight = s.engine.info.maxConcurrentRequests;
    try {
      assertError(await post(s.app, '/generate', gen({})), 429, 'overloaded', 'Model is overloaded');
    } finally {
      s.engine.inFlight = 0;
    }
  });

  test('unhealthy → 503 healthcheck', async () => {
    s.engine.isHealthy = false;
    try {
      assertError(await s.app.inject({ method: 'GET', url: '/health' }), 503, 'healthcheck', 'unhealthy');
    } finally {
      s.engine.isHealthy = true;
    }
  });

  test('a thrown non-engine error → 500 internal without its message', async () => {
    const original = s.engine.tokenize;
    s.engine.tokenize = async () => { throw new Error('secret internal detail'); };
    try {
      assertError(await post(s.app, '/tokenize', { inputs: 'a' }), 500, 'internal', 'internal server error');
    } finally {
      s.engine.tokenize = original;
    }
  });

  test('an api token echoed by the engine is scrubbed from the error', async () => {
    const token = 'hf_wrong_TOKEN_999';
    for (const res of [
      await post(s.app, '/generate', { inputs: 'please leak', parameters: { adapter_id: 'private', api_token: token } }),
      await post(s.app, '/generate', { inputs: 'please leak', parameters: { adapter_id: 'private' } }, { authorization: `Bearer ${token}` }),
    ]) {
      assertError(res, 403, 'adapter_forbidden', /\[REDACTED\]/);
      assert.ok(!res.body.includes(token));
    }
  });
});
