// Image preprocessing against transformers' CLIPImageProcessor, Qwen2VLImageProcessor, Gemma3ImageProcessor and
// PixtralImageProcessor (PIL backends): the fixtures of test/fixtures/images/make_images.py — PNGs in every mode, JPEGs (libjpeg-turbo's decoder
// on both sides), a GIF, upscaled, downscaled and padded; for Qwen2-VL, smart_resize scaling up (min_pixels), down
// (max_pixels) or only rounding; for Gemma 3, a fixed resize at 896 px as published, 32 px, and 40 × 24 bicubic; for
// Pixtral (Mistral 3) as PixtralProcessor calls it, Mistral Small 3.1's 1540 px / patch 14 / merge 2 and a 32 px one — give
// the same float32 pixel values, bit for bit (compared by SHA-256; for the small configs also value by value, so a
// failure says how far off it is), and for Qwen2-VL the same grid and placeholder token count. Plus the pieces' own
// rules: the resize output size, the decompression-bomb bound, format sniffing and the preprocessor configs' refusals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ImageInputError, applyPixtralProcessor, decodeRgb, outputSize, parsePreprocessorConfig, pixtralGrid, pixtralResize, preprocessImage, pyRound,
  qwen2VLTokens, readImageSeqLength, readPreprocessorConfig, resizeRgb, shortestEdgeSize, smartResize, sniffFormat,
} from '../../coordinator/vision/index.js';
import { rowSequence } from '../../coordinator/engine/prompt-images.js';

const DIR = join(import.meta.dirname, '../../../test/fixtures/images');
interface Case { image: string; config: string; shape: number[]; sha256: string; data?: string }
const FIX = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as { configs: Record<string, unknown>; cases: Case[] };

async function pixels(c: Case): Promise<Float32Array> {
  const rgb = await decodeRgb(readFileSync(join(DIR, c.image)), 1e8, c.image);
  const px = preprocessImage(rgb, parsePreprocessorConfig(FIX.configs[c.config]));
  assert.deepEqual([3, px.height, px.width], c.shape, `${c.image} / ${c.config}: shape`);
  return px.data;
}

test('pixel values equal transformers\' CLIPImageProcessor for every fixture image and config', async () => {
  const lines: string[] = [];
  const failures: string[] = [];
  for (const c of FIX.cases) {
    const data = await pixels(c);
    const sha = createHash('sha256').update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)).digest('hex');
    let err = sha === c.sha256 ? 0 : NaN;
    if (c.data !== undefined) {
      const want = new Float32Array(new Uint8Array(Buffer.from(c.data, 'base64')).buffer);
      err = 0;
      for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(want[i]! - data[i]!));
    }
    lines.push(`${c.image.padEnd(24)} ${c.config.padEnd(16)} ${sha === c.sha256 ? 'identical' : `DIFFERS (max abs error ${err})`}`);
    if (sha !== c.sha256) failures.push(`${c.image} / ${c.config}: max abs error ${err}`);
  }
  console.log(lines.join('\n'));
  assert.deepEqual(failures, [], 'every case bit-identical to transformers');
});

test('resize output size: transformers\' get_resize_output_image_size (default_to_square=False)', () => {
  assert.deepEqual(shortestEdgeSize(480, 640, 336), [336, 448]);
  assert.deepEqual(shortestEdgeSize(640, 480, 336), [448, 336]);
  assert.deepEqual(shortestEdgeSize(41, 53, 32), [32, 41]);  // int(32 * 53 / 41) = int(41.36)
  assert.deepEqual(shortestEdgeSize(100, 100, 7), [7, 7]);
  assert.deepEqual(shortestEdgeSize(3, 1000, 336), [336, 112000]);
});

test('resize: same size is a copy; an unknown filter is refused', () => {
  const rgb = new Uint8Array([1, 2, 3, 4, 5, 6]);
  assert.deepEqual(resizeRgb(rgb, 2, 1, 2, 1, 3), rgb);
  assert.throws(() => resizeRgb(rgb, 2, 1, 4, 2, 0), /filter 0 is not supported/);
});

