// A vision-language model's image processor settings, from its preprocessor_config.json: what transformers'
// CLIPImageProcessor (LLaVA-1.5), Qwen2VLImageProcessor (Qwen2-VL, Qwen2.5-VL, Qwen3-VL), Gemma3ImageProcessor (Gemma 3) or
// PixtralImageProcessor (Mistral 3), Idefics3ImageProcessor / SmolVLMImageProcessor (Idefics3, SmolVLM) — the slow, PIL
// ones — read.
// Other processors (LLaVA-NeXT's any-resolution tiling, SigLIP without a crop, …) compute differently, so they are
// refused by name at start rather than approximated.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PreprocessorConfigError, fieldReader, type CommonProcessorFields } from './config-fields.js';
import { GEMMA3_PROCESSORS, parseGemma3Config, readImageSeqLength, type Gemma3ProcessorConfig } from './gemma3-preprocess.js';
import { parseQwen2VLConfig, QWEN2_VL_PROCESSORS, type Qwen2VLProcessorConfig } from './qwen2-vl-preprocess.js';
import { parsePixtralConfig, PIXTRAL_PROCESSORS, readPixtralProcessor, type PixtralProcessorConfig } from './pixtral-preprocess.js';
import { IDEFICS3_PROCESSORS, parseIdefics3Config, readIdefics3Processor, type Idefics3ProcessorConfig } from './idefics3-preprocess.js';

export { PreprocessorConfigError };

/** CLIPImageProcessor's settings, with transformers' defaults for what the file leaves out. */
export interface ClipProcessorConfig extends CommonProcessorFields {
  kind: 'clip';
  doResize: boolean;
  /** Resize so the shorter edge is this long (aspect kept), or to exactly height x width. */
  size: { shortestEdge: number } | { height: number; width: number };
  doCenterCrop: boolean;
  cropSize: { height: number; width: number };
}

/** The processors weft reproduces: fixed-size towers' (CLIP; Gemma 3's SigLIP) or dynamic-resolution towers' (Qwen2-VL;
 * Mistral 3's Pixtral). */
export type ImageProcessorConfig = ClipProcessorConfig | Qwen2VLProcessorConfig | Gemma3ProcessorConfig | PixtralProcessorConfig | Idefics3ProcessorConfig;

/** The processors whose pipeline preprocessClip reproduces (all are CLIP's resize → center crop → rescale → normalize). */
const CLIP_PROCESSORS = new Set(['CLIPImageProcessor', 'CLIPImageProcessorFast', 'CLIPImageProcessorPil', 'CLIPFeatureExtractor']);

/** Reads the model's image processor settings as transformers 5 loads them (image_processing_base.py): the
 * `image_processor` object of `modelDir`/processor_config.json (what a processor's save_pretrained writes there, taking
 * precedence), else `modelDir`/preprocessor_config.json; a file without image_processor_type takes the one config.json's
 * model_type implies (AutoImageProcessor's fallback). Throws PreprocessorConfigError naming the file and the field. */
