// The coordinator's side of a dynamic-resolution tower (Qwen2-VL, Qwen2.5-VL, Qwen3-VL), without shards: the tiny models
// of test/fixtures/vlm (make_qwen2_vl.py, make_qwen3_vl.py: Qwen3VLProcessor, the same image processor and expansion) with their real tokenizer, chat template and preprocessor_config.json, and a
// ModelInfo.vision as their shards report it. Markdown images become the template's image sequence, each image is
// preprocessed as transformers does (the fixture's pixel values) and its <|image_pad|> repeated to its own token
// count, so the prompt tokenizes to transformers' input ids — two images of different sizes in one prompt included;
// a preprocessor that does not fit the tower is refused at start naming both sides.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelInfo } from '../../protocol/index.js';
import { TokenizerPool } from '../../coordinator/tokenizer/index.js';
import { EngineVision } from '../../coordinator/engine/engine-vision.js';
import type { GenerateRequest } from '../../coordinator/engine/types.js';
import { markdownImages } from '../../coordinator/http/content-parts.js';
import { DEFAULT_IMAGE_LIMITS, readPreprocessorConfig } from '../../coordinator/vision/index.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';

const ROOT = join(import.meta.dirname, '../../../test/fixtures/vlm');
const CASE_NAMES = ['qwen2_vl', 'qwen2_5_vl', 'qwen3_vl'].filter((n) => existsSync(join(ROOT, n, 'cases.json')));
interface Cases {
  image_token_id: number; patch_size: number; merge_size: number; image_placeholder: string;
  sequences: { prompt: string; images: string[]; ids: number[]; image_tokens: number[] }[];
  images: Record<string, { png: string; pixel_values: string; tokens: number }>;
}

if (CASE_NAMES.length === 0) test('Qwen2-VL prompts', { skip: `no fixture at ${ROOT} (run test/fixtures/golden/make_qwen2_vl.py)` }, () => {});

const modelInfo = (vision: ModelInfo['vision']) => ({ vision }) as ModelInfo;

for (const name of CASE_NAMES) {
  describe(`Qwen2-VL prompts on the coordinator: ${name}`, () => {
    const dir = join(ROOT, name);
    const cases = JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8')) as Cases;
    let tokenizer: TokenizerPool;
    let vision: EngineVision;
    before(async () => {
      tokenizer = await TokenizerPool.create(join(dir, 'model'), { threads: 1 });
      vision = EngineVision.create(modelInfo({ imageTokenId: cases.image_token_id, patchSize: cases.patch_size, mergeSize: cases.merge_size }),
        tokenizer, { ...DEFAULT_IMAGE_LIMITS, maxImagesPerPrompt: 2 })!;
    });
    after(async () => {
      await vision?.close();
      await tokenizer?.close();
    });

    test('the image placeholder for markdown images is what the chat template writes around <|image_pad|>', () => {
      assert.equal(vision.info.imageToken, '<|image_pad|>');
      assert.equal(vision.info.imagePlaceholder, cases.image_placeholder);
      assert.deepEqual([vision.info.patchSize, vision.info.mergeSize, vision.info.tokensPerImage], [cases.patch_size, cases.merge_size, undefined]);
    });

    test('markdown images -> prepared images -> expanded prompt: transformers\' input ids and each image\'s range', async () => {
      for (const seq of cases.sequences) {
        let i = 0;
        const inputs = seq.prompt.replaceAll(cases.image_placeholder, () => `![](data:image/png;base64,${readFileSync(join(dir, cases.images[seq.images[i++]!]!.png)).toString('base64')})`);
        const md = markdownImages(inputs, vision.info.imagePlaceholder);
        assert.equal(md.text, seq.prompt);
        const images = await vision.prepare(md.images);
        images.forEach((img, k) => {
          const want = new Float32Array(new Uint8Array(readFileSync(join(dir, cases.images[seq.images[k]!]!.pixel_values))).buffer);
          assert.deepEqual(img.data, want, `${seq.images[k]}: the fixture's pixel values`);
        });
        const req = { inputs: md.text, images } as unknown as GenerateRequest;
        const ids = await tokenizer.encode(vision.expand(req), { addSpecialTokens: true });
        assert.deepEqual(ids, seq.ids, `${JSON.stringify(seq.prompt)}: the ids transformers' processor gives`);
        const refs = vision.refs(ids, req);
        assert.deepEqual(refs.map((r) => r.length), seq.image_tokens);
        for (const r of refs) assert.ok(ids.slice(r.start, r.start + r.length).every((t) => t === cases.image_token_id));
      }
    });

    test('a preprocessor that does not fit the shards\' tower is refused at start, naming both', () => {
      assert.throws(() => EngineVision.create(modelInfo({ imageTokenId: cases.image_token_id, patchSize: cases.patch_size * 2, mergeSize: cases.merge_size }), tokenizer),
        new RegExp(`^Error: cannot serve images: preprocessor_config.json has patch_size ${cases.patch_size} and merge_size ${cases.merge_size} ` +
          `but the shards' vision tower has patch size ${cases.patch_size * 2} and merge size ${cases.merge_size}`));
      assert.throws(() => EngineVision.create(modelInfo({ imageTokenId: cases.image_token_id, tokensPerImage: 16, imageSize: 32 }), tokenizer),
        /cannot serve images: preprocessor_config\.json describes Qwen2VLImageProcessor \(dynamic resolution\) but the shards report a fixed-size vision tower/);
    });
  });
}

