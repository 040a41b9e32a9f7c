// DoRA on the CUDA executor (the channel scale of kernels/src/cuda/kernels/dora.cu, weight norms from the
// device-resident weights): a DoRA adapter's rows against the model with the adapter merged as PEFT merges it
// (test/helpers/dora.ts; computed on the CPU backend, where test/unit/dora.test.ts checks it against PEFT's layer),
// beside base rows and plain LoRA rows, in fp32 (1e-3) and bf16 (model-golden.test.ts's half tolerances), and
// prefill then decode steps (CUDA graphs, captured before and after the DoRA adapter is installed) equal to the
// CPU backend serving the same adapter. Skipped with the reason on a machine without a usable GPU.
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
import { writeDoraAdapter, writeDoraMerged } from '../helpers/dora.js';

const info = cudaInfo();
const noGpu = info.available ? false : `no usable GPU: ${info.reason}`;
const FP32_TOL = 1e-3;
const HALF_MEAN_TOL = 0.05;  // as model-golden.test.ts, where they are justified
const HALF_MAX_TOL = 0.6;

const MODULES: Record<string, string[]> = {
  llama: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  qwen2: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'up_proj', 'down_proj'],
  phi3: ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'],
};

function meanAbsDiff(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s / a.length;
}

for (const [name, modules] of Object.entries(MODULES)) {
  describe(`CUDA DoRA ${name}`, { skip: noGpu }, () => {
    const opts = { seed: 17, rank: 4, alpha: 8, modules };
    let c: GoldenCase, root: string, merged: LocalEngine;
    before(() => {
      c = loadGoldenCase(name);
      root = mkdtempSync(join(tmpdir(), 'weft-dora-gpu-'));
      writeDoraAdapter(c.modelDir, join(root, 'dora'), opts);
      writeDoraMerged(c.modelDir, join(root, 'dora'), join(root, 'merged'), opts);
      merged = LocalEngine.open(join(root, 'merged'), { numBlocks: 64, blockSize: 4, adapterSlots: 1 });
    });
    after(() => {
      merged?.dispose();
      rmSync(root, { recursive: true, force: true });
    });

    for (const dtype of ['float32', 'bfloat16'] as const) {
      test(`${dtype}: DoRA rows give the merged model's logits beside base and LoRA rows`, async () => {
        const gpu = LocalEngine.open(c.modelDir, { numBlocks: 128, blockSize: 4, adapterSlots: 2, device: 'cuda', dtype });
        try {
          assert.equal(gpu.model.plan.device, 'cuda');
          gpu.loadAdapter(0, join(root, 'dora'));
          gpu.loadAdapter(1, c.adapters[0]!.dir);
          const items = c.sequences.flatMap((tokens, s) => [0, -1, 1, 0].map((adapterSlot) => ({ tokens, adapterSlot, s })));
          const out = await gpu.scoreBatch(items);
          for (let i = 0; i < items.length; i++) {
            const { adapterSlot, s } = items[i]!;
            const want = adapterSlot === -1 ? c.logits(`base/seq${s}`)
              : adapterSlot === 1 ? c.logits(`adapter/${c.adapters[0]!.name}/seq${s}`)
              : (await merged.scoreBatch([{ tokens: c.sequences[s]!, adapterSlot: -1 }]))[0]!;
            const max = maxAbsDiff(out[i]!, want), mean = meanAbsDiff(out[i]!, want);
            if (dtype === 'float32') assert.ok(max <= FP32_TOL, `item ${i} (slot ${adapterSlot}): max abs error ${max}`);
            else assert.ok(mean <= HALF_MEAN_TOL && max <= HALF_MAX_TOL, `item ${i} (slot ${adapterSlot}): mean ${mean} max ${max}`);
          }
        } finally {
          gpu.dispose();
        }
      });
    }

    test('fp32: prefill then decode steps (graphs captured before and after the install) equal the CPU backend', async () => {
      const gpu = LocalEngine.open(c.modelDir, { numBlocks: 128, blockSize: 4, adapterSlots: 2, device: 'cuda', dtype: 'float32' });
      const cpu = LocalEngine.open(c.modelDir, { numBlocks: 128, blockSize: 4, adapterSlots: 2 });
      try {
        for (const e of [gpu, cpu]) e.loadAdapter(1, c.adapters[0]!.dir);
        const seq = c.sequences[1]!, bs = 4, k = 5;
        const blocks = Math.ceil(seq.length / bs);
        const table = (i: number) => Array.from({ length: blocks }, (_, j) => i * blocks + j);
        const run = async (b: ForwardBatch): Promise<[Float32Array, Float32Array]> =>
          [await gpu.model.native.forward(b), await cpu.model.native.forward(b)];
        const slots = [-1, 1, 0];
        const step = async (p: number, live: number[]) => {
          const [g, r] = await run(stepBatch(live.map((slot) => ({ tokens: seq, pos0: p, n: 1, slot, table: table(slots.indexOf(slot)), all: false })), bs));
          assert.ok(maxAbsDiff(g, r) <= FP32_TOL, `decode at ${p} (slots ${live.join(',')}): CUDA vs CPU max abs error ${maxAbsDiff(g, r)}`);
        };
        // A decode graph captured with no DoRA adapter loaded; then the DoRA adapter arrives.
        await run(stepBatch([-1, 1].map((slot) => ({ tokens: seq, pos0: 0, n: k, slot, table: table(slots.indexOf(slot)), all: true })), bs));
        await step(k, [-1, 1]);
        for (const e of [gpu, cpu]) e.loadAdapter(0, join(root, 'dora'));
        const [g, r] = await run(stepBatch([{ tokens: seq, pos0: 0, n: k + 1, slot: 0, table: table(2), all: true }], bs));
        assert.ok(maxAbsDiff(g, r) <= FP32_TOL, `DoRA prefill: CUDA vs CPU max abs error ${maxAbsDiff(g, r)}`);
        // Base, LoRA and DoRA rows together, then the base sequence stops (another padded bucket: another graph).
        for (let p = k + 1; p < seq.length; p++) await step(p, p < 9 ? slots : [0, 1]);
      } finally {
        gpu.dispose();
        cpu.dispose();
      }
    });
  });
}

test('CUDA DoRA tests ran or were skipped for a stated reason', (t) => {
  if (noGpu) t.skip(noGpu);
  assert.ok(Object.keys(MODULES).length > 0);
});
