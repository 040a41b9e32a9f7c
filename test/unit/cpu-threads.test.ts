// The CPU backend's thread pool splits work over independent outputs only, so every result must be bit-identical
// whatever the thread count: the golden model's logits for base + every adapter in one batch, and GEMM / LoRA /
// attention / sampling through cpuOps, at 1, 2 and 3 threads (3 oversubscribes this 2-core CI machine and gives
// uneven chunks).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpuOps } from '../../kernels/index.js';
import { LocalEngine } from '../../shard/index.js';
import { loadGoldenCase } from '../helpers/golden.js';

function bitsEqual(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, what);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) assert.fail(`${what}: element ${i} differs (${a[i]} vs ${b[i]})`);
}

test('logits, GEMM, LoRA and sampling are bit-identical at 1, 2 and 3 CPU threads', async () => {
  const c = loadGoldenCase('llama');
  const items = c.sequences.flatMap((tokens, s) => [-1, ...c.adapters.map((_, i) => i)].map((slot) => ({ tokens, adapterSlot: slot, key: `${s}/${slot}` })));
  const rnd = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed) * 0.5);
  const x = rnd(37 * 300, 1), w = rnd(301 * 300, 2), bias = rnd(301, 3);
  const la = rnd(16 * 300, 4), lb = rnd(301 * 16, 5), ly = rnd(37 * 301, 6);
  const logitsRow = rnd(50_000, 7).map((v) => v * 8);
  const runs: { logits: Float32Array[]; gemm: Float32Array; lora: Float32Array; tokens: number[] }[] = [];
  for (const cpuThreads of [1, 2, 3]) {
    const engine = LocalEngine.open(c.modelDir, { numBlocks: 128, blockSize: 4, adapterSlots: 4, cpuThreads });
    try {
      assert.equal(cpuOps.cpuThreads(), cpuThreads);
      c.adapters.forEach((a, i) => engine.loadAdapter(i, a.dir));
      const logits = await engine.scoreBatch(items);
      const gemm = cpuOps.gemm(x, 37, 300, w, 301, bias);
      const lora = cpuOps.lora(x, la, lb, 0.5, ly, 301, 0, 16);
      const tokens = Array.from({ length: 20 }, (_, d) => cpuOps.sample(logitsRow, { temperature: 0.9, topK: 0, topP: 0.95,
        typicalP: 1, repetitionPenalty: 1, doSample: true, seed: 3, drawIndex: d }, new Int32Array(0), 0).token);
      runs.push({ logits, gemm, lora, tokens });
    } finally {
      engine.dispose();
    }
  }
  for (let r = 1; r < runs.length; r++) {
    runs[0]!.logits.forEach((l, k) => bitsEqual(l, runs[r]!.logits[k]!, `${items[k]!.key} at ${r + 1} threads`));
    bitsEqual(runs[0]!.gemm, runs[r]!.gemm, `gemm at ${r + 1} threads`);
    bitsEqual(runs[0]!.lora, runs[r]!.lora, `lora at ${r + 1} threads`);
    assert.deepEqual(runs[0]!.tokens, runs[r]!.tokens, `sampled tokens at ${r + 1} threads`);
  }
});

test('cpuThreads outside 0..4096 is refused with the range', () => {
  const c = loadGoldenCase('llama');
  assert.throws(() => LocalEngine.open(c.modelDir, { numBlocks: 8, blockSize: 4, adapterSlots: 1, cpuThreads: -1 }), /cpuThreads must be an integer from 0/);
  assert.throws(() => LocalEngine.open(c.modelDir, { numBlocks: 8, blockSize: 4, adapterSlots: 1, cpuThreads: 1.5 }), /cpuThreads must be an integer from 0/);
});