test('a decompression bomb is refused from its header, with a 413', async () => {
  const png = readFileSync(join(DIR, 'wide_180x120.png'));
  await assert.rejects(decodeRgb(png, 180 * 120 - 1, 'image x'), (e: unknown) =>
    e instanceof ImageInputError && e.status === 413 && /180 x 120 = 21600 pixels, over the server's limit of 21599 \(--max-image-pixels\)/.test(e.message));
  await decodeRgb(png, 180 * 120, 'image x');
});

test('formats are sniffed: SVG, text and truncated images are 422s naming the image', async () => {
  assert.equal(sniffFormat(readFileSync(join(DIR, 'photo_64x48.jpg'))), 'jpeg');
  assert.equal(sniffFormat(readFileSync(join(DIR, 'frame_29x31.gif'))), 'gif');
  const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>');
  await assert.rejects(decodeRgb(svg, 1e6, 'image messages[0].content[1]'), (e: unknown) =>
    e instanceof ImageInputError && e.status === 422 && e.message === 'image messages[0].content[1] is not a PNG, JPEG, GIF or WebP image');
  const png = readFileSync(join(DIR, 'rgb_53x41.png'));
  await assert.rejects(decodeRgb(png.subarray(0, 200), 1e6, 'image y'), (e: unknown) =>
    e instanceof ImageInputError && e.status === 422 && /^image y could not be decoded as PNG/.test(e.message));
});

test('preprocessor_config.json: defaults, int sizes, and refusals naming the field', () => {
  const c = parsePreprocessorConfig({ size: 336, crop_size: 336 });
  assert.ok(c.kind === 'clip');
  assert.deepEqual([c.size, c.cropSize, c.resample, c.imageMean[0], c.rescaleFactor], [{ shortestEdge: 336 }, { height: 336, width: 336 }, 3, 0.48145466, 1 / 255]);
  assert.throws(() => parsePreprocessorConfig({ image_processor_type: 'LlavaNextImageProcessor' }),
    /image_processor_type LlavaNextImageProcessor is not supported; weft reproduces CLIPImageProcessor \(LLaVA-1.5-style models\), Qwen2VLImageProcessor \(Qwen2-VL, Qwen2.5-VL, Qwen3-VL\), Gemma3ImageProcessor \(Gemma 3\), PixtralImageProcessor \(Mistral 3\) and Idefics3ImageProcessor \/ SmolVLMImageProcessor \(Idefics3, SmolVLM\) only/);
  assert.throws(() => parsePreprocessorConfig({ resample: 0 }), /`resample` 0 is not supported/);
  assert.throws(() => parsePreprocessorConfig({ image_std: [1, 0, 1] }), /`image_std` must not be 0/);
  assert.throws(() => parsePreprocessorConfig({ size: { shortest_edge: 336, longest_edge: 672 } }), /longest_edge is not supported/);
  assert.throws(() => parsePreprocessorConfig({ image_mean: [0.5, 0.5] }), /`image_mean` must be a number or a list of 3/);
});

// Qwen2VLImageProcessor (Qwen2-VL, Qwen2.5-VL): the fixtures' qwen_cases, un-patchified by make_images.py.
interface QwenCase extends Case { grid_thw: [number, number, number]; tokens: number }
const QFIX = FIX as unknown as { qwen_configs: Record<string, Record<string, unknown>>; qwen_cases: QwenCase[] };

test('pixel values, grid and token count equal transformers\' Qwen2VLImageProcessor for every fixture image and config', async () => {
  const lines: string[] = [];
  const failures: string[] = [];
  for (const c of QFIX.qwen_cases) {
    const config = parsePreprocessorConfig(QFIX.qwen_configs[c.config]);
    assert.ok(config.kind === 'qwen2_vl');
    const rgb = await decodeRgb(readFileSync(join(DIR, c.image)), 1e8, c.image);
    const px = preprocessImage(rgb, config);
    const label = `${c.image} / ${c.config}`;
    assert.deepEqual([3, px.height, px.width], c.shape, `${label}: shape`);
    assert.deepEqual([1, px.height / config.patchSize, px.width / config.patchSize], c.grid_thw, `${label}: image_grid_thw`);
    assert.equal(qwen2VLTokens(px.height, px.width, config.patchSize, config.mergeSize), c.tokens, `${label}: placeholder tokens`);
    const sha = createHash('sha256').update(new Uint8Array(px.data.buffer, px.data.byteOffset, px.data.byteLength)).digest('hex');
    let err = sha === c.sha256 ? 0 : NaN;
    if (c.data !== undefined) {
      const want = new Float32Array(new Uint8Array(Buffer.from(c.data, 'base64')).buffer);
      err = 0;
      for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(want[i]! - px.data[i]!));
    }
    lines.push(`${c.image.padEnd(24)} ${c.config.padEnd(18)} ${rgb.width}x${rgb.height} -> ${px.width}x${px.height}, ${String(c.tokens).padStart(2)} tokens: ` +
      (sha === c.sha256 ? 'identical' : `DIFFERS (max abs error ${err})`));
    if (sha !== c.sha256) failures.push(`${label}: max abs error ${err}`);
  }
  console.log(lines.join('\n'));
  assert.deepEqual(failures, [], 'every case bit-identical to transformers');
  // the fixtures cover smart_resize's three ways: scaled down for max_pixels, up for min_pixels, only rounded
  const small = parsePreprocessorConfig(QFIX.qwen_configs.qwen2_vl_small);
  assert.ok(small.kind === 'qwen2_vl');
  const rounded = (h: number, w: number) => pyRound(h / 28) * 28 * pyRound(w / 28) * 28;
  assert.ok(rounded(120, 180) > small.maxPixels && QFIX.qwen_cases.some((c) => c.image === 'wide_180x120.png' && c.config === 'qwen2_vl_small'));
  assert.ok(rounded(9, 13) < small.minPixels && QFIX.qwen_cases.some((c) => c.image === 'tiny_13x9.png' && c.config === 'qwen2_vl_small'));
  const plain = rounded(48, 64);
  assert.ok(plain >= small.minPixels && plain <= small.maxPixels);
});

