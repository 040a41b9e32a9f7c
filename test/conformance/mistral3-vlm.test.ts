// Conformance with transformers + PEFT for Mistral 3 with images (test/fixtures/vlm/mistral3, make_mistral3_vlm.py):
// the Pixtral tower on each image at its own size (2-D RoPE over patch rows and columns, SwiGLU), Mistral3's
// projector (RMSNorm, the 2 × 2 patch merger in unfold's order, linear_1 → gelu → linear_2 with biases), the features
// on the [IMG] positions only (the [IMG_BREAK] / [IMG_END] rows keep their embeddings), base and every adapter (tower
// and projector LoRA included), alone and in a heterogeneous batch with a text-only sequence, decode steps, both
// checkpoint layouts, chunks ending inside images, a cached prefix ending inside an image, TP = 2 and 4; references
// that do not fit the image refused for their sequence alone.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { LocalEngine } from '../../shard/index.js';
import { readModelSpec } from '../../shard/models/index.js';
import { servedSpec } from '../../shard/models/qwen-vl-spec.js';
import { pixtralServedSpec } from '../../shard/models/pixtral-spec.js';
import { bytesToFloat32 } from '../../protocol/index.js';
import { maxAbsDiff } from '../helpers/golden.js';
import { loadMistral3Case, mistral3RangeTokens, mistral3RelayoutV5, renamedAdapter, vlmGoldenKey as key, vlmNewSeq,
  type Mistral3Case } from '../helpers/vlm.js';
import { checkCachedPrefixes, checkChunksThenDecode, checkClusterMixedBatch, checkEachAlone, checkMixedBatch, checkOtherLayout,
  openCaseEngine, stepMaker, withCaseCluster } from '../helpers/vlm-engine.js';

const TOL = 1e-4;
const BS = 4;

const step = stepMaker();

