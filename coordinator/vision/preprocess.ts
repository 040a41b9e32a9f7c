// One decoded image through the model's image processor, whichever weft reproduces.
import { preprocessClip, type PixelValues, type RgbImage } from './clip-preprocess.js';
import type { ImageProcessorConfig } from './preprocessor-config.js';
import { preprocessGemma3 } from './gemma3-preprocess.js';
import { preprocessQwen2VL } from './qwen2-vl-preprocess.js';
import { preprocessPixtral } from './pixtral-preprocess.js';

/** float32 [3, H, W]; ImageInputError (naming `label`) for an image the processor refuses. */
export function preprocessImage(img: RgbImage, c: ImageProcessorConfig, label = 'image'): PixelValues {
  switch (c.kind) {
    case 'qwen2_vl': return preprocessQwen2VL(img, c, label);
    case 'pixtral': return preprocessPixtral(img, c, label);
    case 'gemma3': return preprocessGemma3(img, c);
    case 'clip': return preprocessClip(img, c);
  }
}
