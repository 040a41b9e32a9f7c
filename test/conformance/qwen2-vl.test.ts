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
import { PROTOCOL_VERSION, SAMPLED_LAST_STEP, bytesToFloat32, encode, imageDataSubject, type NewSequence, type SeqOutput, type Step } from '../../protocol/index.js';
import { refLogSoftmax } from '../helpers/reference-ops.js';
import { maxAbsDiff } from '../helpers/golden.js';
import { loadQwenVlCase, qwenGoldenKey, qwenImageMessages, qwenImageRefs, qwenNewSeq, qwenRelayoutV5, qwenVlCases,
  type QwenVlCase } from '../helpers/llava.js';
import { startShardCluster } from '../helpers/shard-cluster.js';

const TOL = 1e-4;
const BS = 4;
const TOP = 12;

let stepId = 1;
const step = (o: Partial<Step>): Step => ({ v: PROTOCOL_VERSION, type: 'step', stepId: stepId++, newSeqs: [], running: [], finished: [], ...o });

function putImages(engine: LocalEngine, c: QwenVlCase): void {
  for (const image of Object.keys(c.images)) for (const m of qwenImageMessages(c, image)) engine.putImage(m);
}

const slotsOf = (c: QwenVlCase): number[] => [-1, ...c.adapters.map((_, i) => i)];

