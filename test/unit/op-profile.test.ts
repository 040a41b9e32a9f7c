// The executor's op profile (NativeModel.setOpProfile / takeOpProfile) on the CPU backend: every op of a step
// is named with its time and call count (per-layer ops once per layer), LoRA ops only in steps with adapter
// rows, totals reset when taken, nothing recorded while off — and profiling changes no result.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PLAN, adapter, model, prefill } from '../helpers/tiny-model.js';
import { stepBatch } from '../helpers/forward-batch.js';

const PER_LAYER = ['norm', 'gemm qkv', 'rope + kv write', 'attention', 'gemm o', 'residual', 'gemm up', 'activation',
  'gemm down'];
const ONCE = ['embed', 'final norm', 'gemm lm_head', 'logits'];
const LORA = ['lora qkv', 'lora o', 'lora up', 'lora down'];

test('every op of a step, per-layer ops once per layer; LoRA ops only with adapter rows; taken totals reset', async () => {
  const m = model();
  try {
    m.installAdapter(0, m.stageAdapterSync(adapter(3)));
    const plain = await m.forward(prefill(0));
    assert.deepEqual(m.takeOpProfile(), [], 'nothing is recorded while off');

    m.setOpProfile(true);
    assert.deepEqual(await m.forward(prefill(0)), plain, 'profiling changes no result');
    const ops = new Map(m.takeOpProfile().map((o) => [o.op, o]));
    for (const op of PER_LAYER) assert.equal(ops.get(op)?.calls, op === 'norm' || op === 'residual' ? 2 * PLAN.layers : PLAN.layers, op);
    for (const op of [...ONCE, 'lora lm_head']) assert.equal(ops.get(op)?.calls, 1, op);
    for (const op of LORA) assert.equal(ops.get(op)?.calls, PLAN.layers, op);
    assert.equal(ops.size, PER_LAYER.length + ONCE.length + LORA.length + 1, [...ops.keys()].join(', '));
    for (const o of ops.values()) assert.ok(o.ms >= 0 && Number.isFinite(o.ms), `${o.op}: ${o.ms} ms`);
    assert.ok([...ops.values()].reduce((n, o) => n + o.ms, 0) > 0);
    assert.deepEqual(m.takeOpProfile(), [], 'taking resets the totals');

    // Two base-model steps: no LoRA entries, counts add up over the steps.
    await m.forward(prefill(-1));
    await m.forward(stepBatch([{ tokens: [3, 14, 15, 9, 2, 6], pos0: 5, n: 1, slot: -1, table: [0, 1], all: false }], PLAN.blockSize));
    const base = new Map(m.takeOpProfile().map((o) => [o.op, o]));
    assert.equal(base.get('gemm qkv')?.calls, 2 * PLAN.layers);
    for (const op of [...LORA, 'lora lm_head']) assert.equal(base.has(op), false, op);

    m.setOpProfile(false);
    await m.forward(prefill(0));
    assert.deepEqual(m.takeOpProfile(), []);
    assert.throws(() => m.setOpProfile(1 as never), /on must be a boolean/);
  } finally {
    m.dispose();
  }
});
