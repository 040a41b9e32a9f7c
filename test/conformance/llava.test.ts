// Conformance with transformers + PEFT for LLaVA with images (test/fixtures/llava, make_llava.py): the vision tower,
// the feature layer and select strategy, the projector and the placeholder rows, base and every adapter (vision-tower
// LoRA included), alone and in one heterogeneous batch with a text-only sequence, in both checkpoint layouts; chunked
// prefill split inside an image; a cached prefix; an image that never comes fails its sequence only; TP = 2 and 4.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { LocalEngine } from '../../shard/index.js';
import { bytesToFloat32, type NewSequence } from '../../protocol/index.js';
import { maxAbsDiff } from '../helpers/golden.js';
import { llavaCases, llavaRelayout, loadLlavaCase, vlmGoldenKey as goldenKey, vlmNewSeq, type LlavaCase } from '../helpers/vlm.js';
import { allSlots, checkCachedPrefixes, checkClusterMixedBatch, checkEachAlone, checkMixedBatch, checkOtherLayout, checkTop,
  prefillInChunks, openCaseEngine, stepMaker, withCaseCluster } from '../helpers/vlm-engine.js';

const TOL = 1e-4;
const BS = 4;

const step = stepMaker();

for (const name of llavaCases()) {
  describe(`llava ${name}`, () => {
    let c: LlavaCase;
    let engine: LocalEngine;
    before(() => {
      c = loadLlavaCase(name);
      engine = openCaseEngine(c, { numBlocks: 256, blockSize: BS });
    });
    after(() => engine.dispose());

    test('base and each adapter alone match transformers + PEFT', async (t) => {
      const worst = await checkEachAlone(engine, step, c, BS, TOL);
      t.diagnostic(`${name}: worst max abs logit error alone ${worst.toExponential(2)}`);
    });

    test('base, every adapter and a text-only sequence in one heterogeneous batch', async (t) => {
      const worst = await checkMixedBatch(engine, step, c, BS, TOL);
      t.diagnostic(`${name}: worst max abs logit error in the mixed batch ${worst.toExponential(2)}`);
    });

    test('chunked prefill split inside an image, then decode, matches the golden rows', async () => {
      const s = 1, seq = c.sequences[s]!;  // two images
      const refs = c.imageRefs(seq);
      const cuts = [refs[0]!.start + 3, refs[1]!.start + 5, seq.ids.length - 3];  // inside image 0, inside image 1, text
      for (const slot of allSlots(c)) {
        const golden = c.logits(goldenKey(c, s, slot));
        const full = vlmNewSeq(c, s, { seqId: `chunk-${slot}`, slot, firstBlock: 0, blockSize: BS, logits: 'none', topN: 5, extraBlocks: 1 });
        const [last] = await prefillInChunks(engine, step, full, cuts);
        checkTop(last!, golden.subarray((cuts[2]! - 1) * c.vocab, cuts[2]! * c.vocab), `${goldenKey(c, s, slot)} after chunks`, TOL);
        for (let p = cuts[2]!; p < seq.ids.length; p++) {  // the text after the images, one decode step each
          const [out] = await engine.step(step({ running: [{ seqId: full.seqId, token: seq.ids[p]!, newBlocks: [] }] }));
          checkTop(out!, golden.subarray(p * c.vocab, (p + 1) * c.vocab), `${goldenKey(c, s, slot)} decode at ${p}`, TOL);
        }
        await engine.step(step({ finished: [full.seqId] }));
      }
    });

    test('a cached prefix (before the image, and into it) gives the same next-token log-probs', async () => {
      const ref = c.imageRefs(c.sequences[0]!)[0]!;
      // Whole blocks of the owner's cache: one before the image starts, one that ends inside it.
      const prefixes = [Math.floor(ref.start / BS) * BS, Math.floor((ref.start + 5) / BS) * BS];
      for (const cached of prefixes) assert.ok(cached > 0 && cached < ref.start + ref.length);
      await checkCachedPrefixes(engine, step, c, 0, prefixes, BS, TOL);
    });

    test('an image that never comes fails its sequence alone; the others in the step stand', async () => {
      const good = vlmNewSeq(c, 0, { seqId: 'good', slot: -1, firstBlock: 0, blockSize: BS });
      const lost = { ...vlmNewSeq(c, 0, { seqId: 'lost', slot: 0, firstBlock: 50, blockSize: BS, logits: 'none' }) };
      lost.images = lost.images!.map((r) => ({ ...r, key: 'never-sent' }));
      const t0 = Date.now();
      const outs = await engine.step(step({ newSeqs: [good, lost] }));
      assert.ok(Date.now() - t0 >= 350, 'the step waited for the image');
      const byId = new Map(outs.map((o) => [o.seqId, o]));
      assert.match(byId.get('lost')!.error!, /image 'never-sent' did not arrive within 400 ms/);
      assert.ok(maxAbsDiff(bytesToFloat32(byId.get('good')!.logits!), c.logits('base/seq0')) <= TOL);
      // Chunked: nothing is reported until the step that completes its prompt (the first the coordinator expects an
      // output from), and its chunks compute nothing.
      const chunked: NewSequence = { ...lost, seqId: 'lost-chunked', tokens: lost.tokens.slice(0, 10), pending: lost.tokens.length - 10 };
      assert.deepEqual(await engine.step(step({ newSeqs: [chunked] })), []);
      const [late] = await engine.step(step({ chunks: [{ seqId: 'lost-chunked', tokens: lost.tokens.slice(10), pending: 0 }] }));
      assert.match(late!.error!, /never-sent/);
      await engine.step(step({ finished: ['good', 'lost', 'lost-chunked'] }));
    });

    test('wrong image references fail their sequence with the reason', async () => {
      const ns = vlmNewSeq(c, 0, { seqId: 'bad-ref', slot: -1, firstBlock: 0, blockSize: BS });
      ns.images = ns.images!.map((r) => ({ ...r, start: r.start - 1 }));
      const [out] = await engine.step(step({ newSeqs: [ns] }));
      assert.match(out!.error!, /is not the image token/);
      await engine.step(step({ finished: ['bad-ref'] }));
    });

    for (const layout of ['v5', 'hub'] as const) {
      test(`the ${layout === 'v5' ? 'transformers 5 (model.language_model.*)' : 'Hub (vision_tower.vision_model.*)'} checkpoint layout gives the same logits`, async () => {
        await checkOtherLayout(llavaRelayout(c, layout), step, c, BS, TOL, 20);
      });
    }
  });
}

