// NativeModel.forwardSample on the CPU backend: the step, then every logit row sampled on the worker thread,
// must equal forward() followed by cpuOps.sample on each row (the path the step runner used before), for
// greedy, top-k, top-p, temperature, repetition penalty, typical-p and top-n rows in one batch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpuOps, type ForwardBatch, type RowSampling } from '../../kernels/index.js';
import { LocalEngine } from '../../shard/index.js';
import { loadGoldenCase } from '../helpers/golden.js';
import { stepBatch } from '../helpers/forward-batch.js';

const BS = 4;

/** One prefill batch: every sequence whole, its last row's logits wanted; sequence i in blocks [8i, 8i+8). */
function prefill(seqs: { tokens: number[]; slot: number }[]): ForwardBatch {
  return stepBatch(seqs.map((s, i) => ({ tokens: s.tokens, pos0: 0, n: s.tokens.length, slot: s.slot,
    table: Array.from({ length: 8 }, (_, j) => 8 * i + j), all: false })), BS);
}

const plain = { temperature: 1, topK: 0, topP: 1, typicalP: 1, repetitionPenalty: 1, doSample: false, seed: 0, drawIndex: 0, topN: 0 };
const KINDS: Omit<RowSampling, 'penaltyTokens'>[] = [
  plain,
  { ...plain, topN: 4 },
  { ...plain, doSample: true, temperature: 0.7, topK: 20, topP: 0.9, seed: 5, drawIndex: 3, topN: 2 },
  { ...plain, doSample: true, temperature: 1.4, repetitionPenalty: 1.3, seed: 6 },
  { ...plain, doSample: true, typicalP: 0.7, seed: 7, drawIndex: 1, topN: 1 },
  { ...plain, repetitionPenalty: 2, topN: 3 },
];

test('forwardSample on the CPU equals forward() then cpuOps.sample per row, for every sampling kind', async () => {
  const c = loadGoldenCase('llama');
  const engine = LocalEngine.open(c.modelDir, { numBlocks: 64, blockSize: BS, adapterSlots: 2 });
  try {
    engine.loadAdapter(0, c.adapters[0].dir);
    const seqs = KINDS.map((_, i) => ({ tokens: c.sequences[i % c.sequences.length], slot: i % 2 === 0 ? -1 : 0 }));
    const rows: RowSampling[] = KINDS.map((k, i) => ({ ...k, penaltyTokens: Int32Array.from(seqs[i].tokens) }));
    const sampled = await engine.model.native.forwardSample(prefill(seqs), rows);
    // The same step again (same KV slots, overwritten with the same values) through forward().
    const logits = await engine.model.native.forward(prefill(seqs));
    const V = c.vocab;
    assert.equal(sampled.length, rows.length);
    rows.forEach((r, i) => {
      const want = cpuOps.sample(logits.subarray(i * V, (i + 1) * V), r, r.penaltyTokens, r.topN);
      assert.deepEqual(sampled[i], want, `row ${i} (${JSON.stringify({ ...r, penaltyTokens: undefined })})`);
      assert.equal(sampled[i].top.length, r.topN);
    });
  } finally {
    engine.dispose();
  }
});

test('forwardSample refuses a sampling row count that does not match the logit rows, and a negative topN', async () => {
  const c = loadGoldenCase('llama');
  const engine = LocalEngine.open(c.modelDir, { numBlocks: 64, blockSize: BS, adapterSlots: 1 });
  try {
    const b = prefill([{ tokens: c.sequences[0], slot: -1 }]);
    await assert.rejects(engine.model.native.forwardSample(b, []), /0 sampling rows for 1 logit rows/);
    assert.throws(() => engine.model.native.forwardSample(b, [{ ...plain, penaltyTokens: new Int32Array(0), topN: -1 }]), /topN must be >= 0/);
  } finally {
    engine.dispose();
  }
});
