// Mistral 3 (Pixtral) images on the coordinator, without shards: PixtralProcessor's expansion of each [IMG] into rows of
// [IMG] × cols + [IMG_BREAK] (the last [IMG_BREAK] made [IMG_END]); each image's ImageRef covering its whole run, breaks
// included (rows·(cols + 1) positions from its first [IMG]), the layout checked and a mismatch a 422; the processor
// and the shards' tower checked at start (patch · merge, rowBreaks, the image token), naming both sides; the TGI
// markdown placeholder from Mistral Small 3.1's template; prefix-cache keys and chunking with breaks inside an image.
// Then the fixture of test/fixtures/vlm/mistral3 (transformers' PixtralProcessor): its real tokenizer, template,
// preprocessor_config.json and processor_config.json give the fixture's pixel values and input ids.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ModelInfo, VisionInfo } from '../../protocol/index.js';
import { countImageTokens, expandImageTokens, imageRefs, imageTokenCount, rowSequence, type PromptVision } from '../../coordinator/engine/prompt-images.js';
import { EngineVision, tokenRule, towerMismatch } from '../../coordinator/engine/engine-vision.js';
import { imagePlaceholderText } from '../../coordinator/engine/image-placeholder.js';
import { EngineError, type GenerateRequest } from '../../coordinator/engine/types.js';
import { extendBlockHashes, prefixSalt } from '../../coordinator/scheduler/prefix-cache.js';
import { chunkLength } from '../../coordinator/scheduler/image-chunks.js';
import { markdownImages } from '../../coordinator/http/content-parts.js';
import { TokenizerPool } from '../../coordinator/tokenizer/index.js';
import {
  DEFAULT_IMAGE_LIMITS, applyPixtralProcessor, parsePreprocessorConfig, readPreprocessorConfig, type PreparedImage,
} from '../../coordinator/vision/index.js';

const IMG = 10, BRK = 12, END = 13;
// Mistral Small 3.1: patch 14, spatial merge 2 — one token per 28 × 28 pixels
const P: PromptVision = { imageToken: '[IMG]', templateToken: '[IMG]', imagePlaceholder: '[IMG]', imageTokenId: IMG, patchSize: 14, mergeSize: 2,
  rowBreaks: true, rule: { kind: 'pixtral', breakToken: '[IMG_BREAK]', endToken: '[IMG_END]', breakTokenId: BRK, endTokenId: END } };
const img = (key: string, height: number, width: number): PreparedImage => ({ key, height, width, data: new Float32Array(3) });
/** PixtralProcessor's tokens for an image of rows × cols. */
const rowIds = (rows: number, cols: number) => Array.from({ length: rows }, (_, r) => [...Array(cols).fill(IMG), r === rows - 1 ? END : BRK]).flat();

test('PixtralProcessor\'s expansion: rows of [IMG] × cols + [IMG_BREAK], the last [IMG_BREAK] made [IMG_END]', () => {
  const a = img('a', 56, 84), b = img('b', 28, 28);  // 2 rows × 3 cols; 1 × 1
  assert.equal(expandImageTokens('[INST][IMG]x[IMG][/INST]', [a, b], P),
    '[INST][IMG][IMG][IMG][IMG_BREAK][IMG][IMG][IMG][IMG_END]x[IMG][IMG_END][/INST]');
  assert.equal(rowSequence(3, 2, '[IMG]', P.rule as { breakToken: string; endToken: string }),
    '[IMG][IMG][IMG_BREAK][IMG][IMG][IMG_BREAK][IMG][IMG][IMG_END]');
  assert.deepEqual([imageTokenCount(a, P), imageTokenCount(b, P)], [6, 1], 'features: rows · cols');
  // [IMG_BREAK] and [IMG_END] hold "[IMG" but not "[IMG]": one placeholder per image
  assert.equal(countImageTokens(expandImageTokens('[IMG]', [a], P), '[IMG_BREAK]'), 1);
  assert.throws(() => expandImageTokens('[IMG]', [img('c', 56, 70)], P), /70 x 56 pixels is not a whole number of 28-pixel merged patches/);
});

