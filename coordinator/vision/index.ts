// Images for vision-language models: fetching, decoding and preprocessing (transformers' CLIPImageProcessor, exactly).
export { ImageProcessor } from './image-processor.js';
export { ImageInputError } from './image-error.js';
export { PreprocessorConfigError, parsePreprocessorConfig, readPreprocessorConfig, type ImageProcessorConfig } from './preprocessor-config.js';
export { preprocessClip, shortestEdgeSize, centerCrop, type PixelValues, type RgbImage } from './clip-preprocess.js';
export { resizeRgb } from './pil-resample.js';
export { decodeRgb, sniffFormat } from './decode.js';
export { describeUrl, fetchImageBytes, MAX_REDIRECTS, type ImageFetchLimits } from './image-fetch.js';
export { pixelKey } from './image-worker.js';
export { DEFAULT_IMAGE_LIMITS, type ImageInput, type ImageLimits, type PreparedImage } from './types.js';