test('Qwen3-VL (Qwen3VLProcessor\'s image processor is Qwen2VLImageProcessor): the published file and a tiny one, bit-identical with transformers\' grids', () => {
  // the published file as it is: patch 16 · merge 2 (factor 32), size as the area bounds, mean / std 0.5, bicubic by default
  const hub = parsePreprocessorConfig(QFIX.qwen_configs.qwen3_vl_hub);
  assert.ok(hub.kind === 'qwen2_vl');
  assert.deepEqual([hub.minPixels, hub.maxPixels, hub.patchSize, hub.mergeSize, hub.temporalPatchSize, hub.resample, hub.imageMean, hub.imageStd],
    [65536, 16777216, 16, 2, 2, 3, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]);
  const tiny = parsePreprocessorConfig(QFIX.qwen_configs.qwen3_vl_tiny);
  assert.ok(tiny.kind === 'qwen2_vl');
  assert.deepEqual([tiny.minPixels, tiny.maxPixels, tiny.patchSize, tiny.mergeSize], [1024, 4096, 4, 2]);
  // the cases (checked bit for bit with the others above): every fixture image under both, sides multiples of 32 / 8
  const of = (config: string) => QFIX.qwen_cases.filter((c) => c.config === config);
  assert.equal(of('qwen3_vl_hub').length, 7);
  assert.ok(of('qwen3_vl_tiny').length === 7 && of('qwen3_vl_tiny').every((c) => c.data !== undefined));
  for (const c of of('qwen3_vl_hub')) assert.ok(c.shape[1]! % 32 === 0 && c.shape[2]! % 32 === 0 && c.shape[1]! * c.shape[2]! >= 65536, c.image);
  const want = (image: string, config: string) => QFIX.qwen_cases.find((c) => c.image === image && c.config === config)!;
  // transformers' grids and token counts: 53 x 41 scaled up to 320 x 256 (20 x 16 patches, 80 tokens); tiny: 13 x 9 up
  // (min_pixels), 180 x 120 down (max_pixels), 64 x 48 only rounded
  assert.deepEqual([want('rgb_53x41.png', 'qwen3_vl_hub').grid_thw, want('rgb_53x41.png', 'qwen3_vl_hub').tokens], [[1, 16, 20], 80]);
  assert.deepEqual([want('tiny_13x9.png', 'qwen3_vl_tiny').shape, want('tiny_13x9.png', 'qwen3_vl_tiny').tokens], [[3, 32, 40], 20]);
  assert.deepEqual([want('wide_180x120.png', 'qwen3_vl_tiny').shape, want('wide_180x120.png', 'qwen3_vl_tiny').grid_thw], [[3, 48, 72], [1, 12, 18]]);
  assert.deepEqual([want('photo_64x48.jpg', 'qwen3_vl_tiny').shape, want('photo_64x48.jpg', 'qwen3_vl_tiny').tokens], [[3, 48, 64], 48]);
  assert.deepEqual(smartResize(41, 53, 32, 65536, 16777216), [256, 320]);
  assert.deepEqual(smartResize(3024, 4032, 32, 65536, 16777216), [3008, 4032], 'a 12 MP photo within the published bound');
  assert.deepEqual(smartResize(9, 13, 8, 1024, 4096), [32, 40]);
  assert.deepEqual(smartResize(120, 180, 8, 1024, 4096), [48, 72]);
});