/** Every (sequence, slot) pair, each with its own blocks, for one step. */
function mixedBatch(c: QwenVlCase): { seqs: NewSequence[]; keys: string[] } {
  const seqs: NewSequence[] = [], keys: string[] = [];
  let block = 0;
  c.sequences.forEach((_, s) => {
    const slots = slotsOf(c);
    if (s % 2 === 1) slots.reverse();
    for (const slot of slots) {
      const ns = qwenNewSeq(c, s, { seqId: `mix-${s}-${slot}`, slot, firstBlock: block, blockSize: BS });
      block += ns.blockTable.length;
      seqs.push(ns);
      keys.push(qwenGoldenKey(c, s, slot));
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

for (const name of qwenVlCases()) {
  describe(`qwen vl ${name}`, () => {
    let c: QwenVlCase;
    let engine: LocalEngine;
    before(() => {
      c = loadQwenVlCase(name);
      engine = LocalEngine.open(c.modelDir, { numBlocks: 512, blockSize: BS, adapterSlots: 4, imageWaitMs: 400 });
      c.adapters.forEach((a, i) => engine.loadAdapter(i, a.dir));
      putImages(engine, c);
    });
    after(() => engine.dispose());

    test('base and each adapter alone match transformers + PEFT', async (t) => {
      let worst = 0;
      for (let s = 0; s < c.sequences.length; s++) {
        for (const slot of slotsOf(c)) {
          const ns = qwenNewSeq(c, s, { seqId: `one-${s}-${slot}`, slot, firstBlock: 0, blockSize: BS });
          const [out] = await engine.step(step({ newSeqs: [ns] }));
          await engine.step(step({ finished: [ns.seqId] }));
          assert.equal(out!.error, undefined, out!.error);
          const e = maxAbsDiff(bytesToFloat32(out!.logits!), c.logits(qwenGoldenKey(c, s, slot)));
          assert.ok(e <= TOL, `${qwenGoldenKey(c, s, slot)}: max abs error ${e}`);
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

    test('decode steps after the images (the rope delta), every adapter in one batch', async (t) => {
      const withDecode = c.sequences.map((q, s) => ({ q, s })).filter(({ q }) => q.decode.length > 0);
      const seqs: NewSequence[] = [], keys: string[] = [];
      let block = 0;
      for (const { s } of withDecode) {
        for (const slot of slotsOf(c)) {
          const ns = qwenNewSeq(c, s, { seqId: `dec-${s}-${slot}`, slot, firstBlock: block, blockSize: BS, logits: 'none', topN: TOP });
          block += ns.blockTable.length;
          seqs.push(ns);
          keys.push(qwenGoldenKey(c, s, slot, true));
        }
      }
      let worst = 0;
      let outs = await engine.step(step({ newSeqs: seqs }));
      const steps = withDecode[0]!.q.decode.length;
      for (let d = 0; d <= steps; d++) {
        outs.forEach((o, k) => {
          const g = c.logits(keys[k]!);
          worst = Math.max(worst, checkTop(o, g.subarray(d * c.vocab, (d + 1) * c.vocab), `${keys[k]} step ${d}`));
        });
        if (d === steps) break;
        const decode = (k: number): number => c.sequences[Number(/seq(\d+)/.exec(keys[k]!)![1])]!.decode[d]!;
        outs = await engine.step(step({ running: seqs.map((ns, k) => ({ seqId: ns.seqId, token: decode(k), newBlocks: [] })) }));
      }
      await engine.step(step({ finished: seqs.map((s) => s.seqId) }));
      t.diagnostic(`${name}: worst top log-prob error over ${steps} decode steps ${worst.toExponential(2)}`);
    });

    test('chunked prefill cut inside each image, then decode, matches the golden rows', async () => {
      const s = 1, seq = c.sequences[s]!;  // two images of different sizes
      const refs = qwenImageRefs(c, seq);
      const cuts = [refs[0]!.start + 3, refs[1]!.start + 7, seq.ids.length];
      for (const slot of slotsOf(c)) {
        const golden = c.logits(qwenGoldenKey(c, s, slot, true));
        const full = qwenNewSeq(c, s, { seqId: `chunk-${slot}`, slot, firstBlock: 0, blockSize: BS, logits: 'none', topN: TOP });
        const first: NewSequence = { ...full, tokens: seq.ids.slice(0, cuts[0]), pending: cuts[2]! - cuts[0]! };
        assert.deepEqual(await engine.step(step({ newSeqs: [first] })), []);
        assert.deepEqual(await engine.step(step({ chunks: [{ seqId: full.seqId, tokens: seq.ids.slice(cuts[0], cuts[1]), pending: cuts[2]! - cuts[1]! }] })), []);
        const [last] = await engine.step(step({ chunks: [{ seqId: full.seqId, tokens: seq.ids.slice(cuts[1], cuts[2]), pending: 0 }] }));
        checkTop(last!, golden.subarray(0, c.vocab), `${qwenGoldenKey(c, s, slot)} after chunks`);
        for (let d = 0; d < seq.decode.length; d++) {
          const [out] = await engine.step(step({ running: [{ seqId: full.seqId, token: seq.decode[d]!, newBlocks: [] }] }));
          checkTop(out!, golden.subarray((d + 1) * c.vocab, (d + 2) * c.vocab), `${qwenGoldenKey(c, s, slot)} decode ${d}`);
        }
        await engine.step(step({ finished: [full.seqId] }));
      }
    });

    test('a cached prefix (before an image, and into one) gives the same next-token log-probs and decode', async () => {
      const s = 1, seq = c.sequences[s]!;
      const refs = qwenImageRefs(c, seq);
      for (const slot of slotsOf(c)) {
        const golden = c.logits(qwenGoldenKey(c, s, slot, true));
        const owner = qwenNewSeq(c, s, { seqId: `own-${slot}`, slot, firstBlock: 0, blockSize: BS, logits: 'none', topN: TOP });
        const [o] = await engine.step(step({ newSeqs: [owner] }));
        checkTop(o!, golden.subarray(0, c.vocab), `${qwenGoldenKey(c, s, slot)} whole`);
        // Whole blocks of the owner's cache: ending before the first image, inside it, between the images, inside
        // the second.
        const ends = [refs[0]!.start, refs[0]!.start + 3, refs[1]!.start, refs[1]!.start + 9].map((p) => Math.floor(p / BS) * BS);
        for (const cached of ends) {
          const keep = cached / BS;
          const reuse: NewSequence = { ...owner, seqId: `reuse-${slot}-${cached}`, cached,
            blockTable: [...owner.blockTable.slice(0, keep), ...owner.blockTable.slice(keep).map((b) => b + 200)] };
          const [r] = await engine.step(step({ newSeqs: [reuse] }));
          assert.equal(r!.error, undefined, r!.error);
          checkTop(r!, golden.subarray(0, c.vocab), `${qwenGoldenKey(c, s, slot)} cached ${cached}`);
          const [d] = await engine.step(step({ running: [{ seqId: reuse.seqId, token: seq.decode[0]!, newBlocks: [] }] }));
          checkTop(d!, golden.subarray(c.vocab, 2 * c.vocab), `${qwenGoldenKey(c, s, slot)} cached ${cached}, decode`);
          await engine.step(step({ finished: [reuse.seqId] }));
        }
        await engine.step(step({ finished: [owner.seqId] }));
      }
    });

    test('a preempted sequence recomputed with its generated tokens continues at the same positions', async () => {
      const s = 0, seq = c.sequences[s]!, slot = c.adapters.length - 1;
      const golden = c.logits(qwenGoldenKey(c, s, slot, true));
      const ns = qwenNewSeq(c, s, { seqId: 'preempted', slot, firstBlock: 0, blockSize: BS, logits: 'none', topN: TOP });
      const again: NewSequence = { ...ns, tokens: [...seq.ids, ...seq.decode.slice(0, 2)], generated: seq.decode.slice(0, 2) };
      const [out] = await engine.step(step({ newSeqs: [again] }));
      checkTop(out!, golden.subarray(2 * c.vocab, 3 * c.vocab), 'recomputed after preemption');
      await engine.step(step({ finished: ['preempted'] }));
    });

    test('speculative n-gram drafts after the images give the same greedy tokens (draft positions)', async () => {
      const generate = async (seqId: string, draft: number): Promise<{ tokens: number[]; accepted: number }> => {
        const ns = qwenNewSeq(c, 1, { seqId, slot: c.adapters.length - 1, firstBlock: draft ? 100 : 0, blockSize: BS, logits: 'none', extraBlocks: 12 });
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
      const ns = qwenNewSeq(c, 0, { seqId: 'bad-len', slot: -1, firstBlock: 0, blockSize: BS });
      ns.images = ns.images!.map((r) => ({ ...r, key: `${c.name}-square` }));  // 4 tokens' image on a 12-token run
      const [out] = await engine.step(step({ newSeqs: [ns] }));
      assert.match(out!.error!, /takes 4 placeholder tokens .* covers 12/);
      await engine.step(step({ finished: ['bad-len'] }));
    });

    test('the transformers 5 checkpoint layout (model.language_model.*, model.visual.*) gives the same logits', async () => {
      const other = LocalEngine.open(qwenRelayoutV5(c), { numBlocks: 64, blockSize: BS, adapterSlots: 2 });
      try {
        other.loadAdapter(0, c.adapters.at(-1)!.dir);
        putImages(other, c);
        const seqs = [-1, 0].map((slot) => qwenNewSeq(c, 1, { seqId: `l-${slot}`, slot, firstBlock: slot < 0 ? 0 : 30, blockSize: BS }));
        const outs = await other.step(step({ newSeqs: seqs }));
        const keys = ['base/seq1', `adapter/${c.adapters.at(-1)!.name}/seq1`];
        outs.forEach((o, k) => assert.ok(maxAbsDiff(bytesToFloat32(o.logits!), c.logits(keys[k]!)) <= TOL, keys[k]));
      } finally {
        other.dispose();
      }
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
        const c = loadQwenVlCase(name);
        const cluster = await startShardCluster({ modelDir: c.modelDir, world, kvBlocks: 512 });
        try {
          const cl = await new Promise<string>((resolve) => {
            const sub = cluster.nc.subscribe('weft.*.shard.*.heartbeat', { max: 1, callback: (_e, m) => resolve(m.subject.split('.')[1]!) });
            void sub;
          });
          for (let i = 0; i < c.adapters.length; i++) await cluster.group.loadAdapter(c.adapters[i]!.name, i, { dir: c.adapters[i]!.dir });
          for (const image of Object.keys(c.images)) for (const m of qwenImageMessages(c, image)) cluster.nc.publish(imageDataSubject(cl), encode(m));
          await cluster.nc.flush();
          const { seqs, keys } = mixedBatch(c);
          const r = await cluster.group.step(step({ newSeqs: seqs }));
          assert.equal(r.error, undefined);
          let worst = 0;
          r.outputs.forEach((o, k) => {
            const e = maxAbsDiff(bytesToFloat32(o.logits!), c.logits(keys[k]!));
            assert.ok(e <= TOL, `TP=${world} ${name} ${keys[k]}: max abs error ${e}`);
            worst = Math.max(worst, e);
          });
          // Decode: the two-image sequence under the vision adapter, fed its decode tokens.
          const s = 1, slot = c.adapters.length - 1, seq = c.sequences[s]!;
          const ns = qwenNewSeq(c, s, { seqId: 'tp-dec', slot, firstBlock: 400, blockSize: BS, logits: 'none', topN: TOP });
          const golden = c.logits(qwenGoldenKey(c, s, slot, true));
          let out = (await cluster.group.step(step({ newSeqs: [ns], finished: seqs.map((x) => x.seqId) }))).outputs[0]!;
          for (let d = 0; d <= seq.decode.length; d++) {
            checkTop(out, golden.subarray(d * c.vocab, (d + 1) * c.vocab), `TP=${world} ${name} decode ${d}`);
            if (d === seq.decode.length) break;
            out = (await cluster.group.step(step({ running: [{ seqId: 'tp-dec', token: seq.decode[d]!, newBlocks: [] }] }))).outputs[0]!;
          }
          console.log(`# ${name} TP=${world}: worst max abs logit error ${worst.toExponential(2)}`);
        } finally {
          await cluster.stop();
        }
      }
    });
  }
});
