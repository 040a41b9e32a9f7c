// Adapters at scale on the real server: 100 distinct adapters with zipf popularity through 8 device slots,
// 64 concurrent clients; every response equals the same request served alone, no 5xx, and afterwards
// KV blocks and adapter references are back to zero (as /metrics reports them). The step's prefill budget is
// 5 tokens, so under load most prompts are split over steps (chunked prefill) while requests served alone
// are not, and steps go out ahead of results (async scheduling, the default).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGoldenServer, textOf, type GoldenServer } from '../helpers/golden-server.js';
import { writeSyntheticAdapters } from '../helpers/synthetic-adapters.js';

let g: GoldenServer;
let names: string[];
const root = mkdtempSync(join(tmpdir(), 'weft-adapters-'));

before(async () => {
  names = writeSyntheticAdapters(join(import.meta.dirname, '../../../test/fixtures/golden/llama/model'), root, 100);
  g = await startGoldenServer({ adapterRoots: [root], maxAdapterSlots: 8, maxActiveAdapters: 8, adapterCycleTimeS: 1,
    maxBatchPrefillTokens: 5 });
});
after(async () => { await g.close(); });

/** Seeded zipf(s=1.1) over n items. */
function zipfSampler(n: number, seed: number): () => number {
  const w = Array.from({ length: n }, (_, i) => 1 / (i + 1) ** 1.1);
  const total = w.reduce((a, b) => a + b, 0);
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    let u = (s / 2147483648) * total;
    for (let i = 0; i < n; i++) if ((u -= w[i]) <= 0) return i;
    return n - 1;
  };
}

interface Job { body: { inputs: string; parameters: Record<string, unknown> }; key: string }

test('100 adapters, zipf popularity, 8 slots, 64 concurrent clients: responses equal served-alone ones', async () => {
  const pick = zipfSampler(names.length, 7);
  const prompts = [[182, 162, 289], [3, 156, 429, 249, 380], [63, 268, 46, 7]];
  const jobs: Job[] = Array.from({ length: 384 }, (_, k) => {
    const a = names[pick()];
    const p = prompts[k % prompts.length];
    const maxNew = 3 + (k % 4);
    return { key: `${a}|${p.join(',')}|${maxNew}`, body: { inputs: textOf(p), parameters: {
      adapter_id: a, adapter_source: 'local', max_new_tokens: maxNew, details: true } } };
  });
  const distinct = new Set(jobs.map((j) => j.body.parameters.adapter_id));
  assert.ok(distinct.size > 40, `only ${distinct.size} distinct adapters drawn`);

  const alone = new Map<string, number[]>();
  for (const j of jobs) {
    if (alone.has(j.key)) continue;
    const r = await g.post('/generate', j.body);
    assert.equal(r.status, 200, r.text);
    alone.set(j.key, r.json.details.tokens.map((t: { id: number }) => t.id));
  }

  const statuses = new Map<number, number>();
  let next = 0;
  const client = async () => {
    while (next < jobs.length) {
      const j = jobs[next++];
      const r = await g.post('/generate', j.body);
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      assert.equal(r.status, 200, `${j.key}: ${r.text}`);
      assert.deepEqual(r.json.details.tokens.map((t: { id: number }) => t.id), alone.get(j.key), j.key);
    }
  };
  await Promise.all(Array.from({ length: 64 }, client));
  assert.deepEqual([...statuses.keys()], [200]);

  const metrics = await (await fetch(`${g.url}/metrics`)).text();
  assert.match(metrics, /^weft_kv_blocks_used 0$/m);
  assert.match(metrics, /^weft_adapter_refs 0$/m);
  const loaded = Number(/^weft_adapters_loaded (\d+)$/m.exec(metrics)?.[1]);
  assert.ok(loaded > 0 && loaded <= 8, `adapters loaded: ${loaded}`);
});

test('20 adapters load concurrently while other traffic runs', async () => {
  const fresh = names.slice(80, 100);
  const traffic = Array.from({ length: 16 }, (_, k) => g.post('/generate', { inputs: textOf([5, 6, 7 + k]),
    parameters: { max_new_tokens: 8 } }));
  const loads = fresh.map((a) => g.post('/generate', { inputs: textOf([9, 10, 11]),
    parameters: { adapter_id: a, adapter_source: 'local', max_new_tokens: 2 } }));
  for (const r of await Promise.all([...traffic, ...loads])) assert.equal(r.status, 200, r.text);
  const stats = g.server.engine.stats();
  assert.equal(stats.usedBlocks, 0);
  assert.equal(stats.adapterRefs, 0);
});
