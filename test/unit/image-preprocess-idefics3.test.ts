// Idefics3ImageProcessor / SmolVLMImageProcessor (Idefics3, SmolVLM; PIL backends) against transformers: the fixtures'
// idefics3_cases (test/fixtures/images/make_images.py) — every image resized to size.longest_edge, then to multiples of
// the tile size and split into tiles, row-major, plus the global image — give the same tiles, rows and cols and the
// same float32 pixel values per tile, bit for bit (SHA-256; for the tiny configs also value by value): a tiny config
// (64 px, tiles of 32: 2 x 2 and 1 x 2 splits), one that splits nothing (the single-image form), do_image_splitting
// false, and SmolVLM-like 2048 / 512 and Idefics3-like 1536 / 512 ones (up to 4 x 4 + 1 tiles). Also the processors'
// prompt expansion for each (Idefics3Processor.replace_image_token and SmolVLMProcessor's get_image_prompt_string).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  decodeRgb, idefics3ResizeSize, idefics3SplitSize, parsePreprocessorConfig, preprocessImage, preprocessTiles,
} from '../../coordinator/vision/index.js';
import { tiledSequence } from '../../coordinator/engine/prompt-images.js';

const DIR = join(import.meta.dirname, '../../../test/fixtures/images');
interface TileCase {
  image: string; config: string; tiles: number; side: number; rows: number; cols: number; sha256: string[]; data?: string[];
  expansion_idefics3: string; expansion_smolvlm: string;
}
const FIX = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as {
  idefics3_configs: Record<string, Record<string, unknown>>; idefics3_cases: TileCase[]; idefics3_seq_len: number;
};
const RULE = { fakeToken: '<fake_token_around_image>', globalToken: '<global-img>' };

test('tiles, rows, cols and pixel values equal transformers\' Idefics3ImageProcessor / SmolVLMImageProcessor for every fixture image and config', async () => {
  const lines: string[] = [];
  const failures: string[] = [];
  for (const c of FIX.idefics3_cases) {
    const config = parsePreprocessorConfig(FIX.idefics3_configs[c.config]);
    assert.ok(config.kind === 'idefics3');
    const rgb = await decodeRgb(readFileSync(join(DIR, c.image)), 1e8, c.image);
    const px = preprocessTiles(rgb, config);
    const label = `${c.image} / ${c.config}`;
    assert.deepEqual([px.tiles.length, px.rows, px.cols], [c.tiles, c.rows, c.cols], `${label}: tiles, rows, cols`);
    assert.equal(px.tiles.length, c.rows === 0 ? 1 : c.rows * c.cols + 1, `${label}: rows x cols + the global image`);
    let bad = 0, err = 0;
    px.tiles.forEach((t, i) => {
      assert.deepEqual([t.height, t.width], [c.side, c.side], `${label}: tile ${i} size`);
      const sha = createHash('sha256').update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)).digest('hex');
      if (sha !== c.sha256[i]) bad++;
      if (c.data !== undefined) {
        const want = new Float32Array(new Uint8Array(Buffer.from(c.data[i]!, 'base64')).buffer);
        for (let k = 0; k < want.length; k++) err = Math.max(err, Math.abs(want[k]! - t.data[k]!));
      } else if (sha !== c.sha256[i]) {
        err = NaN;
      }
    });
    // preprocessImage alone gives the global image (the last tile)
    if (c.side <= 32) assert.deepEqual(preprocessImage(rgb, config).data, px.tiles.at(-1)!.data);
    lines.push(`${c.image.padEnd(24)} ${c.config.padEnd(16)} ${rgb.width}x${rgb.height} -> ${c.rows} x ${c.cols} + 1 = ${String(c.tiles).padStart(2)} tiles of ${c.side}: ` +
      (bad === 0 ? 'identical' : `${bad} tiles DIFFER (max abs error ${err})`));
    if (bad > 0) failures.push(`${label}: ${bad} tiles differ, max abs error ${err}`);
  }
  console.log(lines.join('\n'));
  assert.deepEqual(failures, [], 'every tile bit-identical to transformers');
  // what the fixtures cover: 2 x 2 and 1 x 2 tiny splits, unsplit images, and the published-like sizes' large splits
  const of = (config: string) => FIX.idefics3_cases.filter((c) => c.config === config);
  assert.ok(of('idefics3_tiny').some((c) => c.rows === 2 && c.cols === 2) && of('idefics3_tiny').some((c) => c.rows === 1 && c.cols === 2));
  assert.ok(of('smolvlm_single').every((c) => c.tiles === 1 && c.rows === 0) && of('idefics3_nosplit').every((c) => c.tiles === 1 && c.side === 24));
  assert.ok(of('smolvlm_hub').some((c) => c.tiles === 17) && of('idefics3_1536').some((c) => c.tiles === 10));
  assert.ok(FIX.idefics3_cases.filter((c) => c.data !== undefined).length >= 6);
});