describe('llava tensor parallel', () => {
  for (const world of [2, 4]) {
    test(`TP=${world}: base, every adapter and a text-only sequence in one batch match the golden logits`, async () => {
      const c = loadLlavaCase('llava');
      process.env.WEFT_IMAGE_WAIT_MS = '1500';  // the shard processes' wait for an image that never comes (default 30 s)
      await withCaseCluster(c, world, 256, async (cluster) => {
        const { seqs, worst } = await checkClusterMixedBatch(cluster, step, c, BS, TOL, (key) => `TP=${world} ${key}`);
        // An image no rank has: that sequence fails on every rank alike; the group goes on.
        const lost = vlmNewSeq(c, 0, { seqId: 'tp-lost', slot: -1, firstBlock: 0, blockSize: BS });
        lost.images = lost.images!.map((ref) => ({ ...ref, key: 'never-sent' }));
        const good = vlmNewSeq(c, 0, { seqId: 'tp-good', slot: 1, firstBlock: 20, blockSize: BS });
        const r2 = await cluster.group.step(step({ newSeqs: [lost, good], finished: seqs.map((s) => s.seqId) }));
        assert.equal(r2.error, undefined);
        assert.match(r2.outputs.find((o) => o.seqId === 'tp-lost')!.error!, /never-sent/);
        assert.ok(maxAbsDiff(bytesToFloat32(r2.outputs.find((o) => o.seqId === 'tp-good')!.logits!), c.logits(goldenKey(c, 0, 1))) <= TOL);
        console.log(`# llava TP=${world}: worst max abs logit error ${worst.toExponential(2)}`);
      });
    });
  }
});