test('each image\'s range covers its whole run, breaks included: rows · (cols + 1) positions from its first [IMG]', () => {
  const a = img('a', 56, 84), b = img('b', 84, 28);  // 2 × 3 (8 positions); 3 × 1 (6 positions)
  const ids = [1, 3, ...rowIds(2, 3), 50, ...rowIds(3, 1), 4];
  assert.deepEqual(imageRefs(ids, [a, b], P), [{ key: 'a', start: 2, length: 8 }, { key: 'b', start: 11, length: 6 }]);
  // runs that touch (no text between): still split by each image's rows and columns
  assert.deepEqual(imageRefs([...rowIds(3, 1), ...rowIds(2, 3)], [b, a], P), [{ key: 'b', start: 0, length: 6 }, { key: 'a', start: 6, length: 8 }]);
  assert.deepEqual(imageRefs([1, 2], [], P), []);
});

test('placeholders or layouts that do not match the images are a 422 saying what to fix', () => {
  const a = img('a', 56, 84), b = img('b', 84, 28);
  const refusal = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      assert.ok(e instanceof EngineError && e.kind === 'validation', String(e));
      return e.message;
    }
    return assert.fail('not refused');
  };
  assert.equal(refusal(() => expandImageTokens('[IMG]', [a, b], P)),
    'the prompt has 1 image placeholder ([IMG]) for 2 images; each image needs exactly one placeholder: check that the chat template renders image parts and that `truncate` keeps every image');
  assert.match(refusal(() => imageRefs([1, ...rowIds(2, 3)], [a, b], P)), /^the prompt has 1 image placeholder \(\[IMG\]\) for 2 images/);
  assert.match(refusal(() => imageRefs([1, 2], [a], P)), /^the prompt has 0 image placeholders \(\[IMG\]\) for 1 image/);
  assert.equal(refusal(() => imageRefs([IMG, IMG, IMG], [], P)),
    'the prompt has 1 image placeholder ([IMG]) for 0 images; do not write [IMG] in the text, or send the image it stands for');
  // a truncate that cut into the first image: as many runs as images, wrong lengths
  assert.match(refusal(() => imageRefs([...rowIds(2, 3).slice(3), 50, ...rowIds(3, 1)], [a, b], P)),
    /^the prompt has image tokens that are not whole images for 2 images/);
  // the right number of [IMG], laid out otherwise: breaks misplaced, or [IMG_BREAK] where [IMG_END] belongs
  assert.equal(refusal(() => imageRefs([IMG, IMG, BRK, IMG, IMG, IMG, IMG, END], [a], P)),
    'image 1\'s 2 rows of 3 image tokens are not laid out as the processor writes them (each row ended by [IMG_BREAK], the last by [IMG_END]) in the tokenized prompt');
  assert.match(refusal(() => imageRefs([IMG, IMG, IMG, BRK, IMG, IMG, IMG, BRK], [a], P)), /image 1's 2 rows of 3 image tokens are not laid out/);
  assert.match(refusal(() => imageRefs([IMG, IMG, IMG, END, IMG, IMG, IMG, END], [a], P)), /image 1's 2 rows of 3 image tokens are not laid out/);
});

