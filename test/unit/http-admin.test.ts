// The adapter admin API through the real server (fastify inject): list / load / unload / pin, engine
// errors → statuses, the admin token (missing, malformed, wrong, right, unset), strict bodies, and
// that neither the admin token nor an adapter's api token ever reaches a response or the log.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import {
  EngineError,
  type AdapterAdmin,
  type AdapterRef,
  type AdapterSummaryJson,
  type EngineInfo,
  type EngineStats,
  type GenerationEngine,
  type GenerationEvent,
} from '../../coordinator/engine/types.js';
import { validateAdminBody } from '../../coordinator/http/admin-routes.js';
import { buildHttpServer, Metrics } from '../../coordinator/http/index.js';

const ADMIN_TOKEN = 'weft_ADMIN_secret_42';
const ADAPTER_TOKEN = 'hf_PRIVATE_adapter_token_7';

/**
 * An honest in-memory AdapterAdmin, scripted by adapter id: 'missing' → adapter_not_found, 'private'
 * needs ADAPTER_TOKEN (none → adapter_unauthorized, other → adapter_forbidden), 'broken' → adapter_load,
 * 'leaky' → an error whose message echoes the api token, 'crash' → a plain Error echoing it (a bug);
 * unloading an adapter with requests in flight ('busy') → validation.
 */
class FakeAdapters implements AdapterAdmin {
  readonly calls: { op: string; ref: AdapterRef; pinned?: boolean }[] = [];
  private readonly known = new Map<string, AdapterSummaryJson>();

  list(): AdapterSummaryJson[] { return [...this.known.values()].map((a) => ({ ...a, names: [...a.names] })); }

  async load(ref: AdapterRef): Promise<AdapterSummaryJson> {
    this.calls.push({ op: 'load', ref });
    return { ...Object.assign(this.check(ref), { tier: 'device', lastUsed: '2024-01-01T00:00:00.000Z' }) };
  }

  async unload(ref: AdapterRef): Promise<AdapterSummaryJson> {
    this.calls.push({ op: 'unload', ref });
    const a = this.check(ref);
    if (a.inFlight > 0) throw new EngineError('validation', `adapter '${ref.id}' has ${a.inFlight} requests in flight`);
    return { ...Object.assign(a, { tier: 'host', pinned: false }) };
  }

  async pin(ref: AdapterRef, pinned: boolean): Promise<AdapterSummaryJson> {
    this.calls.push({ op: 'pin', ref, pinned });
    return { ...Object.assign(this.check(ref), { tier: 'device', pinned }) };
  }

  async loadNamed(name: string, ref: AdapterRef): Promise<AdapterSummaryJson> {
    this.calls.push({ op: `loadNamed ${name}`, ref });
    return this.load(ref);
  }

  async unloadNamed(name: string): Promise<AdapterSummaryJson | null> {
    this.calls.push({ op: `unloadNamed ${name}`, ref: { id: name, source: 'local' } });
    return null;
  }

  private check(ref: AdapterRef): AdapterSummaryJson {
    const { id, apiToken } = ref;
    if (id === 'missing') throw new EngineError('adapter_not_found', `adapter '${id}' not found`);
    if (id === 'private' && apiToken === undefined) throw new EngineError('adapter_unauthorized', `adapter '${id}' is private`);
    if (id === 'private' && apiToken !== ADAPTER_TOKEN) throw new EngineError('adapter_forbidden', `access to '${id}' denied`);
    if (id === 'broken') throw new EngineError('adapter_load', 'adapter weights are corrupt');
    if (id === 'leaky') throw new EngineError('adapter_forbidden', `token ${apiToken} rejected by the hub`);
    if (id === 'crash') throw new Error(`bug while using ${apiToken}`);
    const key = `${ref.source}:${id}`;
    const a: AdapterSummaryJson = this.known.get(key) ?? {
      id, names: [id], source: ref.source, revision: null, tier: 'disk', bytes: 4096, rank: 8, dora: false,
      lastUsed: null, pinned: false, inFlight: id === 'busy' ? 2 : 0,
    };
    this.known.set(key, a);
    return a;
  }
}