test('smart_resize: the sizes transformers computes (Python\'s round halves to even; an aspect ratio over 200 refused)', () => {
  // [height, width, factor, min_pixels, max_pixels] -> transformers' smart_resize
  const cases: [number[], [number, number]][] = [
    [[480, 640, 28, 3136, 12845056], [476, 644]], [[3024, 4032, 28, 3136, 12845056], [3024, 4032]],
    [[3024, 4032, 28, 3136, 1003520], [840, 1148]], [[1, 150, 28, 3136, 1003520], [28, 700]], [[70, 50, 28, 3136, 1003520], [56, 56]],
    [[42, 98, 28, 3136, 1003520], [56, 112]], [[10, 2000, 28, 3136, 1003520], [28, 812]], [[5000, 7000, 32, 4096, 16777216], [3456, 4832]],
    [[333, 777, 16, 1024, 5120], [32, 96]], [[9, 13, 28, 3136, 12544], [56, 84]], [[1, 200, 28, 3136, 1003520], [28, 812]],
  ];
  for (const [[h, w, f, lo, hi], want] of cases) assert.deepEqual(smartResize(h!, w!, f!, lo!, hi!), want, `${h}x${w}`);
  assert.equal(smartResize(1, 201, 28, 3136, 1003520), null);
  assert.deepEqual([pyRound(2.5), pyRound(3.5), pyRound(0.5), pyRound(1.5000001), pyRound(2.4999)], [2, 4, 0, 2, 2]);
});

test('Qwen2VLImageProcessor: an image with an aspect ratio over 200 is a 422 naming it', () => {
  const config = parsePreprocessorConfig({ image_processor_type: 'Qwen2VLImageProcessor' });
  assert.throws(() => preprocessImage({ width: 402, height: 2, rgb: new Uint8Array(402 * 2 * 3) }, config, 'image messages[0].content[0]'),
    (e: unknown) => e instanceof ImageInputError && e.status === 422 &&
      e.message === 'image messages[0].content[0] is 402 x 2 pixels: its aspect ratio is over 200, which the model\'s image processor (Qwen2VLImageProcessor) refuses');
});

