// SageMaker's contract: GET /ping and POST /invocations, which answers each API body exactly as its own route does
// (greedy, so the same body gives the same answer), errors included; /ping open when API keys are on.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGoldenServer, type GoldenServer } from '../helpers/golden-server.js';

const TEMPLATE = "{% for m in messages %}{{ m['content'] }} {% endfor %}";
const KEY = 'sk-sagemaker-test';
const auth = { authorization: `Bearer ${KEY}` };

/** The parts of an answer that do not change between two calls (ids and timestamps do). */
function stable(json: any): unknown {
  if (Array.isArray(json)) return json.map(stable);
  if (json === null || typeof json !== 'object') return json;
  return Object.fromEntries(Object.entries(json).filter(([k]) => !['id', 'created', 'system_fingerprint'].includes(k))
    .map(([k, v]) => [k, stable(v)]));
}

describe('SageMaker routes', () => {
  let g: GoldenServer;
  before(async () => { g = await startGoldenServer({}, { chatTemplate: TEMPLATE, flags: ['--api-key', KEY] }); });
  after(async () => { await g.close(); });

  test('/ping answers 200 without an API key; /invocations needs one', async () => {
    const ping = await fetch(`${g.url}/ping`);
    assert.equal(ping.status, 200);
    assert.equal((await g.post('/invocations', { inputs: 't1 t2' })).status, 401);
  });

  for (const [route, body] of [
    ['/', { inputs: 't5 t9 t12', parameters: { max_new_tokens: 4, details: true, adapter_id: 'qv_r4', adapter_source: 'local' } }],
    ['/v1/chat/completions', { messages: [{ role: 'user', content: 't5 t9' }], max_tokens: 4, temperature: 0, logprobs: true }],
    ['/v1/completions', { prompt: 't7 t3', max_tokens: 4, temperature: 0, model: 'all_r8', adapter_source: 'local' }],
    ['/v1/embeddings', { input: ['t1 t2 t3', 't4'] }],
    ['/score', { text_1: 't1 t2', text_2: ['t1 t2', 't9 t8'] }],
    ['/rerank', { query: 't1 t2', documents: ['t9 t8', 't1 t2'] }],
  ] as const) {
    test(`a ${route} body gets ${route}'s answer`, async () => {
      const [direct, invoked] = await Promise.all([g.post(route, body, auth), g.post('/invocations', body, auth)]);
      assert.equal(direct.status, 200, direct.text);
      assert.equal(invoked.status, 200, invoked.text);
      assert.deepEqual(stable(invoked.json), stable(direct.json));
    });
  }

  test('a streamed generate body streams server-sent events', async () => {
    const r = await fetch(`${g.url}/invocations`, { method: 'POST', headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify({ inputs: 't5 t9', stream: true, parameters: { max_new_tokens: 3 } }) });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /text\/event-stream/);
    const events = (await r.text()).split('\n').filter((l) => l.startsWith('data:'));
    assert.equal(events.length, 3, 'one event per token');
    assert.ok(JSON.parse(events[2]!.slice(5)).generated_text !== null, 'the last event has the text');
  });

  test('errors are the chosen route\'s; a body of no route is a 422 naming the shapes', async () => {
    const bad = { messages: 'not a list', max_tokens: 2 };
    const [direct, invoked] = await Promise.all([g.post('/v1/chat/completions', bad, auth), g.post('/invocations', bad, auth)]);
    assert.equal(invoked.status, direct.status);
    assert.deepEqual(invoked.json, direct.json);
    const tgi = await g.post('/invocations', { inputs: 't1', parameters: { max_new_tokens: 0 } }, auth);
    assert.equal(tgi.status, 422, tgi.text);
    assert.equal(tgi.json.error_type, 'validation', 'TGI\'s error shape');
    const none = await g.post('/invocations', { hello: 1 }, auth);
    assert.equal(none.status, 422, none.text);
    assert.match(none.text, /`inputs` \(TGI generate\), `messages` \(chat completions\)/);
    assert.equal((await g.post('/generate', { inputs: 't1', parameters: { max_new_tokens: 1 } }, auth)).status, 200, 'still serving');
  });
});