const INFO: EngineInfo = {
  modelId: 'admin/test', modelNames: ['admin/test'], task: 'generate', architecture: 'TestForCausalLM', vocabSize: 100, hiddenSize: 8, maxInputLength: 63, maxTotalTokens: 64,
  maxBatchPrefillTokens: 64, maxConcurrentRequests: 2, numShard: 1, blockSize: 16, kvBlocks: 8, adapterSlots: 4,
  eosTokenIds: [2], version: '0.1.0-test', defaultAdapterSource: 'hub', device: 'cpu', dtype: 'float32', asyncScheduling: true,
  prefixCaching: true, speculate: 0, schedulingPolicy: 'fcfs', toolFormat: 'weft',
  structuredOutput: true, trustRequestChatTemplate: false, reasoning: null,
};

/** Only the adapter admin is exercised; generation is out of scope for these tests. */
class AdminEngine implements GenerationEngine {
  readonly info = INFO;
  readonly adapters = new FakeAdapters();
  stats(): EngineStats { return { waiting: 0, running: 0, usedBlocks: 0, freeBlocks: 8, activeAdapters: 0, loadedAdapters: 0, adapterBytes: 0, adapterBudgetBytes: 0, adapterRefs: 0, cachedBlocks: 0, preemptions: 0, draftTokens: 0, acceptedDraftTokens: 0 }; }
  async tokenize(): Promise<{ id: number; text: string; start: number; stop: number }[]> { return []; }
  async encodePair(): Promise<number[]> { return []; }
  detokenize(): string { return ''; }
  async generate(): Promise<AsyncIterable<GenerationEvent>> { throw new EngineError('internal', 'not used here'); }
  healthy(): boolean { return true; }
  renderChat(): string { throw new EngineError('validation', 'no chat template'); }
  adapterForModel(): AdapterRef | null { return null; }
  adapterNames(): string[] { return []; }
  async classifierHead(ref: AdapterRef): Promise<never> { throw new EngineError('validation', `adapter '${ref.id}' is not a sequence classifier`); }
}

interface AdminServer { app: FastifyInstance; engine: AdminEngine; logs: string[] }

async function adminServer(adminToken?: string): Promise<AdminServer> {
  const engine = new AdminEngine();
  const logs: string[] = [];
  const sink = new Writable({ write(chunk, _enc, cb) { logs.push(String(chunk)); cb(); } });
  const app = await buildHttpServer(engine, { logger: pino({ level: 'debug' }, sink), metrics: new Metrics(), adminToken });
  return { app, engine, logs };
}

