// Idefics3 / SmolVLM images on the coordinator, without shards: each `<image>` expanded into the image's tiles
// (`<fake_token_around_image><row_r_col_c>` + image_seq_len × `<image>`, a newline after each row) and its global image
// ("\n<fake_token_around_image><global-img>" + … + `<fake_token_around_image>`; alone for an image not split); one ImageRef
// per tile over its run of image tokens, in prompt order; mismatches a 422; the processor and the shards' tower checked
// at start (tile size, image_seq_len, the image, fake and global tokens), naming both sides; the tiles each published
// once per step. Then the fixture of test/fixtures/vlm/smolvlm: its real tokenizer, template and configs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ModelInfo, NewSequence } from '../../protocol/index.js';
import { expandImageTokens, imageRefs, tiledSequence, type PromptVision } from '../../coordinator/engine/prompt-images.js';
import { EngineVision, stepImages, tokenRule, towerMismatch } from '../../coordinator/engine/engine-vision.js';
import { EngineError, type GenerateRequest } from '../../coordinator/engine/types.js';
import { TokenizerPool } from '../../coordinator/tokenizer/index.js';
import { DEFAULT_IMAGE_LIMITS, parsePreprocessorConfig, readPreprocessorConfig, type PreparedImage } from '../../coordinator/vision/index.js';

const IMG = 261, FAKE = 260, GLOBAL = 262;
const RULE = { kind: 'idefics3' as const, fakeToken: '<fake_token_around_image>', globalToken: '<global-img>', globalTokenId: GLOBAL };
const P: PromptVision = { imageToken: '<image>', templateToken: '<image>', imagePlaceholder: '<image>', imageTokenId: IMG, tokensPerImage: 3,
  imageSize: 24, rule: RULE };
const part = (key: string): PreparedImage => ({ key, height: 24, width: 24, data: new Float32Array(3) });
/** An image of rows × cols tiles (0 × 0: not split) whose parts are keyed `<name>.<i>`, the global one last. */
const tiled = (name: string, rows: number, cols: number): PreparedImage => {
  const n = rows === 0 ? 1 : rows * cols + 1;
  const parts = Array.from({ length: n }, (_, i) => part(`${name}.${i}`));
  return { ...parts.at(-1)!, tiles: { rows, cols, parts } };
};
/** The processor's ids for an image of rows × cols tiles of 3 tokens: tags as 263 + tile, "\n" as 10. */
const tileIds = (rows: number, cols: number) => {
  const run = [IMG, IMG, IMG];
  const global = [FAKE, GLOBAL, ...run, FAKE];
  if (rows === 0) return global;
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out.push(FAKE, 263 + r * cols + c, ...run);
    out.push(10);
  }
  return [...out, 10, ...global];
};
const refusal = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof EngineError && e.kind === 'validation', String(e));
    return e.message;
  }
  return assert.fail('not refused');
};

test('the expansion: rows × cols tiles, a newline after each row, then "\\n" and the global image; an unsplit image its global form only', () => {
  const a = tiled('a', 1, 2), b = tiled('b', 0, 0);
  const img3 = '<image>'.repeat(3);
  assert.equal(expandImageTokens('U:<image>x<image>.', [a, b], P),
    `U:<fake_token_around_image><row_1_col_1>${img3}<fake_token_around_image><row_1_col_2>${img3}\n` +
    `\n<fake_token_around_image><global-img>${img3}<fake_token_around_image>x<fake_token_around_image><global-img>${img3}<fake_token_around_image>.`);
  assert.equal(tiledSequence(2, 1, 1, '<image>', RULE), '<fake_token_around_image><row_1_col_1><image>\n<fake_token_around_image><row_2_col_1><image>\n' +
    '\n<fake_token_around_image><global-img><image><fake_token_around_image>');
});

test('one ImageRef per tile, in prompt order: each run of image_seq_len image tokens, the global image last', () => {
  const a = tiled('a', 1, 2), b = tiled('b', 0, 0);
  const ids = [1, 2, ...tileIds(1, 2), 50, ...tileIds(0, 0), 3];
  // a: [FAKE,263,I,I,I, FAKE,264,I,I,I, 10, 10, FAKE,GLOBAL,I,I,I,FAKE] from 2; b from 21
  assert.deepEqual(imageRefs(ids, [a, b], P), [
    { key: 'a.0', start: 4, length: 3 }, { key: 'a.1', start: 9, length: 3 }, { key: 'a.2', start: 16, length: 3 }, { key: 'b.0', start: 23, length: 3 }]);
  assert.deepEqual(imageRefs([1, 2], [], P), []);
});

