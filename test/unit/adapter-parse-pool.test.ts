// The shard's adapter worker threads (shard/adapters/parse-pool.ts): a read, a merge read and merged there
// (`merged_adapters` used to merge on the shard's main thread: seconds of stalled steps for TIES on 7B-sized
// adapters) and the plan for the shard's tensor-parallel share give exactly what the same calls give on this
// thread; a bad merge or plan rejects with its reason. The host-RAM tier keeps the plan with the adapter.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeRandomAdapters } from '../../deploy/bench/synthetic.js';
import { PRESETS } from '../../deploy/bench/shapes.js';
import { AdapterParser } from '../../shard/adapters/parse-pool.js';
import { mergeAdapters } from '../../shard/adapters/merge.js';
import { adapterBytes, cachedBytes } from '../../shard/adapters/index.js';
import { loadAdapterDir, type LoadedAdapter } from '../../shard/adapters/peft-config.js';
import { LocalEngine } from '../../shard/index.js';
import { loadGoldenCase } from '../helpers/golden.js';
import { parseModelSpec, partitionFor, planAdapter } from '../../shard/models/index.js';
import type { MergeRecipe } from '../../protocol/index.js';

const root = mkdtempSync(join(tmpdir(), 'weft-parse-pool-'));
const parser = new AdapterParser();
after(async () => {
  await parser.close();
  rmSync(root, { recursive: true, force: true });
});
const shape = PRESETS.tiny;
const [a, b] = writeRandomAdapters(root, shape, { names: ['a', 'b'], rank: 8, dtype: 'bfloat16', seed: 3 });
const [c] = writeRandomAdapters(join(root, 'r4'), shape, { names: ['c'], rank: 4, dtype: 'bfloat16', seed: 5 });

function assertSame(got: LoadedAdapter, want: LoadedAdapter): void {
  assert.deepEqual(got.config, want.config);
  assert.deepEqual([...got.tensors.keys()].sort(), [...want.tensors.keys()].sort());
  for (const [name, t] of want.tensors) {
    const g = got.tensors.get(name)!;
    assert.deepEqual(g.shape, t.shape, name);
    assert.ok(Buffer.from(g.data.buffer, g.data.byteOffset, g.data.byteLength)
      .equals(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)), `${name}: bits differ`);
  }
}

test('a read on a worker thread equals loadAdapterDir here, bit for bit', async () => {
  const got = await parser.prepare(a!);
  assertSame(got.adapter, loadAdapterDir(a!));
  assert.equal(got.plan, undefined, 'no layout, no plan');
});

// The tiny preset's shape as a Llama config: the layout a shard hands its workers.
const spec = parseModelSpec({ architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: shape.hidden,
  num_hidden_layers: shape.layers, num_attention_heads: shape.heads, num_key_value_heads: shape.kvHeads,
  intermediate_size: shape.intermediate, vocab_size: shape.vocab, rms_norm_eps: 1e-5, max_position_embeddings: 512,
  rope_theta: 10000, hidden_act: 'silu', tie_word_embeddings: false });

for (const world of [1, 2]) {
  test(`a plan made on a worker thread equals planAdapter here (TP=${world}, last rank), bit for bit`, async () => {
    const model = { spec, partition: partitionFor(spec, world - 1, world) };
    const got = await parser.prepare(b!, { model, maxLoraRank: 64, where: b! });
    const want = planAdapter(model, loadAdapterDir(b!), b!, 64);
    assert.ok(got.plan, 'planned');
    assert.equal(got.plan.maxRank, want.maxRank);
    assert.equal(got.plan.bytes, want.bytes);
    assert.equal(got.plan.parts.length, want.parts.length);
    got.plan.parts.forEach((p, i) => {
      const w = want.parts[i]!;
      assert.deepEqual([p.layer, p.module, p.outOffset, p.rank, p.scale], [w.layer, w.module, w.outOffset, w.rank, w.scale]);
      assert.deepEqual([...p.a], [...w.a]);
      assert.deepEqual([...p.b], [...w.b]);
    });
  });
}

test('a plan the shard cannot take (rank above --max-lora-rank) rejects with the reason', async () => {
  const model = { spec, partition: partitionFor(spec, 0, 1) };
  await assert.rejects(parser.prepare(a!, { model, maxLoraRank: 4, where: 'adapter a' }), /adapter a: .*rank 8, above --max-lora-rank 4/);
});

for (const strategy of ['linear', 'ties', 'dare_linear', 'dare_ties', 'cat'] as const) {
  test(`a ${strategy} merge on a worker thread equals mergeAdapters here, bit for bit`, async () => {
    const recipe: MergeRecipe = { dirs: [a!, b!], weights: [0.7, 0.4], strategy, majoritySignMethod: 'total', seed: 11,
      ...(strategy === 'linear' || strategy === 'cat' ? {} : { density: 0.5 }) };
    const here = mergeAdapters([loadAdapterDir(a!), loadAdapterDir(b!)], { weights: recipe.weights, strategy,
      density: recipe.density ?? null, majoritySignMethod: 'total', seed: 11 });
    assertSame((await parser.prepare(recipe)).adapter, here);
  });
}

