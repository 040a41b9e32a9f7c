// The NATS server every actor talks through goes away mid-serve and comes back (a NATS pod restarted, a network
// blip): a request in flight fails with a clear error rather than hanging, the server stays up, and once NATS is
// back (same address) the coordinator and its shards reconnect and serve again with nothing leaked.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGoldenServer, textOf, type GoldenServer } from '../helpers/golden-server.js';
import { startNatsServer, type NatsServerHandle } from '../helpers/nats-server.js';

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

async function generateUntilOk(g: GoldenServer, body: unknown, withinMs: number) {
  const deadline = Date.now() + withinMs;
  let r = await g.post('/generate', body);
  while (r.status !== 200 && Date.now() < deadline) {
    await sleep(500);
    r = await g.post('/generate', body);
  }
  return r;
}

describe('server TP=2 over an external nats-server that restarts', () => {
  let nats: NatsServerHandle;
  let g: GoldenServer;
  before(async () => {
    nats = await startNatsServer();
    g = await startGoldenServer({ numShard: 2, natsUrl: nats.url });
  });
  after(async () => {
    await g?.close();
    await nats?.stop();
  });

  test('a request during the outage fails clearly; after NATS is back the same server serves again', async () => {
    const body = { inputs: textOf(g.c.sequences[0]), parameters: { max_new_tokens: 6, details: true } };
    const first = await g.post('/generate', body);
    assert.equal(first.status, 200, first.text);

    await nats.stop();
    const t0 = Date.now();
    const during = await g.post('/generate', body);
    const waited = Date.now() - t0;
    assert.ok(during.status >= 500, `expected a server-side error while NATS is down, got ${during.status}: ${during.text}`);
    assert.ok(typeof during.json?.error === 'string' && during.json.error.length > 0, during.text);
    assert.ok(waited < 40_000, `the failure took ${waited} ms to reach the client`);
    const health = await fetch(g.url + '/health');
    assert.notEqual(health.status, 200, 'health says the server cannot serve while NATS is down');

    nats = await startNatsServer({ port: nats.port });
    const again = await generateUntilOk(g, body, 60_000);
    assert.equal(again.status, 200, `no success within 60 s of NATS coming back: ${again.text}`);
    assert.deepEqual(again.json.details.tokens.map((t: { id: number }) => t.id), first.json.details.tokens.map((t: { id: number }) => t.id));
    assert.equal(g.server.engine.stats().usedBlocks, 0);
    assert.equal((await fetch(g.url + '/health')).status, 200);
  });
});

describe('server with its private nats-server, which gets killed', () => {
  let g: GoldenServer;
  before(async () => { g = await startGoldenServer(); });
  after(async () => { await g?.close(); });

  test('weft launch starts it again on the same address and serves again', async () => {
    const body = { inputs: textOf(g.c.sequences[1]), parameters: { max_new_tokens: 4, details: true } };
    const first = await g.post('/generate', body);
    assert.equal(first.status, 200, first.text);
    const nats = g.server.nats!;
    const before = nats.process.pid;
    nats.process.kill('SIGKILL');
    const again = await generateUntilOk(g, body, 60_000);
    assert.equal(again.status, 200, `no success within 60 s of the kill: ${again.text}`);
    assert.notEqual(nats.process.pid, before, 'a new nats-server process');
    assert.deepEqual(again.json.details.tokens.map((t: { id: number }) => t.id), first.json.details.tokens.map((t: { id: number }) => t.id));
  });
});
