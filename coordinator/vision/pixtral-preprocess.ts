// transformers' PixtralImageProcessor (the slow, PIL one: PixtralImageProcessorPil in transformers 5.15) as
// PixtralProcessor calls it — Mistral 3's (Mistral Small 3.1 / 3.2) images at about their own size: RGB, resized to fit
// within size.longest_edge (the aspect ratio kept, floor) and then each side rounded UP to a multiple of the processor's
// patch_size · spatial_merge_size (PixtralProcessor passes that product to the image processor as its patch_size, over
// preprocessor_config.json's own), PIL's `resample` (bicubic), rescale, normalize → float32 [3, H, W]. The processor
// pads a batch of images to the largest for stacking; the model crops each back to its image_sizes, so no padding here:
// the shards take each image at its own size. Also PixtralProcessor's settings (processor_config.json): patch_size,
// spatial_merge_size and the image, break and end tokens.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PixelValues, RgbImage } from './clip-preprocess.js';
import { rescaleNormalize } from './clip-preprocess.js';
import { PreprocessorConfigError, fieldReader, type CommonProcessorFields } from './config-fields.js';
import { ImageInputError } from './image-error.js';
import { resizeRgb } from './pil-resample.js';

/** image_processor_type values whose pipeline this reproduces (save_pretrained writes the name without "Pil"). */
export const PIXTRAL_PROCESSORS = new Set(['PixtralImageProcessor', 'PixtralImageProcessorPil', 'PixtralImageProcessorFast']);

export interface PixtralProcessorConfig extends CommonProcessorFields {
  kind: 'pixtral';
  /** The largest height and width (size.longest_edge for both, or size.height / size.width). */
  maxHeight: number;
  maxWidth: number;
  /** PixtralProcessor's patch_size and spatial_merge_size (processor_config.json; 16 and 1 by default): resized sides
   * are multiples of their product, and an image of H × W takes (H / product) rows of (W / product) image tokens.
   * parsePreprocessorConfig alone gives the image processor's own patch_size and merge 1 (the image processor called
   * by itself); readPreprocessorConfig then applies processor_config.json, as PixtralProcessor does. */
  patchSize: number;
  mergeSize: number;
  /** PixtralProcessor's image_token, image_break_token, image_end_token. */
  imageToken: string;
  breakToken: string;
  endToken: string;
}

// PixtralImageProcessor's class defaults: size {longest_edge: 1024}, patch 16, bicubic, CLIP's mean / std;
// PixtralProcessor's: patch_size 16, spatial_merge_size 1, [IMG], [IMG_BREAK], [IMG_END].
const DEFAULT_LONGEST_EDGE = 1024;
const DEFAULT_PATCH = 16;
export const PIXTRAL_DEFAULT_TOKENS = { imageToken: '[IMG]', breakToken: '[IMG_BREAK]', endToken: '[IMG_END]' } as const;

/** The settings as PixtralImageProcessor reads them (get_size_dict with default_to_square: an int size is a square). */
export function parsePixtralConfig(o: Record<string, unknown>, file: string): PixtralProcessorConfig {
  const { bad, flag, positiveInt, common } = fieldReader(o, file);
  const raw = o.size ?? { longest_edge: DEFAULT_LONGEST_EDGE };
  let maxHeight: number, maxWidth: number;
  if (typeof raw === 'number') {
    maxHeight = maxWidth = positiveInt(raw, 'size');
  } else if (typeof raw === 'object' && raw !== null && !Array.isArray(raw)) {
    const s = raw as Record<string, unknown>;
    if (s.longest_edge !== undefined && s.longest_edge !== null) {
      maxHeight = maxWidth = positiveInt(s.longest_edge, 'size.longest_edge');
    } else if (s.height != null && s.width != null) {
      maxHeight = positiveInt(s.height, 'size.height');
      maxWidth = positiveInt(s.width, 'size.width');
    } else {
      throw bad('size', 'must have longest_edge, or height and width (PixtralImageProcessor bounds both sides)');
    }
  } else {
    throw bad('size', 'must be an integer or an object with longest_edge');
  }
  const p = o.patch_size ?? DEFAULT_PATCH;
  let patchSize: number;
  if (typeof p === 'object' && p !== null && !Array.isArray(p)) {
    const ps = p as Record<string, unknown>;
    const h = positiveInt(ps.height, 'patch_size.height'), w = positiveInt(ps.width, 'patch_size.width');
    if (h !== w) throw bad('patch_size', `${h} x ${w} is not supported: PixtralProcessor's patches are square`);
    patchSize = h;
  } else {
    patchSize = positiveInt(p, 'patch_size');
  }
  // Without the resize the sides are not multiples of the patch grid: the rows and columns of image tokens would not
  // be what the processor writes. A center crop would cut the image to a size the tower does not expect.
  if (!flag('do_resize', true)) throw bad('do_resize', 'false is not supported for PixtralImageProcessor (images must be resized to the patch grid)');
  if (flag('do_center_crop', false)) throw bad('do_center_crop', 'true is not supported for PixtralImageProcessor (set it to false or null)');
  return { kind: 'pixtral', ...common(), maxHeight, maxWidth, patchSize, mergeSize: 1, ...PIXTRAL_DEFAULT_TOKENS };
}

