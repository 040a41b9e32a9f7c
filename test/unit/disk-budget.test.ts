// The disk tier's budget (--adapter-disk-cache-bytes) with real downloads from a local server speaking the Hub's API:
// past the budget the least recently used adapter downloads go — never one something reads, one used in the last
// minute, or a model — and one asked for again is downloaded again; a restart reads the order back from disk; the
// registry says which directories requests still hold.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GRACE_MS, sizeOf } from '../../coordinator/adapters/disk-budget.js';
import { DiskCache, STALE_DOWNLOAD_MS } from '../../coordinator/adapters/disk-cache.js';
import { AdapterRegistry } from '../../coordinator/adapters/registry.js';
import { HubSource } from '../../coordinator/adapters/sources/hub.js';
import { startHubServer, type HubServerHandle } from '../helpers/hub-server.js';

const GOLDEN = join(fileURLToPath(new URL('../../../', import.meta.url)), 'test/fixtures/golden/llama');
const files = (name: string) => ({ 'adapter_config.json': join(GOLDEN, 'adapters', name, 'adapter_config.json'),
  'adapter_model.safetensors': join(GOLDEN, 'adapters', name, 'adapter_model.safetensors') });
const sha = (s: string) => createHash('sha1').update(s).digest('hex');
const NAMES = ['a', 'b', 'c', 'd'];
const model = { 'config.json': join(GOLDEN, 'model', 'config.json'), 'model.safetensors': join(GOLDEN, 'model', 'model.safetensors') };

let hub: HubServerHandle;
const tmp = mkdtempSync(join(tmpdir(), 'weft-disk-budget-'));
before(async () => {
  hub = await startHubServer({ repos: {
    ...Object.fromEntries(NAMES.map((n) => [`weft/${n}`, { revisions: { main: { sha: sha(n), files: files('all_r8') } } }])),
    'weft/model': { revisions: { main: { sha: sha('model'), files: model } } },
  } });
});
after(async () => {
  await hub.stop();
  rmSync(tmp, { recursive: true, force: true });
});

/** A Hub source over a cache of `adapters` adapter downloads' bytes, on a clock the test moves. */
async function setup(dir: string, adapters: number, clock: { now: number }, inUse = new Set<string>()) {
  const one = new DiskCache(join(tmp, 'probe'));
  const probe = await new HubSource({ endpoint: hub.endpoint, cache: one }).fetch('weft/a', sha('a'), undefined);
  const size = sizeOf(probe);
  const evicted: string[] = [];
  const cache = new DiskCache(join(tmp, dir), { bytes: adapters * size, now: () => clock.now,
    inUse: (d) => inUse.has(d), onEvict: (d) => evicted.push(d) });
  const src = new HubSource({ endpoint: hub.endpoint, cache });
  const fetch = (n: string) => src.fetch(`weft/${n}`, sha(n), undefined);
  return { cache, src, fetch, evicted, size };
}

test('least recently used adapter downloads go past the budget; one asked for again comes back', async () => {
  const clock = { now: 1_000_000 };
  const { cache, fetch, evicted, size } = await setup('lru', 2, clock);
  const a = await fetch('a');
  clock.now += GRACE_MS + 1;
  const b = await fetch('b');
  clock.now += GRACE_MS + 1;
  assert.equal(await fetch('a'), a, 'a hit: a is now the most recent');
  clock.now += GRACE_MS + 1;
  const c = await fetch('c');  // over 2: b (least recent) goes
  assert.deepEqual(evicted, [b]);
  assert.ok(existsSync(a) && !existsSync(b) && existsSync(c));
  assert.equal(cache.budget!.usedBytes, 2 * size);
  const blob = hub.blobPath(readFileSync(files('all_r8')['adapter_model.safetensors']));
  const before = hub.hits.get(blob) ?? 0;
  clock.now += GRACE_MS + 1;
  assert.equal(await fetch('b'), b, 'downloaded again, to the same place');
  assert.equal(hub.hits.get(blob), before + 1);
  assert.ok(existsSync(b));
  assert.deepEqual(evicted, [b, a]);
});

test('nothing read by a request, nothing used in the last minute and no model is deleted: the budget is then exceeded', async () => {
  const clock = { now: 5_000_000 };
  const inUse = new Set<string>();
  const { cache, src, fetch, evicted, size } = await setup('held', 1, clock, inUse);
  const model = await src.fetchModel('weft/model', null, undefined);
  const a = await fetch('a');
  inUse.add(a);
  clock.now += GRACE_MS + 1;
  const b = await fetch('b');
  assert.deepEqual(evicted, [], 'a is held');
  clock.now += 1000;
  inUse.delete(a);
  const c = await fetch('c');  // b is 1 s old (grace), a is free: a goes
  assert.deepEqual(evicted, [a]);
  assert.ok(existsSync(model) && existsSync(b) && existsSync(c));
  assert.equal(cache.budget!.usedBytes, 2 * size, 'over the budget while b and c are recent');
});

test('a restart counts what is on disk and keeps its order by modification time', async () => {
  const clock = { now: 9_000_000 };
  const first = await setup('restart', 3, clock);
  const paths: string[] = [];
  for (const n of ['a', 'b', 'c']) {
    paths.push(await first.fetch(n));
    clock.now += GRACE_MS + 1;
  }
  await first.fetch('a');  // touched: a is the most recent on disk too
  clock.now += GRACE_MS + 1;
  const again = await setup('restart', 3, clock);
  assert.equal(again.cache.budget!.usedBytes, 3 * again.size);
  await again.fetch('d');
  assert.deepEqual(again.evicted, [paths[1]], 'b, the least recently used before the restart');
});

test('temp downloads a crashed process left are deleted at start once a day old; recent ones (another download) stay', () => {
  const root = join(tmp, 'stale');
  const old = join(root, 'hub', 'abc', 'rev.tmp-123-aaaa'), fresh = join(root, 'hub', 'abc', 'rev.tmp-456-bbbb'), done = join(root, 'hub', 'abc', 'rev');
  for (const d of [old, fresh, done]) mkdirSync(d, { recursive: true });
  const day = new Date(Date.now() - STALE_DOWNLOAD_MS - 60_000);
  utimesSync(old, day, day);
  utimesSync(done, day, day);
  new DiskCache(root);
  assert.deepEqual([existsSync(old), existsSync(fresh), existsSync(done)], [false, true, true]);
});

test('the registry holds the directories of adapters requests hold, load or pin', async () => {
  const root = join(GOLDEN, 'adapters');
  const reg = new AdapterRegistry({ roots: [root], slots: 1, sources: {}, useGlobalHubToken: false, names: new Map(),
    hostCacheBytes: 0, budgetBytes: 0, elementBytes: 4 },
    { loadAdapter: () => new Promise(() => {}), evictAdapter: () => {} }, { ready: () => {}, failed: () => {}, inUse: () => false });
  const p = await reg.prepare({ id: 'all_r8', source: 'local' });
  const dir = p.load.dir!;
  assert.equal(reg.usesDir(dir), false, 'prepared only');
  reg.acquire(p);
  assert.equal(reg.usesDir(dir), true, 'held by a request (loading)');
  assert.equal(reg.usesDir(root), false);
});
