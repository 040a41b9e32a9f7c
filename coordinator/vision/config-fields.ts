// Readers for preprocessor_config.json fields, shared by the processors weft reproduces: each refuses a value
// transformers would not take (or would take differently) with a PreprocessorConfigError naming the file and field.
import { PIL_FILTERS } from './pil-resample.js';

export class PreprocessorConfigError extends Error {
  override name = 'PreprocessorConfigError';
}

// transformers' OPENAI_CLIP_MEAN / OPENAI_CLIP_STD: CLIPImageProcessor's and Qwen2VLImageProcessor's defaults
export const CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

/** What every processor here reads the same way: RGB conversion, the resample filter, rescale, normalize. */
export interface CommonProcessorFields {
  doConvertRgb: boolean;
  /** PIL filter number (3 = BICUBIC). */
  resample: number;
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
}

/** A processor class's defaults for what its file leaves out. */
export interface ProcessorDefaults {
  resample: number;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
}

/** CLIPImageProcessor's and Qwen2VLImageProcessor's: bicubic, OPENAI_CLIP_MEAN / OPENAI_CLIP_STD. */
export const CLIP_DEFAULTS: Readonly<ProcessorDefaults> = { resample: 3, imageMean: CLIP_MEAN, imageStd: CLIP_STD };

export function fieldReader(o: Record<string, unknown>, file: string) {
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
  /** The fields every processor here reads alike, with transformers' defaults (bicubic, 1/255, CLIP's mean/std, unless
   * the processor's class says otherwise: Gemma3ImageProcessor's are bilinear and 0.5 / 0.5). */
  const common = (defaults: ProcessorDefaults = CLIP_DEFAULTS): CommonProcessorFields => {
    const resample = o.resample ?? defaults.resample;
    if (typeof resample !== 'number' || PIL_FILTERS[resample] === undefined) {
      throw bad('resample', `${JSON.stringify(resample)} is not supported: 1 (LANCZOS), 2 (BILINEAR), 3 (BICUBIC), 4 (BOX) or 5 (HAMMING)`);
    }
    const rescaleFactor = o.rescale_factor ?? 1 / 255;
    if (typeof rescaleFactor !== 'number' || !Number.isFinite(rescaleFactor)) throw bad('rescale_factor', 'must be a number');
    const imageStd = triple('image_std', defaults.imageStd);
    if (imageStd.some((s) => s === 0)) throw bad('image_std', 'must not be 0');
    return {
      doConvertRgb: flag('do_convert_rgb', true),
      resample,
      doRescale: flag('do_rescale', true),
      rescaleFactor,
      doNormalize: flag('do_normalize', true),
      imageMean: triple('image_mean', defaults.imageMean),
      imageStd,
    };
  };
  return { bad, flag, positiveInt, triple, common };
}