test('the processor and the shards\' tower must agree (patch · merge, row breaks, dynamic), or the model is refused at start naming both', () => {
  const parsed = parsePreprocessorConfig({ image_processor_type: 'PixtralImageProcessor', size: { longest_edge: 1540 }, patch_size: { height: 14, width: 14 } });
  assert.ok(parsed.kind === 'pixtral');
  const pix = applyPixtralProcessor(parsed, { patch_size: 14, spatial_merge_size: 2 });
  const tower: VisionInfo = { imageTokenId: IMG, patchSize: 14, mergeSize: 2, rowBreaks: true };
  assert.equal(towerMismatch(tower, pix), null);
  assert.equal(towerMismatch({ ...tower, mergeSize: 1 }, pix),
    'processor_config.json gives PixtralProcessor patch_size 14 and spatial_merge_size 2 but the shards\' vision tower has patch size 14 and merge size 1 ' +
    '(config.json\'s vision_config.patch_size, spatial_merge_size): they must agree');
  assert.match(towerMismatch({ ...tower, patchSize: 16 }, pix)!, /patch_size 14 and spatial_merge_size 2 but .* patch size 16 and merge size 2/);
  assert.match(towerMismatch({ imageTokenId: IMG, patchSize: 14, mergeSize: 2 }, pix)!,
    /describes PixtralImageProcessor, whose prompts end each row of image tokens with \[IMG_BREAK\], but the shards' model reports no row breaks/);
  assert.match(towerMismatch({ imageTokenId: IMG, tokensPerImage: 256, imageSize: 896 }, pix)!,
    /describes PixtralImageProcessor \(dynamic resolution\) but the shards report a fixed-size vision tower \(896 x 896 pixels, 256 tokens per image\)/);
  // row breaks reported for a tower whose processor writes none
  const qwen = parsePreprocessorConfig({ image_processor_type: 'Qwen2VLImageProcessor' });
  assert.match(towerMismatch(tower, qwen)!, /^the shards report a vision tower whose images end each row of tokens with a break token \(rowBreaks: Pixtral, Mistral 3\) but preprocessor_config\.json describes Qwen2VLImageProcessor/);
  assert.match(towerMismatch({ imageTokenId: 9, tokensPerImage: 576, imageSize: 336, rowBreaks: true }, parsePreprocessorConfig({ size: 336, crop_size: 336 }))!,
    /describes CLIPImageProcessor, whose prompts have none/);
});

test('the processor rule: PixtralProcessor\'s break and end tokens (processor_config.json, else [IMG_BREAK] / [IMG_END]) must be tokens; its image token the shards\'', () => {
  const ids = new Map([['[IMG_BREAK]', BRK], ['[IMG_END]', END], ['<br>', 20]]);
  const tok = { modelDir: mkdtempSync(join(tmpdir(), 'weft-pixtral-rule-')), tokenId: (t: string) => ids.get(t) ?? null };
  const pix = parsePreprocessorConfig({ image_processor_type: 'PixtralImageProcessor' });
  assert.ok(pix.kind === 'pixtral');
  assert.deepEqual(tokenRule(pix, tok, '[IMG]'), { kind: 'pixtral', breakToken: '[IMG_BREAK]', endToken: '[IMG_END]', breakTokenId: BRK, endTokenId: END });
  assert.deepEqual(tokenRule(applyPixtralProcessor(pix, { image_break_token: '<br>' }), tok, '[IMG]'),
    { kind: 'pixtral', breakToken: '<br>', endToken: '[IMG_END]', breakTokenId: 20, endTokenId: END });
  assert.throws(() => tokenRule(applyPixtralProcessor(pix, { image_end_token: '<nope>' }), tok, '[IMG]'),
    /^Error: cannot serve images: PixtralProcessor needs the end-of-image \(image_end_token\) token "<nope>", which is not a token of the model's tokenizer$/);
  assert.throws(() => tokenRule(pix, tok, '<image>'),
    /^Error: cannot serve images: processor_config\.json gives PixtralProcessor the image token "\[IMG\]" but the shards' model replaces token "<image>"/);
});

// mistralai/Mistral-Small-3.1-24B-Instruct-2503's chat template (its default system message shortened)
const MISTRAL_TEMPLATE = "{%- set today = strftime_now(\"%Y-%m-%d\") %}{%- set default_system_message = \"You are Mistral Small 3. Today is \" + today + \".\" %}" +
  "{{- bos_token }}{%- if messages[0]['role'] == 'system' %}{%- if messages[0]['content'] is string %}{%- set system_message = messages[0]['content'] %}" +
  "{%- else %}{%- set system_message = messages[0]['content'][0]['text'] %}{%- endif %}{%- set loop_messages = messages[1:] %}" +
  "{%- else %}{%- set system_message = default_system_message %}{%- set loop_messages = messages %}{%- endif %}" +
  "{{- '[SYSTEM_PROMPT]' + system_message + '[/SYSTEM_PROMPT]' }}{%- for message in loop_messages %}{%- if message['role'] == 'user' %}" +
  "{%- if message['content'] is string %}{{- '[INST]' + message['content'] + '[/INST]' }}{%- else %}{{- '[INST]' }}" +
  "{%- for block in message['content'] %}{%- if block['type'] == 'text' %}{{- block['text'] }}{%- elif block['type'] in ['image', 'image_url'] %}" +
  "{{- '[IMG]' }}{%- else %}{{- raise_exception('Only text and image blocks are supported in message content!') }}{%- endif %}{%- endfor %}" +
  "{{- '[/INST]' }}{%- endif %}{%- elif message['role'] == 'assistant' %}{{- message['content'] + eos_token }}" +
  "{%- else %}{{- raise_exception('Only user, system and assistant roles are supported!') }}{%- endif %}{%- endfor %}";

test('TGI markdown images: [IMG], what Mistral Small 3.1\'s template writes for an image part', () => {
  const specials = ['<s>', '</s>', '[INST]', '[/INST]', '[IMG]', '[IMG_BREAK]', '[IMG_END]', '[SYSTEM_PROMPT]', '[/SYSTEM_PROMPT]'];
  assert.equal(imagePlaceholderText('[IMG]', { chatTemplate: MISTRAL_TEMPLATE, bosToken: '<s>', eosToken: '</s>', specialTokens: specials }), '[IMG]');
  assert.equal(imagePlaceholderText('[IMG]', { chatTemplate: null, specialTokens: specials }), '[IMG]');
});

test('prefix-cache keys fold the image at its first [IMG]; breaks inside the range change nothing; chunks may split an image (causal)', () => {
  // [s][INST] then a 2 × 3 image (8 positions, 2..9), then text; blocks of 4
  const prompt = [1, 3, ...rowIds(2, 3), 50, 51, 4];
  const keys = (images: { key: string; start: number; length: number }[]) => {
    const h: string[] = [];
    extendBlockHashes(h, prompt, 4, prefixSalt(null), 3, images);
    return h;
  };
  const a = keys([{ key: 'A', start: 2, length: 8 }]), b = keys([{ key: 'B', start: 2, length: 8 }]), none = keys([]);
  for (let i = 0; i < 3; i++) {
    assert.notEqual(a[i], b[i], `block ${i}: another image (the image starts in block 0)`);
    assert.notEqual(a[i], none[i]);
  }
  assert.deepEqual(keys([{ key: 'A', start: 2, length: 8 }]), a, 'the same image and text: the same keys');
  // Pixtral's shards report no bidirectionalImages: a chunk may end anywhere in the image, on a break or not
  for (const left of [3, 5, 6, 9]) assert.equal(chunkLength(0, prompt.length, left, [{ key: 'A', start: 2, length: 8 }], false, true), left);
});

// The fixture of test/fixtures/vlm/mistral3 (the shard side's fixture script; transformers' PixtralProcessor).
const DIR = join(import.meta.dirname, '../../../test/fixtures/vlm/mistral3');
interface Cases {
  image_token_id: number; image_break_token_id: number; image_end_token_id: number; patch_size: number; merge_size: number; image_placeholder: string;
  sequences: { prompt: string; expanded: string; images: string[]; ids: number[]; image_starts: number[] }[];
  images: Record<string, { png: string; pixel_values: string; height: number; width: number; rows: number; cols: number; tokens: number; expansion: string }>;
}

if (!existsSync(join(DIR, 'cases.json'))) {
  test('Mistral 3 prompts on the coordinator', { skip: `no fixture at ${DIR} (the shard side's Mistral 3 fixture script)` }, () => {});
} else {
  describe('Mistral 3 prompts on the coordinator: the fixture\'s tokenizer, template and processor', () => {
    const cases = JSON.parse(readFileSync(join(DIR, 'cases.json'), 'utf8')) as Cases;
    const tower = { imageTokenId: cases.image_token_id, patchSize: cases.patch_size, mergeSize: cases.merge_size, rowBreaks: true };
    const modelInfo = (vision: ModelInfo['vision']) => ({ vision }) as ModelInfo;
    let tokenizer: TokenizerPool;
    let vision: EngineVision;
    before(async () => {
      tokenizer = await TokenizerPool.create(join(DIR, 'model'), { threads: 1 });
      vision = EngineVision.create(modelInfo(tower), tokenizer, { ...DEFAULT_IMAGE_LIMITS, maxImagesPerPrompt: 2 })!;
    });
    after(async () => {
      await vision?.close();
      await tokenizer?.close();
    });

    test('the engine\'s view: [IMG], its markdown placeholder, the processor\'s break and end tokens', () => {
      const v = vision.info;
      assert.deepEqual([v.imageToken, v.imagePlaceholder, v.templateToken, v.patchSize, v.mergeSize, v.rowBreaks, v.tokensPerImage],
        ['[IMG]', cases.image_placeholder, undefined, cases.patch_size, cases.merge_size, true, undefined]);
      assert.deepEqual(vision.prompt.rule, { kind: 'pixtral', breakToken: '[IMG_BREAK]', endToken: '[IMG_END]',
        breakTokenId: cases.image_break_token_id, endTokenId: cases.image_end_token_id });
    });

    test('markdown images -> pixel values, expanded prompt, input ids and ranges: transformers\' PixtralProcessor\'s', async () => {
      for (const seq of cases.sequences) {
        let i = 0;
        const inputs = seq.prompt.replaceAll(cases.image_placeholder, () =>
          `![](data:image/png;base64,${readFileSync(join(DIR, cases.images[seq.images[i++]!]!.png)).toString('base64')})`);
        const md = markdownImages(inputs, vision.info.imagePlaceholder);
        assert.equal(md.text, seq.prompt);
        const images = await vision.prepare(md.images);
        images.forEach((im, k) => {
          const info = cases.images[seq.images[k]!]!;
          assert.deepEqual([im.height, im.width], [info.height, info.width], `${seq.images[k]}: resized`);
          const want = new Float32Array(new Uint8Array(readFileSync(join(DIR, info.pixel_values))).buffer);
          assert.deepEqual(im.data, want, `${seq.images[k]}: the fixture's pixel values, bit for bit`);
        });
        const req = { inputs: md.text, images } as unknown as GenerateRequest;
        const expanded = vision.expand(req);
        assert.equal(expanded, seq.expanded, 'PixtralProcessor\'s expansion');
        const ids = await tokenizer.encode(expanded, { addSpecialTokens: true });
        assert.deepEqual(ids, seq.ids, `${JSON.stringify(seq.prompt)}: the ids transformers' processor gives`);
        const refs = vision.refs(ids, req);
        assert.deepEqual(refs.map((r) => r.start), seq.image_starts);
        assert.deepEqual(refs.map((r) => r.length), seq.images.map((n) => cases.images[n]!.tokens), 'rows · (cols + 1), breaks included');
        refs.forEach((r, k) => {
          const { rows, cols } = cases.images[seq.images[k]!]!;
          assert.equal(r.length, rows * (cols + 1));
          assert.equal(ids[r.start + r.length - 1], cases.image_end_token_id, 'the range ends with [IMG_END]');
        });
      }
    });

    test('a processor that does not fit the shards\' tower is refused at start, naming both', () => {
      assert.throws(() => EngineVision.create(modelInfo({ ...tower, mergeSize: 1 }), tokenizer),
        new RegExp(`^Error: cannot serve images: processor_config\\.json gives PixtralProcessor patch_size ${cases.patch_size} and spatial_merge_size ` +
          `${cases.merge_size} but the shards' vision tower has patch size ${cases.patch_size} and merge size 1`));
      assert.throws(() => EngineVision.create(modelInfo({ imageTokenId: cases.image_token_id, patchSize: cases.patch_size, mergeSize: cases.merge_size }), tokenizer),
        /cannot serve images: preprocessor_config\.json describes PixtralImageProcessor, whose prompts end each row of image tokens with \[IMG_BREAK\], but the shards' model reports no row breaks/);
    });
  });
}

test('processor_config.json missing: PixtralProcessor\'s defaults (patch 16, merge 1) are what the tower must have', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-pixtral-noproc-'));
  writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify({ image_processor_type: 'PixtralImageProcessor', patch_size: { height: 14, width: 14 } }));
  const c = readPreprocessorConfig(dir);
  assert.ok(c.kind === 'pixtral');
  assert.deepEqual([c.patchSize, c.mergeSize], [16, 1]);
  assert.match(towerMismatch({ imageTokenId: IMG, patchSize: 14, mergeSize: 2, rowBreaks: true }, c)!, /patch_size 16 and spatial_merge_size 1 but .* patch size 14 and merge size 2/);
});
