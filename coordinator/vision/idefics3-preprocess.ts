// transformers' Idefics3ImageProcessor / SmolVLMImageProcessor (the slow, PIL ones: Idefics3ImageProcessorPil and
// SmolVLMImageProcessorPil in transformers 5.15, the same code) — Idefics3's and SmolVLM's images as tiles of one size:
// RGB; resized so the longest edge is size.longest_edge (the aspect ratio kept: the other side int()-truncated and
// made even, at least 1; then kept within 4096); with do_image_splitting, resized again so both sides are multiples of
// max_image_size.longest_edge (S: the tower's image size) and cut into S × S tiles, row-major, followed by the whole
// image resized to S × S (the "global image"); an image that is then S × S is not split (one image, no tiles). Without
// splitting, every image is resized to S × S. Each resize is PIL's with `resample` (LANCZOS by default) on the 8-bit
// image the previous one gave. Then rescale and normalize (0.5 / 0.5 by default) → float32 [3, S, S] each. The
// processor pads a batch to its largest image and its most images (zero images the model drops); every one here is
// S × S, so the padding changes nothing: the shards get each tile as one image. Also Idefics3Processor's /
// SmolVLMProcessor's image_seq_len (processor_config.json): the image tokens of one tile.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PixelValues, RgbImage } from './clip-preprocess.js';
import { rescaleNormalize } from './clip-preprocess.js';
import { PreprocessorConfigError, fieldReader, type CommonProcessorFields, type ProcessorDefaults } from './config-fields.js';
import { resizeRgb } from './pil-resample.js';

/** image_processor_type values whose pipeline this reproduces (save_pretrained writes the name without "Pil"). */
export const IDEFICS3_PROCESSORS = new Set([
  'Idefics3ImageProcessor', 'Idefics3ImageProcessorPil', 'Idefics3ImageProcessorFast',
  'SmolVLMImageProcessor', 'SmolVLMImageProcessorPil', 'SmolVLMImageProcessorFast',
]);

export interface Idefics3ProcessorConfig extends CommonProcessorFields {
  kind: 'idefics3';
  doResize: boolean;
  /** The first resize: the longest edge to this (aspect kept), or exactly height × width. */
  size: { longestEdge: number } | { height: number; width: number };
  doImageSplitting: boolean;
  /** max_image_size.longest_edge: the side of every tile and of the global image (the tower's image_size). */
  tileSize: number;
  /** The processor's image_seq_len (processor_config.json; 169 by default): the image tokens of one tile. */
  imageSeqLen: number;
  /** The processor class (processor_config.json's processor_class, else config.json's model_type): SmolVLMProcessor
   * reads its image tokens from the tokenizer, Idefics3Processor writes fixed ones. */
  processorClass: 'Idefics3Processor' | 'SmolVLMProcessor';
}

/** An image as the processor gives it: its tiles in prompt order (row-major, then the global image; one when not
 * split) and the rows and columns of the split (0 × 0: not split). */
export interface TiledPixels {
  tiles: PixelValues[];
  rows: number;
  cols: number;
}

// Idefics3ImageProcessor's class defaults: LANCZOS, IMAGENET_STANDARD_MEAN / _STD (0.5), size {longest_edge: 4 · 364},
// max_image_size {longest_edge: 364}, do_image_splitting true; the processors' image_seq_len 169.
const IDEFICS3_DEFAULTS: ProcessorDefaults = { resample: 1, imageMean: [0.5, 0.5, 0.5], imageStd: [0.5, 0.5, 0.5] };
const DEFAULT_TILE = 364;
export const IDEFICS3_IMAGE_SEQ_LEN = 169;
/** MAX_IMAGE_SIZE of image_processing_idefics3: an image is kept within 4096 pixels a side. */
const MAX_IMAGE_SIZE = 4096;

export function parseIdefics3Config(o: Record<string, unknown>, file: string, processorClass: Idefics3ProcessorConfig['processorClass'] = 'Idefics3Processor'): Idefics3ProcessorConfig {
  const { bad, flag, positiveInt, common } = fieldReader(o, file);
  const raw = o.size ?? { longest_edge: 4 * DEFAULT_TILE };
  let size: Idefics3ProcessorConfig['size'];
  if (typeof raw === 'number') {
    const s = positiveInt(raw, 'size');
    size = { height: s, width: s };
  } else if (typeof raw === 'object' && raw !== null && !Array.isArray(raw)) {
    const s = raw as Record<string, unknown>;
    if (s.longest_edge != null) size = { longestEdge: positiveInt(s.longest_edge, 'size.longest_edge') };
    else if (s.height != null && s.width != null) size = { height: positiveInt(s.height, 'size.height'), width: positiveInt(s.width, 'size.width') };
    else throw bad('size', 'must have longest_edge, or height and width');
  } else {
    throw bad('size', 'must be an integer or an object with longest_edge');
  }
  const m = o.max_image_size ?? { longest_edge: DEFAULT_TILE };
  if (typeof m !== 'object' || m === null || Array.isArray(m) || (m as Record<string, unknown>).longest_edge == null) {
    throw bad('max_image_size', 'must be an object with longest_edge (the side of the tiles)');
  }
  const tileSize = positiveInt((m as Record<string, unknown>).longest_edge, 'max_image_size.longest_edge');
  return {
    kind: 'idefics3', ...common(IDEFICS3_DEFAULTS), doResize: flag('do_resize', true), size,
    doImageSplitting: flag('do_image_splitting', true), tileSize, imageSeqLen: IDEFICS3_IMAGE_SEQ_LEN, processorClass,
  };
}

