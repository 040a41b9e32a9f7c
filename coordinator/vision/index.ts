// Images for vision-language models: fetching, decoding and preprocessing (transformers' CLIPImageProcessor,
// Qwen2VLImageProcessor, Gemma3ImageProcessor, PixtralImageProcessor and Idefics3ImageProcessor / SmolVLMImageProcessor,
// exactly).
export { ImageProcessor } from './image-processor.js';
export { ImageInputError } from './image-error.js';
export {
  PreprocessorConfigError, outputSize, parsePreprocessorConfig, readPreprocessorConfig, type ClipProcessorConfig, type ImageProcessorConfig,
} from './preprocessor-config.js';
export { preprocessQwen2VL, pyRound, qwen2VLTokens, smartResize, type Qwen2VLProcessorConfig } from './qwen2-vl-preprocess.js';
export {
  GEMMA3_IMAGE_SEQ_LENGTH, preprocessGemma3, readImageSeqLength, type Gemma3ProcessorConfig,
} from './gemma3-preprocess.js';
export {
  PIXTRAL_DEFAULT_TOKENS, applyPixtralProcessor, pixtralGrid, pixtralResize, preprocessPixtral, type PixtralProcessorConfig,
} from './pixtral-preprocess.js';
export { preprocessImage, preprocessTiles } from './preprocess.js';
export {
  IDEFICS3_IMAGE_SEQ_LEN, idefics3ResizeSize, idefics3SplitSize, preprocessIdefics3, type Idefics3ProcessorConfig, type TiledPixels,
} from './idefics3-preprocess.js';
export { preprocessClip, rescaleNormalize, shortestEdgeSize, centerCrop, type PixelValues, type RgbImage } from './clip-preprocess.js';
export { resizeRgb } from './pil-resample.js';
export { decodeRgb, sniffFormat } from './decode.js';
export { describeUrl, fetchImageBytes, MAX_REDIRECTS, type ImageFetchLimits } from './image-fetch.js';
export { pixelKey } from './image-worker.js';
export { DEFAULT_IMAGE_LIMITS, shardImages, type ImageInput, type ImageLimits, type PreparedImage } from './types.js';
