// One decoded image through the model's image processor, whichever weft reproduces.
import { preprocessClip, type PixelValues, type RgbImage } from './clip-preprocess.js';
import type { ImageProcessorConfig } from './preprocessor-config.js';
import { preprocessQwen2VL } from './qwen2-vl-preprocess.js';

/** float32 [3, H, W]; ImageInputError (naming `label`) for an image the processor refuses. */
export function preprocessImage(img: RgbImage, c: ImageProcessorConfig, label = 'image'): PixelValues {
  return c.kind === 'qwen2_vl' ? preprocessQwen2VL(img, c, label) : preprocessClip(img, c);
}
