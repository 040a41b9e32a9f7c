// LLaVA (test/fixtures/llava, transformers + PEFT golden logits) with the language model on the CUDA executor: the
// vision tower and projector stay on the CPU in fp32 (shard/models/load-weights.ts says why) and their features reach
// the GPU as embedding-row overrides (kernels/src/cuda/model/cuda_embed_override.cc). fp32 within 1e-3 of the golden
// logits (base and every adapter, vision-tower LoRA included, alone and in one heterogeneous batch with a text-only
// sequence), a chunked prefill split inside both images with a one-token chunk of image rows (a step of single-row
// sequences that, without the override check in use_graph, would be replayed as a decode graph without its
// features), then decode steps that do replay graphs; bf16 within a tolerance justified below. Skipped with the
// reason on a machine without a usable GPU.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cudaInfo } from '../../kernels/cuda.js';
import { LocalEngine } from '../../shard/index.js';
import { bytesToFloat32 } from '../../protocol/index.js';
import { maxAbsDiff } from '../helpers/golden.js';
import { llavaCases, loadLlavaCase, vlmGoldenKey as goldenKey, vlmNewSeq, type LlavaCase } from '../helpers/vlm.js';
import { allSlots, checkEachAlone, checkMixedBatch, mixedBatch, prefillInChunks, openCaseEngine, stepMaker,
  topLogprobError } from '../helpers/vlm-engine.js';

const info = cudaInfo();
const noGpu = info.available ? false : `no usable GPU: ${info.reason}`;
const FP32_TOL = 1e-3;
// bf16, from a CPU experiment on these fixtures (the language model's weights and its adapters' rounded to bf16, fp32
// math, the tower in fp32 as here): mean |error| 0.006 / 0.004 and max |error| 0.067 / 0.038 (llava /
// llava_qwen2_multi; logits within ±4.6), against a mean |adapter - base| of 0.81 / 0.58. The GPU also rounds the
// activations between ops and the image features to bf16, so allow 5x the mean and 4.5x the max: a missing or
// misplaced image row, or a wrong adapter, still fails the mean by 20x.
const BF16_MEAN_TOL = 0.03;
const BF16_MAX_TOL = 0.3;
const BS = 4;

type Dtype = 'float32' | 'bfloat16';

const step = stepMaker();

function openCuda(c: LlavaCase, dtype: Dtype): LocalEngine {
  // CUDA graphs are on by default (decode-only steps replay them).
  const engine = openCaseEngine(c, { numBlocks: 256, blockSize: BS, device: 'cuda', dtype });
  if (engine.model.plan.device !== 'cuda' || engine.model.plan.dtype !== dtype) {
    engine.dispose();
    throw new Error(`the language model is not on the GPU in ${dtype} (plan.device = ${String(engine.model.plan.device)})`);
  }
  return engine;
}

function errors(out: Float32Array, golden: Float32Array): { mean: number; max: number } {
  let sum = 0;
  for (let i = 0; i < out.length; i++) sum += Math.abs(out[i]! - golden[i]!);
  return { mean: sum / out.length, max: maxAbsDiff(out, golden) };
}

/** Chunked prefill of sequence 1 (two images) cut inside image 0, a one-token chunk inside it, inside image 1, then
 * decode; the worst top log-prob error over every slot. */
async function chunkedThenDecode(engine: LocalEngine, c: LlavaCase): Promise<number> {
  const s = 1, seq = c.sequences[s]!;
  const refs = c.imageRefs(seq);
  assert.ok(refs.length === 2 && refs[0]!.length > 5, 'sequence 1 has two images of several rows');
  const cuts = [refs[0]!.start + 3, refs[0]!.start + 4, refs[1]!.start + 5, seq.ids.length - 3];
  let worst = 0;
  for (const slot of allSlots(c)) {
    const golden = c.logits(goldenKey(c, s, slot));
    const full = vlmNewSeq(c, s, { seqId: `chunk-${slot}`, slot, firstBlock: 0, blockSize: BS, logits: 'none', topN: 5, extraBlocks: 1 });
    const end = cuts.at(-1)!;
    const last = await prefillInChunks(engine, step, full, cuts, { quietChunks: false });
    worst = Math.max(worst, topLogprobError(last[0]!, golden.subarray((end - 1) * c.vocab, end * c.vocab), 'after chunks'));
    for (let p = end; p < seq.ids.length; p++) {  // the text after the images, one decode step each (graph replays)
      const [out] = await engine.step(step({ running: [{ seqId: full.seqId, token: seq.ids[p]!, newBlocks: [] }] }));
      worst = Math.max(worst, topLogprobError(out!, golden.subarray(p * c.vocab, (p + 1) * c.vocab), `decode at ${p}`));
    }
    await engine.step(step({ finished: [full.seqId] }));
  }
  return worst;
}

for (const name of llavaCases()) {
  describe(`CUDA llava ${name}`, { skip: noGpu }, () => {
    let c: LlavaCase;
    let fp32: LocalEngine;
    before(() => {
      c = loadLlavaCase(name);
      fp32 = openCuda(c, 'float32');
    });
    after(() => fp32?.dispose());

    test('fp32: base and each adapter alone match transformers + PEFT within 1e-3', async (t) => {
      const worst = await checkEachAlone(fp32, step, c, BS, FP32_TOL);
      t.diagnostic(`${name} fp32 alone: worst max abs error ${worst.toExponential(2)}`);
    });

    test('fp32: base, every adapter and a text-only sequence in one heterogeneous batch within 1e-3', async (t) => {
      const worst = await checkMixedBatch(fp32, step, c, BS, FP32_TOL);
      t.diagnostic(`${name} fp32 mixed batch: worst max abs error ${worst.toExponential(2)}`);
    });

    test('fp32: chunked prefill split inside the images (a one-token image chunk among them), then decode', async (t) => {
      const worst = await chunkedThenDecode(fp32, c);
      assert.ok(worst <= FP32_TOL, `worst top log-prob error ${worst}`);
      t.diagnostic(`${name} fp32 chunked + decode: worst top log-prob error ${worst.toExponential(2)}`);
    });

    test(`bf16: heterogeneous batch within mean ${BF16_MEAN_TOL} / max ${BF16_MAX_TOL}; chunked + decode likewise`, async (t) => {
      const bf16 = openCuda(c, 'bfloat16');
      try {
        const { seqs, keys } = mixedBatch(c, BS);
        const outs = await bf16.step(step({ newSeqs: seqs }));
        await bf16.step(step({ finished: seqs.map((x) => x.seqId) }));
        let mean = 0, max = 0;
        outs.forEach((o, k) => {
          const e = errors(bytesToFloat32(o.logits!), c.logits(keys[k]!));
          assert.ok(e.mean <= BF16_MEAN_TOL && e.max <= BF16_MAX_TOL, `${keys[k]} bf16: mean ${e.mean}, max ${e.max}`);
          mean = Math.max(mean, e.mean);
          max = Math.max(max, e.max);
        });
        const top = await chunkedThenDecode(bf16, c);
        assert.ok(top <= BF16_MAX_TOL, `bf16 chunked + decode: worst top log-prob error ${top}`);
        t.diagnostic(`${name} bf16: worst mean ${mean.toFixed(4)}, worst max ${max.toFixed(4)}, chunked top ${top.toFixed(4)}`);
      } finally {
        bf16.dispose();
      }
    });
  });
}

test('CUDA llava tests ran or were skipped for a stated reason', (t) => {
  if (noGpu) t.skip(noGpu);
  assert.ok(llavaCases().length > 0);
});