function call(app: FastifyInstance, method: 'GET' | 'POST' | 'HEAD', url: string, payload?: unknown, headers: Record<string, string> = {}) {
  const json = payload === undefined ? {} : { 'content-type': 'application/json' };
  return app.inject({ method, url, payload: payload as object | undefined, headers: { ...json, ...headers } });
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('admin API without an admin token (open)', () => {
  let s: AdminServer;
  before(async () => { s = await adminServer(); });
  after(async () => { await s.app.close(); });

  test('list starts empty; load makes an adapter resident and listed', async () => {
    assert.deepEqual((await call(s.app, 'GET', '/v1/adapters')).json(), { adapters: [] });
    const res = await call(s.app, 'POST', '/v1/adapters/load', { adapter_id: 'org/a' });
    assert.equal(res.statusCode, 200, res.body);
    const adapter = res.json().adapter;
    assert.equal(adapter.id, 'org/a');
    assert.equal(adapter.tier, 'device');
    assert.equal(adapter.source, 'hub', 'adapter_source defaults to hub, as on the generate routes');
    const listed = (await call(s.app, 'GET', '/v1/adapters')).json();
    assert.deepEqual(listed, { adapters: [adapter] });
  });

  test('unload returns the summary (now off the device)', async () => {
    await call(s.app, 'POST', '/v1/adapters/load', { adapter_id: 'org/b', adapter_source: 'local' });
    const res = await call(s.app, 'POST', '/v1/adapters/unload', { adapter_id: 'org/b', adapter_source: 'local' });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().adapter.tier, 'host');
    assert.equal(res.json().adapter.source, 'local');
    assert.deepEqual(s.engine.adapters.calls.at(-1), { op: 'unload', ref: { id: 'org/b', source: 'local' } });
  });

  test('pin defaults to true; pinned: false unpins; null means absent', async () => {
    let res = await call(s.app, 'POST', '/v1/adapters/pin', { adapter_id: 'org/c' });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().adapter.pinned, true);
    res = await call(s.app, 'POST', '/v1/adapters/pin', { adapter_id: 'org/c', pinned: false });
    assert.equal(res.json().adapter.pinned, false);
    assert.equal(s.engine.adapters.calls.at(-1)?.pinned, false);
    res = await call(s.app, 'POST', '/v1/adapters/pin', { adapter_id: 'org/c', pinned: null, adapter_source: null });
    assert.equal(res.json().adapter.pinned, true);
    assert.equal(s.engine.adapters.calls.at(-1)?.ref.source, 'hub');
  });

  test('the adapter token comes from api_token only, never from the Authorization header', async () => {
    let res = await call(s.app, 'POST', '/v1/adapters/load', { adapter_id: 'private', api_token: ADAPTER_TOKEN });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(s.engine.adapters.calls.at(-1)?.ref.apiToken, ADAPTER_TOKEN);
    res = await call(s.app, 'POST', '/v1/adapters/load', { adapter_id: 'private' }, bearer(ADAPTER_TOKEN));
    assert.equal(res.statusCode, 401);
    assert.equal(s.engine.adapters.calls.at(-1)?.ref.apiToken, undefined);
    res = await call(s.app, 'POST', '/v1/adapters/load', { adapter_id: 'private', api_token: '' });
    assert.equal(res.statusCode, 401, 'an empty api_token is no token');
  });

  test('engine errors keep their status and kind', async () => {
    const cases: [Record<string, unknown>, string, number, string][] = [
      [{ adapter_id: 'missing' }, 'load', 404, 'adapter_not_found'],
      [{ adapter_id: 'private' }, 'load', 401, 'adapter_unauthorized'],
      [{ adapter_id: 'private', api_token: 'hf_wrong' }, 'pin', 403, 'adapter_forbidden'],
      [{ adapter_id: 'broken', adapter_source: 's3' }, 'load', 424, 'adapter_load'],
      [{ adapter_id: 'busy' }, 'unload', 422, 'validation'],
    ];
    for (const [body, action, status, kind] of cases) {
      const res = await call(s.app, 'POST', `/v1/adapters/${action}`, body);
      assert.equal(res.statusCode, status, `${action} ${JSON.stringify(body)}: ${res.body}`);
      assert.equal(res.json().error_type, kind);
      assert.equal(typeof res.json().error, 'string');
    }
  });

  test('a bug in the engine is a 500 with a generic message', async () => {
    const res = await call(s.app, 'POST', '/v1/adapters/load', { adapter_id: 'crash', api_token: ADAPTER_TOKEN });
    assert.equal(res.statusCode, 500);
    assert.deepEqual(res.json(), { error: 'internal server error', error_type: 'internal' });
  });

  test('strict bodies: 422 naming the problem, and the engine is not called', async () => {
    const before = s.engine.adapters.calls.length;
    const cases: [string, unknown, RegExp][] = [
      ['load', { adapter_id: 'a', adapter_name: 'x' }, /unknown field `adapter_name`/],
      ['load', { adapter_id: 'a', pinned: true }, /unknown field `pinned`/],
      ['unload', { adapter_id: 'a', parameters: {} }, /unknown field `parameters`/],
      ['load', {}, /missing field `adapter_id`/],
      ['pin', { adapter_id: null }, /missing field `adapter_id`/],
      ['load', { adapter_id: '' }, /`adapter_id` cannot be empty/],
      ['load', { adapter_id: 7 }, /`adapter_id` must be a string/],
      ['load', { adapter_id: 'a', adapter_source: 'ftp' }, /`adapter_source` must be one of hub, s3, local/],
      ['load', { adapter_id: 'a', api_token: 5 }, /`api_token` must be a string/],
      ['pin', { adapter_id: 'a', pinned: 'yes' }, /`pinned` must be a boolean/],
      ['load', ['a'], /request body must be a JSON object/],
    ];
    for (const [action, body, message] of cases) {
      const res = await call(s.app, 'POST', `/v1/adapters/${action}`, body);
      assert.equal(res.statusCode, 422, `${action} ${JSON.stringify(body)}: ${res.body}`);
      assert.equal(res.json().error_type, 'validation');
      assert.match(res.json().error, message);
    }
    const noBody = await call(s.app, 'POST', '/v1/adapters/load');
    assert.equal(noBody.statusCode, 422);
    const badJson = await s.app.inject({ method: 'POST', url: '/v1/adapters/load', payload: '{"adapter_id":', headers: { 'content-type': 'application/json' } });
    assert.equal(badJson.statusCode, 400);
    assert.equal(s.engine.adapters.calls.length, before);
  });
});

