// Conformance with transformers + PEFT for LLaVA with images (test/fixtures/llava, make_llava.py): the vision tower,
// the feature layer and select strategy, the projector and the placeholder rows, base and every adapter (vision-tower
// LoRA included), alone and in one heterogeneous batch with a text-only sequence, in both checkpoint layouts; chunked
// prefill split inside an image; a cached prefix; an image that never comes fails its sequence only; TP = 2 and 4.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { LocalEngine } from '../../shard/index.js';
import { PROTOCOL_VERSION, bytesToFloat32, encode, imageDataSubject, type NewSequence, type SeqOutput, type Step } from '../../protocol/index.js';
import { refLogSoftmax } from '../helpers/reference-ops.js';
import { maxAbsDiff } from '../helpers/golden.js';
import { goldenKey, imageMessages, imageRefs, llavaCases, llavaNewSeq, loadLlavaCase, relayout, type LlavaCase } from '../helpers/llava.js';
import { startShardCluster } from '../helpers/shard-cluster.js';

const TOL = 1e-4;
const BS = 4;

let stepId = 1;
const step = (o: Partial<Step>): Step => ({ v: PROTOCOL_VERSION, type: 'step', stepId: stepId++, newSeqs: [], running: [], finished: [], ...o });

function putImages(engine: LocalEngine, c: LlavaCase): void {
  for (const image of ['tall', 'square']) for (const m of imageMessages(c, image)) engine.putImage(m);
}

/** Every (sequence, slot) pair of the case, each with its own blocks, in one step; returns the items and outputs. */
function mixedBatch(c: LlavaCase): { seqs: NewSequence[]; keys: string[] } {
  const seqs: NewSequence[] = [], keys: string[] = [];
  let block = 0;
  c.sequences.forEach((seq, s) => {
    const slots = [-1, ...c.adapters.map((_, i) => i)];
    if (s % 2 === 1) slots.reverse();
    for (const slot of slots) {
      const ns = llavaNewSeq(c, s, { seqId: `mix-${s}-${slot}`, slot, firstBlock: block, blockSize: BS });
      block += ns.blockTable.length;
      seqs.push(ns);
      keys.push(goldenKey(c, s, slot));
    }
  });
  return { seqs, keys };
}

/** A sampled output's top log-probs against the golden row's log-softmax. */
function checkTop(out: SeqOutput, row: Float32Array, what: string): number {
  const want = refLogSoftmax(row);
  assert.ok(out.top.length > 0, `${what}: no alternatives`);
  let worst = 0;
  for (const alt of out.top) worst = Math.max(worst, Math.abs(alt.logprob - want[alt.token]!));
  assert.ok(worst <= TOL, `${what}: top log-prob error ${worst}`);
  return worst;
}