test('Qwen2VLImageProcessor config: transformers\' defaults and precedence (min_pixels/max_pixels over size), and refusals naming the field', () => {
  const parse = (o: Record<string, unknown>) => {
    const c = parsePreprocessorConfig({ image_processor_type: 'Qwen2VLImageProcessor', ...o });
    assert.ok(c.kind === 'qwen2_vl');
    return [c.minPixels, c.maxPixels, c.patchSize, c.mergeSize, c.temporalPatchSize, c.resample];
  };
  assert.deepEqual(parse({}), [3136, 1003520, 14, 2, 2, 3]);
  assert.deepEqual(parse({ min_pixels: 1000, max_pixels: 5000 }), [1000, 5000, 14, 2, 2, 3]);
  assert.deepEqual(parse({ size: { shortest_edge: 1000, longest_edge: 5000 }, patch_size: 16 }), [1000, 5000, 16, 2, 2, 3]);
  assert.deepEqual(parse({ size: { shortest_edge: 1000, longest_edge: 5000 }, min_pixels: 2000 }), [2000, 5000, 14, 2, 2, 3]);
  assert.deepEqual(parse({ max_pixels: 2000 }), [3136, 2000, 14, 2, 2, 3]);
  assert.deepEqual(parse({ size: { min_pixels: 1, max_pixels: 2 }, min_pixels: 1000, max_pixels: 5000 }), [1000, 5000, 14, 2, 2, 3]);
  for (const type of ['Qwen2VLImageProcessorPil', 'Qwen2VLImageProcessorFast']) {
    assert.equal(parsePreprocessorConfig({ image_processor_type: type }).kind, 'qwen2_vl');
  }
  const refused = (o: Record<string, unknown>, re: RegExp) =>
    assert.throws(() => parsePreprocessorConfig({ image_processor_type: 'Qwen2VLImageProcessor', ...o }, 'p.json'), re);
  refused({ size: { shortest_edge: 1000 } }, /^PreprocessorConfigError: p\.json: `size` must have longest_edge \(or a top-level max_pixels\)$/);
  refused({ size: 3000 }, /`size` must be an object with shortest_edge and longest_edge/);
  refused({ size: { min_pixels: 1000, max_pixels: 5000 } }, /`size` has min_pixels, max_pixels; Qwen2VLImageProcessor takes shortest_edge and longest_edge/);
  refused({ min_pixels: 0 }, /`min_pixels` must be a positive integer/);
  refused({ merge_size: 1.5 }, /`merge_size` must be a positive integer/);
  refused({ do_resize: false }, /`do_resize` false is not supported for Qwen2VLImageProcessor/);
  refused({ resample: 0 }, /`resample` 0 is not supported/);
});

// Gemma3ImageProcessor (Gemma 3): the fixtures' gemma3_cases — a fixed resize (the aspect ratio not kept), no crop.
const GFIX = FIX as unknown as { gemma3_configs: Record<string, Record<string, unknown>>; gemma3_cases: Case[] };

test('pixel values equal transformers\' Gemma3ImageProcessor for every fixture image and config (896 px as published, 32 px, 40 x 24 bicubic)', async () => {
  const lines: string[] = [];
  const failures: string[] = [];
  assert.ok(GFIX.gemma3_cases.some((c) => c.config === 'gemma3_hub') && GFIX.gemma3_cases.some((c) => c.config === 'gemma3_32'));
  for (const c of GFIX.gemma3_cases) {
    const config = parsePreprocessorConfig(GFIX.gemma3_configs[c.config]);
    assert.ok(config.kind === 'gemma3');
    const rgb = await decodeRgb(readFileSync(join(DIR, c.image)), 1e8, c.image);
    const px = preprocessImage(rgb, config);
    const label = `${c.image} / ${c.config}`;
    assert.deepEqual([3, px.height, px.width], c.shape, `${label}: shape`);
    const sha = createHash('sha256').update(new Uint8Array(px.data.buffer, px.data.byteOffset, px.data.byteLength)).digest('hex');
    let err = sha === c.sha256 ? 0 : NaN;
    if (c.data !== undefined) {
      const want = new Float32Array(new Uint8Array(Buffer.from(c.data, 'base64')).buffer);
      err = 0;
      for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(want[i]! - px.data[i]!));
    }
    lines.push(`${c.image.padEnd(24)} ${c.config.padEnd(20)} ${rgb.width}x${rgb.height} -> ${px.width}x${px.height}: ` +
      (sha === c.sha256 ? 'identical' : `DIFFERS (max abs error ${err})`));
    if (sha !== c.sha256) failures.push(`${label}: max abs error ${err}`);
  }
  console.log(lines.join('\n'));
  assert.deepEqual(failures, [], 'every case bit-identical to transformers');
});

