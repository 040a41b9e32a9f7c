// The CUDA executor's op profile (CUDA events between ops): a prefill and a decode step with an adapter name
// their ops — tensor-core GEMMs, both attentions, SGMV for the prompt and BGMV for the decode row (the shrinks
// beside the GEMMs unless WEFT_LORA_OVERLAP=0), sampling on the device — with positive times; the profiled step computes what an unprofiled one does. Skipped with the
// reason without a usable GPU (the CPU backend's profile is tested in test/unit/op-profile.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cudaInfo } from '../../kernels/cuda.js';
import { PLAN, adapter, model, prefill } from '../helpers/tiny-model.js';
import { stepBatch } from '../helpers/forward-batch.js';

const info = cudaInfo();
const noGpu = info.available ? false : `no usable GPU: ${info.reason}`;

test('CUDA op profile: prefill and decode ops with their times; results unchanged', { skip: noGpu }, async () => {
  const m = model(1, { device: 'cuda', dtype: 'float32', cudaGraphs: true });
  try {
    m.installAdapter(0, await m.stageAdapter(adapter(3)));
    const plain = await m.forward(prefill(0));
    m.setOpProfile(true);
    assert.deepEqual(await m.forward(prefill(0)), plain, 'profiling changes no result');
    const pre = new Map(m.takeOpProfile().map((o) => [o.op, o]));
    // By default a module's LoRA shrink runs on a second stream beside its GEMM (cuda_lora.cc): off the step's
    // stream, so it has no row of its own (its time is inside the GEMM's); WEFT_LORA_OVERLAP=0 runs it after.
    const shrinkAfter = process.env.WEFT_LORA_OVERLAP === '0';
    assert.equal(pre.has('lora qkv sgmv shrink'), shrinkAfter, 'the shrink has a row only when it runs on the step\'s stream');
    for (const op of ['plan upload', 'embed', 'gemm qkv', 'attention prefill', 'gemm o', 'gemm up', 'gemm down',
      'lora qkv sgmv expand', 'lora down sgmv expand', 'gemm lm_head', 'lora lm_head bgmv', 'logits']) {
      assert.ok(pre.has(op), `${op} missing from ${[...pre.keys()].join(', ')}`);
      assert.ok(pre.get(op)!.ms > 0, `${op}: ${pre.get(op)!.ms} ms`);
    }
    assert.equal(pre.get('gemm qkv')!.calls, PLAN.layers);
    assert.equal(pre.has('attention decode'), false);

    const decode = stepBatch([{ tokens: [3, 14, 15, 9, 2, 6], pos0: 5, n: 1, slot: 0, table: [0, 1], all: false }], PLAN.blockSize);
    const [row] = await m.forwardSample(decode, [{ temperature: 1, topK: 0, topP: 1, typicalP: 1, repetitionPenalty: 1,
      doSample: false, seed: 0, drawIndex: 0, penaltyTokens: new Int32Array(0), topN: 0 }]);
    assert.ok(row !== undefined && row.token >= 0 && row.token < PLAN.vocab);
    const dec = new Map(m.takeOpProfile().map((o) => [o.op, o]));
    for (const op of ['attention decode', 'lora qkv bgmv', 'lora up bgmv', 'sample']) assert.ok(dec.has(op), `${op} missing`);
    assert.equal(dec.has('lora qkv sgmv shrink'), false);
  } finally {
    m.dispose();
  }
});