test('image tokens that do not match the tiles are a 422 saying what to fix', () => {
  const a = tiled('a', 1, 2), b = tiled('b', 0, 0);
  assert.equal(refusal(() => expandImageTokens('<image>', [a, b], P)),
    'the prompt has 1 image placeholder (<image>) for 2 images; each image needs exactly one placeholder: check that the chat template renders image parts and that `truncate` keeps every image');
  assert.match(refusal(() => imageRefs([1, ...tileIds(1, 2)], [a, b], P)), /^the prompt has 1 image placeholder \(<image>\) for 2 images/);
  assert.match(refusal(() => imageRefs([IMG, IMG, IMG], [], P)), /^the prompt has 0 image placeholders \(<image>\) for 0 images|image tokens that are not whole images/);
  // the right number of image tokens, the first two tiles' runs merged (the second tile's fake token and tag missing)
  const merged = tileIds(1, 2);
  merged.splice(5, 2);
  assert.equal(refusal(() => imageRefs(merged, [a], P)), 'image 1\'s tile 1 of 2 is not a run of 3 consecutive image tokens in the tokenized prompt');
  const split = [FAKE, 263, IMG, IMG, 5, IMG, FAKE, 264, IMG, IMG, IMG, 10, 10, FAKE, GLOBAL, IMG, IMG, IMG, FAKE];
  assert.equal(refusal(() => imageRefs(split, [a], P)), 'image 1\'s tile 1 of 2 is not a run of 3 consecutive image tokens in the tokenized prompt');
});

test('each tile is published once per step, the tiles of every image its sequence refers to', () => {
  const a = tiled('a', 1, 2);
  const ns = { seqId: 's', images: [{ key: 'a.0', start: 0, length: 3 }, { key: 'a.1', start: 5, length: 3 }, { key: 'a.2', start: 12, length: 3 }] } as unknown as NewSequence;
  assert.deepEqual(stepImages([ns, { ...ns, seqId: 't' }], () => [a]).map((i) => i.key), ['a.0', 'a.1', 'a.2']);
  assert.throws(() => stepImages([{ ...ns, images: [{ key: 'zz', start: 0, length: 3 }] }], () => [a]), /refers to image zz/);
});

test('start checks: the tile size and image_seq_len against the tower, naming both sides', () => {
  const c = parsePreprocessorConfig({ image_processor_type: 'SmolVLMImageProcessor', max_image_size: { longest_edge: 512 } });
  assert.ok(c.kind === 'idefics3');
  c.imageSeqLen = 64;
  const tower = { imageTokenId: IMG, tokensPerImage: 64, imageSize: 512 };
  assert.equal(towerMismatch(tower, c), null);
  assert.equal(towerMismatch({ ...tower, imageSize: 384 }, c),
    'preprocessor_config.json gives SmolVLMImageProcessor tiles of 512 x 512 pixels (max_image_size.longest_edge) but the shards\' vision tower takes 384 x 384 (config.json\'s vision_config.image_size): they must agree');
  assert.equal(towerMismatch({ ...tower, tokensPerImage: 81 }, c),
    'processor_config.json gives SmolVLMProcessor an image_seq_len of 64 tokens per tile but the shards\' model takes 81 ((image_size / patch_size)² / scale_factor² of config.json): they must agree');
  assert.match(towerMismatch({ imageTokenId: IMG, patchSize: 14, mergeSize: 2 }, c)!, /dynamic-resolution vision tower .* SmolVLMImageProcessor, which gives tiles of one fixed size/);
  assert.match(towerMismatch({ ...tower, rowBreaks: true }, c)!, /break token \(rowBreaks\) but preprocessor_config\.json describes SmolVLMImageProcessor/);
});

