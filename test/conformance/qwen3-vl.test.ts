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
import type { NewSequence, SeqOutput } from '../../protocol/index.js';
import { loadQwenVlCase, qwenExpertsInOut, qwenRelayoutFlat, qwenVlCases, vlmGoldenKey as goldenKey, vlmNewSeq, type QwenVlCase } from '../helpers/vlm.js';
import { allSlots, checkClusterMixedBatch, checkEachAlone, checkMixedBatch, checkOtherLayout, checkTop as checkTopWithin,
  prefillInChunks, openCaseEngine, stepMaker, withCachedPrefix, withCaseCluster } from '../helpers/vlm-engine.js';

const TOL = 1e-4;
const BS = 4;
const TOP = 12;

const step = stepMaker();
const checkTop = (out: SeqOutput, row: Float32Array, what: string): number => checkTopWithin(out, row, what, TOL);
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

    test('base and each adapter alone match transformers + PEFT', async (t) => {
      const worst = await checkEachAlone(engine, step, c, BS, TOL);
      t.diagnostic(`${name}: worst max abs logit error alone ${worst.toExponential(2)}`);
    });

    test('base, every adapter and a text-only sequence in one heterogeneous batch', async (t) => {
      const worst = await checkMixedBatch(engine, step, c, BS, TOL);
      t.diagnostic(`${name}: worst max abs logit error in the mixed batch ${worst.toExponential(2)}`);
    });

    test('decode steps after the images (the rope delta), every adapter in one batch', async (t) => {
      const withDecode = c.sequences.map((q, s) => ({ q, s })).filter(({ q }) => q.decode.length > 0);
      const seqs: NewSequence[] = [], keys: string[] = [];
      let block = 0;
      for (const { s } of withDecode) {
        for (const slot of allSlots(c)) {
          const ns = vlmNewSeq(c, s, { seqId: `dec-${s}-${slot}`, slot, firstBlock: block, blockSize: BS, logits: 'none', topN: TOP });
          block += ns.blockTable.length;
          seqs.push(ns);
          keys.push(goldenKey(c, s, slot, true));
        }
      }
      let worst = 0;
      let outs = await engine.step(step({ newSeqs: seqs }));
      const steps = withDecode[0]!.q.decode.length;
      for (let d = 0; d <= steps; d++) {
        outs.forEach((o, k) => {
          worst = Math.max(worst, checkTop(o, c.logits(keys[k]!).subarray(d * c.vocab, (d + 1) * c.vocab), `${keys[k]} step ${d}`));
        });
        if (d === steps) break;
        const decode = (k: number): number => c.sequences[Number(/seq(\d+)/.exec(keys[k]!)![1])]!.decode[d]!;
        outs = await engine.step(step({ running: seqs.map((ns, k) => ({ seqId: ns.seqId, token: decode(k), newBlocks: [] })) }));
      }
      await engine.step(step({ finished: seqs.map((s) => s.seqId) }));
      t.diagnostic(`${name}: worst top log-prob error over ${steps} decode steps ${worst.toExponential(2)}`);
    });

    test('chunked prefill cut inside each image (deepstack rows split across chunks), then decode', async () => {
      const s = 1, seq = c.sequences[s]!;  // two images of different sizes
      const refs = c.imageRefs(seq);
      for (const cuts of [[refs[0]!.start + 1, refs[1]!.start + 7, seq.ids.length], [refs[0]!.start + 3, refs[1]!.start + 13, refs[1]!.start + 20, seq.ids.length]]) {
        for (const slot of allSlots(c)) {
          const golden = c.logits(goldenKey(c, s, slot, true));
          const full = vlmNewSeq(c, s, { seqId: `chunk-${slot}`, slot, firstBlock: 0, blockSize: BS, logits: 'none', topN: TOP });
          const [last] = await prefillInChunks(engine, step, full, cuts);
          checkTop(last!, golden.subarray(0, c.vocab), `${goldenKey(c, s, slot)} after chunks ${cuts.join(',')}`);
          for (let d = 0; d < seq.decode.length; d++) {
            const [out] = await engine.step(step({ running: [{ seqId: full.seqId, token: seq.decode[d]!, newBlocks: [] }] }));
            checkTop(out!, golden.subarray((d + 1) * c.vocab, (d + 2) * c.vocab), `${goldenKey(c, s, slot)} decode ${d}`);
          }
          await engine.step(step({ finished: [full.seqId] }));
        }
      }
    });

    test('a cached prefix (before an image, and into one) gives the same next-token log-probs and decode', async () => {
      const s = 1, seq = c.sequences[s]!;
      const refs = c.imageRefs(seq);
      for (const slot of allSlots(c)) {
        const golden = c.logits(goldenKey(c, s, slot, true));
        const owner = vlmNewSeq(c, s, { seqId: `own-${slot}`, slot, firstBlock: 0, blockSize: BS, logits: 'none', topN: TOP });
        const [o] = await engine.step(step({ newSeqs: [owner] }));
        checkTop(o!, golden.subarray(0, c.vocab), `${goldenKey(c, s, slot)} whole`);
        const ends = [refs[0]!.start, refs[0]!.start + 3, refs[1]!.start, refs[1]!.start + 9].map((p) => Math.floor(p / BS) * BS);
        for (const cached of ends) {
          const reuse = withCachedPrefix(owner, `reuse-${slot}-${cached}`, cached, BS, 200);
          const [r] = await engine.step(step({ newSeqs: [reuse] }));
          assert.equal(r!.error, undefined, r!.error);
          checkTop(r!, golden.subarray(0, c.vocab), `${goldenKey(c, s, slot)} cached ${cached}`);
          const [d] = await engine.step(step({ running: [{ seqId: reuse.seqId, token: seq.decode[0]!, newBlocks: [] }] }));
          checkTop(d!, golden.subarray(c.vocab, 2 * c.vocab), `${goldenKey(c, s, slot)} cached ${cached}, decode`);
          await engine.step(step({ finished: [reuse.seqId] }));
        }
        await engine.step(step({ finished: [owner.seqId] }));
      }
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
        const c = loadQwenVlCase(name);
        await withCaseCluster(c, world, 512, async (cluster) => {
          const { seqs, worst } = await checkClusterMixedBatch(cluster, step, c, BS, TOL, (key) => `TP=${world} ${name} ${key}`);
          const s = 1, slot = c.adapters.length - 1, seq = c.sequences[s]!;
          const ns = vlmNewSeq(c, s, { seqId: 'tp-dec', slot, firstBlock: 400, blockSize: BS, logits: 'none', topN: TOP });
          const golden = c.logits(goldenKey(c, s, slot, true));
          let out = (await cluster.group.step(step({ newSeqs: [ns], finished: seqs.map((x) => x.seqId) }))).outputs[0]!;
          for (let d = 0; d <= seq.decode.length; d++) {
            checkTop(out, golden.subarray(d * c.vocab, (d + 1) * c.vocab), `TP=${world} ${name} decode ${d}`);
            if (d === seq.decode.length) break;
            out = (await cluster.group.step(step({ running: [{ seqId: 'tp-dec', token: seq.decode[d]!, newBlocks: [] }] }))).outputs[0]!;
          }
          console.log(`# ${name} TP=${world}: worst max abs logit error ${worst.toExponential(2)}`);
        });
      }
    });
  }
});