for (const name of llavaCases()) {
  describe(`llava ${name}`, () => {
    let c: LlavaCase;
    let engine: LocalEngine;
    before(() => {
      c = loadLlavaCase(name);
      engine = LocalEngine.open(c.modelDir, { numBlocks: 256, blockSize: BS, adapterSlots: 4, imageWaitMs: 400 });
      c.adapters.forEach((a, i) => engine.loadAdapter(i, a.dir));
      putImages(engine, c);
    });
    after(() => engine.dispose());

    test('base and each adapter alone match transformers + PEFT', async (t) => {
      let worst = 0;
      for (let s = 0; s < c.sequences.length; s++) {
        for (const slot of [-1, ...c.adapters.map((_, i) => i)]) {
          const ns = llavaNewSeq(c, s, { seqId: `one-${s}-${slot}`, slot, firstBlock: 0, blockSize: BS });
          const [out] = await engine.step(step({ newSeqs: [ns] }));
          await engine.step(step({ finished: [ns.seqId] }));
          const e = maxAbsDiff(bytesToFloat32(out!.logits!), c.logits(goldenKey(c, s, slot)));
          assert.ok(e <= TOL, `${goldenKey(c, s, slot)}: max abs error ${e}`);
          worst = Math.max(worst, e);
        }
      }
      t.diagnostic(`${name}: worst max abs logit error alone ${worst.toExponential(2)}`);
    });

    test('base, every adapter and a text-only sequence in one heterogeneous batch', async (t) => {
      const { seqs, keys } = mixedBatch(c);
      const outs = await engine.step(step({ newSeqs: seqs }));
      await engine.step(step({ finished: seqs.map((s) => s.seqId) }));
      assert.equal(outs.length, keys.length);
      let worst = 0;
      outs.forEach((o, k) => {
        const e = maxAbsDiff(bytesToFloat32(o.logits!), c.logits(keys[k]!));
        assert.ok(e <= TOL, `${keys[k]} in the mixed batch: max abs error ${e}`);
        worst = Math.max(worst, e);
      });
      t.diagnostic(`${name}: worst max abs logit error in the mixed batch ${worst.toExponential(2)}`);
    });

    test('chunked prefill split inside an image, then decode, matches the golden rows', async () => {
      const s = 1, seq = c.sequences[s]!;  // two images
      const refs = imageRefs(c, seq);
      const cuts = [refs[0]!.start + 3, refs[1]!.start + 5, seq.ids.length - 3];  // inside image 0, inside image 1, text
      for (const slot of [-1, ...c.adapters.map((_, i) => i)]) {
        const golden = c.logits(goldenKey(c, s, slot));
        const full = llavaNewSeq(c, s, { seqId: `chunk-${slot}`, slot, firstBlock: 0, blockSize: BS, logits: 'none', topN: 5, extraBlocks: 1 });
        const first: NewSequence = { ...full, tokens: seq.ids.slice(0, cuts[0]), pending: cuts[2]! - cuts[0]! };
        assert.deepEqual(await engine.step(step({ newSeqs: [first] })), []);
        assert.deepEqual(await engine.step(step({ chunks: [{ seqId: full.seqId, tokens: seq.ids.slice(cuts[0], cuts[1]), pending: cuts[2]! - cuts[1]! }] })), []);
        const [last] = await engine.step(step({ chunks: [{ seqId: full.seqId, tokens: seq.ids.slice(cuts[1], cuts[2]), pending: 0 }] }));
        checkTop(last!, golden.subarray((cuts[2]! - 1) * c.vocab, cuts[2]! * c.vocab), `${goldenKey(c, s, slot)} after chunks`);
        for (let p = cuts[2]!; p < seq.ids.length; p++) {  // the text after the images, one decode step each
          const [out] = await engine.step(step({ running: [{ seqId: full.seqId, token: seq.ids[p]!, newBlocks: [] }] }));
          checkTop(out!, golden.subarray(p * c.vocab, (p + 1) * c.vocab), `${goldenKey(c, s, slot)} decode at ${p}`);
        }
        await engine.step(step({ finished: [full.seqId] }));
      }
    });

    test('a cached prefix (before the image, and into it) gives the same next-token log-probs', async () => {
      const s = 0, seq = c.sequences[s]!;
      const ref = imageRefs(c, seq)[0]!;
      for (const slot of [-1, ...c.adapters.map((_, i) => i)]) {
        const golden = c.logits(goldenKey(c, s, slot));
        const owner = llavaNewSeq(c, s, { seqId: `own-${slot}`, slot, firstBlock: 0, blockSize: BS, logits: 'none', topN: 5 });
        const [o] = await engine.step(step({ newSeqs: [owner] }));
        const lastRow = golden.subarray((seq.ids.length - 1) * c.vocab);
        checkTop(o!, lastRow, `${goldenKey(c, s, slot)} whole`);
        // Whole blocks of the owner's cache: one before the image starts, one that ends inside it.
        for (const cached of [Math.floor(ref.start / BS) * BS, Math.floor((ref.start + 5) / BS) * BS]) {
          assert.ok(cached > 0 && cached < ref.start + ref.length);
          const keep = cached / BS;
          const reuse: NewSequence = { ...owner, seqId: `reuse-${slot}-${cached}`, cached,
            blockTable: [...owner.blockTable.slice(0, keep), ...owner.blockTable.slice(keep).map((b) => b + 100)] };
          const [r] = await engine.step(step({ newSeqs: [reuse] }));
          checkTop(r!, lastRow, `${goldenKey(c, s, slot)} cached ${cached}`);
          await engine.step(step({ finished: [reuse.seqId] }));
        }
        await engine.step(step({ finished: [owner.seqId] }));
      }
    });

    test('an image that never comes fails its sequence alone; the others in the step stand', async () => {
      const good = llavaNewSeq(c, 0, { seqId: 'good', slot: -1, firstBlock: 0, blockSize: BS });
      const lost = { ...llavaNewSeq(c, 0, { seqId: 'lost', slot: 0, firstBlock: 50, blockSize: BS, logits: 'none' }) };
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
      const ns = llavaNewSeq(c, 0, { seqId: 'bad-ref', slot: -1, firstBlock: 0, blockSize: BS });
      ns.images = ns.images!.map((r) => ({ ...r, start: r.start - 1 }));
      const [out] = await engine.step(step({ newSeqs: [ns] }));
      assert.match(out!.error!, /is not the image token/);
      await engine.step(step({ finished: ['bad-ref'] }));
    });

    for (const layout of ['v5', 'hub'] as const) {
      test(`the ${layout === 'v5' ? 'transformers 5 (model.language_model.*)' : 'Hub (vision_tower.vision_model.*)'} checkpoint layout gives the same logits`, async () => {
        const other = LocalEngine.open(relayout(c, layout), { numBlocks: 64, blockSize: BS, adapterSlots: 2 });
        try {
          other.loadAdapter(0, c.adapters.at(-1)!.dir);
          putImages(other, c);
          const seqs = [-1, 0].map((slot) => llavaNewSeq(c, 1, { seqId: `l-${slot}`, slot, firstBlock: slot < 0 ? 0 : 20, blockSize: BS }));
          const outs = await other.step(step({ newSeqs: seqs }));
          const keys = ['base/seq1', `adapter/${c.adapters.at(-1)!.name}/seq1`];
          outs.forEach((o, k) => assert.ok(maxAbsDiff(bytesToFloat32(o.logits!), c.logits(keys[k]!)) <= TOL, keys[k]));
        } finally {
          other.dispose();
        }
      });
    }
  });
}

