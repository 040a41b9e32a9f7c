// One decoded image through the model's image processor, whichever weft reproduces.
import { preprocessClip, type PixelValues, type RgbImage } from './clip-preprocess.js';
import type { ImageProcessorConfig } from './preprocessor-config.js';
import { preprocessGemma3 } from './gemma3-preprocess.js';
import { preprocessQwen2VL } from './qwen2-vl-preprocess.js';
import { preprocessPixtral } from './pixtral-preprocess.js';
import { preprocessIdefics3, type TiledPixels } from './idefics3-preprocess.js';

/** float32 [3, H, W]; ImageInputError (naming `label`) for an image the processor refuses. A tiling processor's
 * (Idefics3's) image is its last tile, the global one: preprocessTiles gives them all. */
export function preprocessImage(img: RgbImage, c: ImageProcessorConfig, label = 'image'): PixelValues {
  switch (c.kind) {
    case 'idefics3': return preprocessIdefics3(img, c).tiles.at(-1)!;
    case 'qwen2_vl': return preprocessQwen2VL(img, c, label);
    case 'pixtral': return preprocessPixtral(img, c, label);
    case 'gemma3': return preprocessGemma3(img, c);
    case 'clip': return preprocessClip(img, c);
  }
}

/** The images the shards see for one image, in prompt order: Idefics3's / SmolVLM's tiles and global image (rows × cols
 * of the split; 0 × 0 when not split), else the one image (0 × 0). */
export function preprocessTiles(img: RgbImage, c: ImageProcessorConfig, label = 'image'): TiledPixels {
  if (c.kind === 'idefics3') return preprocessIdefics3(img, c);
  return { tiles: [preprocessImage(img, c, label)], rows: 0, cols: 0 };
}