test('Gemma3ImageProcessor config: the class defaults (224 x 224, bilinear, 0.5 / 0.5), an int size is a square, and refusals naming the field', () => {
  const parse = (o: Record<string, unknown>) => {
    const c = parsePreprocessorConfig({ image_processor_type: 'Gemma3ImageProcessor', ...o });
    assert.ok(c.kind === 'gemma3');
    return [c.size, c.resample, c.imageMean, c.imageStd, c.rescaleFactor, outputSize(c)];
  };
  assert.deepEqual(parse({}), [{ height: 224, width: 224 }, 2, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], 1 / 255, [224, 224]]);
  assert.deepEqual(parse({ size: 896, do_pan_and_scan: null, do_convert_rgb: null })[0], { height: 896, width: 896 });
  assert.deepEqual(parse({ size: { height: 24, width: 40 }, resample: 3, do_pan_and_scan: false }).slice(0, 2), [{ height: 24, width: 40 }, 3]);
  for (const type of ['Gemma3ImageProcessorPil', 'Gemma3ImageProcessorFast']) {
    assert.equal(parsePreprocessorConfig({ image_processor_type: type }).kind, 'gemma3');
  }
  const refused = (o: Record<string, unknown>, re: RegExp) =>
    assert.throws(() => parsePreprocessorConfig({ image_processor_type: 'Gemma3ImageProcessor', ...o }, 'p.json'), re);
  refused({ do_pan_and_scan: true }, /^PreprocessorConfigError: p\.json: `do_pan_and_scan` true is not supported \(Gemma3ImageProcessor's pan and scan crops are not reproduced/);
  refused({ size: { shortest_edge: 896 } }, /`size` must have height and width/);
  refused({ do_resize: false }, /`do_resize` false is not supported for Gemma3ImageProcessor/);
  refused({ resample: 7 }, /`resample` 7 is not supported/);
});

test('Gemma3Processor\'s image_seq_length: processor_config.json\'s, else 256', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-gemma3-'));
  assert.equal(readImageSeqLength(dir), 256);
  writeFileSync(join(dir, 'processor_config.json'), JSON.stringify({ image_seq_length: 64, processor_class: 'Gemma3Processor' }));
  assert.equal(readImageSeqLength(dir), 64);
  writeFileSync(join(dir, 'processor_config.json'), JSON.stringify({ processor_class: 'Gemma3Processor' }));
  assert.equal(readImageSeqLength(dir), 256);
  writeFileSync(join(dir, 'processor_config.json'), JSON.stringify({ image_seq_length: 0 }));
  assert.throws(() => readImageSeqLength(dir), /`image_seq_length` must be a positive integer/);
});

// PixtralImageProcessor (Mistral 3) as PixtralProcessor calls it (patch_size = the processor's patch_size ·
// spatial_merge_size): the fixtures' pixtral_cases, each image alone (no batch padding), with its image_sizes and
// PixtralProcessor's expansion.
interface PixtralCase extends Partial<Case> { image: string; config: string; image_size?: [number, number]; rows?: number; cols?: number;
  expansion?: string; error?: string }
const PFIX = FIX as unknown as { pixtral_configs: Record<string, Record<string, unknown>>; pixtral_processor_configs: Record<string, Record<string, unknown>>;
  pixtral_cases: PixtralCase[] };