/** _resize_output_size_rescale_to_max_len then _resize_output_size_scale_below_upper_bound (MAX_IMAGE_SIZE):
 * the first resize's [height, width] for size.longest_edge. */
export function idefics3ResizeSize(height: number, width: number, maxLen: number): [number, number] {
  const aspect = width / height;
  let h = height, w = width;
  if (w >= h) {
    w = maxLen;
    h = Math.trunc(w / aspect);
    if (h % 2 !== 0) h += 1;
  } else {
    h = maxLen;
    w = Math.trunc(h * aspect);
    if (w % 2 !== 0) w += 1;
  }
  h = Math.max(h, 1);
  w = Math.max(w, 1);
  const aspect2 = w / h;
  if (w >= h && w > MAX_IMAGE_SIZE) {
    w = MAX_IMAGE_SIZE;
    h = Math.trunc(w / aspect2);
  } else if (h > w && h > MAX_IMAGE_SIZE) {
    h = MAX_IMAGE_SIZE;
    w = Math.trunc(h * aspect2);
  }
  return [Math.max(h, 1), Math.max(w, 1)];
}

/** resize_for_vision_encoder's [height, width]: both sides rounded up to multiples of `tile` (the shorter one from
 * the longer's new length and the aspect ratio, truncated, then rounded up). */
export function idefics3SplitSize(height: number, width: number, tile: number): [number, number] {
  const aspect = width / height;
  let h = height, w = width;
  if (w >= h) {
    w = Math.ceil(w / tile) * tile;
    h = Math.trunc(w / aspect);
    h = Math.ceil(h / tile) * tile;
  } else {
    h = Math.ceil(h / tile) * tile;
    w = Math.trunc(h * aspect);
    w = Math.ceil(w / tile) * tile;
  }
  return [h, w];
}

function resized(img: RgbImage, h: number, w: number, resample: number): RgbImage {
  return h === img.height && w === img.width ? img : { width: w, height: h, rgb: resizeRgb(img.rgb, img.width, img.height, w, h, resample) };
}

function crop(img: RgbImage, top: number, left: number, h: number, w: number): RgbImage {
  const out = new Uint8Array(h * w * 3);
  for (let y = 0; y < h; y++) out.set(img.rgb.subarray(((top + y) * img.width + left) * 3, ((top + y) * img.width + left + w) * 3), y * w * 3);
  return { width: w, height: h, rgb: out };
}

/** The pipeline: the image's tiles (float32 [3, S, S] each, in prompt order) and its rows × cols of split tiles. */
export function preprocessIdefics3(img: RgbImage, c: Idefics3ProcessorConfig): TiledPixels {
  let cur = img;
  const S = c.tileSize;
  if (c.doResize) {
    const [h, w] = 'longestEdge' in c.size ? idefics3ResizeSize(cur.height, cur.width, c.size.longestEdge) : [c.size.height, c.size.width];
    cur = resized(cur, h, w, c.resample);
  }
  if (!c.doImageSplitting) return { tiles: [rescaleNormalize(resized(cur, S, S, c.resample), c)], rows: 0, cols: 0 };
  const [h, w] = idefics3SplitSize(cur.height, cur.width, S);
  cur = resized(cur, h, w, c.resample);
  if (h <= S && w <= S) return { tiles: [rescaleNormalize(cur, c)], rows: 0, cols: 0 };
  // split_images: (height - S) // S + 1 tiles down, the same across (the sides are multiples of S), row-major
  const rows = Math.floor((h - S) / S) + 1, cols = Math.floor((w - S) / S) + 1;
  const tiles: PixelValues[] = [];
  for (let r = 0; r < rows; r++) for (let col = 0; col < cols; col++) tiles.push(rescaleNormalize(crop(cur, r * S, col * S, S, S), c));
  tiles.push(rescaleNormalize(resized(cur, S, S, c.resample), c));
  return { tiles, rows, cols };
}

/** The processor's image_seq_len and class as from_pretrained reads them: processor_config.json's `image_seq_len`
 * (else 169) and `processor_class` (else config.json's `modelType`'s: smolvlm → SmolVLMProcessor, idefics3 →
 * Idefics3Processor; else the image processor's name's). */
export function readIdefics3Processor(c: Idefics3ProcessorConfig, modelDir: string, modelType?: string): Idefics3ProcessorConfig {
  const file = join(modelDir, 'processor_config.json');
  let imageSeqLen = IDEFICS3_IMAGE_SEQ_LEN;
  let processorClass: Idefics3ProcessorConfig['processorClass'] = modelType === 'smolvlm' ? 'SmolVLMProcessor' : modelType === 'idefics3' ? 'Idefics3Processor' : c.processorClass;
  if (existsSync(file)) {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new PreprocessorConfigError(`${file} is not valid JSON: ${(e as Error).message}`);
    }
    const o = (typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? raw : {}) as Record<string, unknown>;
    const v = o.image_seq_len;
    if (v !== undefined && v !== null) {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new PreprocessorConfigError(`${file}: \`image_seq_len\` must be a positive integer`);
      imageSeqLen = v;
    }
    if (o.processor_class === 'SmolVLMProcessor' || o.processor_class === 'Idefics3Processor') processorClass = o.processor_class;
  }
  return { ...c, imageSeqLen, processorClass };
}
