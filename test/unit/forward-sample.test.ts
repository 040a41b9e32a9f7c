// NativeModel.forwardSample on the CPU backend: the step, then every logit row sampled on the worker thread,
// must equal forward() followed by cpuOps.sample on each row (the path the step runner used before), for
// greedy, top-k, top-p, temperature, repetition / frequency / presence penalties, typical-p and top-n rows in one batch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpuOps, type ForwardBatch, type RowSampling } from '../../kernels/index.js';
import { PROTOCOL_VERSION, type Step } from '../../protocol/index.js';
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
  { ...plain, doSample: true, frequencyPenalty: 0.8, presencePenalty: 0.5, seed: 8, drawIndex: 4, topN: 2 },
  { ...plain, repetitionPenalty: 1.2, presencePenalty: 1.5, drawIndex: 3 },
  { ...plain, doSample: true, seed: 9, logitBias: [{ token: 3, bias: 4 }, { token: 17, bias: -100 }], topN: 3 },
];

test('forwardSample on the CPU equals forward() then cpuOps.sample per row, for every sampling kind', async () => {
  const c = loadGoldenCase('llama');
  const engine = LocalEngine.open(c.modelDir, { numBlocks: 128, blockSize: BS, adapterSlots: 2 });
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

test('the step runner gives frequency / presence penalties the sequence\'s own generated tokens', async () => {
  const c = loadGoldenCase('llama');
  const engine = LocalEngine.open(c.modelDir, { numBlocks: 64, blockSize: BS, adapterSlots: 1 });
  try {
    const sampling = { temperature: 1, topK: 0, topP: 1, typicalP: 1, repetitionPenalty: 1, frequencyPenalty: 0.9,
      presencePenalty: 1.2, doSample: false, seed: 0 };
    const prompt = c.sequences[0];
    let id = 0;
    const step = (p: Partial<Step>): Step => ({ v: PROTOCOL_VERSION, type: 'step', stepId: ++id, newSeqs: [], running: [], finished: [], ...p });
    const table = Array.from({ length: 8 }, (_, i) => i);
    const got: number[] = [];
    let out = await engine.step(step({ newSeqs: [{ seqId: 's', adapterSlot: -1, tokens: prompt, blockTable: table, sampling,
      generated: [], logits: 'none', promptLogprobs: false, topN: 0 }] }));
    for (let k = 0; k < 8; k++) {
      got.push(out[0]!.token);
      out = await engine.step(step({ running: [{ seqId: 's', token: got.at(-1)!, newBlocks: [] }] }));
    }
    // The same rule by hand: logits of prompt + generated so far, penalties on the generated ones.
    const want: number[] = [];
    const V = c.vocab;
    for (let k = 0; k < 8; k++) {
      const seen = [...prompt, ...got.slice(0, k)];
      const b = stepBatch([{ tokens: seen, pos0: 0, n: seen.length, slot: -1, table: Array.from({ length: 8 }, (_, j) => 32 + j), all: false }], BS);
      const logits = (await engine.model.native.forward(b)).subarray(0, V);
      want.push(cpuOps.sample(logits, { ...sampling, drawIndex: k }, Int32Array.from(seen), 0).token);
    }
    assert.deepEqual(got, want);
  } finally {
    engine.dispose();
  }
});