test('the processor rule: the fake and global tokens must be tokens; the image token the shards\'; SmolVLM reads them from the tokenizer', () => {
  const ids = new Map([['<fake_token_around_image>', FAKE], ['<global-img>', GLOBAL], ['<fk>', 30], ['<gl>', 31]]);
  const dir = mkdtempSync(join(tmpdir(), 'weft-idefics3-rule-'));
  const tok = { modelDir: dir, tokenId: (t: string) => ids.get(t) ?? null };
  const idefics3 = parsePreprocessorConfig({ image_processor_type: 'Idefics3ImageProcessor' });
  assert.deepEqual(tokenRule(idefics3, tok, '<image>'), RULE);
  assert.throws(() => tokenRule(idefics3, tok, '<img>'),
    /^Error: cannot serve images: Idefics3Processor's image token is "<image>" but the shards' model replaces token "<img>" \(config\.json's image_token_id\): they must agree$/);
  assert.throws(() => tokenRule(idefics3, { ...tok, tokenId: (t: string) => (t === '<global-img>' ? null : 1) }, '<image>'),
    /^Error: cannot serve images: Idefics3Processor needs the global image token "<global-img>", which is not a token of the model's tokenizer$/);
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ extra_special_tokens: { fake_image_token: '<fk>', global_image_token: '<gl>', image_token: '<image>' } }));
  const smol = parsePreprocessorConfig({ image_processor_type: 'SmolVLMImageProcessor' });
  assert.deepEqual(tokenRule(smol, tok, '<image>'), { kind: 'idefics3', fakeToken: '<fk>', globalToken: '<gl>', globalTokenId: 31 });
  assert.deepEqual(tokenRule(idefics3, tok, '<image>'), RULE, 'Idefics3Processor writes its own tokens');
});

const DIR = join(import.meta.dirname, '../../../test/fixtures/vlm/smolvlm');
if (!existsSync(join(DIR, 'cases.json'))) {
  test('the SmolVLM fixture', { skip: `no fixture at ${DIR}` }, () => {});
} else {
  describe('the SmolVLM fixture: its tokenizer, template and configs', () => {
    const cases = JSON.parse(readFileSync(join(DIR, 'cases.json'), 'utf8')) as {
      sequences: { prompt: string; expanded: string; ids: number[]; source_images: string[]; images: string[]; image_starts: number[] }[];
      image_token_id: number; tokens_per_image: number; image_size: number; pngs: Record<string, { rows: number; cols: number; tiles: string[] }>;
    };
    let tokenizer: TokenizerPool;
    let vision: EngineVision;
    before(async () => {
      tokenizer = await TokenizerPool.create(join(DIR, 'model'), { threads: 1 });
      const model = { vision: { imageTokenId: cases.image_token_id, tokensPerImage: cases.tokens_per_image, imageSize: cases.image_size } } as unknown as ModelInfo;
      vision = EngineVision.create(model, tokenizer, DEFAULT_IMAGE_LIMITS)!;
    });
    after(async () => {
      await vision?.close();
      await tokenizer?.close();
    });
    test('SmolVLMImageProcessor with image_seq_len 9 from processor_config.json; SmolVLMProcessor\'s rule', () => {
      const c = readPreprocessorConfig(join(DIR, 'model'));
      assert.ok(c.kind === 'idefics3');
      assert.deepEqual([c.tileSize, c.imageSeqLen, c.processorClass, c.resample], [24, 9, 'SmolVLMProcessor', 1]);
      assert.deepEqual([vision.prompt.imageToken, vision.prompt.templateToken, vision.prompt.imagePlaceholder, vision.prompt.rule.kind], ['<image>', '<image>', '<image>', 'idefics3']);
    });
    test('every prompt expands and tokenizes to the fixture\'s ids, one ImageRef per tile at its image_starts', async () => {
      for (const seq of cases.sequences) {
        const images = seq.source_images.map((name) => tiled(name, cases.pngs[name]!.rows, cases.pngs[name]!.cols));
        const req = { inputs: seq.prompt, images } as unknown as GenerateRequest;
        const text = vision.expand(req);
        assert.equal(text, seq.expanded);
        const ids = await tokenizer.encode(text, { addSpecialTokens: true });
        assert.deepEqual(ids, seq.ids);
        const refs = vision.refs(ids, req);
        assert.deepEqual(refs.map((r) => r.start), seq.image_starts);
        assert.deepEqual(refs.map((r) => r.key), seq.images, 'the tiles in order: <png>.<tile>');
      }
    });
  });
}