const pixtralConfig = (name: string) => {
  const c = parsePreprocessorConfig(PFIX.pixtral_configs[name]);
  assert.ok(c.kind === 'pixtral');
  return applyPixtralProcessor(c, PFIX.pixtral_processor_configs[name]);
};

test('pixel values, image sizes and expansion equal transformers\' PixtralImageProcessor / PixtralProcessor (Mistral Small 3.1 as published; 32 px, patch 4, merge 2)', async () => {
  const lines: string[] = [];
  const failures: string[] = [];
  assert.ok(PFIX.pixtral_cases.some((c) => c.config === 'pixtral_hub') && PFIX.pixtral_cases.some((c) => c.config === 'pixtral_tiny' && c.data !== undefined));
  for (const c of PFIX.pixtral_cases) {
    const config = pixtralConfig(c.config);
    const rgb = await decodeRgb(readFileSync(join(DIR, c.image)), 1e8, c.image);
    const label = `${c.image} / ${c.config}`;
    if (c.error !== undefined) {
      // transformers fails on a side floored to 0 pixels; weft answers 422 naming the image
      assert.throws(() => preprocessImage(rgb, config, 'image inputs (markdown image 1)'), (e: unknown) => e instanceof ImageInputError && e.status === 422 &&
        /^image inputs \(markdown image 1\) is 1700 x 30 pixels: scaled to fit 32 x 32, a side would be under one pixel/.test(e.message), label);
      lines.push(`${c.image.padEnd(24)} ${c.config.padEnd(14)} refused (422), as transformers fails`);
      continue;
    }
    const px = preprocessImage(rgb, config);
    assert.deepEqual([3, px.height, px.width], c.shape, `${label}: shape`);
    assert.deepEqual([px.height, px.width], c.image_size, `${label}: image_sizes`);
    const [rows, cols] = pixtralGrid(px.height, px.width, config.patchSize, config.mergeSize);
    assert.deepEqual([rows, cols], [c.rows, c.cols], `${label}: rows and columns of image tokens`);
    assert.equal(rowSequence(rows, cols, config.imageToken, config), c.expansion, `${label}: PixtralProcessor's expansion`);
    const sha = createHash('sha256').update(new Uint8Array(px.data.buffer, px.data.byteOffset, px.data.byteLength)).digest('hex');
    let err = sha === c.sha256 ? 0 : NaN;
    if (c.data !== undefined) {
      const want = new Float32Array(new Uint8Array(Buffer.from(c.data, 'base64')).buffer);
      err = 0;
      for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(want[i]! - px.data[i]!));
    }
    lines.push(`${c.image.padEnd(24)} ${c.config.padEnd(14)} ${rgb.width}x${rgb.height} -> ${px.width}x${px.height} (${rows} x ${cols} tokens): ` +
      (sha === c.sha256 ? 'identical' : `DIFFERS (max abs error ${err})`));
    if (sha !== c.sha256) failures.push(`${label}: max abs error ${err}`);
  }
  console.log(lines.join('\n'));
  assert.deepEqual(failures, [], 'every case bit-identical to transformers');
});

test('Pixtral resize: fit within longest_edge (floor), then each side up to a multiple of patch · merge', () => {
  // [height, width, max, factor] -> transformers' get_resize_output_image_size
  assert.deepEqual(pixtralResize(41, 53, 1540, 1540, 28), [56, 56], 'only rounded up');
  assert.deepEqual(pixtralResize(28, 56, 1540, 1540, 28), [28, 56], 'already on the grid');
  assert.deepEqual(pixtralResize(120, 180, 32, 32, 8), [24, 32], 'floor(120 / 5.625) = 21, up to 24');
  assert.deepEqual(pixtralResize(30, 1700, 1540, 1540, 28), [28, 1540]);
  assert.deepEqual(pixtralResize(3024, 4032, 1540, 1540, 28), [1176, 1540], '3024 / (4032 / 1540) = 1155, up to 1176');
  assert.deepEqual(pixtralResize(1000, 1000, 1024, 1024, 16), [1008, 1008], 'Pixtral-12B: patch 16, merge 1');
  assert.deepEqual(pixtralResize(30, 1700, 32, 32, 8), [0, 32], 'a side floored to 0 (refused by the caller)');
  assert.deepEqual(pixtralResize(40, 100, 30, 50, 4), [20, 52], 'size height / width: the larger ratio (2) divides both');
});