export function readPreprocessorConfig(modelDir: string): ImageProcessorConfig {
  const { raw, file } = readImageProcessorDict(modelDir);
  const modelType = configModelType(modelDir);
  const config = parsePreprocessorConfig(raw, file, modelType === undefined ? undefined : MODEL_TYPE_PROCESSORS[modelType]);
  // Gemma3Processor's token count per image is the processor's setting, not the image processor's.
  if (config.kind === 'gemma3') config.imageSeqLength = readImageSeqLength(modelDir);
  // PixtralProcessor's patch_size · spatial_merge_size (not the image processor's patch_size) sizes the images.
  if (config.kind === 'pixtral') return readPixtralProcessor(config, modelDir);
  // Idefics3Processor's / SmolVLMProcessor's image_seq_len: the tokens of one tile.
  if (config.kind === 'idefics3') return readIdefics3Processor(config, modelDir, modelType);
  return config;
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new PreprocessorConfigError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/** The image processor's dict and the file (and key) it came from. */
function readImageProcessorDict(modelDir: string): { raw: unknown; file: string } {
  const processorFile = join(modelDir, 'processor_config.json');
  if (existsSync(processorFile)) {
    const proc = readJson(processorFile);
    if (typeof proc === 'object' && proc !== null && !Array.isArray(proc) && 'image_processor' in proc) {
      return { raw: (proc as Record<string, unknown>).image_processor, file: `${processorFile} (image_processor)` };
    }
  }
  const file = join(modelDir, 'preprocessor_config.json');
  if (!existsSync(file)) {
    throw new PreprocessorConfigError(`${file} is missing (and processor_config.json has no image_processor): a vision-language model needs its ` +
      'image processor\'s settings (copy them from the model repository)');
  }
  return { raw: readJson(file), file };
}

/** The image processor AutoImageProcessor picks by config.json's model_type for the models weft serves with images
 * (transformers' IMAGE_PROCESSOR_MAPPING_NAMES); undefined when config.json does not say. */
const MODEL_TYPE_PROCESSORS: Record<string, string> = {
  llava: 'CLIPImageProcessor', qwen2_vl: 'Qwen2VLImageProcessor', qwen2_5_vl: 'Qwen2VLImageProcessor', qwen3_vl: 'Qwen2VLImageProcessor',
  qwen3_vl_moe: 'Qwen2VLImageProcessor', gemma3: 'Gemma3ImageProcessor', mistral3: 'PixtralImageProcessor',
  idefics3: 'Idefics3ImageProcessor', smolvlm: 'SmolVLMImageProcessor',
};

/** config.json's model_type; undefined when it does not say. */
function configModelType(modelDir: string): string | undefined {
  const file = join(modelDir, 'config.json');
  if (!existsSync(file)) return undefined;
  try {
    const c = JSON.parse(readFileSync(file, 'utf8')) as { model_type?: unknown };
    return typeof c.model_type === 'string' ? c.model_type : undefined;
  } catch {
    return undefined;  // the shards read config.json; a file they cannot read fails there
  }
}

/** `raw` (an image processor's settings) parsed by the processor its image_processor_type (else feature_extractor_type,
 * else `impliedType`: config.json's model type) names; CLIPImageProcessor when none says. */
export function parsePreprocessorConfig(raw: unknown, file = 'preprocessor_config.json', impliedType?: string): ImageProcessorConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new PreprocessorConfigError(`${file} must hold a JSON object`);
  const o = raw as Record<string, unknown>;
  const named = o.image_processor_type ?? (typeof o.feature_extractor_type === 'string' ? o.feature_extractor_type.replace('FeatureExtractor', 'ImageProcessor') : undefined);
  const type = named ?? impliedType;
  if (typeof type === 'string' && QWEN2_VL_PROCESSORS.has(type)) return parseQwen2VLConfig(o, file);
  if (typeof type === 'string' && GEMMA3_PROCESSORS.has(type)) return parseGemma3Config(o, file);
  if (typeof type === 'string' && PIXTRAL_PROCESSORS.has(type)) return parsePixtralConfig(o, file);
  if (typeof type === 'string' && IDEFICS3_PROCESSORS.has(type)) return parseIdefics3Config(o, file, type.startsWith('SmolVLM') ? 'SmolVLMProcessor' : 'Idefics3Processor');
  if (typeof type === 'string' && !CLIP_PROCESSORS.has(type)) {
    throw new PreprocessorConfigError(`${file}: image_processor_type ${type} is not supported; weft reproduces CLIPImageProcessor ` +
      '(LLaVA-1.5-style models), Qwen2VLImageProcessor (Qwen2-VL, Qwen2.5-VL, Qwen3-VL), Gemma3ImageProcessor (Gemma 3), PixtralImageProcessor (Mistral 3) ' +
      'and Idefics3ImageProcessor / SmolVLMImageProcessor (Idefics3, SmolVLM) only');
  }
  return parseClipConfig(o, file);
}

function parseClipConfig(o: Record<string, unknown>, file: string): ClipProcessorConfig {
  const { bad, flag, positiveInt, common } = fieldReader(o, file);
  // get_size_dict: an int size means the shortest edge (default_to_square=False); a crop size int means a square.
  const sizeOf = (): ClipProcessorConfig['size'] => {
    const v = o.size ?? { shortest_edge: 224 };
    if (typeof v === 'number') return { shortestEdge: positiveInt(v, 'size') };
    if (typeof v !== 'object' || v === null) throw bad('size', 'must be an integer or an object');
    const s = v as Record<string, unknown>;
    if (s.longest_edge !== undefined && s.longest_edge !== null) throw bad('size', 'with longest_edge is not supported (only shortest_edge, or height and width)');
    if (s.shortest_edge !== undefined && s.shortest_edge !== null) return { shortestEdge: positiveInt(s.shortest_edge, 'size.shortest_edge') };
    if (s.height !== undefined && s.width !== undefined) return { height: positiveInt(s.height, 'size.height'), width: positiveInt(s.width, 'size.width') };
    throw bad('size', 'must have shortest_edge, or height and width');
  };
  const cropOf = (): ClipProcessorConfig['cropSize'] => {
    const v = o.crop_size ?? { height: 224, width: 224 };
    if (typeof v === 'number') return { height: positiveInt(v, 'crop_size'), width: v };
    if (typeof v !== 'object' || v === null) throw bad('crop_size', 'must be an integer or an object');
    const s = v as Record<string, unknown>;
    return { height: positiveInt(s.height, 'crop_size.height'), width: positiveInt(s.width, 'crop_size.width') };
  };
  for (const field of ['do_pad', 'do_image_splitting']) {
    if (o[field] === true) throw bad(field, 'true is not supported (CLIPImageProcessor pads and splits nothing)');
  }
  return {
    kind: 'clip',
    ...common(),
    doResize: flag('do_resize', true),
    size: sizeOf(),
    doCenterCrop: flag('do_center_crop', true),
    cropSize: cropOf(),
  };
}

/** The [height, width] of the pixel values the processor gives for any image (its crop, or its fixed resize); null
 * when it depends on the image (a shortest-edge resize without a crop; Qwen2-VL's dynamic resolution). */
export function outputSize(c: ImageProcessorConfig): [number, number] | null {
  if (c.kind === 'gemma3') return [c.size.height, c.size.width];
  if (c.kind === 'idefics3') return [c.tileSize, c.tileSize];  // each tile
  if (c.kind !== 'clip') return null;
  if (c.doCenterCrop) return [c.cropSize.height, c.cropSize.width];
  if (c.doResize && 'height' in c.size) return [c.size.height, c.size.width];
  return null;
}
