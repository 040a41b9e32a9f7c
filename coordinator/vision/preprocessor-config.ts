// A vision-language model's image processor settings, from its preprocessor_config.json: what transformers'
// CLIPImageProcessor (the slow, PIL one) reads. Other processors (LLaVA-NeXT's any-resolution tiling, Qwen2-VL's
// dynamic patches, SigLIP without a crop) compute differently, so they are refused by name at start rather than
// approximated.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PIL_FILTERS } from './pil-resample.js';

/** CLIPImageProcessor's settings, with transformers' defaults for what the file leaves out. */
export interface ImageProcessorConfig {
  doConvertRgb: boolean;
  doResize: boolean;
  /** Resize so the shorter edge is this long (aspect kept), or to exactly height x width. */
  size: { shortestEdge: number } | { height: number; width: number };
  /** PIL filter number (3 = BICUBIC). */
  resample: number;
  doCenterCrop: boolean;
  cropSize: { height: number; width: number };
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
}

/** The processors whose pipeline this one reproduces (all are CLIP's resize → center crop → rescale → normalize). */
const SUPPORTED = new Set(['CLIPImageProcessor', 'CLIPImageProcessorFast', 'CLIPImageProcessorPil', 'CLIPFeatureExtractor']);

// transformers' OPENAI_CLIP_MEAN / OPENAI_CLIP_STD, CLIPImageProcessor's defaults
const CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

export class PreprocessorConfigError extends Error {
  override name = 'PreprocessorConfigError';
}

/** Reads `modelDir`/preprocessor_config.json; throws PreprocessorConfigError naming the file and the field. */
export function readPreprocessorConfig(modelDir: string): ImageProcessorConfig {
  const file = join(modelDir, 'preprocessor_config.json');
  if (!existsSync(file)) {
    throw new PreprocessorConfigError(`${file} is missing: a vision-language model needs its image processor's settings (copy it from the model repository)`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new PreprocessorConfigError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
  return parsePreprocessorConfig(raw, file);
}

export function parsePreprocessorConfig(raw: unknown, file = 'preprocessor_config.json'): ImageProcessorConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new PreprocessorConfigError(`${file} must hold a JSON object`);
  const o = raw as Record<string, unknown>;
  const type = o.image_processor_type ?? o.feature_extractor_type;
  if (typeof type === 'string' && !SUPPORTED.has(type)) {
    throw new PreprocessorConfigError(`${file}: image_processor_type ${type} is not supported; weft reproduces CLIPImageProcessor ` +
      '(LLaVA-1.5-style models) only');
  }
  const bad = (field: string, why: string) => new PreprocessorConfigError(`${file}: \`${field}\` ${why}`);
  const flag = (field: string, dflt: boolean): boolean => {
    const v = o[field];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') throw bad(field, 'must be true or false');
    return v;
  };
  const positiveInt = (v: unknown, field: string): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw bad(field, 'must be a positive integer');
    return v;
  };
  const triple = (field: string, dflt: [number, number, number]): [number, number, number] => {
    const v = o[field];
    if (v === undefined || v === null) return dflt;
    const list = typeof v === 'number' ? [v, v, v] : v;
    if (!Array.isArray(list) || list.length !== 3 || !list.every((x) => typeof x === 'number' && Number.isFinite(x))) {
      throw bad(field, 'must be a number or a list of 3 numbers (one per RGB channel)');
    }
    return list as [number, number, number];
  };
  // get_size_dict: an int size means the shortest edge (default_to_square=False); a crop size int means a square.
  const sizeOf = (): ImageProcessorConfig['size'] => {
    const v = o.size ?? { shortest_edge: 224 };
    if (typeof v === 'number') return { shortestEdge: positiveInt(v, 'size') };
    if (typeof v !== 'object' || v === null) throw bad('size', 'must be an integer or an object');
    const s = v as Record<string, unknown>;
    if (s.longest_edge !== undefined && s.longest_edge !== null) throw bad('size', 'with longest_edge is not supported (only shortest_edge, or height and width)');
    if (s.shortest_edge !== undefined && s.shortest_edge !== null) return { shortestEdge: positiveInt(s.shortest_edge, 'size.shortest_edge') };
    if (s.height !== undefined && s.width !== undefined) return { height: positiveInt(s.height, 'size.height'), width: positiveInt(s.width, 'size.width') };
    throw bad('size', 'must have shortest_edge, or height and width');
  };
  const cropOf = (): ImageProcessorConfig['cropSize'] => {
    const v = o.crop_size ?? { height: 224, width: 224 };
    if (typeof v === 'number') return { height: positiveInt(v, 'crop_size'), width: v };
    if (typeof v !== 'object' || v === null) throw bad('crop_size', 'must be an integer or an object');
    const s = v as Record<string, unknown>;
    return { height: positiveInt(s.height, 'crop_size.height'), width: positiveInt(s.width, 'crop_size.width') };
  };
  const resample = o.resample ?? 3;
  if (typeof resample !== 'number' || PIL_FILTERS[resample] === undefined) {
    throw bad('resample', `${JSON.stringify(resample)} is not supported: 1 (LANCZOS), 2 (BILINEAR), 3 (BICUBIC), 4 (BOX) or 5 (HAMMING)`);
  }
  const rescaleFactor = o.rescale_factor ?? 1 / 255;
  if (typeof rescaleFactor !== 'number' || !Number.isFinite(rescaleFactor)) throw bad('rescale_factor', 'must be a number');
  const imageStd = triple('image_std', CLIP_STD);
  if (imageStd.some((s) => s === 0)) throw bad('image_std', 'must not be 0');
  for (const field of ['do_pad', 'do_image_splitting']) {
    if (o[field] === true) throw bad(field, 'true is not supported (CLIPImageProcessor pads and splits nothing)');
  }
  return {
    doConvertRgb: flag('do_convert_rgb', true),
    doResize: flag('do_resize', true),
    size: sizeOf(),
    resample,
    doCenterCrop: flag('do_center_crop', true),
    cropSize: cropOf(),
    doRescale: flag('do_rescale', true),
    rescaleFactor,
    doNormalize: flag('do_normalize', true),
    imageMean: triple('image_mean', CLIP_MEAN),
    imageStd,
  };
}

/** The [height, width] of the pixel values the processor gives for any image (its crop, or its fixed resize). */
export function outputSize(c: ImageProcessorConfig): [number, number] | null {
  if (c.doCenterCrop) return [c.cropSize.height, c.cropSize.width];
  if (c.doResize && 'height' in c.size) return [c.size.height, c.size.width];
  return null;  // the image's own size (after a shortest-edge resize): not fixed
}
