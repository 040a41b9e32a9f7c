// transformers' Gemma3ImageProcessor (the slow, PIL one: Gemma3ImageProcessorPil in transformers 5.15) — Gemma 3's
// SigLIP tower takes one fixed size: RGB, resize to size.height × size.width (aspect ratio not kept) with PIL's
// `resample` (bilinear by default), rescale, normalize (0.5 / 0.5 by default) → float32 [3, H, W]. No center crop.
// Pan and scan (extra crops of a long image, each its own image sequence) is not reproduced: `do_pan_and_scan` true
// is refused at start. Also Gemma3Processor's image_seq_length (processor_config.json): the soft tokens of one image.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PixelValues, RgbImage } from './clip-preprocess.js';
import { rescaleNormalize } from './clip-preprocess.js';
import { PreprocessorConfigError, fieldReader, type CommonProcessorFields, type ProcessorDefaults } from './config-fields.js';
import { resizeRgb } from './pil-resample.js';

/** image_processor_type values whose pipeline this reproduces (save_pretrained writes the name without "Pil"). */
export const GEMMA3_PROCESSORS = new Set(['Gemma3ImageProcessor', 'Gemma3ImageProcessorPil', 'Gemma3ImageProcessorFast']);

export interface Gemma3ProcessorConfig extends CommonProcessorFields {
  kind: 'gemma3';
  /** Every image is resized to exactly this (the tower's image_size, 896 published). */
  size: { height: number; width: number };
  /** Gemma3Processor's image_seq_length: the image soft tokens of one image (processor_config.json; default 256). */
  imageSeqLength: number;
}

// Gemma3ImageProcessor's class defaults: BILINEAR, IMAGENET_STANDARD_MEAN / _STD (0.5 each), size 224 × 224.
const GEMMA3_DEFAULTS: ProcessorDefaults = { resample: 2, imageMean: [0.5, 0.5, 0.5], imageStd: [0.5, 0.5, 0.5] };
const DEFAULT_SIZE = { height: 224, width: 224 };

/** The settings as Gemma3ImageProcessor reads them (get_size_dict with default_to_square: an int size is a square). */
export function parseGemma3Config(o: Record<string, unknown>, file: string): Gemma3ProcessorConfig {
  const { bad, flag, positiveInt, common } = fieldReader(o, file);
  const raw = o.size ?? DEFAULT_SIZE;
  let size: Gemma3ProcessorConfig['size'];
  if (typeof raw === 'number') {
    const s = positiveInt(raw, 'size');
    size = { height: s, width: s };
  } else if (typeof raw === 'object' && raw !== null && !Array.isArray(raw)) {
    const s = raw as Record<string, unknown>;
    if (s.height === undefined || s.height === null || s.width === undefined || s.width === null) {
      throw bad('size', 'must have height and width (Gemma 3\'s vision tower takes one fixed size)');
    }
    size = { height: positiveInt(s.height, 'size.height'), width: positiveInt(s.width, 'size.width') };
  } else {
    throw bad('size', 'must be an integer or an object with height and width');
  }
  // Pan and scan adds crops of a long image, each with its own image sequence ("Here is the original image … and here
  // are some crops …"): a different prompt and more images than were sent. Refused rather than ignored.
  if (flag('do_pan_and_scan', false)) {
    throw bad('do_pan_and_scan', 'true is not supported (Gemma3ImageProcessor\'s pan and scan crops are not reproduced; set it to false or null)');
  }
  // Without the resize an image keeps its own size, which the fixed-size tower cannot take.
  if (!flag('do_resize', true)) throw bad('do_resize', 'false is not supported for Gemma3ImageProcessor (the vision tower takes one fixed size)');
  return { kind: 'gemma3', ...common(GEMMA3_DEFAULTS), size, imageSeqLength: GEMMA3_IMAGE_SEQ_LENGTH };
}

/** The pipeline: resize to size.height × size.width, rescale, normalize; float32 [3, H, W]. */
export function preprocessGemma3(img: RgbImage, c: Gemma3ProcessorConfig): PixelValues {
  const { height: h, width: w } = c.size;
  const cur = h === img.height && w === img.width ? img : { width: w, height: h, rgb: resizeRgb(img.rgb, img.width, img.height, w, h, c.resample) };
  return rescaleNormalize(cur, c);
}

/** Gemma3Processor's default image_seq_length. */
export const GEMMA3_IMAGE_SEQ_LENGTH = 256;

/** Gemma3Processor's image_seq_length as from_pretrained reads it: processor_config.json's `image_seq_length`, else 256
 * (the class default; transformers reads no other file for it). */
export function readImageSeqLength(modelDir: string): number {
  const file = join(modelDir, 'processor_config.json');
  if (!existsSync(file)) return GEMMA3_IMAGE_SEQ_LENGTH;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new PreprocessorConfigError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
  const v = (raw as Record<string, unknown> | null)?.image_seq_length;
  if (v === undefined || v === null) return GEMMA3_IMAGE_SEQ_LENGTH;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new PreprocessorConfigError(`${file}: \`image_seq_length\` must be a positive integer`);
  return v;
}