test('the prompt expansion equals Idefics3Processor\'s and SmolVLMProcessor\'s for every split the fixtures have', () => {
  const seen = new Set<string>();
  for (const c of FIX.idefics3_cases) {
    const key = `${c.rows}x${c.cols}`;
    if (seen.has(key)) continue;
    seen.add(key);
    assert.equal(c.expansion_idefics3, c.expansion_smolvlm, `${key}: the two processors agree`);
    assert.equal(tiledSequence(c.rows, c.cols, FIX.idefics3_seq_len, '<image>', RULE), c.expansion_idefics3, key);
  }
  assert.ok(seen.has('0x0') && seen.has('2x2') && seen.has('1x2') && seen.has('4x4'), [...seen].join(' '));
  // the single-image form, and a 1 x 2 split written out
  assert.equal(tiledSequence(0, 0, 2, '<image>', RULE), '<fake_token_around_image><global-img><image><image><fake_token_around_image>');
  assert.equal(tiledSequence(1, 2, 1, '<image>', RULE),
    '<fake_token_around_image><row_1_col_1><image><fake_token_around_image><row_1_col_2><image>\n' +
    '\n<fake_token_around_image><global-img><image><fake_token_around_image>');
});

test('resize sizes: _resize_output_size_rescale_to_max_len (even, truncated), the 4096 bound, resize_for_vision_encoder', () => {
  assert.deepEqual(idefics3ResizeSize(41, 53, 64), [50, 64]);  // int(64 / (53 / 41)) = 49, odd -> 50
  assert.deepEqual(idefics3ResizeSize(47, 33, 64), [64, 44]);  // int(64 * 33 / 47) = int(44.9), even
  assert.deepEqual(idefics3ResizeSize(30, 1700, 64), [2, 64]);  // int(1.12) = 1 -> 2
  assert.deepEqual(idefics3ResizeSize(3000, 3000, 5000), [4096, 4096]);
  assert.deepEqual(idefics3ResizeSize(1, 10000, 2048), [1, 2048]);
  assert.deepEqual(idefics3SplitSize(50, 64, 32), [64, 64]);
  assert.deepEqual(idefics3SplitSize(2, 64, 32), [32, 64]);
  assert.deepEqual(idefics3SplitSize(1584, 2048, 512), [2048, 2048]);
  assert.deepEqual(idefics3SplitSize(32, 32, 32), [32, 32]);
});

test('Idefics3ImageProcessor config: transformers\' defaults, SmolVLM\'s names, and refusals naming the field', () => {
  const c = parsePreprocessorConfig({ image_processor_type: 'Idefics3ImageProcessor' });
  assert.ok(c.kind === 'idefics3');
  assert.deepEqual([c.size, c.tileSize, c.doImageSplitting, c.resample, c.imageMean, c.imageStd, c.imageSeqLen, c.processorClass],
    [{ longestEdge: 1456 }, 364, true, 1, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], 169, 'Idefics3Processor']);
  for (const type of ['SmolVLMImageProcessor', 'SmolVLMImageProcessorPil', 'SmolVLMImageProcessorFast', 'Idefics3ImageProcessorPil']) {
    const s = parsePreprocessorConfig({ image_processor_type: type });
    assert.ok(s.kind === 'idefics3', type);
    assert.equal(s.processorClass, type.startsWith('SmolVLM') ? 'SmolVLMProcessor' : 'Idefics3Processor');
  }
  // config.json's model_type picks it when the file names no processor (AutoImageProcessor's fallback)
  assert.equal(parsePreprocessorConfig({}, 'p.json', 'SmolVLMImageProcessor').kind, 'idefics3');
  assert.throws(() => parsePreprocessorConfig({ image_processor_type: 'Idefics3ImageProcessor', max_image_size: 512 }, 'p.json'),
    /^PreprocessorConfigError: p\.json: `max_image_size` must be an object with longest_edge/);
  assert.throws(() => parsePreprocessorConfig({ image_processor_type: 'Idefics3ImageProcessor', size: { shortest_edge: 3 } }, 'p.json'),
    /`size` must have longest_edge, or height and width/);
});
