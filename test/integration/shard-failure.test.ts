// A forward pass that fails on one rank of a tensor-parallel group: the other rank is left waiting in a
// collective the failed rank never joins (here the shm all-reduce, which would wait 120 s). The failed rank
// reports the error as fatal and exits; the coordinator fails what is in flight at once (not after
// --step-timeout-ms) and the supervisor restarts the whole group, which then serves again.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGoldenServer, textOf, type GoldenServer } from '../helpers/golden-server.js';
import { injectedForwardFailure } from '../../deploy/shard-main.js';

test('WEFT_TEST_FAIL_FORWARD names one rank and one forward pass', () => {
  assert.equal(injectedForwardFailure(undefined, 1), 0);
  assert.equal(injectedForwardFailure('1:4', 1), 4);
  assert.equal(injectedForwardFailure('1:4', 0), 0);
  assert.throws(() => injectedForwardFailure('4', 0), /must be <rank>:<n>/);
});

describe('server TP=2: a forward pass failing on rank 1 only', () => {
  let g: GoldenServer;
  before(async () => {
    // Inherited by the shard processes of the first start only: the restarted group runs clean.
    process.env.WEFT_TEST_FAIL_FORWARD = '1:3';
    try {
      g = await startGoldenServer({ numShard: 2 }); // --step-timeout-ms 30000
    } finally {
      delete process.env.WEFT_TEST_FAIL_FORWARD;
    }
  });
  after(async () => { await g.close(); });

  test('fails the running request at once with the reason, restarts the group, and serves again', async () => {
    const restartsBefore = g.server.supervisor.restartCount;
    const body = { inputs: textOf(g.c.sequences[0]), parameters: { max_new_tokens: 40 } };
    const t0 = Date.now();
    const r = await g.post('/generate', body);
    const waited = Date.now() - t0;
    assert.equal(r.status, 500, r.text);
    assert.match(r.json.error, /shard 1 failed step \d+ and is restarting: rank 1: forward pass failed on rank 1: injected failure/);
    // Rank 0 sat in the all-reduce: without the fatal report this answer came after the 30 s step timeout.
    assert.ok(waited < 15_000, `the failure took ${waited} ms to reach the client`);

    const deadline = Date.now() + 60_000;
    while (!g.server.engine.healthy() && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
    assert.ok(g.server.engine.healthy(), 'the group came back');
    assert.ok(g.server.supervisor.restartCount > restartsBefore, 'the supervisor restarted the group');
    const again = await g.post('/generate', { ...body, parameters: { max_new_tokens: 8, details: true } });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.json.details.generated_tokens, 8);
    assert.equal(g.server.engine.stats().usedBlocks, 0);
  });
});

describe('server TP=2: a step result that never comes (rank 1 answers heartbeats, not step 3)', () => {
  let g: GoldenServer;
  before(async () => {
    process.env.WEFT_TEST_DROP_RESULT = '1:3';
    try {
      g = await startGoldenServer({ numShard: 2, stepTimeoutMs: 2000 });
    } finally {
      delete process.env.WEFT_TEST_DROP_RESULT;
    }
  });
  after(async () => { await g.close(); });

  test('the step times out, the request fails naming it, the group restarts and serves again', async () => {
    const restartsBefore = g.server.supervisor.restartCount;
    const body = { inputs: textOf(g.c.sequences[0]), parameters: { max_new_tokens: 40 } };
    const r = await g.post('/generate', body);
    assert.equal(r.status, 500, r.text);
    assert.match(r.json.error, /got no reply from every shard within 2000 ms/);
    const deadline = Date.now() + 60_000;
    while (g.server.supervisor.restartCount === restartsBefore && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
    assert.ok(g.server.supervisor.restartCount > restartsBefore, 'the supervisor restarted the group');
    while (!g.server.engine.healthy() && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
    const again = await g.post('/generate', { ...body, parameters: { max_new_tokens: 8, details: true } });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.json.details.generated_tokens, 8);
    assert.equal(g.server.engine.stats().usedBlocks, 0);
  });
});
