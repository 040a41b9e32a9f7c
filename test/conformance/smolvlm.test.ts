// Conformance with transformers + PEFT for SmolVLM / Idefics3 with images (test/fixtures/vlm/smolvlm, make_idefics3.py):
// the SigLIP-like tower, the connector's pixel shuffle and modality_projection, each tile of an image one image for the
// shard (its run of <image> tokens), base and every adapter (tower and connector LoRA included), alone and in a
// heterogeneous batch with a text-only sequence, decode steps, chunks ending inside a tile's tokens, a cached prefix
// ending inside one, TP = 2 and 4.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { LocalEngine } from '../../shard/index.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseModelSpec, readModelSpec } from '../../shard/models/index.js';
import { servedSpec } from '../../shard/models/qwen-vl-spec.js';
import { loadIdefics3Case, renamedAdapter, type Gemma3Case } from '../helpers/vlm.js';
import { checkCachedPrefixes, checkChunksThenDecode, checkClusterMixedBatch, checkEachAlone, checkMixedBatch,
  openCaseEngine, stepMaker, withCaseCluster } from '../helpers/vlm-engine.js';

const TOL = 1e-4;
const BS = 4;

const step = stepMaker();

describe('smolvlm', () => {
  let c: Gemma3Case;
  let engine: LocalEngine;
  before(() => {
    c = loadIdefics3Case();
    engine = openCaseEngine(c, { numBlocks: 256, blockSize: BS });
  });
  after(() => engine.dispose());

  test('the spec: a tile per image, causal, the tower kept on cuda (it runs on the CPU)', () => {
    const spec = readModelSpec(c.modelDir);
    assert.deepEqual(spec.vision?.idefics3, { scaleFactor: 2 });
    assert.equal(spec.vision?.siglip, undefined);
    assert.equal(spec.vision?.imageTokenId, c.imageTokenId);
    assert.equal(spec.vision?.tokensPerImage, c.tokensPerImage);
    assert.equal(spec.vision?.imageSize, c.imageSize);
    assert.equal(spec.architecture, 'llama');
    assert.equal(servedSpec(spec, 'cpu'), spec);
    assert.equal(servedSpec(spec, 'cuda'), spec);
  });

  test('Idefics3ForConditionalGeneration (idefics3_vision) reads the same; a text model other than llama is refused', () => {
    const cfg = JSON.parse(readFileSync(join(c.modelDir, 'config.json'), 'utf8'));
    const idefics3 = parseModelSpec({ ...cfg, architectures: ['Idefics3ForConditionalGeneration'], model_type: 'idefics3',
      vision_config: { ...cfg.vision_config, model_type: 'idefics3_vision' } });
    assert.deepEqual(idefics3.vision, readModelSpec(c.modelDir).vision);
    assert.throws(() => parseModelSpec({ ...cfg, text_config: { ...cfg.text_config, model_type: 'qwen2' } }),
      /SmolVLMForConditionalGeneration with a 'qwen2' language model is not supported/);
    assert.throws(() => parseModelSpec({ ...cfg, scale_factor: 4 }), /scale_factor 4 must be a positive integer dividing the 6/);
  });

  test('base and each adapter alone match transformers + PEFT', async (t) => {
    const worst = await checkEachAlone(engine, step, c, BS, TOL);
    t.diagnostic(`smolvlm: worst max abs logit error alone ${worst.toExponential(2)}`);
  });

  test('base, every adapter and a text-only sequence in one heterogeneous batch', async (t) => {
    const worst = await checkMixedBatch(engine, step, c, BS, TOL);
    t.diagnostic(`smolvlm: worst max abs logit error in the mixed batch ${worst.toExponential(2)}`);
  });

  test('chunks ending inside tiles\' tokens, then decode steps, match the golden rows', async (t) => {
    const starts = c.sequences[1]!.image_starts;  // 8 tiles (wide: 3, big: 5)
    const cuts = [starts[0]! + 4, starts[2]!, starts[3]! + 1, starts[6]! + 8];
    const worst = await checkChunksThenDecode(engine, step, c, 1, cuts, BS, TOL);
    t.diagnostic(`smolvlm: worst top log-prob error over chunks and decode ${worst.toExponential(2)}`);
  });

  test('a cached prefix ending inside a tile gives the same next-token log-probs', async () => {
    const starts = c.sequences[0]!.image_starts;
    const prefixes = [Math.floor((starts[0]! + 5) / BS) * BS, Math.floor((starts[4]! + 6) / BS) * BS];
    assert.ok(prefixes[0]! > starts[0]! && prefixes[0]! < starts[0]! + c.tokensPerImage);
    assert.ok(prefixes[1]! > starts[4]! && prefixes[1]! < starts[4]! + c.tokensPerImage);
    await checkCachedPrefixes(engine, step, c, 0, prefixes, BS, TOL);
  });

  test('an adapter on a vision module that is no linear layer (the patch convolution) is refused naming it', () => {
    const dir = renamedAdapter(c, 'smolvlm-conv',
      (n) => n.replace('model.connector.modality_projection.proj', 'model.vision_model.embeddings.patch_embedding'));
    assert.throws(() => engine.loadAdapter(3, dir), /patch_embedding.*Idefics3 vision tower or connector/);
  });
});

describe('smolvlm tensor parallel', () => {
  for (const world of [2, 4]) {
    test(`TP=${world}: base, every adapter and a text-only sequence in one batch match the golden logits`, async () => {
      const c = loadIdefics3Case();
      process.env.WEFT_IMAGE_WAIT_MS = '1500';
      await withCaseCluster(c, world, 256, async (cluster) => {
        const { worst } = await checkClusterMixedBatch(cluster, step, c, BS, TOL, (k) => `TP=${world} ${k}`);
        console.log(`# smolvlm TP=${world}: worst max abs logit error ${worst.toExponential(2)}`);
      });
    });
  }
});
