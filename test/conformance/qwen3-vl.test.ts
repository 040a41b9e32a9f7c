// Conformance with transformers + PEFT for Qwen3-VL with images (test/fixtures/vlm/qwen3_vl, make_qwen3_vl.py): the
// vision tower (patch bias, learned position embeddings interpolated to each image's grid, 2-D rotary embedding,
// the merger and the deepstack mergers), the Qwen3 language model's interleaved multimodal RoPE and deepstack
// injection (the deepstack features added to the image tokens' hidden states after decoder layers 0 and 1), base and
// every adapter (vision-tower and merger LoRA included), alone and in one heterogeneous batch with a text-only
// sequence; decode steps; chunked prefill cut inside the images (deepstack rows split across chunks); cached prefixes
// ending inside an image; the older checkpoint layout; TP = 2 and 4.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { LocalEngine } from '../../shard/index.js';
import { loadModel, readModelSpec } from '../../shard/models/index.js';
import { servedSpec } from '../../shard/models/qwen-vl-spec.js';
import { loadQwenVlCase, qwenExpertsInOut, qwenRelayoutFlat, qwenVlCases, type QwenVlCase } from '../helpers/vlm.js';
import { checkCachedPrefixesThenDecode, checkChunksThenDecodeRows, checkClusterDecode, checkOtherLayout,
  openCaseEngine, stepMaker, testEachAloneMixedDecode } from '../helpers/vlm-engine.js';

const TOL = 1e-4;
const BS = 4;
const TOP = 12;

const step = stepMaker();
const cases = qwenVlCases('Qwen3');

test('the Qwen3-VL fixtures are there', () => assert.ok(cases.length > 0, 'no Qwen3-VL case in test/fixtures/vlm'));

for (const name of cases) {
  describe(`qwen3 vl ${name}`, () => {
    let c: QwenVlCase;
    let engine: LocalEngine;
    before(() => {
      c = loadQwenVlCase(name);
      engine = openCaseEngine(c, { numBlocks: 512, blockSize: BS });
    });
    after(() => engine.dispose());

    test('the spec: Qwen3 decoder (Qwen3-MoE for the MoE variant), interleaved M-RoPE, the tower with deepstack', () => {
      const spec = readModelSpec(c.modelDir);
      const moe = c.architecture === 'Qwen3VLMoeForConditionalGeneration';
      assert.equal(spec.architecture, moe ? 'qwen3_moe' : 'qwen3');
      // Qwen3VLMoeTextTopKRouter: top 2 of 4, always renormalised; layer 1 dense (mlp_only_layers)
      if (moe) assert.deepEqual([spec.moe?.experts, spec.moe?.perToken, spec.moe?.renormalize, spec.moe?.layers], [4, 2, true, [true, false, true]]);
      else assert.equal(spec.moe, null);
      assert.ok(spec.qkNorm);
      assert.deepEqual(spec.mropeSection, [2, 3, 3]);
      assert.equal(spec.mropeInterleaved, true);
      assert.deepEqual(spec.qwenVision?.qwen3, { numPositionEmbeddings: 16, deepstack: [0, 2] });
      assert.equal(spec.qwenVision?.patchSize, 4);
    });

    testEachAloneMixedDecode(name, () => ({ c, engine }), step, BS, TOP, TOL);

    test('chunked prefill cut inside each image (deepstack rows split across chunks), then decode', async () => {
      const s = 1, seq = c.sequences[s]!;  // two images of different sizes
      const refs = c.imageRefs(seq);
      for (const cuts of [[refs[0]!.start + 1, refs[1]!.start + 7, seq.ids.length], [refs[0]!.start + 3, refs[1]!.start + 13, refs[1]!.start + 20, seq.ids.length]]) {
        await checkChunksThenDecodeRows(engine, step, c, s, cuts, BS, TOP, TOL, ` ${cuts.join(',')}`);
      }
    });

    test('a cached prefix (before an image, and into one) gives the same next-token log-probs and decode', async () => {
      const s = 1, refs = c.imageRefs(c.sequences[s]!);
      const ends = [refs[0]!.start, refs[0]!.start + 3, refs[1]!.start, refs[1]!.start + 9].map((p) => Math.floor(p / BS) * BS);
      await checkCachedPrefixesThenDecode(engine, step, c, s, ends, BS, TOP, TOL);
    });

    test('the older checkpoint layout (model.layers.*, visual.*) gives the same logits', async () => {
      await checkOtherLayout(qwenRelayoutFlat(c), step, c, BS, TOL, 30);
    });

    test('MoE: the fused experts as the Hub publishes them ((in, out) per expert) give the same logits; a wrong shape is refused', async (t) => {
      if (c.architecture !== 'Qwen3VLMoeForConditionalGeneration') return t.skip('no experts');
      await checkOtherLayout(qwenExpertsInOut(c), step, c, BS, TOL, 30);
      assert.throws(() => LocalEngine.open(qwenExpertsInOut(c, true), { numBlocks: 8, blockSize: BS, adapterSlots: 1 }),
        /gate_up_proj' has shape \[4, 64, 40\], expected \[4, 64, 48\] \(as published\) or \[4, 48, 64\]/);
    });

    test('--device cuda: served text-only even with WEFT_CUDA_VLM_IMAGES; the spec reaching the loader there is refused', () => {
      const spec = readModelSpec(c.modelDir);
      for (const cudaImages of [false, true]) {
        const onCuda = servedSpec(spec, 'cuda', cudaImages);
        assert.equal(onCuda.qwenVision, undefined);
        assert.equal(onCuda.mropeSection, undefined);
        assert.equal(onCuda.mropeInterleaved, undefined);
      }
      assert.equal(servedSpec(spec, 'cpu'), spec);
      assert.throws(() => loadModel(c.modelDir, spec, { rank: 0, world: 1, numBlocks: 8, blockSize: BS, adapterSlots: 1, device: 'cuda' }),
        /multimodal RoPE|interleaved|cuda/);
    });
  });
}

describe('qwen3 vl tensor parallel', () => {
  for (const world of [2, 4]) {
    test(`TP=${world}: base, every adapter and a text-only sequence in one batch, then decode steps, match the golden logits`, async () => {
      for (const name of cases) {
        await checkClusterDecode(loadQwenVlCase(name), name, world, step, BS, TOP, TOL);
      }
    });
  }
});