/** `c` as PixtralProcessor uses it: processor_config.json's patch_size, spatial_merge_size and tokens (`raw`, its
 * parsed content; {} when the file is missing: the processor's defaults). */
export function applyPixtralProcessor(c: PixtralProcessorConfig, raw: unknown, file = 'processor_config.json'): PixtralProcessorConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new PreprocessorConfigError(`${file} must hold a JSON object`);
  const o = raw as Record<string, unknown>;
  const { bad, positiveInt } = fieldReader(o, file);
  const token = (field: string, dflt: string): string => {
    const v = o[field];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'string' || v === '') throw bad(field, 'must be a non-empty string');
    return v;
  };
  return {
    ...c,
    patchSize: positiveInt(o.patch_size ?? DEFAULT_PATCH, 'patch_size'),
    mergeSize: positiveInt(o.spatial_merge_size ?? 1, 'spatial_merge_size'),
    imageToken: token('image_token', PIXTRAL_DEFAULT_TOKENS.imageToken),
    breakToken: token('image_break_token', PIXTRAL_DEFAULT_TOKENS.breakToken),
    endToken: token('image_end_token', PIXTRAL_DEFAULT_TOKENS.endToken),
  };
}

/** readPreprocessorConfig's part for Pixtral: `modelDir`/processor_config.json applied (missing: the defaults). */
export function readPixtralProcessor(c: PixtralProcessorConfig, modelDir: string): PixtralProcessorConfig {
  const file = join(modelDir, 'processor_config.json');
  if (!existsSync(file)) return applyPixtralProcessor(c, {}, file);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new PreprocessorConfigError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
  return applyPixtralProcessor(c, raw, file);
}

/**
 * transformers' pixtral get_resize_output_image_size: [height, width]. When a side is over its bound, both are divided
 * by the larger ratio and floored; then each is rounded up to a multiple of `patch` ((x - 1) // patch + 1 patches).
 * Float64 arithmetic in Python's order. A side floored to 0 gives 0 (transformers then fails): the caller refuses it.
 */
export function pixtralResize(height: number, width: number, maxHeight: number, maxWidth: number, patch: number): [number, number] {
  const ratio = Math.max(height / maxHeight, width / maxWidth);
  let h = height, w = width;
  if (ratio > 1) {
    h = Math.floor(height / ratio);
    w = Math.floor(width / ratio);
  }
  const up = (x: number) => (Math.floor((x - 1) / patch) + 1) * patch;
  return [up(h), up(w)];
}

/** PixtralProcessor's rows and columns of image tokens for pixel values of height × width. */
export function pixtralGrid(height: number, width: number, patchSize: number, mergeSize: number): [number, number] {
  const side = patchSize * mergeSize;
  return [Math.floor(height / side), Math.floor(width / side)];
}

/** The pipeline: float32 [3, H, W], H and W multiples of patch_size·spatial_merge_size. */
export function preprocessPixtral(img: RgbImage, c: PixtralProcessorConfig, label = 'image'): PixelValues {
  const [h, w] = pixtralResize(img.height, img.width, c.maxHeight, c.maxWidth, c.patchSize * c.mergeSize);
  if (h === 0 || w === 0) {
    throw new ImageInputError(422, `${label} is ${img.width} x ${img.height} pixels: scaled to fit ${c.maxWidth} x ${c.maxHeight}, a side ` +
      'would be under one pixel, which the model\'s image processor (PixtralImageProcessor) cannot resize');
  }
  const cur = h === img.height && w === img.width ? img : { width: w, height: h, rgb: resizeRgb(img.rgb, img.width, img.height, w, h, c.resample) };
  return rescaleNormalize(cur, c);
}