test('transformers 5 processor files: processor_config.json\'s image_processor first; without image_processor_type, config.json\'s model_type', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-qwen3-vl-'));
  const qwen3File = { image_processor_type: 'Qwen2VLImageProcessor', size: { shortest_edge: 256, longest_edge: 2304 }, patch_size: 4, merge_size: 2,
    image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5] };
  // ProcessorMixin.save_pretrained (transformers 5) writes the image processor inside processor_config.json, and
  // from_pretrained prefers it to preprocessor_config.json
  writeFileSync(join(dir, 'processor_config.json'), JSON.stringify({ processor_class: 'Qwen3VLProcessor', image_processor: qwen3File }));
  writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify({ image_processor_type: 'CLIPImageProcessor' }));
  let c = readPreprocessorConfig(dir);
  assert.ok(c.kind === 'qwen2_vl');
  assert.deepEqual([c.minPixels, c.maxPixels, c.patchSize, c.imageMean], [256, 2304, 4, [0.5, 0.5, 0.5]]);
  rmSync(join(dir, 'preprocessor_config.json'));
  assert.equal(readPreprocessorConfig(dir).kind, 'qwen2_vl', 'processor_config.json alone');
  // no type in the file: AutoImageProcessor's pick for config.json's model_type (qwen3_vl: Qwen2VLImageProcessor)
  const { image_processor_type: _, ...untyped } = qwen3File;
  writeFileSync(join(dir, 'processor_config.json'), JSON.stringify({ processor_class: 'Qwen3VLProcessor' }));
  writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify(untyped));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'qwen3_vl', architectures: ['Qwen3VLForConditionalGeneration'] }));
  c = readPreprocessorConfig(dir);
  assert.ok(c.kind === 'qwen2_vl' && c.patchSize === 4);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'llava' }));
  writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify({ size: 336, crop_size: 336 }));
  assert.equal(readPreprocessorConfig(dir).kind, 'clip');
  rmSync(join(dir, 'preprocessor_config.json'));
  assert.throws(() => readPreprocessorConfig(dir), /preprocessor_config\.json is missing \(and processor_config\.json has no image_processor\)/);
  writeFileSync(join(dir, 'processor_config.json'), JSON.stringify({ image_processor: { image_processor_type: 'Qwen2VLImageProcessor', do_resize: false } }));
  assert.throws(() => readPreprocessorConfig(dir), /processor_config\.json \(image_processor\): `do_resize` false is not supported/);
});
