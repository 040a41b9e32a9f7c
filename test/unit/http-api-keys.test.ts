// --api-key: the inference API behind keys, through the real server (fastify inject, and real HTTP for the
// bench client): open operational routes, 401s in each route family's error shape, key rotation, X-Api-Key,
// the Authorization header never taken as an adapter's Hub token, the admin token's routes, keys never in a
// response or the log, the config flag and its environment variables.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { buildHttpServer, Metrics } from '../../coordinator/http/index.js';
import { runServeOnce } from '../../deploy/bench/index.js';
import { configSecrets, parseArgs, redactedConfig } from '../../deploy/config/index.js';
import { ScriptedEngine, post, sseEvents, testServer, type TestServer } from './http-engine-double.test.js';

const OLD_KEY = 'sk-weft-OLD-key-111';
const NEW_KEY = 'sk-weft-NEW-key-222';
const WRONG_KEY = 'sk-weft-WRONG-key-333';
const ADMIN = 'adm-TOKEN-444';
const bearer = (k: string) => ({ authorization: `Bearer ${k}` });
const GEN = { inputs: 'hello there', parameters: { max_new_tokens: 2 } };
const CHAT = { model: '', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 };

function assertNoKeyIn(text: string): void {
  for (const k of [OLD_KEY, NEW_KEY, WRONG_KEY, ADMIN]) assert.ok(!text.includes(k), `a key leaked: ${text.slice(0, 300)}`);
}

describe('with API keys', () => {
  let s: TestServer;
  before(async () => { s = await testServer({ apiKeys: [OLD_KEY, NEW_KEY] }); });
  after(async () => { await s.app.close(); });

  test('/health and /metrics stay open (probes, Prometheus)', async () => {
    assert.equal((await s.app.inject({ method: 'GET', url: '/health' })).statusCode, 200);
    const m = await s.app.inject({ method: 'GET', url: '/metrics?x=1' });
    assert.equal(m.statusCode, 200);
    assert.match(m.body, /weft_requests_total/);
  });

  test('no credentials: 401 with WWW-Authenticate, TGI error shape, and the engine never sees the request', async () => {
    const before = s.engine.requests.length;
    for (const url of ['/generate', '/generate_stream', '/', '/tokenize']) {
      const res = await post(s.app, url, GEN);
      assert.equal(res.statusCode, 401, `${url}: ${res.body}`);
      assert.equal(res.headers['www-authenticate'], 'Bearer');
      assert.equal(res.json().error_type, 'authentication');
      assert.match(res.json().error, /Authorization: Bearer/);
    }
    for (const url of ['/info', '/v1/models', '/no/such/route']) {
      const res = await s.app.inject({ method: 'GET', url });
      assert.equal(res.statusCode, 401, `${url} must not answer (or reveal whether it exists) without a key`);
    }
    assert.equal(s.engine.requests.length, before);
  });

  test('a wrong key: 401 that does not echo it; malformed Authorization counts as none', async () => {
    const res = await post(s.app, '/generate', GEN, bearer(WRONG_KEY));
    assert.equal(res.statusCode, 401);
    assert.equal(res.json().error, 'invalid API key');
    assert.match(String(res.headers['www-authenticate']), /invalid_token/);
    assertNoKeyIn(res.body);
    const basic = await post(s.app, '/generate', GEN, { authorization: `Basic ${OLD_KEY}` });
    assert.equal(basic.statusCode, 401);
    assert.equal(basic.headers['www-authenticate'], 'Bearer');
    // A key that is a prefix of a configured one is still wrong.
    assert.equal((await post(s.app, '/generate', GEN, bearer(OLD_KEY.slice(0, -1)))).statusCode, 401);
  });

  test('either configured key works (rotation), as Bearer or X-Api-Key, streamed too', async () => {
    for (const headers of [bearer(OLD_KEY), bearer(NEW_KEY), { 'x-api-key': NEW_KEY }]) {
      const res = await post(s.app, '/generate', GEN, headers);
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(typeof res.json().generated_text, 'string');
    }
    const stream = await post(s.app, '/generate_stream', GEN, bearer(OLD_KEY));
    assert.equal(stream.statusCode, 200);
    assert.ok(sseEvents(stream.body).length >= 1);
    assert.equal((await s.app.inject({ method: 'GET', url: '/info', headers: bearer(NEW_KEY) })).statusCode, 200);
    assert.equal((await s.app.inject({ method: 'GET', url: '/no/such/route', headers: bearer(NEW_KEY) })).statusCode, 404);
  });

  test('OpenAI routes answer 401 in OpenAI\'s error shape (SDKs raise AuthenticationError)', async () => {
    const res = await post(s.app, '/v1/chat/completions', CHAT);
    assert.equal(res.statusCode, 401);
    const err = res.json().error;
    assert.equal(typeof err.message, 'string');
    assert.equal(err.code, 'authentication');
    const ok = await post(s.app, '/v1/chat/completions', CHAT, bearer(OLD_KEY));
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(ok.json().object, 'chat.completion');
  });

  test('the Authorization header is never an adapter token with keys on; api_token in the body is', async () => {
    await post(s.app, '/generate', { inputs: 'a', parameters: { max_new_tokens: 1, adapter_id: 'org/private' } }, bearer(OLD_KEY));
    const viaHeader = s.engine.requests.at(-1)!;
    assert.equal(viaHeader.adapter?.id, 'org/private');
    assert.equal(viaHeader.adapter?.apiToken, undefined, 'the API key must not travel to the Hub');
    await post(s.app, '/generate', { inputs: 'a', parameters: { max_new_tokens: 1, adapter_id: 'org/private', api_token: 'hf_body' } },
      bearer(OLD_KEY));
    assert.equal(s.engine.requests.at(-1)!.adapter?.apiToken, 'hf_body');
    await post(s.app, '/v1/chat/completions', { ...CHAT, model: 'org/private' }, bearer(OLD_KEY));
    assert.equal(s.engine.requests.at(-1)!.adapter?.apiToken, undefined);
  });

  test('refusals are counted by status, and no key reaches the log', async () => {
    await post(s.app, '/generate', GEN, { 'x-api-key': WRONG_KEY });
    const metrics = (await s.app.inject({ method: 'GET', url: '/metrics' })).body;
    assert.match(metrics, /weft_requests_total\{route="\/generate",status="401"\} [1-9]/);
    assert.ok(s.logs.length > 0);
    assertNoKeyIn(s.logs.join(''));
  });
});

