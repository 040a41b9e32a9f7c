// Image preprocessing against transformers' CLIPImageProcessor (PIL backend): the fixtures of
// test/fixtures/images/make_images.py — PNGs in every mode, JPEGs (libjpeg-turbo's decoder on both sides), a GIF,
// upscaled, downscaled and padded — give the same float32 pixel values, bit for bit (compared by SHA-256; for the
// small config also value by value, so a failure says how far off it is). Plus the pieces' own rules: the resize
// output size, the decompression-bomb bound, format sniffing and the preprocessor config's refusals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ImageInputError, decodeRgb, parsePreprocessorConfig, preprocessClip, resizeRgb, shortestEdgeSize, sniffFormat,
} from '../../coordinator/vision/index.js';

const DIR = join(import.meta.dirname, '../../../test/fixtures/images');
interface Case { image: string; config: string; shape: number[]; sha256: string; data?: string }
const FIX = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as { configs: Record<string, unknown>; cases: Case[] };

async function pixels(c: Case): Promise<Float32Array> {
  const rgb = await decodeRgb(readFileSync(join(DIR, c.image)), 1e8, c.image);
  const px = preprocessClip(rgb, parsePreprocessorConfig(FIX.configs[c.config]));
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
  assert.deepEqual([c.size, c.cropSize, c.resample, c.imageMean[0], c.rescaleFactor], [{ shortestEdge: 336 }, { height: 336, width: 336 }, 3, 0.48145466, 1 / 255]);
  assert.throws(() => parsePreprocessorConfig({ image_processor_type: 'LlavaNextImageProcessor' }), /LlavaNextImageProcessor is not supported/);
  assert.throws(() => parsePreprocessorConfig({ resample: 0 }), /`resample` 0 is not supported/);
  assert.throws(() => parsePreprocessorConfig({ image_std: [1, 0, 1] }), /`image_std` must not be 0/);
  assert.throws(() => parsePreprocessorConfig({ size: { shortest_edge: 336, longest_edge: 672 } }), /longest_edge is not supported/);
  assert.throws(() => parsePreprocessorConfig({ image_mean: [0.5, 0.5] }), /`image_mean` must be a number or a list of 3/);
});
