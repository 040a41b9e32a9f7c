// The adapter registry's byte budget (--adapter-memory-fraction): sizes estimated from the adapter files
// (safetensors headers) before a load and replaced by the shards' report after it; loads evict by bytes as well as
// slots — idle least-recently-used first, never pinned adapters or ones running sequences use, and nothing
// when evicting could not make room; an adapter larger than the whole budget is refused up front (424).
// The loader here is an in-process stand-in for the shard group (the unit is the registry's policy); the
// integration test test/integration/adapters-load.test.ts runs the budget through real shards.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdapterRegistry, type AdapterLoaded, type LoadSpec } from '../../coordinator/adapters/registry.js';
import { estimateAdapterBytes } from '../../coordinator/adapters/size-estimate.js';
import { EngineError } from '../../coordinator/engine/types.js';
import { writeSafetensors } from '../../shard/formats/index.js';

const root = mkdtempSync(join(tmpdir(), 'weft-budget-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** An adapter directory whose LoRA tensors hold `elements` values (one A/B pair), plus a non-LoRA tensor. */
function adapterDir(name: string, elements: number): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const a = elements / 2;
  writeSafetensors(join(dir, 'adapter_model.safetensors'), {
    'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': { dtype: 'F32', shape: [1, a], data: new Float32Array(a) },
    'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight': { dtype: 'F32', shape: [a, 1], data: new Float32Array(a) },
    'base_model.model.lm_head.modules_to_save.weight': { dtype: 'F32', shape: [3, 3], data: new Float32Array(9) },
  });
  writeFileSync(join(dir, 'adapter_config.json'), '{}');
  return dir;
}

class Loader {
  loads: string[] = [];
  evicts: string[] = [];
  prefetches: string[] = [];
  /** What the "shards" report per adapter key (default: the estimate's element count × 2 bytes). */
  report = new Map<string, number>();
  loadAdapter(key: string, _slot: number, load: LoadSpec): Promise<AdapterLoaded> {
    this.loads.push(key);
    const bytes = this.report.get(key) ?? estimateAdapterBytes(load, 2);
    return Promise.resolve({ bytes: 2 * bytes, rankBytes: bytes, maxRank: 1, hostBytes: 0 });
  }
  evictAdapter(key: string): void {
    this.evicts.push(key);
  }
  prefetchAdapter(key: string): void {
    this.prefetches.push(key);
  }
}

function registry(budgetBytes: number, slots = 8) {
  const loader = new Loader();
  const inUse = new Set<string>();
  const reg = new AdapterRegistry({ roots: [root], slots, sources: {}, useGlobalHubToken: false, names: new Map(),
    hostCacheBytes: 0, budgetBytes, elementBytes: 2 }, loader, { ready: () => {}, failed: () => {}, inUse: (k) => inUse.has(k) });
  const use = async (name: string, elements: number) => {
    const p = await reg.prepare({ id: adapterDir(name, elements), source: 'local' });
    reg.acquire(p);
    await new Promise((r) => setImmediate(r));
    return p.key;
  };
  return { reg, loader, inUse, use };
}

describe('adapter byte budget', () => {
  it('estimates the LoRA tensors of the files at the engine element size', () => {
    assert.equal(estimateAdapterBytes({ dir: adapterDir('est', 1000) }, 2), 2000);
    assert.equal(estimateAdapterBytes({ merge: { dirs: [adapterDir('m1', 100), adapterDir('m2', 300)], weights: [1, 1],
      strategy: 'linear', majoritySignMethod: 'total', seed: 0 } }, 4), 1600);
  });

  it('evicts idle adapters, least recently used first, until the new one fits — by bytes, not slots', async () => {
    const { reg, loader, use } = registry(10_000);  // 8 slots, 10 kB
    const a = await use('a', 2000), b = await use('b', 2000);  // 4 kB each
    reg.release(a); reg.release(b);
    assert.equal(reg.usedBytes, 8000);
    const c = await use('c', 2000);  // 4 kB more: a (least recent) goes
    assert.deepEqual(loader.evicts, [a]);
    assert.ok(reg.isReady(b) && reg.isReady(c) && !reg.isReady(a));
    reg.release(c);
    const big = await use('big', 4000);  // 8 kB: b and c go
    assert.deepEqual(loader.evicts, [a, b, c]);
    assert.ok(reg.isReady(big));
    assert.equal(reg.usedBytes, 8000);
  });

  it('many small adapters share the budget a few large ones would take', async () => {
    const { reg, use } = registry(10_000, 64);
    const keys = [];
    for (let i = 0; i < 20; i++) keys.push(await use(`s${i}`, 250));  // 500 bytes each
    assert.equal(keys.filter((k) => reg.isReady(k)).length, 20);
    assert.equal(reg.usedBytes, 10_000);
  });

  it('never evicts pinned adapters or ones in use; waits instead of evicting what would not be enough', async () => {
    const { reg, loader, inUse, use } = registry(10_000);
    const a = await use('pa', 2000);
    await reg.pin({ id: join(root, 'pa'), source: 'local' }, true);
    const b = await use('pb', 1500);  // 3 kB, in use by a running sequence
    inUse.add(b);
    reg.release(a); reg.release(b);
    const c = await use('pc', 1500);  // 3 kB: 4 + 3 + 3 = 10 kB fits
    assert.ok(reg.isReady(c));
    reg.release(c);
    const d = await use('pd', 2000);  // 4 kB: only c may go, and 4 + 3 + 4 > 10: not enough — nothing is evicted
    assert.equal(reg.isReady(d), false);
    assert.deepEqual(loader.evicts, []);
    inUse.delete(b);
    reg.retryWaiting();  // b's sequence finished: b, then c (idle, least recently used first) make room
    await new Promise((r) => setImmediate(r));
    assert.ok(reg.isReady(d));
    assert.deepEqual(loader.evicts, [b, c]);
    assert.ok(reg.isReady(a), 'pinned a stays');
    assert.equal(reg.usedBytes, 8000);
  });

  it("the shards' report replaces the estimate", async () => {
    const { reg, loader } = registry(10_000);
    const p = await reg.prepare({ id: adapterDir('r', 2000), source: 'local' });
    assert.equal(p.needBytes, 4000, 'estimated from the files');
    loader.report.set(p.key, 1234);
    reg.acquire(p);
    await new Promise((r) => setImmediate(r));
    assert.ok(reg.isReady(p.key));
    assert.equal(reg.usedBytes, 1234);
  });

  it('an adapter larger than the whole budget is refused before it is queued (424)', async () => {
    const { reg, loader } = registry(1000);
    await assert.rejects(reg.prepare({ id: adapterDir('huge', 1000), source: 'local' }), (e: unknown) => {
      assert.ok(e instanceof EngineError && e.kind === 'adapter_load');
      assert.match(e.message, /needs 0\.0 MB of adapter memory per shard, more than the whole budget of 0\.0 MB \(raise --adapter-memory-fraction\)/);
      return true;
    });
    assert.deepEqual(loader.loads, []);
  });

  it('without a budget only slots count', async () => {
    const { reg, loader, use } = registry(0, 2);
    const a = await use('n1', 100_000), b = await use('n2', 100_000);
    reg.release(a); reg.release(b);
    const c = await use('n3', 2);
    assert.deepEqual(loader.evicts, [a], 'the third adapter needed a slot');
    assert.ok(reg.isReady(b) && reg.isReady(c));
    assert.equal(reg.usedBytes, 200_000 + 4, 'what the shards reported for the resident ones');
  });
});

describe('prefetch of waiting adapters', () => {
  it('the two longest-waiting adapters are read ahead, once per wait', async () => {
    const { reg, loader, inUse, use } = registry(0, 1);
    const a = await use('w0', 10);
    inUse.add(a);  // a running sequence holds the only slot
    const b = await use('w1', 10), c = await use('w2', 10), d = await use('w3', 10);
    assert.deepEqual(loader.prefetches, [b, c], 'the two oldest waiting, not the third');
    reg.retryWaiting();
    assert.deepEqual(loader.prefetches, [b, c], 'once per wait');
    inUse.delete(a);
    reg.release(a);  // b gets the slot; d is now among the two longest waiting
    await new Promise((r) => setImmediate(r));
    assert.ok(reg.isReady(b));
    assert.deepEqual(loader.prefetches, [b, c, d]);
  });
});

it('the estimate is what one CPU shard\'s slot holds, for every golden adapter (fused q|k|v and gate|up modules too)', async () => {
  const { goldenCases, loadGoldenCase } = await import('../helpers/golden.js');
  const { LocalEngine } = await import('../../shard/index.js');
  for (const name of goldenCases()) {
    const c = loadGoldenCase(name);
    const engine = LocalEngine.open(c.modelDir, { numBlocks: 8, blockSize: 4, adapterSlots: 1 });
    try {
      for (const a of c.adapters) {
        if (!existsSync(join(a.dir, 'adapter_model.safetensors'))) continue;  // .bin: an upper bound by design
        engine.loadAdapter(0, a.dir);
        const estimate = estimateAdapterBytes({ dir: a.dir }, 4, c.vocab), held = engine.model.native.adapterBytes(0);
        if (a.name.includes('tok')) {  // trainable tokens: counted as on a tied lm_head too, an upper bound
          assert.ok(estimate >= held && estimate <= 2 * held, `${name}/${a.name}: estimate ${estimate}, held ${held}`);
        } else {
          assert.equal(estimate, held, `${name}/${a.name}`);
        }
      }
    } finally {
      engine.dispose();
    }
  }
});