describe('API keys and the admin API', () => {
  test('without an admin token, /v1/adapters needs an API key like the rest', async () => {
    const s = await testServer({ apiKeys: [OLD_KEY] });
    try {
      assert.equal((await s.app.inject({ method: 'GET', url: '/v1/adapters' })).statusCode, 401);
      assert.equal((await s.app.inject({ method: 'GET', url: '/v1/adapters', headers: bearer(OLD_KEY) })).statusCode, 200);
    } finally {
      await s.app.close();
    }
  });

  test('with an admin token, /v1/adapters takes it (not an API key), the rest takes API keys (not it)', async () => {
    const s = await testServer({ apiKeys: [OLD_KEY], adminToken: ADMIN });
    try {
      assert.equal((await s.app.inject({ method: 'GET', url: '/v1/adapters', headers: bearer(ADMIN) })).statusCode, 200);
      assert.equal((await s.app.inject({ method: 'GET', url: '/v1/adapters', headers: bearer(OLD_KEY) })).statusCode, 403);
      assert.equal((await post(s.app, '/v1/adapters/load', { adapter_id: 'x' })).statusCode, 401);
      assert.equal((await post(s.app, '/generate', GEN, bearer(ADMIN))).statusCode, 401);
      // A path that only starts like the admin prefix is not an admin route.
      assert.equal((await s.app.inject({ method: 'GET', url: '/v1/adaptersX', headers: bearer(ADMIN) })).statusCode, 401);
      assertNoKeyIn(s.logs.join(''));
    } finally {
      await s.app.close();
    }
  });
});

test('without keys the API is open and a bearer token is still an adapter\'s token (LoRAX behaviour)', async () => {
  const s = await testServer();
  try {
    const res = await post(s.app, '/generate', { inputs: 'a', parameters: { max_new_tokens: 1, adapter_id: 'org/p' } }, bearer('hf_hdr'));
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(s.engine.requests.at(-1)!.adapter?.apiToken, 'hf_hdr');
  } finally {
    await s.app.close();
  }
});

test('an empty key is a configuration error, not an open API', async () => {
  await assert.rejects(
    buildHttpServer(new ScriptedEngine(), { logger: false, metrics: new Metrics(), apiKeys: [OLD_KEY, ''] }),
    /must not be empty/,
  );
});

test('weft bench serve sends --api-key to a protected server over real HTTP', async () => {
  const app = await buildHttpServer(new ScriptedEngine(), { logger: pino({ level: 'silent' }), metrics: new Metrics(), apiKeys: [NEW_KEY] });
  await app.listen({ port: 0, host: '127.0.0.1' });
  try {
    const url = new URL(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`);
    const plan = { url, requests: 4, rate: 0, concurrency: 2, adapterIds: [], adapterSource: null, promptWords: [2, 3] as const,
      outputTokens: [2, 2] as const, seed: 1 };
    const refused = await runServeOnce(plan);
    assert.equal(refused.completed, 0);
    assert.deepEqual(refused.errors, { 'http-401': 4 });
    const served = await runServeOnce({ ...plan, apiKey: NEW_KEY });
    assert.equal(served.completed, 4, JSON.stringify(served.errors));
  } finally {
    await app.close();
  }
});

test('--api-key: repeatable, WEFT_API_KEYS (comma-separated) or TGI\'s API_KEY, redacted in the boot log', () => {
  assert.deepEqual(parseArgs('launch', ['--api-key', OLD_KEY, '--api-key', NEW_KEY], {}).apiKeys, [OLD_KEY, NEW_KEY]);
  assert.deepEqual(parseArgs('launch', [], { WEFT_API_KEYS: `${OLD_KEY},${NEW_KEY}` }).apiKeys, [OLD_KEY, NEW_KEY]);
  assert.deepEqual(parseArgs('launch', [], { API_KEY: OLD_KEY }).apiKeys, [OLD_KEY]);
  assert.deepEqual(parseArgs('launch', ['--api-key', NEW_KEY], { WEFT_API_KEYS: OLD_KEY }).apiKeys, [NEW_KEY], 'the flag beats the env');
  assert.deepEqual(parseArgs('launch', [], {}).apiKeys, []);
  const c = parseArgs('launch', [], { WEFT_API_KEYS: `${OLD_KEY},${NEW_KEY}` });
  const shown = redactedConfig(c);
  assert.deepEqual(shown.apiKeys, ['***', '***'], 'how many keys is shown, never a key');
  assertNoKeyIn(JSON.stringify(shown));
  assert.deepEqual(configSecrets(c).sort(), [NEW_KEY, OLD_KEY].sort());
  assert.deepEqual(redactedConfig(parseArgs('launch', [], {})).apiKeys, []);
  assert.deepEqual(parseArgs('bench', ['--scenario', 'serve', '--api-key', OLD_KEY], {}).apiKeys, [OLD_KEY]);
});