describe('admin API with an admin token', () => {
  let s: AdminServer;
  before(async () => { s = await adminServer(ADMIN_TOKEN); });
  after(async () => { await s.app.close(); });

  const routes: ['GET' | 'POST', string, unknown][] = [
    ['GET', '/v1/adapters', undefined],
    ['POST', '/v1/adapters/load', { adapter_id: 'org/a' }],
    ['POST', '/v1/adapters/unload', { adapter_id: 'org/a' }],
    ['POST', '/v1/adapters/pin', { adapter_id: 'org/a', pinned: true }],
  ];

  test('no Authorization header → 401 unauthorized (with WWW-Authenticate) on every route', async () => {
    for (const [method, url, body] of routes) {
      const res = await call(s.app, method, url, body);
      assert.equal(res.statusCode, 401, `${method} ${url}`);
      assert.equal(res.json().error_type, 'unauthorized');
      assert.equal(res.headers['www-authenticate'], 'Bearer');
    }
    assert.equal((await call(s.app, 'HEAD', '/v1/adapters')).statusCode, 401);
    assert.equal(s.engine.adapters.calls.length, 0);
  });

  test('a malformed Authorization header → 401', async () => {
    for (const authorization of [`Basic ${ADMIN_TOKEN}`, 'Bearer', 'Bearer ', ADMIN_TOKEN, `Bearer ${ADMIN_TOKEN} extra`]) {
      const res = await call(s.app, 'POST', '/v1/adapters/load', { adapter_id: 'org/a' }, { authorization });
      assert.equal(res.statusCode, 401, authorization);
      assert.equal(res.json().error_type, 'unauthorized');
    }
    assert.equal(s.engine.adapters.calls.length, 0);
  });

  test('a wrong token → 403 forbidden (shorter, longer, same length, a prefix)', async () => {
    const wrong = ['x', `${ADMIN_TOKEN}x`, ADMIN_TOKEN.replace(/.$/, 'X'), ADMIN_TOKEN.slice(0, -1), ADAPTER_TOKEN];
    for (const token of wrong) {
      for (const [method, url, body] of routes) {
        const res = await call(s.app, method, url, body, bearer(token));
        assert.equal(res.statusCode, 403, `${method} ${url} with ${token}`);
        assert.deepEqual(res.json(), { error: 'invalid admin token', error_type: 'forbidden' });
      }
    }
    assert.equal(s.engine.adapters.calls.length, 0);
  });

  test('the right token opens every route (scheme is case-insensitive)', async () => {
    for (const [method, url, body] of routes) {
      const res = await call(s.app, method, url, body, bearer(ADMIN_TOKEN));
      assert.equal(res.statusCode, 200, `${method} ${url}: ${res.body}`);
    }
    const res = await call(s.app, 'GET', '/v1/adapters', undefined, { authorization: `bearer ${ADMIN_TOKEN}` });
    assert.equal(res.json().adapters.length, 1);
    assert.equal(s.engine.adapters.calls.length, 3);
  });

  test('with the admin token, the adapter token still comes from api_token', async () => {
    const res = await call(s.app, 'POST', '/v1/adapters/load', { adapter_id: 'private', api_token: ADAPTER_TOKEN }, bearer(ADMIN_TOKEN));
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(s.engine.adapters.calls.at(-1)?.ref.apiToken, ADAPTER_TOKEN);
  });

  test('validation happens after authentication', async () => {
    assert.equal((await call(s.app, 'POST', '/v1/adapters/load', { bogus: 1 })).statusCode, 401);
    assert.equal((await call(s.app, 'POST', '/v1/adapters/load', { bogus: 1 }, bearer(ADMIN_TOKEN))).statusCode, 422);
  });

  test('neither token reaches a response body, a header or the log', async () => {
    const responses = [
      await call(s.app, 'POST', '/v1/adapters/load', { adapter_id: 'leaky', api_token: ADAPTER_TOKEN }, bearer(ADMIN_TOKEN)),
      await call(s.app, 'POST', '/v1/adapters/pin', { adapter_id: 'crash', api_token: ADAPTER_TOKEN }, bearer(ADMIN_TOKEN)),
      await call(s.app, 'POST', '/v1/adapters/load', { adapter_id: 'private', api_token: 'hf_wrong' }, bearer(ADMIN_TOKEN)),
      await call(s.app, 'POST', '/v1/adapters/load', { adapter_id: 'a' }, bearer(`${ADMIN_TOKEN}x`)),
      await call(s.app, 'POST', '/v1/adapters/load', { adapter_id: 'a' }, { authorization: `Token ${ADMIN_TOKEN}` }),
    ];
    assert.deepEqual(responses.map((r) => r.statusCode), [403, 500, 403, 403, 401]);
    assert.match(responses[0].json().error, /\[REDACTED\]/, 'the engine message is kept, the token scrubbed');
    const logs = s.logs.join('');
    assert.ok(logs.includes('adapter admin'), 'admin actions are logged');
    assert.ok(logs.includes('request failed'), 'the 500 was logged');
    for (const secret of [ADMIN_TOKEN, ADAPTER_TOKEN]) {
      for (const r of responses) {
        assert.ok(!r.body.includes(secret), `response body leaks a token: ${r.body}`);
        assert.ok(!JSON.stringify(r.headers).includes(secret), 'response headers leak a token');
      }
      assert.ok(!logs.includes(secret), 'the log leaks a token');
    }
  });
});

describe('admin options', () => {
  test('an empty admin token is refused at build time (not silently open)', async () => {
    await assert.rejects(adminServer(''), /adminToken must not be empty/);
  });

  test('validateAdminBody: defaultSource is used when adapter_source is absent', () => {
    assert.deepEqual(validateAdminBody({ adapter_id: 'x' }, 'load', 'local'), { ref: { id: 'x', source: 'local' }, pinned: true });
    assert.deepEqual(validateAdminBody({ adapter_id: 'x', adapter_source: 's3', api_token: 't' }, 'pin', 'local'), {
      ref: { id: 'x', source: 's3', apiToken: 't' },
      pinned: true,
    });
  });
});
