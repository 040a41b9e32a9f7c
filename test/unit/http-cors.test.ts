// --cors-allow-origin through the real server (fastify inject): preflights answered for allowed origins only,
// the real response carrying Access-Control-Allow-Origin (and x-request-id exposed), preflights passing the
// API-key check while real requests still need a key, refused requests still readable by the browser, `*`,
// no CORS by default, and origins checked at start.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildHttpServer, Metrics } from '../../coordinator/http/index.js';
import { checkCorsOrigins } from '../../coordinator/http/cors.js';
import { parseArgs } from '../../deploy/config/index.js';
import { ScriptedEngine, post, testServer } from './http-engine-double.test.js';

const APP = 'https://app.example.com';
const preflight = (origin: string) => ({
  origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type',
});
const GEN = { inputs: 'hello', parameters: { max_new_tokens: 1 } };

test('allowed origin: preflight 204 with methods and max-age; the response names the origin and exposes x-request-id', async () => {
  const s = await testServer({ corsAllowOrigins: [APP, 'http://localhost:5173'] });
  try {
    const pre = await s.app.inject({ method: 'OPTIONS', url: '/generate', headers: preflight(APP) });
    assert.equal(pre.statusCode, 204, pre.body);
    assert.equal(pre.headers['access-control-allow-origin'], APP);
    assert.match(String(pre.headers['access-control-allow-methods']), /POST/);
    assert.match(String(pre.headers['access-control-allow-headers']), /authorization/);
    assert.equal(pre.headers['access-control-max-age'], '600');
    const res = await post(s.app, '/generate', GEN, { origin: APP });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['access-control-allow-origin'], APP);
    assert.match(String(res.headers['access-control-expose-headers']), /x-request-id/);
    assert.equal(res.headers['access-control-allow-credentials'], undefined, 'bearer keys, not cookies');
    // Another origin gets no grant (the browser then refuses to hand the response to the page).
    const other = await s.app.inject({ method: 'OPTIONS', url: '/generate', headers: preflight('https://evil.example') });
    assert.equal(other.headers['access-control-allow-origin'], undefined);
    const otherPost = await post(s.app, '/generate', GEN, { origin: 'https://app.example.com.evil.example' });
    assert.equal(otherPost.headers['access-control-allow-origin'], undefined);
  } finally {
    await s.app.close();
  }
});

test('with API keys: the preflight passes without one; the real request needs it and its 401 is readable cross-origin', async () => {
  const s = await testServer({ corsAllowOrigins: [APP], apiKeys: ['sk-cors-1'] });
  try {
    const pre = await s.app.inject({ method: 'OPTIONS', url: '/v1/chat/completions', headers: preflight(APP) });
    assert.equal(pre.statusCode, 204, pre.body);
    const refused = await post(s.app, '/generate', GEN, { origin: APP });
    assert.equal(refused.statusCode, 401);
    assert.equal(refused.headers['access-control-allow-origin'], APP);
    const ok = await post(s.app, '/generate', GEN, { origin: APP, authorization: 'Bearer sk-cors-1' });
    assert.equal(ok.statusCode, 200);
    // An OPTIONS request that is not a preflight is not a way around the key (the CORS plugin refuses it: 400).
    const before = s.engine.requests.length;
    const sneaky = await s.app.inject({ method: 'OPTIONS', url: '/generate', headers: { origin: APP } });
    assert.ok(sneaky.statusCode === 400 || sneaky.statusCode === 401, String(sneaky.statusCode));
    assert.equal(s.engine.requests.length, before);
  } finally {
    await s.app.close();
  }
});

test('* allows any origin; without the flag no CORS header is ever sent', async () => {
  const any = await testServer({ corsAllowOrigins: ['*'] });
  try {
    const res = await post(any.app, '/generate', GEN, { origin: 'https://anything.example' });
    assert.equal(res.headers['access-control-allow-origin'], '*');
  } finally {
    await any.app.close();
  }
  const none = await testServer();
  try {
    const res = await post(none.app, '/generate', GEN, { origin: APP });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['access-control-allow-origin'], undefined);
    const pre = await none.app.inject({ method: 'OPTIONS', url: '/generate', headers: preflight(APP) });
    assert.equal(pre.headers['access-control-allow-origin'], undefined);
  } finally {
    await none.app.close();
  }
});

test('origins are checked at start with what to write instead', async () => {
  for (const bad of ['app.example.com', 'https://app.example.com/', 'https://app.example.com/path', 'ftp://x.example', '']) {
    assert.throws(() => checkCorsOrigins([bad]), /--cors-allow-origin .*scheme:\/\/host/, bad);
  }
  assert.doesNotThrow(() => checkCorsOrigins(['*', 'http://localhost:5173', 'https://a.example']));
  await assert.rejects(buildHttpServer(new ScriptedEngine(), { logger: false, metrics: new Metrics(), corsAllowOrigins: ['example.com'] }),
    /--cors-allow-origin/);
  assert.deepEqual(parseArgs('launch', ['--cors-allow-origin', APP, '--cors-allow-origin', '*'], {}).corsAllowOrigins, [APP, '*']);
  assert.deepEqual(parseArgs('launch', [], { CORS_ALLOW_ORIGIN: `${APP},http://localhost:5173` }).corsAllowOrigins,
    [APP, 'http://localhost:5173']);
});
