// `weft router` in front of real weft replicas (golden llama servers): each adapter's requests go to one replica
// (its rendezvous first choice) and are loaded only there; a burst for one adapter spills to its second choice
// once the first is above the load bound (not with bounding off); streams pass through; OpenAI and TGI requests
// for one adapter meet on the same replica; a stored response is found again; admin names reach every replica,
// including one that comes up later; a replica that goes away is skipped; nothing up is a 503.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRouter, type RunningRouter } from '../../deploy/router/router.js';
import { loadGoldenCase } from '../helpers/golden.js';
import { startGoldenServer, textOf, type GoldenServer } from '../helpers/golden-server.js';

const c = loadGoldenCase('llama');
const root = mkdtempSync(join(tmpdir(), 'weft-router-adapters-'));
const ADAPTERS = Array.from({ length: 8 }, (_, i) => `a${i}`);
for (const [i, id] of ADAPTERS.entries()) cpSync(join(c.dir, 'adapters', i % 2 ? 'qv_r4' : 'all_r8'), join(root, id), { recursive: true });

const freePort = () => new Promise<number>((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const port = (s.address() as { port: number }).port;
    s.close(() => resolve(port));
  });
});
type BackendsView = { load_factor: number; load_bound: number | null; backends: { name: string; up: boolean; in_flight: number }[] };
const until = async (ok: () => Promise<boolean>, what: string) => {
  for (let i = 0; i < 100; i++) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting for ${what}`);
};

describe('weft router over two replicas (and a third that starts late)', () => {
  let a: GoldenServer, b: GoldenServer, late: GoldenServer | null = null, router: RunningRouter;
  let latePort: number;
  // Words joined by spaces: the golden tokenizer's words (the Responses API renders a chat template).
  const TEMPLATE = "{% for m in messages %}{{ m['content'] }} {% endfor %}";
  const replica = () => startGoldenServer({ adapterRoots: [root], maxAdapterSlots: 8 } as never, { chatTemplate: TEMPLATE });
  before(async () => {
    [a, b] = [await replica(), await replica()];
    latePort = await freePort();
    router = await startRouter({ backends: [`a=${a.url}`, `b=${b.url}`, `c=http://127.0.0.1:${latePort}`], port: 0, hostname: '127.0.0.1',
      healthIntervalMs: 200, loadFactor: 1.25, logLevel: 'silent' });
  });
  after(async () => {
    await router.close();
    await Promise.all([a.close(), b.close(), late?.close()]);
  });
  const post = async (path: string, body: unknown) => {
    const r = await fetch(router.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const text = await r.text();
    let json: any = null;
    try { json = JSON.parse(text); } catch { /* a stream or plain text */ }
    return { status: r.status, backend: r.headers.get('x-weft-backend'), text, json };
  };
  const gen = (id: string | null, extra: Record<string, unknown> = {}) => post('/generate', { inputs: textOf(c.sequences[0]!),
    parameters: { max_new_tokens: 3, ...(id ? { adapter_id: id, adapter_source: 'local' } : {}), ...extra } });

  test('each adapter goes to its rendezvous first choice, every time, and is loaded only there', async () => {
    const placed = new Map<string, string>();
    for (const id of ADAPTERS) {
      const [x, y] = [await gen(id), await gen(id)];
      assert.equal(x.status, 200, x.text);
      assert.equal(x.backend, y.backend);
      assert.equal(x.backend, router.pool.orderFor(id)[0]!.name, 'the first healthy choice');
      placed.set(id, x.backend!);
    }
    assert.deepEqual(new Set(placed.values()), new Set(['a', 'b']), 'both replicas get adapters');
    const listed = await fetch(`${router.url}/v1/adapters`).then((r) => r.json()) as { adapters: { id: string; backend: string }[] };
    for (const id of ADAPTERS) {
      const where = listed.adapters.filter((x) => x.id.endsWith(`/${id}`) || x.id === id).map((x) => x.backend);
      assert.deepEqual(where, [placed.get(id)], `${id} is on one replica only`);
    }
    // The OpenAI route names the same adapter with `model`: the same replica.
    const o = await post('/v1/completions', { model: 'a3', adapter_source: 'local', prompt: textOf(c.sequences[0]!), max_tokens: 2 });
    assert.equal(o.status, 200, o.text);
    assert.equal(o.backend, placed.get('a3'));
    // Base-model requests go anywhere that is up.
    const base = await Promise.all([gen(null), gen(null), gen(null)]);
    for (const r of base) assert.ok(r.status === 200 && ['a', 'b'].includes(r.backend!), r.text);
  });

  test('a burst for one adapter spills to its second choice above the load bound; one request stays on the first', async () => {
    // Only a and b are up (c starts later): bound ceil(1.25 × (in flight + 1) / 2). Eight requests at once, each
    // generating 240 tokens (past EOS), all in flight together: 5 on the first choice, 3 spilled to the second.
    const id = 'a4';
    const [first, second] = router.pool.orderFor(id).map((x) => x.name);
    const slow = (r: RunningRouter) => fetch(`${r.url}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: textOf(c.sequences[0]!), parameters: { max_new_tokens: 240, ignore_eos_token: true, adapter_id: id, adapter_source: 'local' } }) })
      .then(async (x) => ({ status: x.status, backend: x.headers.get('x-weft-backend'), text: await x.text() }));
    const burst = async (r: RunningRouter) => {
      let settled = false;
      const done = Promise.all(Array.from({ length: 8 }, () => slow(r))).finally(() => { settled = true; });
      // While they run, the router shows them in flight and the bound they raised (polled until all eight arrived).
      let mid: BackendsView;
      do mid = await fetch(`${r.url}/router/backends`).then((x) => x.json()) as BackendsView;
      while (!settled && mid.backends.reduce((n, x) => n + x.in_flight, 0) < 8);
      const results = await done;
      for (const x of results) assert.equal(x.status, 200, x.text);
      const served = new Map<string, number>();
      for (const x of results) served.set(x.backend!, (served.get(x.backend!) ?? 0) + 1);
      return { served, mid };
    };
    const one = await slow(router);
    assert.deepEqual([one.status, one.backend], [200, first], 'a single request: the first choice');

    const { served, mid } = await burst(router);
    assert.deepEqual(new Set(served.keys()), new Set([first, second]), `served by both: ${[...served]}`);
    assert.ok(served.get(first)! >= served.get(second)!, `the first choice takes the most: ${[...served]}`);
    assert.equal(mid.load_factor, 1.25);
    assert.equal(mid.backends.reduce((n, x) => n + x.in_flight, 0), 8, 'all eight in flight at once');
    assert.equal(mid.load_bound, 6, 'the next request\'s: ceil(1.25 × (8 + 1) / 2)');

    // Afterwards nothing is in flight, and the next single request is the first choice's again.
    const after = await fetch(`${router.url}/router/backends`).then((x) => x.json()) as BackendsView;
    assert.deepEqual(after.backends.map((x) => x.in_flight), [0, 0, 0]);
    assert.equal(after.load_bound, 1);
    assert.equal((await slow(router)).backend, first);
    const metrics = await fetch(`${router.url}/metrics`).then((x) => x.text());
    const count = (reason: string, backend: string) =>
      Number(new RegExp(`weft_router_placements_total\\{backend="${backend}",reason="${reason}"\\} (\\d+)`).exec(metrics)?.[1]);
    assert.equal(count('spill', second!), served.get(second!), metrics);
    assert.equal(count('spill', first!), 0);
    assert.ok(count('affinity', first!) >= served.get(first!)! + 2);
    assert.match(metrics, new RegExp(`weft_router_backend_in_flight\\{backend="${first}"\\} 0`));
    assert.match(metrics, /weft_router_load_bound 1\b/);

    // The same burst through a router with bounding off: all on the first choice.
    const pure = await startRouter({ backends: [`a=${a.url}`, `b=${b.url}`], port: 0, hostname: '127.0.0.1', healthIntervalMs: 200, loadFactor: 1e9, logLevel: 'silent' });
    try {
      assert.deepEqual([...(await burst(pure)).served], [[first, 8]]);
    } finally {
      await pure.close();
    }
  });

  test('streams pass through unchanged; a stored response is found on the replica that stored it', async () => {
    const plain = await gen('a1', { do_sample: false });
    const stream = await post('/generate_stream', { inputs: textOf(c.sequences[0]!), parameters: { max_new_tokens: 3, adapter_id: 'a1', adapter_source: 'local' } });
    assert.equal(stream.status, 200);
    const events = stream.text.split('\n').filter((l) => l.startsWith('data:')).map((l) => JSON.parse(l.slice(5)));
    assert.equal(events.length, 3);
    assert.equal(events.at(-1).generated_text, plain.json.generated_text);
    for (const model of ['a2', 'a5']) {
      const created = await post('/v1/responses', { model, adapter_source: 'local', input: textOf(c.sequences[1]!), max_output_tokens: 2 });
      assert.equal(created.status, 200, created.text);
      const again = await fetch(`${router.url}/v1/responses/${created.json.id}`);
      assert.equal(again.status, 200);
      assert.equal(again.headers.get('x-weft-backend'), created.backend);
      assert.equal(((await again.json()) as { id: string }).id, created.json.id);
    }
  });

  test('a name given through the router reaches every replica, and one that comes up later', async () => {
    const r = await post('/v1/load_lora_adapter', { lora_name: 'named', lora_path: join(root, 'a0') });
    assert.equal(r.status, 200, r.text);
    for (const g of [a, b]) {
      const models = await fetch(`${g.url}/v1/models`).then((x) => x.json()) as { data: { id: string }[] };
      assert.ok(models.data.some((m) => m.id === 'named'), g.url);
    }
    late = await startGoldenServer({ adapterRoots: [root], port: latePort } as never);
    await until(async () => ((await fetch(`${late!.url}/v1/models`).then((x) => x.json())) as { data: { id: string }[] }).data.some((m) => m.id === 'named'),
      'the late replica to be given the name');
    const viaName = await post('/v1/completions', { model: 'named', prompt: textOf(c.sequences[0]!), max_tokens: 2 });
    assert.equal(viaName.status, 200, viaName.text);
  });

  test('a replica that goes away is skipped; the adapters it held move to their next choice', async () => {
    const owner = router.pool.orderFor('a6')[0]!;
    const gone = owner.name === 'a' ? a : owner.name === 'b' ? b : late!;
    await gone.close();
    const r = await gen('a6');
    assert.equal(r.status, 200, r.text);
    assert.notEqual(r.backend, owner.name);
    assert.equal((await fetch(`${router.url}/health`)).status, 200);
    const status = await fetch(`${router.url}/router/backends`).then((x) => x.json()) as { backends: { name: string; up: boolean }[] };
    assert.equal(status.backends.find((x) => x.name === owner.name)!.up, false);
    const metrics = await fetch(`${router.url}/metrics`).then((x) => x.text());
    assert.match(metrics, new RegExp(`weft_router_backend_up\\{backend="${owner.name}"\\} 0`));
    assert.match(metrics, /weft_router_requests_total\{backend="[abc]",code="200"\} \d+/);
  });
});

test('no replica up: 503 on requests and on /health', async () => {
  const router = await startRouter({ backends: [`http://127.0.0.1:${await freePort()}`], port: 0, hostname: '127.0.0.1', healthIntervalMs: 200, loadFactor: 1.25, logLevel: 'silent' });
  try {
    const r = await fetch(`${router.url}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"inputs":"x"}' });
    assert.equal(r.status, 503);
    assert.match(((await r.json()) as { error: string }).error, /no replica is available/);
    assert.equal((await fetch(`${router.url}/health`)).status, 503);
  } finally {
    await router.close();
  }
});