test('PixtralImageProcessor config: class defaults, PixtralProcessor\'s patch · merge from processor_config.json, refusals naming the field', () => {
  const c = parsePreprocessorConfig({ image_processor_type: 'PixtralImageProcessor' });
  assert.ok(c.kind === 'pixtral');
  assert.deepEqual([c.maxHeight, c.maxWidth, c.patchSize, c.mergeSize, c.resample, c.imageMean, c.imageToken, c.breakToken, c.endToken],
    [1024, 1024, 16, 1, 3, [0.48145466, 0.4578275, 0.40821073], '[IMG]', '[IMG_BREAK]', '[IMG_END]']);
  const hub = parsePreprocessorConfig({ image_processor_type: 'PixtralImageProcessor', size: { longest_edge: 1540 }, patch_size: { height: 14, width: 14 },
    do_center_crop: null, crop_size: null });
  assert.ok(hub.kind === 'pixtral');
  assert.deepEqual([hub.maxHeight, hub.patchSize, hub.mergeSize], [1540, 14, 1], 'the image processor alone');
  const applied = applyPixtralProcessor(hub, { patch_size: 14, spatial_merge_size: 2, image_break_token: '<br>' });
  assert.deepEqual([applied.patchSize, applied.mergeSize, applied.breakToken, applied.endToken], [14, 2, '<br>', '[IMG_END]']);
  // no processor_config.json: PixtralProcessor's defaults (patch 16, merge 1), whatever the image processor's patch_size
  assert.deepEqual([applyPixtralProcessor(hub, {}).patchSize, applyPixtralProcessor(hub, {}).mergeSize], [16, 1]);
  const dir = mkdtempSync(join(tmpdir(), 'weft-pixtral-'));
  writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify(PFIX.pixtral_configs.pixtral_hub));
  writeFileSync(join(dir, 'processor_config.json'), JSON.stringify(PFIX.pixtral_processor_configs.pixtral_hub));
  const read = readPreprocessorConfig(dir);
  assert.ok(read.kind === 'pixtral');
  assert.deepEqual([read.maxHeight, read.maxWidth, read.patchSize, read.mergeSize], [1540, 1540, 14, 2]);
  assert.deepEqual(parsePreprocessorConfig({ image_processor_type: 'PixtralImageProcessor', size: 512 }).kind, 'pixtral');
  for (const type of ['PixtralImageProcessorPil', 'PixtralImageProcessorFast']) assert.equal(parsePreprocessorConfig({ image_processor_type: type }).kind, 'pixtral');
  const refused = (o: Record<string, unknown>, re: RegExp) =>
    assert.throws(() => parsePreprocessorConfig({ image_processor_type: 'PixtralImageProcessor', ...o }, 'p.json'), re);
  refused({ do_resize: false }, /^PreprocessorConfigError: p\.json: `do_resize` false is not supported for PixtralImageProcessor/);
  refused({ do_center_crop: true }, /`do_center_crop` true is not supported for PixtralImageProcessor/);
  refused({ size: { shortest_edge: 512 } }, /`size` must have longest_edge, or height and width/);
  refused({ patch_size: { height: 14, width: 16 } }, /`patch_size` 14 x 16 is not supported/);
  assert.throws(() => applyPixtralProcessor(hub, { spatial_merge_size: 0 }, 'q.json'), /q\.json: `spatial_merge_size` must be a positive integer/);
  assert.throws(() => applyPixtralProcessor(hub, { image_end_token: 3 }, 'q.json'), /q\.json: `image_end_token` must be a non-empty string/);
});