describe('mistral3 vlm', () => {
  let c: Mistral3Case;
  let engine: LocalEngine;
  before(() => {
    c = loadMistral3Case();
    engine = openCaseEngine(c, { numBlocks: 256, blockSize: BS });
  });
  after(() => engine.dispose());

  test('the fixture: PixtralProcessor\'s rows of [IMG] ended by [IMG_BREAK] / [IMG_END]', () => {
    for (const seq of c.sequences) {
      for (const [i, start] of seq.image_starts.entries()) {
        const image = seq.images[i]!;
        assert.deepEqual(seq.ids.slice(start, start + c.images[image]!.tokens), mistral3RangeTokens(c, image));
      }
    }
  });

  test('the spec: the Pixtral tower with row breaks on the CPU, text-only on cuda', () => {
    const spec = readModelSpec(c.modelDir);
    assert.equal(spec.pixtral?.imageTokenId, c.imageTokenId);
    assert.equal(spec.pixtral?.patchSize, c.patchSize);
    assert.equal(spec.pixtral?.mergeSize, c.mergeSize);
    assert.equal(spec.pixtral?.layersRun, 2);
    assert.equal(spec.pixtral?.projectorBias, true);
    const onCpu = pixtralServedSpec(servedSpec(spec, 'cpu'), 'cpu');
    assert.equal(onCpu, spec);
    const onCuda = pixtralServedSpec(servedSpec(spec, 'cuda'), 'cuda');
    assert.equal(onCuda.pixtral, undefined);
    assert.equal(onCuda.visionLanguage, true);
  });

  test('base and each adapter alone match transformers + PEFT', async (t) => {
    const worst = await checkEachAlone(engine, step, c, BS, TOL);
    t.diagnostic(`mistral3: worst max abs logit error alone ${worst.toExponential(2)}`);
  });

  test('base, every adapter and a text-only sequence in one heterogeneous batch', async (t) => {
    const worst = await checkMixedBatch(engine, step, c, BS, TOL);
    t.diagnostic(`mistral3: worst max abs logit error in the mixed batch ${worst.toExponential(2)}`);
  });

  test('chunks ending inside the images (mid-row and on a row break), then decode steps, match the golden rows', async (t) => {
    const [a, b] = c.sequences[1]!.image_starts as [number, number];  // two images: tall (4 × 2), wide (2 × 4)
    const cuts = [a + 1, a + 5, b + 4, b + 7];  // inside a row, just after a break, on a break, inside the last row
    const worst = await checkChunksThenDecode(engine, step, c, 1, cuts, BS, TOL);
    t.diagnostic(`mistral3: worst top log-prob error over chunks and decode ${worst.toExponential(2)}`);
  });

  test('a cached prefix ending inside an image gives the same next-token log-probs', async () => {
    const seq = c.sequences[1]!, [a, b] = seq.image_starts as [number, number];
    const end = b + c.images[seq.images[1]!]!.tokens;
    const prefixes = [4, 8, 12, 16, 20];  // inside image 0 (a break at 4, 7, 10), between, inside image 1
    for (const cached of prefixes) assert.ok(cached > a && cached < end);
    await checkCachedPrefixes(engine, step, c, 1, prefixes, BS, TOL);
  });

  test('the Hub layout (the fixture) and transformers 5\'s (model.language_model.*, lm_head.*) give the same logits', async () => {
    await checkOtherLayout(mistral3RelayoutV5(c), step, c, BS, TOL, 30);
  });

  test('references that do not fit the image fail their sequence alone', async () => {
    const s = 0, seq = c.sequences[s]!, a = seq.image_starts[0]!, img = c.images[seq.images[0]!]!;
    const good = vlmNewSeq(c, s, { seqId: 'fits', slot: 0, firstBlock: 0, blockSize: BS });
    // The range as long as the [IMG] tokens alone (no room for the breaks).
    const short = vlmNewSeq(c, s, { seqId: 'short', slot: -1, firstBlock: 20, blockSize: BS });
    short.images = [{ ...short.images![0]!, length: img.features }];
    // A break token where an [IMG] should be (the row break moved one place left).
    const moved = vlmNewSeq(c, s, { seqId: 'moved', slot: -1, firstBlock: 40, blockSize: BS });
    const ids = [...seq.ids];
    [ids[a + img.cols - 1], ids[a + img.cols]] = [ids[a + img.cols]!, ids[a + img.cols - 1]!];
    moved.tokens = ids;
    const outs = await engine.step(step({ newSeqs: [short, good, moved] }));
    const by = new Map(outs.map((o) => [o.seqId, o]));
    assert.match(by.get('short')!.error!, /spans 10 positions, but its reference covers 8/);
    assert.match(by.get('moved')!.error!, /token \d+ \(\d+\) of image 'mistral3-wide' should/);
    assert.ok(maxAbsDiff(bytesToFloat32(by.get('fits')!.logits!), c.logits(key(c, s, 0))) <= TOL);
    await engine.step(step({ finished: ['fits', 'short', 'moved'] }));
  });

  test('an adapter on a vision module that is no linear layer (the patch convolution) is refused naming it', () => {
    const dir = renamedAdapter(c, 'mistral3-conv',
      (n) => n.replace('vision_tower.transformer.layers.0.feed_forward.gate_proj', 'vision_tower.patch_conv'));
    assert.throws(() => engine.loadAdapter(3, dir), /patch_conv.*Pixtral vision tower.*merging_layer/);
  });
});

describe('mistral3 vlm tensor parallel', () => {
  for (const world of [2, 4]) {
    test(`TP=${world}: base, every adapter and a text-only sequence in one batch match the golden logits`, async () => {
      const c = loadMistral3Case();
      process.env.WEFT_IMAGE_WAIT_MS = '1500';
      await withCaseCluster(c, world, 256, async (cluster) => {
        const { worst } = await checkClusterMixedBatch(cluster, step, c, BS, TOL, (k) => `TP=${world} ${k}`);
        console.log(`# mistral3 vlm TP=${world}: worst max abs logit error ${worst.toExponential(2)}`);
      });
    });
  }
});
