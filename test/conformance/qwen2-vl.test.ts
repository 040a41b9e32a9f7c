// Conformance with transformers + PEFT for Qwen2-VL and Qwen2.5-VL with images (test/fixtures/vlm, make_qwen2_vl.py):
// the dynamic-resolution vision tower (patch order, 2-D rotary embedding, Qwen2.5-VL's windows and full-attention
// block, the patch merger), multimodal RoPE in the language model (3-D positions of an image's tokens, the delta of
// the text after it, decode steps), base and every adapter (vision-tower LoRA included), alone and in one
// heterogeneous batch; chunked prefill cut inside an image; cached prefixes before and inside an image; both
// checkpoint layouts; TP = 2 and 4.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { LocalEngine } from '../../shard/index.js';
import { loadModel, readModelSpec } from '../../shard/models/index.js';
import { servedSpec } from '../../shard/models/qwen-vl-spec.js';
import { SAMPLED_LAST_STEP, type NewSequence, type SeqOutput } from '../../protocol/index.js';
import { loadQwenVlCase, qwenRelayoutV5, qwenVlCases, vlmGoldenKey as goldenKey, vlmNewSeq, type QwenVlCase } from '../helpers/vlm.js';
import { checkCachedPrefixesThenDecode, checkChunksThenDecodeRows, checkClusterDecode, checkOtherLayout, checkTop as checkTopWithin,
  openCaseEngine, stepMaker, testEachAloneMixedDecode } from '../helpers/vlm-engine.js';

const TOL = 1e-4;
const BS = 4;
const TOP = 12;

const step = stepMaker();
const checkTop = (out: SeqOutput, row: Float32Array, what: string): number => checkTopWithin(out, row, what, TOL);

for (const name of qwenVlCases()) {
  describe(`qwen vl ${name}`, () => {
    let c: QwenVlCase;
    let engine: LocalEngine;
    before(() => {
      c = loadQwenVlCase(name);
      engine = openCaseEngine(c, { numBlocks: 512, blockSize: BS });
    });
    after(() => engine.dispose());

    testEachAloneMixedDecode(name, () => ({ c, engine }), step, BS, TOP, TOL);

    test('chunked prefill cut inside each image, then decode, matches the golden rows', async () => {
      const s = 1, seq = c.sequences[s]!;  // two images of different sizes
      const refs = c.imageRefs(seq);
      await checkChunksThenDecodeRows(engine, step, c, s, [refs[0]!.start + 3, refs[1]!.start + 7, seq.ids.length], BS, TOP, TOL);
    });

    test('a cached prefix (before an image, and into one) gives the same next-token log-probs and decode', async () => {
      const s = 1, refs = c.imageRefs(c.sequences[s]!);
      // Whole blocks of the owner's cache: ending before the first image, inside it, between the images, inside the
      // second.
      const ends = [refs[0]!.start, refs[0]!.start + 3, refs[1]!.start, refs[1]!.start + 9].map((p) => Math.floor(p / BS) * BS);
      await checkCachedPrefixesThenDecode(engine, step, c, s, ends, BS, TOP, TOL);
    });

    test('a preempted sequence recomputed with its generated tokens continues at the same positions', async () => {
      const s = 0, seq = c.sequences[s]!, slot = c.adapters.length - 1;
      const golden = c.logits(goldenKey(c, s, slot, true));
      const ns = vlmNewSeq(c, s, { seqId: 'preempted', slot, firstBlock: 0, blockSize: BS, logits: 'none', topN: TOP });
      const again: NewSequence = { ...ns, tokens: [...seq.ids, ...seq.decode.slice(0, 2)], generated: seq.decode.slice(0, 2) };
      const [out] = await engine.step(step({ newSeqs: [again] }));
      checkTop(out!, golden.subarray(2 * c.vocab, 3 * c.vocab), 'recomputed after preemption');
      await engine.step(step({ finished: ['preempted'] }));
    });

    test('speculative n-gram drafts after the images give the same greedy tokens (draft positions)', async () => {
      const generate = async (seqId: string, draft: number): Promise<{ tokens: number[]; accepted: number }> => {
        const ns = vlmNewSeq(c, 1, { seqId, slot: c.adapters.length - 1, firstBlock: draft ? 100 : 0, blockSize: BS, logits: 'none', extraBlocks: 12 });
        let [o] = await engine.step(step({ newSeqs: [ns] }));
        const tokens = [o!.token];
        let accepted = 0;
        while (tokens.length < 30) {
          [o] = await engine.step(step({ running: [{ seqId, token: SAMPLED_LAST_STEP, newBlocks: [], ...(draft ? { draft } : {}) }] }));
          tokens.push(o!.token, ...(o!.more ?? []).map((m) => m.token));
          accepted += o!.more?.length ?? 0;
        }
        await engine.step(step({ finished: [seqId] }));
        return { tokens: tokens.slice(0, 30), accepted };
      };
      const plain = await generate('plain', 0), drafted = await generate('drafted', 3);
      assert.deepEqual(drafted.tokens, plain.tokens);
    });

    test("an image whose size does not match its reference fails its sequence with the reason", async () => {
      const ns = vlmNewSeq(c, 0, { seqId: 'bad-len', slot: -1, firstBlock: 0, blockSize: BS });
      ns.images = ns.images!.map((r) => ({ ...r, key: `${c.name}-square` }));  // 4 tokens' image on a 12-token run
      const [out] = await engine.step(step({ newSeqs: [ns] }));
      assert.match(out!.error!, /takes 4 placeholder tokens .* covers 12/);
      await engine.step(step({ finished: ['bad-len'] }));
    });

    test('the transformers 5 checkpoint layout (model.language_model.*, model.visual.*) gives the same logits', async () => {
      await checkOtherLayout(qwenRelayoutV5(c), step, c, BS, TOL, 30);
    });

    test('--device cuda: served text-only (no tower, plain RoPE); an M-RoPE spec reaching the loader there is refused', () => {
      const spec = readModelSpec(c.modelDir);
      assert.ok(spec.qwenVision && spec.mropeSection);
      const onCuda = servedSpec(spec, 'cuda');
      assert.equal(onCuda.qwenVision, undefined);
      assert.equal(onCuda.mropeSection, undefined);
      assert.equal(onCuda.hidden, spec.hidden);
      assert.equal(servedSpec(spec, 'cpu'), spec);
      assert.throws(() => loadModel(c.modelDir, spec, { rank: 0, world: 1, numBlocks: 8, blockSize: BS, adapterSlots: 1, device: 'cuda' }),
        /multimodal RoPE .*runs on --device cpu only for now/);
    });
  });
}

describe('qwen vl tensor parallel', () => {
  for (const world of [2, 4]) {
    test(`TP=${world}: base, every adapter and a text-only sequence in one batch, then decode steps, match the golden logits`, async () => {
      for (const name of qwenVlCases()) {
        await checkClusterDecode(loadQwenVlCase(name), name, world, step, BS, TOP, TOL);
      }
    });
  }
});
