// Conformance with transformers + PEFT for Gemma 3 with images (test/fixtures/vlm/gemma3, make_gemma3_vlm.py): the
// SigLIP tower, Gemma 3's projector (pooling, (1 + w) norm, projection), the features in place of the scaled
// embeddings, the image tokens' bidirectional attention (in a sliding layer shorter than an image and a full one),
// base and every adapter (tower LoRA included), alone and in a heterogeneous batch with a text-only sequence, decode
// steps, both checkpoint layouts, chunks at image edges, a chunk ending inside an image refused for its sequence
// alone, a cached prefix ending inside an image, TP = 2 and 4.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { LocalEngine } from '../../shard/index.js';
import { readModelSpec } from '../../shard/models/index.js';
import { servedSpec } from '../../shard/models/qwen-vl-spec.js';
import { bytesToFloat32 } from '../../protocol/index.js';
import { maxAbsDiff } from '../helpers/golden.js';
import { gemma3Relayout, loadGemma3Case, renamedAdapter, vlmGoldenKey as key, vlmNewSeq, type Gemma3Case } from '../helpers/vlm.js';
import { checkCachedPrefixes, checkChunksThenDecode, checkClusterMixedBatch, checkEachAlone, checkMixedBatch, checkOtherLayout,
  openCaseEngine, stepMaker, withCaseCluster } from '../helpers/vlm-engine.js';

const TOL = 1e-4;
const BS = 4;

const step = stepMaker();

describe('gemma3 vlm', () => {
  let c: Gemma3Case;
  let engine: LocalEngine;
  before(() => {
    c = loadGemma3Case();
    engine = openCaseEngine(c, { numBlocks: 256, blockSize: BS });
  });
  after(() => engine.dispose());

  test('the spec: SigLIP images with bidirectional tokens on the CPU, text-only on cuda', () => {
    const spec = readModelSpec(c.modelDir);
    assert.equal(spec.vision?.siglip, true);
    assert.equal(spec.vision?.imageTokenId, c.imageTokenId);
    assert.equal(spec.vision?.tokensPerImage, c.tokensPerImage);
    assert.equal(spec.vision?.imageSize, c.imageSize);
    assert.equal(servedSpec(spec, 'cpu'), spec);
    const onCuda = servedSpec(spec, 'cuda');
    assert.equal(onCuda.vision, undefined);
    assert.equal(onCuda.visionLanguage, true);
  });

  test('base and each adapter alone match transformers + PEFT', async (t) => {
    const worst = await checkEachAlone(engine, step, c, BS, TOL);
    t.diagnostic(`gemma3: worst max abs logit error alone ${worst.toExponential(2)}`);
  });

  test('base, every adapter and a text-only sequence in one heterogeneous batch', async (t) => {
    const worst = await checkMixedBatch(engine, step, c, BS, TOL);
    t.diagnostic(`gemma3: worst max abs logit error in the mixed batch ${worst.toExponential(2)}`);
  });

  test('chunks at the images\' edges, then decode steps, match the golden rows', async (t) => {
    const [a, b] = c.sequences[1]!.image_starts as [number, number];  // two images
    const cuts = [a, a + c.tokensPerImage, b + c.tokensPerImage];  // before image 0, after it, after image 1
    const worst = await checkChunksThenDecode(engine, step, c, 1, cuts, BS, TOL);
    t.diagnostic(`gemma3: worst top log-prob error over chunks and decode ${worst.toExponential(2)}`);
  });

  test('a chunk that ends inside an image fails its sequence alone', async () => {
    const s = 0, seq = c.sequences[s]!, at = seq.image_starts[0]! + 5, n = seq.ids.length;
    const split = vlmNewSeq(c, s, { seqId: 'split', slot: -1, firstBlock: 0, blockSize: BS, logits: 'none' });
    const good = vlmNewSeq(c, s, { seqId: 'beside', slot: 1, firstBlock: 40, blockSize: BS });
    const outs = await engine.step(step({ newSeqs: [{ ...split, tokens: seq.ids.slice(0, at), pending: n - at }, good] }));
    assert.deepEqual(outs.map((o) => o.seqId), ['beside']);
    assert.ok(maxAbsDiff(bytesToFloat32(outs[0]!.logits!), c.logits(key(c, s, 1))) <= TOL);
    const [late] = await engine.step(step({ chunks: [{ seqId: 'split', tokens: seq.ids.slice(at), pending: 0 }] }));
    assert.match(late!.error!, /prefill chunk \[0, \d+\) ends inside image 'gemma3-wide' at \[\d+, \d+\).*both ways/);
    // A later chunk (not the first) that ends inside an image: refused the same way.
    const s1 = c.sequences[1]!, m = s1.ids.length, b = s1.image_starts[1]!;
    const two = vlmNewSeq(c, 1, { seqId: 'split2', slot: 0, firstBlock: 80, blockSize: BS, logits: 'none' });
    assert.deepEqual(await engine.step(step({ newSeqs: [{ ...two, tokens: s1.ids.slice(0, 10), pending: m - 10 }] })), []);
    assert.deepEqual(await engine.step(step({ chunks: [{ seqId: 'split2', tokens: s1.ids.slice(10, b + 3), pending: m - b - 3 }] })), []);
    const [late2] = await engine.step(step({ chunks: [{ seqId: 'split2', tokens: s1.ids.slice(b + 3), pending: 0 }] }));
    assert.match(late2!.error!, /ends inside image 'gemma3-wide'/);
    await engine.step(step({ finished: ['split', 'beside', 'split2'] }));
  });

  test('a cached prefix ending inside an image gives the same next-token log-probs', async () => {
    const start = c.sequences[0]!.image_starts[0]!;
    const prefixes = [Math.floor(start / BS) * BS, Math.floor((start + 6) / BS) * BS, Math.floor((start + 13) / BS) * BS];
    for (const cached of prefixes) assert.ok(cached > 0 && cached < start + c.tokensPerImage);
    await checkCachedPrefixes(engine, step, c, 0, prefixes, BS, TOL);
  });

  for (const layout of ['v5', 'hub'] as const) {
    test(`the ${layout === 'v5' ? 'transformers 5 (model.language_model.*)' : 'Hub (language_model.model.*, vision_tower.vision_model.*)'} checkpoint layout gives the same logits`, async () => {
      await checkOtherLayout(gemma3Relayout(c, layout), step, c, BS, TOL, 30);
    });
  }

  test('an adapter on a vision module that is no linear layer (the patch convolution) is refused naming it', () => {
    const dir = renamedAdapter(c, 'gemma3-conv',
      (n) => n.replace('vision_tower.encoder.layers.0.mlp.fc2', 'vision_tower.embeddings.patch_embedding'));
    assert.throws(() => engine.loadAdapter(3, dir), /patch_embedding.*SigLIP vision tower.*Gemma 3's projector has no linear module/);
  });
});

describe('gemma3 vlm tensor parallel', () => {
  for (const world of [2, 4]) {
    test(`TP=${world}: base, every adapter and a text-only sequence in one batch match the golden logits`, async () => {
      const c = loadGemma3Case();
      process.env.WEFT_IMAGE_WAIT_MS = '1500';
      await withCaseCluster(c, world, 256, async (cluster) => {
        const { worst } = await checkClusterMixedBatch(cluster, step, c, BS, TOL, (k) => `TP=${world} ${k}`);
        console.log(`# gemma3 vlm TP=${world}: worst max abs logit error ${worst.toExponential(2)}`);
      });
    });
  }
});
