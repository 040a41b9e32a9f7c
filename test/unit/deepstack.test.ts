// Qwen3-VL's executor inputs on the CPU backend: deepstack rows (features added to the hidden state after the first
// layers, ForwardBatch.deepstackRows / deepstackValues) and interleaved M-RoPE (mropeInterleaved): their checks, and
// that each does what it says; imageOverrides' [sets, rows, hidden] layout of the deepstack values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createModel } from '../../kernels/index.js';
import { imageOverrides, type SeqImage } from '../../shard/engine/vision-prefill.js';
import { PLAN, model, prefill } from '../helpers/tiny-model.js';
import { Rng } from '../helpers/reference-ops.js';

const H = PLAN.hidden;
const maxDiff = (a: Float32Array, b: Float32Array): number => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

test('deepstack rows: shapes and rows are checked', async () => {
  const m = model(3);
  try {
    const rows = Int32Array.from([1, 3]);
    await assert.rejects(m.forward({ ...prefill(-1), deepstackRows: rows, deepstackValues: new Float32Array(2 * H + 1) }),
      /deepstackValues must hold \[sets, deepstackRows, hidden/);
    await assert.rejects(m.forward({ ...prefill(-1), deepstackRows: rows, deepstackValues: new Float32Array(3 * 2 * H) }),
      /3 deepstack sets for a model of 2 layers/);
    await assert.rejects(m.forward({ ...prefill(-1), deepstackRows: Int32Array.from([5]), deepstackValues: new Float32Array(H) }),
      /deepstack row out of range/);
  } finally {
    m.dispose();
  }
});

test('deepstack rows: zeros change nothing; set l is added after layer l', async () => {
  const m = model(3);
  try {
    const rng = new Rng(7), rows = Int32Array.from([1, 4]);  // row 4: the logit row (a late set shows only there)
    const set = Float32Array.from({ length: 2 * H }, () => rng.next() - 0.5);
    const base = await m.forward(prefill(-1));
    assert.deepEqual(await m.forward({ ...prefill(-1), deepstackRows: rows, deepstackValues: new Float32Array(2 * 2 * H) }), base);
    const after0 = await m.forward({ ...prefill(-1), deepstackRows: rows, deepstackValues: set });
    const after1 = new Float32Array(2 * 2 * H);
    after1.set(set, 2 * H);
    const late = await m.forward({ ...prefill(-1), deepstackRows: rows, deepstackValues: after1 });
    assert.ok(maxDiff(after0, base) > 1e-3 && maxDiff(late, base) > 1e-3 && maxDiff(after0, late) > 1e-3);
  } finally {
    m.dispose();
  }
});

test('mropeInterleaved needs mropeSection; interleaved differs from sectioned on 3-D positions', async () => {
  assert.throws(() => createModel({ ...PLAN, mropeInterleaved: true }), /mrope_interleaved needs mrope_section/);
  const pos3 = (b: ReturnType<typeof prefill>) => Int32Array.from([...b.positions, ...b.positions.map((p) => p + 2), ...b.positions.map((p) => 7 - p)]);
  const out: Float32Array[] = [];
  for (const mropeInterleaved of [false, true]) {
    const m = model(3, { mropeSection: [2, 1, 1], mropeInterleaved });
    try {
      const b = prefill(-1);
      out.push(await m.forward({ ...b, mropePositions: pos3(b) }));
      // Text positions (all three equal) are plain RoPE either way.
      assert.ok(maxDiff(await m.forward(b), await model(3).forward(b)) < 1e-5);
    } finally {
      m.dispose();
    }
  }
  assert.ok(maxDiff(out[0]!, out[1]!) > 1e-4);
});

test('imageOverrides: deepstack values as [sets, rows, hidden] over the rows a chunk covers', () => {
  const hidden = 2, sets = 2;
  const img = (start: number, length: number, tag: number): SeqImage => ({
    key: `i${tag}`, start, length, features: Float32Array.from({ length: length * hidden }, (_, i) => tag * 100 + i),
    deepstack: Float32Array.from({ length: sets * length * hidden }, (_, i) => tag * 1000 + i),
  });
  const a = img(1, 3, 1), b = img(6, 2, 2);
  // A chunk of positions [2, 7) at batch rows 10..14: a's offsets 1, 2 and b's offset 0.
  const o = imageOverrides([{ at: 10, firstPos: 2, count: 5, images: [a, b] }], hidden)!;
  assert.deepEqual([...o.embedRows], [10, 11, 14]);
  assert.deepEqual([...o.deepstackRows!], [10, 11, 14]);
  // set s, image row f: deepstack[(s · length + f) · hidden + d]
  assert.deepEqual([...o.deepstackValues!], [1002, 1003, 1004, 1005, 2000, 2001, 1008, 1009, 1010, 1011, 2004, 2005]);
});
