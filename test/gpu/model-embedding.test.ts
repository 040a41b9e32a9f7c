// LoRA on the token embedding on the CUDA executor (kernels/src/cuda/kernels/lora_embed.cu): an adapter on q/v,
// embed_tokens and lm_head (saved with base-layer copies) against the merged model (test/helpers/lora-merge.ts) in
// fp32 and bf16 beside base rows, and prefill then decode steps (CUDA graphs) equal to the CPU backend. Skipped
// with the reason on a machine without a usable GPU.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ForwardBatch } from '../../kernels/index.js';
import { cudaInfo } from '../../kernels/cuda.js';
import { LocalEngine } from '../../shard/index.js';
import { loadGoldenCase, maxAbsDiff, type GoldenCase } from '../helpers/golden.js';
import { stepBatch } from '../helpers/forward-batch.js';
import { ALPHA, RANK, writeEmbeddingAdapter } from '../helpers/embedding-adapter.js';
import { writeLoraMerged } from '../helpers/lora-merge.js';

const info = cudaInfo();
const noGpu = info.available ? false : `no usable GPU: ${info.reason}`;
const FP32_TOL = 1e-3;
const HALF_MEAN_TOL = 0.05;  // as model-golden.test.ts, where they are justified
const HALF_MAX_TOL = 0.6;

describe('CUDA embedding LoRA (llama_lmhead)', { skip: noGpu }, () => {
  let c: GoldenCase, root: string, merged: LocalEngine;
  before(() => {
    c = loadGoldenCase('llama_lmhead');
    root = mkdtempSync(join(tmpdir(), 'weft-emb-gpu-'));
    writeEmbeddingAdapter(c.modelDir, join(root, 'adapter'), ['q_proj', 'v_proj', 'embed_tokens', 'lm_head'], true, 41);
    writeLoraMerged(c.modelDir, join(root, 'adapter'), join(root, 'merged'), ALPHA / RANK);
    merged = LocalEngine.open(join(root, 'merged'), { numBlocks: 64, blockSize: 4, adapterSlots: 1 });
  });
  after(() => {
    merged?.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  for (const dtype of ['float32', 'bfloat16'] as const) {
    test(`${dtype}: the merged model's logits beside base rows`, async () => {
      const gpu = LocalEngine.open(c.modelDir, { numBlocks: 128, blockSize: 4, adapterSlots: 1, device: 'cuda', dtype });
      try {
        gpu.loadAdapter(0, join(root, 'adapter'));
        const items = c.sequences.flatMap((tokens, s) => [0, -1].map((adapterSlot) => ({ tokens, adapterSlot, s })));
        const out = await gpu.scoreBatch(items);
        for (let i = 0; i < items.length; i++) {
          const { adapterSlot, s } = items[i]!;
          const want = adapterSlot === -1 ? c.logits(`base/seq${s}`) : (await merged.scoreBatch([{ tokens: c.sequences[s]!, adapterSlot: -1 }]))[0]!;
          const max = maxAbsDiff(out[i]!, want);
          let mean = 0;
          for (let k = 0; k < want.length; k++) mean += Math.abs(out[i]![k]! - want[k]!) / want.length;
          if (dtype === 'float32') assert.ok(max <= FP32_TOL, `item ${i}: max abs error ${max}`);
          else assert.ok(mean <= HALF_MEAN_TOL && max <= HALF_MAX_TOL, `item ${i}: mean ${mean} max ${max}`);
        }
      } finally {
        gpu.dispose();
      }
    });
  }

  test('fp32: prefill then decode steps (CUDA graphs) equal the CPU backend', async () => {
    const gpu = LocalEngine.open(c.modelDir, { numBlocks: 128, blockSize: 4, adapterSlots: 1, device: 'cuda', dtype: 'float32' });
    const cpu = LocalEngine.open(c.modelDir, { numBlocks: 128, blockSize: 4, adapterSlots: 1 });
    try {
      for (const e of [gpu, cpu]) e.loadAdapter(0, join(root, 'adapter'));
      const seq = c.sequences[1]!, bs = 4, k = 5, slots = [0, -1];
      const blocks = Math.ceil(seq.length / bs);
      const table = (i: number) => Array.from({ length: blocks }, (_, j) => i * blocks + j);
      const run = async (b: ForwardBatch) => [await gpu.model.native.forward(b), await cpu.model.native.forward(b)] as const;
      const [g, r] = await run(stepBatch(slots.map((slot, i) => ({ tokens: seq, pos0: 0, n: k, slot, table: table(i), all: true })), bs));
      assert.ok(maxAbsDiff(g, r) <= FP32_TOL, `prefill: CUDA vs CPU max abs error ${maxAbsDiff(g, r)}`);
      for (let p = k; p < seq.length; p++) {
        const [gd, rd] = await run(stepBatch(slots.map((slot, i) => ({ tokens: seq, pos0: p, n: 1, slot, table: table(i), all: false })), bs));
        assert.ok(maxAbsDiff(gd, rd) <= FP32_TOL, `decode at ${p}: CUDA vs CPU max abs error ${maxAbsDiff(gd, rd)}`);
      }
    } finally {
      gpu.dispose();
      cpu.dispose();
    }
  });
});

test('CUDA embedding LoRA tests ran or were skipped for a stated reason', (t) => {
  if (noGpu) t.skip(noGpu);
  assert.ok(loadGoldenCase('llama_lmhead').adapters.length > 0);
});
