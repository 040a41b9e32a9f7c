// The executor's two-step adapter load (stageAdapter beside steps, installAdapter between them) on the CPU
// backend, driven through the native surface the shard uses: a staged adapter changes nothing until it is
// installed, then computes exactly what a synchronously staged one does; bad parts are refused with the
// reason and leave the slot alone; handles are single-use and bound to their model; a stage runs while a step
// is in flight. Also: the addon loaded by a worker thread first (the shard's adapter readers do) leaves the
// main thread's classes working (their constructors are per environment).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { createCollective, createModel } from '../../kernels/index.js';
import { Rng } from '../helpers/reference-ops.js';
import { PLAN, WEIGHTS, adapter, model, prefill, randomArray } from '../helpers/tiny-model.js';

test('a staged adapter changes nothing until installed, then computes what a synchronously staged one does', async () => {
  const m = model();
  try {
    const base = await m.forward(prefill(-1));
    m.installAdapter(0, m.stageAdapterSync(adapter(7)));
    const first = await m.forward(prefill(0));
    assert.ok(first.some((x, i) => Math.abs(x - base[i]!) > 1e-3), 'the adapter changes the logits');

    const staged = await m.stageAdapter(adapter(8));
    const bytes = 4 * adapter(8).reduce((n, p) => n + p.a.length + p.b.length, 0);
    assert.equal(staged.bytes, bytes);
    assert.deepEqual(await m.forward(prefill(0)), first, 'staging does not touch the slot');
    m.installAdapter(0, staged);
    const second = await m.forward(prefill(0));
    assert.equal(m.adapterBytes(0), bytes);

    const oracle = model();
    try {
      oracle.installAdapter(1, oracle.stageAdapterSync(adapter(8)));
      assert.deepEqual(second, await oracle.forward(prefill(1)), 'async staging = sync staging, bit for bit');
    } finally {
      oracle.dispose();
    }
    assert.notDeepEqual(second, first);
  } finally {
    m.dispose();
  }
});

test('installed bytes, single-use handles, handles bound to their model', async () => {
  const m = model();
  const other = model(2);
  try {
    const staged = await m.stageAdapter(adapter(3));
    const bytes = staged.bytes;
    m.installAdapter(1, staged);
    assert.equal(m.adapterBytes(1), bytes);
    assert.equal(staged.bytes, 0, 'an installed handle is empty');
    assert.throws(() => m.installAdapter(0, staged), /installed or released already/);

    const released = m.stageAdapterSync(adapter(4));
    released.release();
    assert.throws(() => m.installAdapter(0, released), /installed or released already/);

    const foreign = other.stageAdapterSync(adapter(5));
    assert.throws(() => m.installAdapter(0, foreign), /staged by another Model/);
    assert.equal(foreign.bytes > 0, true, 'a refused handle keeps its adapter');
    other.installAdapter(0, foreign);

    const outOfRange = m.stageAdapterSync(adapter(6));
    assert.throws(() => m.installAdapter(5, outOfRange), /adapter slot 5 out of range/);
    assert.ok(outOfRange.bytes > 0, 'a refused slot leaves the handle usable');
    m.installAdapter(0, outOfRange);
    assert.throws(() => m.installAdapter(0, {} as never), /staged must come from stageAdapter/);
  } finally {
    m.dispose();
    other.dispose();
  }
});

test('bad parts are refused with the reason and leave the slot as it was', async () => {
  const m = model();
  try {
    m.installAdapter(0, m.stageAdapterSync(adapter(7)));
    const before = await m.forward(prefill(0));
    const wrongIn = adapter(9).map((p, i) => (i === 3 ? { ...p, a: p.a.subarray(0, p.a.length - p.rank) } : p));
    await assert.rejects(m.stageAdapter(wrongIn), /lora: part for layer 0 module 1 does not fit: in 31 \(module in 32\)/);
    const badLayer = adapter(9).map((p, i) => (i === 0 ? { ...p, layer: 2 } : p));
    await assert.rejects(m.stageAdapter(badLayer), /lora: layer 2 out of range/);
    assert.throws(() => m.stageAdapterSync([{ ...adapter(9)[0]!, rank: 0 }]), /rank must be positive/);
    assert.throws(() => m.stageAdapterSync([{ ...adapter(9)[0]!, a: [1, 2] as never }]), /part.a must be a Float32Array/);
    assert.deepEqual(await m.forward(prefill(0)), before);
  } finally {
    m.dispose();
  }
});

test('a stage runs while a step is in flight', async () => {
  const m = model();
  try {
    const [logits, staged] = await Promise.all([m.forward(prefill(-1)), m.stageAdapter(adapter(11))]);
    assert.equal(logits.length, PLAN.vocab);
    m.installAdapter(1, staged);
    assert.ok(m.adapterBytes(1) > 0);
  } finally {
    m.dispose();
  }
});

test('the addon loaded by a worker thread first leaves Collective and StagedAdapter working on the main thread', async () => {
  const addon = new URL('../../kernels/index.js', import.meta.url).href;
  await new Promise<void>((resolve, reject) => {
    const w = new Worker(`import(${JSON.stringify(addon)}).then(() => {}, (e) => { throw e; });`, { eval: true });
    w.on('error', reject);
    w.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`worker exited with ${code}`))));
  });
  const coll = createCollective({ kind: 'solo' });
  const m = createModel(PLAN, coll);
  try {
    const rng = new Rng(1);
    for (const name of WEIGHTS) m.setWeight(name, randomArray(m.expectedSize(name), rng, 0.3));
    m.finalize();
    m.installAdapter(0, await m.stageAdapter(adapter(12)));
    assert.ok(m.adapterBytes(0) > 0);
  } finally {
    m.dispose();
    coll.dispose();
  }
});
