// transformers' Qwen2VLImageProcessor (the slow, PIL one: Qwen2VLImageProcessorPil in transformers 5.15) — Qwen2-VL's,
// Qwen2.5-VL's and Qwen3-VL's dynamic-resolution images (Qwen3VLProcessor uses this image processor, unchanged: its
// published file sets patch_size 16, so sides are multiples of 32, size {shortest_edge 65536, longest_edge 16777216} and
// mean / std 0.5; the class defaults are Qwen2-VL's) — up to, not including, its patchify step: RGB, smart_resize (both sides
// multiples of patch_size·merge_size, the area between min_pixels and max_pixels, the aspect ratio nearly kept), PIL's
// resample, rescale, normalize → float32 [3, H, W]. The shards patchify (the protocol sends images unpatchified: the
// same values, 2× smaller than the processor's temporal-duplicated patches). Each step keeps transformers' arithmetic
// so the values equal its pixel_values bit for bit once patchified.
import type { RgbImage, PixelValues } from './clip-preprocess.js';
import { rescaleNormalize } from './clip-preprocess.js';
import { fieldReader, type CommonProcessorFields } from './config-fields.js';
import { ImageInputError } from './image-error.js';
import { resizeRgb } from './pil-resample.js';

/** image_processor_type values whose pipeline this reproduces (save_pretrained writes the name without "Pil"). */
export const QWEN2_VL_PROCESSORS = new Set(['Qwen2VLImageProcessor', 'Qwen2VLImageProcessorPil', 'Qwen2VLImageProcessorFast']);

export interface Qwen2VLProcessorConfig extends CommonProcessorFields {
  kind: 'qwen2_vl';
  /** smart_resize's bounds on the resized area (size.shortest_edge / size.longest_edge, or min_pixels / max_pixels). */
  minPixels: number;
  maxPixels: number;
  patchSize: number;
  mergeSize: number;
  temporalPatchSize: number;
}

// Qwen2VLImageProcessor's class defaults: size {shortest_edge: 56*56, longest_edge: 28*28*1280}, 14, 2, 2.
const DEFAULT_SIZE = { shortest_edge: 56 * 56, longest_edge: 28 * 28 * 1280 };

/** The settings as Qwen2VLImageProcessor.__init__ reads them: `size` (or the default), whose shortest_edge and
 * longest_edge top-level `min_pixels` / `max_pixels` override; both must then be there. */
export function parseQwen2VLConfig(o: Record<string, unknown>, file: string): Qwen2VLProcessorConfig {
  const { bad, flag, positiveInt, common } = fieldReader(o, file);
  const raw = o.size ?? DEFAULT_SIZE;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw bad('size', 'must be an object with shortest_edge and longest_edge (Qwen2VLImageProcessor bounds the area; an integer size is refused by transformers too)');
  }
  const size: Record<string, unknown> = { ...raw as Record<string, unknown> };
  if (o.min_pixels !== undefined && o.min_pixels !== null) {
    size.shortest_edge = o.min_pixels;
    delete size.min_pixels;
  }
  if (o.max_pixels !== undefined && o.max_pixels !== null) {
    size.longest_edge = o.max_pixels;
    delete size.max_pixels;
  }
  const extra = Object.keys(size).filter((k) => k !== 'shortest_edge' && k !== 'longest_edge' && size[k] !== null && size[k] !== undefined);
  if (extra.length > 0) throw bad('size', `has ${extra.join(', ')}; Qwen2VLImageProcessor takes shortest_edge and longest_edge (or min_pixels and max_pixels at the top level)`);
  const need = (key: 'shortest_edge' | 'longest_edge', alias: string) => {
    if (size[key] === undefined || size[key] === null) throw bad('size', `must have ${key} (or a top-level ${alias})`);
    return positiveInt(size[key], key === 'shortest_edge' ? (o.min_pixels != null ? 'min_pixels' : 'size.shortest_edge')
      : (o.max_pixels != null ? 'max_pixels' : 'size.longest_edge'));
  };
  const minPixels = need('shortest_edge', 'min_pixels');
  const maxPixels = need('longest_edge', 'max_pixels');
  // Without the resize an image whose sides are not multiples of patch_size·merge_size cannot be patchified
  // (transformers fails in its reshape), and one that is would skip the area bounds: refused rather than guessed.
  if (!flag('do_resize', true)) throw bad('do_resize', 'false is not supported for Qwen2VLImageProcessor (images must be resized to the patch grid)');
  const int = (field: string, dflt: number) => positiveInt(o[field] ?? dflt, field);
  return {
    kind: 'qwen2_vl',
    ...common(),
    minPixels,
    maxPixels,
    patchSize: int('patch_size', 14),
    mergeSize: int('merge_size', 2),
    temporalPatchSize: int('temporal_patch_size', 2),
  };
}

/** Python's round() on a float: to the nearest integer, halves to the even one. */
export function pyRound(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * transformers' smart_resize: [height, width], each a multiple of `factor`, the area within [minPixels, maxPixels]
 * where it can be, the aspect ratio kept as closely as that allows. Float64 arithmetic in Python's order, so the
 * sizes are the same. Null where transformers refuses the image (an aspect ratio over 200).
 */
export function smartResize(height: number, width: number, factor: number, minPixels: number, maxPixels: number): [number, number] | null {
  if (Math.max(height, width) / Math.min(height, width) > 200) return null;
  let hBar = pyRound(height / factor) * factor;
  let wBar = pyRound(width / factor) * factor;
  if (hBar * wBar > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    hBar = Math.max(factor, Math.floor(height / beta / factor) * factor);
    wBar = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (hBar * wBar < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    hBar = Math.ceil(height * beta / factor) * factor;
    wBar = Math.ceil(width * beta / factor) * factor;
  }
  return [hBar, wBar];
}

/** The placeholder tokens an image of these (resized) pixel sizes takes: grid_t·grid_h·grid_w / merge_size², grid_t 1. */
export function qwen2VLTokens(height: number, width: number, patchSize: number, mergeSize: number): number {
  return (height / patchSize / mergeSize) * (width / patchSize / mergeSize);
}

/** The pipeline up to patchify: float32 [3, H, W], H and W multiples of patch_size·merge_size. */
export function preprocessQwen2VL(img: RgbImage, c: Qwen2VLProcessorConfig, label = 'image'): PixelValues {
  const size = smartResize(img.height, img.width, c.patchSize * c.mergeSize, c.minPixels, c.maxPixels);
  if (size === null) {
    throw new ImageInputError(422, `${label} is ${img.width} x ${img.height} pixels: its aspect ratio is over 200, which the model's ` +
      'image processor (Qwen2VLImageProcessor) refuses');
  }
  const [h, w] = size;
  const cur = h === img.height && w === img.width ? img : { width: w, height: h, rgb: resizeRgb(img.rgb, img.width, img.height, w, h, c.resample) };
  return rescaleNormalize(cur, c);
}
