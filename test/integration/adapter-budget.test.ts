// The adapter byte budget (--adapter-memory-fraction) through real shards: the server plans slots for far
// more adapters than the budget holds, and it is the adapters' bytes (estimated from their files, then what the
// shards report) that decide evictions — idle, least recently used first. Every response equals the same request
// on a server without a budget.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { estimateAdapterBytes } from '../../coordinator/adapters/size-estimate.js';
import { startGoldenServer, textOf, type GoldenServer } from '../helpers/golden-server.js';
import { writeSyntheticAdapters } from '../helpers/synthetic-adapters.js';

const root = mkdtempSync(join(tmpdir(), 'weft-budget-e2e-'));
let names: string[];
let bytes: Map<string, number>;
let budget: number;
let g: GoldenServer;
let plain: GoldenServer;

before(async () => {
  names = writeSyntheticAdapters(join(import.meta.dirname, '../../../test/fixtures/golden/llama/model'), root, 4, 3);
  bytes = new Map(names.map((n) => [n, estimateAdapterBytes({ dir: join(root, n) }, 4)]));  // fp32 on the CPU backend
  const [a, b, c] = names.map((n) => bytes.get(n)!);
  budget = Math.max(a! + b!, b! + c!) + Math.min(a!, b!, c!) / 2;  // any two of a, b, c fit; all three do not
  assert.ok(budget < a! + b! + c!);
  g = await startGoldenServer({ adapterRoots: [root], adapterMemoryFraction: budget / totalmem(), maxActiveAdapters: 4 });
  plain = await startGoldenServer({ adapterRoots: [root], maxAdapterSlots: 4, maxActiveAdapters: 4 });
});
after(async () => {
  await g?.close();
  await plain?.close();
});

async function generate(s: GoldenServer, adapter: string): Promise<number[]> {
  const r = await s.post('/generate', { inputs: textOf([3, 156, 429]), parameters: { adapter_id: adapter, adapter_source: 'local',
    max_new_tokens: 3, details: true } });
  assert.equal(r.status, 200, r.text);
  return (r.json as { details: { tokens: { id: number }[] } }).details.tokens.map((t) => t.id);
}

async function resident(s: GoldenServer): Promise<string[]> {
  const res = await fetch(`${s.url}/v1/adapters`);
  const list = (await res.json()) as { adapters: { id: string; tier: string; bytes: number }[] };
  return list.adapters.filter((a) => a.tier === 'device').map((a) => a.id).sort();
}

test('slots for many adapters, evictions by bytes: any two of three fit, the third evicts the least recently used', async () => {
  const info = (await (await fetch(`${g.url}/info`)).json()) as { adapter_slots?: number };
  assert.ok((info.adapter_slots ?? 0) > 3, `slots ${info.adapter_slots}: more than the budget's bytes hold`);
  const [a, b, c] = names;
  const want = new Map<string, number[]>();
  for (const n of [a!, b!, c!]) want.set(n, await generate(plain, n));

  assert.deepEqual(await generate(g, a!), want.get(a!));
  assert.deepEqual(await generate(g, b!), want.get(b!));
  assert.deepEqual(await resident(g), [a!, b!].sort());
  assert.deepEqual(await generate(g, c!), want.get(c!));
  assert.deepEqual(await resident(g), [b!, c!].sort(), 'a, the least recently used, made room');
  assert.deepEqual(await generate(g, a!), want.get(a!));
  assert.deepEqual(await resident(g), [a!, c!].sort(), 'then b');

  const metrics = await (await fetch(`${g.url}/metrics`)).text();
  assert.match(metrics, /^weft_adapter_refs 0$/m);
  const gauge = (kind: string) => Number(new RegExp(`^weft_adapter_memory_bytes\\{kind="${kind}"\\} (\\d+)$`, 'm').exec(metrics)?.[1]);
  assert.equal(gauge('used'), bytes.get(a!)! + bytes.get(c!)!, 'the shards report what the files said');
  assert.ok(Math.abs(gauge('budget') - budget) <= 1, `budget gauge ${gauge('budget')} vs ${budget}`);
});