describe('llava tensor parallel', () => {
  for (const world of [2, 4]) {
    test(`TP=${world}: base, every adapter and a text-only sequence in one batch match the golden logits`, async () => {
      const c = loadLlavaCase('llava');
      process.env.WEFT_IMAGE_WAIT_MS = '1500';  // the shard processes' wait for an image that never comes (default 30 s)
      const cluster = await startShardCluster({ modelDir: c.modelDir, world, kvBlocks: 256 });
      try {
        // The cluster's name, from its shards' heartbeat subjects (weft.<cluster>.shard.<rank>.heartbeat).
        const name = await new Promise<string>((resolve) => {
          const sub = cluster.nc.subscribe('weft.*.shard.*.heartbeat', { max: 1, callback: (_e, m) => resolve(m.subject.split('.')[1]!) });
          void sub;
        });
        for (let i = 0; i < c.adapters.length; i++) await cluster.group.loadAdapter(c.adapters[i]!.name, i, { dir: c.adapters[i]!.dir });
        for (const image of ['tall', 'square']) for (const m of imageMessages(c, image)) cluster.nc.publish(imageDataSubject(name), encode(m));
        await cluster.nc.flush();
        const { seqs, keys } = mixedBatch(c);
        const r = await cluster.group.step(step({ newSeqs: seqs }));
        assert.equal(r.error, undefined);
        let worst = 0;
        r.outputs.forEach((o, k) => {
          const e = maxAbsDiff(bytesToFloat32(o.logits!), c.logits(keys[k]!));
          assert.ok(e <= TOL, `TP=${world} ${keys[k]}: max abs error ${e}`);
          worst = Math.max(worst, e);
        });
        // An image no rank has: that sequence fails on every rank alike; the group goes on.
        const lost = llavaNewSeq(c, 0, { seqId: 'tp-lost', slot: -1, firstBlock: 0, blockSize: BS });
        lost.images = lost.images!.map((ref) => ({ ...ref, key: 'never-sent' }));
        const good = llavaNewSeq(c, 0, { seqId: 'tp-good', slot: 1, firstBlock: 20, blockSize: BS });
        const r2 = await cluster.group.step(step({ newSeqs: [lost, good], finished: seqs.map((s) => s.seqId) }));
        assert.equal(r2.error, undefined);
        assert.match(r2.outputs.find((o) => o.seqId === 'tp-lost')!.error!, /never-sent/);
        assert.ok(maxAbsDiff(bytesToFloat32(r2.outputs.find((o) => o.seqId === 'tp-good')!.logits!), c.logits(goldenKey(c, 0, 1))) <= TOL);
        console.log(`# llava TP=${world}: worst max abs logit error ${worst.toExponential(2)}`);
      } finally {
        await cluster.stop();
      }
    });
  }
});
