// A vision-language prompt's image placeholders. As transformers' LlavaProcessor does, each image token in the text
// (`<image>`, as the chat template or a /generate markdown image put it there) is repeated tokensPerImage times
// in the text BEFORE tokenizing — not after: the tokenizer then sees what it sees under transformers (an added
// token's lstrip/rstrip and the text around it behave the same). The tokens then tell each image's range.
import type { ImageRef, VisionInfo } from '../../protocol/index.js';
import type { PreparedImage } from '../vision/index.js';
import { EngineError } from './types.js';

/** What the engine knows of the model's images: the shards' VisionInfo and the image token's text. */
export interface PromptVision extends VisionInfo {
  /** The image token as text (e.g. "<image>"): what a chat template writes for an image part. */
  imageToken: string;
  tokensPerImage: number;
  imageSize: number;
}

/** Occurrences of the image token in `text`. */
export function countImageTokens(text: string, imageToken: string): number {
  return imageToken === '' ? 0 : text.split(imageToken).length - 1;
}

/** `text` with each image token repeated tokensPerImage times (LlavaProcessor's expansion). */
export function expandImageTokens(text: string, v: PromptVision): string {
  return text.split(v.imageToken).join(v.imageToken.repeat(v.tokensPerImage));
}

/** The 422 for placeholders (null: image tokens that are not whole images) that do not match the images. */
export function placeholderMismatch(placeholders: number | null, images: number, v: PromptVision): EngineError {
  const s = (n: number) => (n === 1 ? '' : 's');
  const found = placeholders === null ? 'image tokens that are not whole images' : `${placeholders} image placeholder${s(placeholders)} (${v.imageToken})`;
  const fix = images === 0 ? `do not write ${v.imageToken} in the text, or send the image it stands for`
    : 'each image needs exactly one placeholder: check that the chat template renders image parts and that `truncate` keeps every image';
  return new EngineError('validation', `the prompt has ${found} for ${images} image${s(images)}; ${fix}`);
}

/**
 * The images' token ranges in the tokenized prompt: image i takes the i-th run of tokensPerImage image tokens.
 * A 422 when the placeholders and the images do not match (as transformers refuses "image features and image
 * tokens do not match"): a chat template that drops image parts, a prompt that writes the image token itself, or a
 * `truncate` that cut into an image.
 */
export function imageRefs(ids: readonly number[], images: readonly PreparedImage[], v: PromptVision): ImageRef[] {
  const at: number[] = [];
  for (let i = 0; i < ids.length; i++) if (ids[i] === v.imageTokenId) at.push(i);
  if (at.length !== images.length * v.tokensPerImage) {
    throw placeholderMismatch(at.length % v.tokensPerImage === 0 ? at.length / v.tokensPerImage : null, images.length, v);
  }
  return images.map((img, i) => {
    const start = at[i * v.tokensPerImage]!;
    if (at[(i + 1) * v.tokensPerImage - 1]! - start !== v.tokensPerImage - 1) {
      throw new EngineError('validation', `image ${i + 1}'s ${v.tokensPerImage} placeholder tokens are not consecutive in the tokenized prompt`);
    }
    return { key: img.key, start, length: v.tokensPerImage };
  });
}