test('a merge the strategy cannot do rejects with the reason; the pool keeps working', async () => {
  const recipe: MergeRecipe = { dirs: [a!, c!], weights: [0.5, 0.5], strategy: 'linear', majoritySignMethod: 'total', seed: 1 };
  await assert.rejects(parser.prepare(recipe), /rank/);
  await assert.rejects(parser.prepare({ ...recipe, dirs: [a!, join(root, 'missing')] }), /adapter_config\.json/);
  assertSame((await parser.prepare(b!)).adapter, loadAdapterDir(b!));
});

test('host-cache bytes count a plan only where its slices are copies, not views of the adapter', () => {
  const adapter = loadAdapterDir(a!);
  const whole = planAdapter({ spec, partition: partitionFor(spec, 0, 1) }, adapter, a!, 64);
  const half = planAdapter({ spec, partition: partitionFor(spec, 1, 2) }, adapter, a!, 64);
  const own = adapterBytes(adapter);
  assert.equal(cachedBytes(adapter), own);
  assert.equal(cachedBytes(adapter, whole), own, 'TP=1: every part is the adapter\'s own tensor');
  const extra = cachedBytes(adapter, half) - own;
  assert.ok(extra > 0 && extra < own, `TP=2: the sliced copies (${extra} bytes) are counted once`);
});

test('an adapter loaded again from host RAM comes back with the plan made for it (no planning in the mailbox)', async () => {
  const c = loadGoldenCase('llama');
  const engine = LocalEngine.open(c.modelDir, { numBlocks: 16, blockSize: 4, adapterSlots: 2 });
  try {
    const dir = c.adapters[0]!.dir;
    const first = await engine.prepareAdapter(dir);
    assert.equal(first.fromHost, false);
    assert.ok(first.plan, 'the worker planned it');
    engine.installPrepared(0, first);
    const again = await engine.prepareAdapter(dir);
    assert.equal(again.fromHost, true);
    assert.equal(again.plan, first.plan, 'the cached plan itself');
    const installed = engine.installPrepared(1, again);
    assert.equal(installed.fromHost, true);
    // An adapter loaded on this thread (no worker plan) keeps the plan its install made.
    const other = c.adapters[1]!.dir;
    engine.loadAdapter(0, other);
    const back = await engine.prepareAdapter(other);
    assert.equal(back.fromHost, true);
    assert.ok(back.plan, 'planned by the earlier install');
  } finally {
    engine.dispose();
  }
});

test('adapters are staged one at a time, so a burst of loads leaves libuv pool threads for the steps', async () => {
  const c = loadGoldenCase('llama');
  const engine = LocalEngine.open(c.modelDir, { numBlocks: 16, blockSize: 4, adapterSlots: 4 });
  try {
    const native = engine.model.native;
    const stage = native.stageAdapter.bind(native);
    // The addon's methods are read-only properties: shadow one on the instance.
    const replace = (fn: typeof stage) => Object.defineProperty(native, 'stageAdapter', { value: fn, configurable: true, writable: true });
    let inFlight = 0, most = 0;
    replace(async (parts) => {
      most = Math.max(most, ++inFlight);
      try {
        await new Promise((r) => setTimeout(r, 20));  // a stage that takes a while
        return await stage(parts);
      } finally {
        inFlight--;
      }
    });
    const dirs = c.adapters.slice(0, 4).map((a) => a.dir);
    assert.ok(dirs.length >= 3, 'the golden case has several adapters');
    const prepared = await Promise.all(dirs.map((d) => engine.prepareAdapter(d)));
    assert.equal(most, 1, 'stages never overlapped');
    prepared.forEach((p, slot) => engine.installPrepared(slot, p));
    for (let slot = 0; slot < dirs.length; slot++) assert.ok(native.adapterBytes(slot) > 0);
    // A failed stage does not stop the ones queued behind it.
    replace(() => {
      replace(stage);  // once
      return Promise.reject(new Error('upload failed'));
    });
    const bad = engine.prepareAdapter(c.adapters[0]!.dir);
    const next = engine.prepareAdapter(c.adapters[1]!.dir);  // queued behind the failing one
    await assert.rejects(bad, /upload failed/);
    engine.installPrepared(0, await next);
  } finally {
    engine.dispose();
  }
});

test('a prefetch reads an adapter into host RAM; a load while that read runs waits for it instead of reading again', async () => {
  const c = loadGoldenCase('llama');
  const engine = LocalEngine.open(c.modelDir, { numBlocks: 16, blockSize: 4, adapterSlots: 2 });
  try {
    const dir = c.adapters[0]!.dir;
    const prefetch = engine.prefetchAdapter(dir);
    const load = engine.prepareAdapter(dir);  // while the prefetch's read runs
    assert.equal(await prefetch, true);
    const prepared = await load;
    const later = await engine.prepareAdapter(dir);
    assert.equal(later.fromHost, true, 'in host RAM after the prefetch');
    assert.equal(prepared.adapter, later.adapter, 'one read: the load shared the prefetch\'s adapter');
    engine.installPrepared(0, prepared);
    engine.discardPrepared(later);
    assert.equal(await engine.prefetchAdapter(join(c.dir, 'no-such-adapter')), false, 'a failed prefetch is left to the load');
  } finally {
    engine.dispose();
  }
});
