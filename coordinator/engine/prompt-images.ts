// A vision-language prompt's image placeholders. As transformers' processors do, each image's placeholder in the text
// (what the chat template, or a /generate markdown image, put there once per image) is expanded to the image's
// tokens in the text BEFORE tokenizing — not after: the tokenizer then sees what it sees under transformers (an added
// token's lstrip/rstrip and the text around it behave the same). The tokens then tell each image's range. Each
// processor has its rule (ImageTokenRule):
// - LlavaProcessor, Qwen2VLProcessor: the template writes the image token itself (`<image>`, `<|image_pad|>`); the
//   i-th is repeated to image i's token count. A fixed-size tower (LLaVA's CLIP) gives every image tokensPerImage
//   tokens; a dynamic-resolution one (Qwen2-VL) gives each (height/patchSize/mergeSize)·(width/patchSize/mergeSize).
// - Gemma3Processor: the template writes the begin-of-image token (`<start_of_image>`); each is replaced by its
//   full_image_sequence, "\n\n" + boi + image token (`<image_soft_token>`) × image_seq_length + eoi + "\n\n".
import type { ImageRef, VisionInfo } from '../../protocol/index.js';
import type { PreparedImage } from '../vision/index.js';
import { EngineError } from './types.js';

/** How the model's processor turns what its chat template writes for one image into that image's tokens. */
export type ImageTokenRule =
  /** LlavaProcessor, Qwen2VLProcessor: the image token is repeated to the image's token count. */
  | { kind: 'repeat' }
  /** Gemma3Processor: the begin-of-image token becomes "\n\n" + boi + image token × count + eoi + "\n\n". */
  | { kind: 'gemma3'; boiToken: string; eoiToken: string };

/** What the engine knows of the model's images: the shards' VisionInfo, the image token's text and the processor's rule. */
export interface PromptVision extends VisionInfo {
  /** The image token as text (e.g. "<image>", "<|image_pad|>", "<image_soft_token>"): the token id an image's features
   * replace (imageTokenId). */
  imageToken: string;
  /** What a chat template writes for an image part, once per image: the image token itself (LLaVA, Qwen2-VL), or
   * Gemma 3's begin-of-image token "<start_of_image>". */
  templateToken: string;
  /** The text that stands for one image where no chat template writes it (TGI markdown images): the template token
   * with what the model's template writes around it ("<|vision_start|><|image_pad|><|vision_end|>"). */
  imagePlaceholder: string;
  rule: ImageTokenRule;
}

/** What the chat template writes once per image under `rule`: Gemma 3's boi token, else the image token itself. */
export function templateTokenOf(rule: ImageTokenRule, imageToken: string): string {
  return rule.kind === 'gemma3' ? rule.boiToken : imageToken;
}

/** The placeholder tokens `img` takes: the tower's fixed count, or its (already resized) grid's merged patches. */
export function imageTokenCount(img: Pick<PreparedImage, 'height' | 'width'>, v: PromptVision): number {
  if (v.tokensPerImage !== undefined) return v.tokensPerImage;
  const side = v.patchSize! * v.mergeSize!;
  if (img.height % side !== 0 || img.width % side !== 0) {
    throw new Error(`an image of ${img.width} x ${img.height} pixels is not a whole number of ${side}-pixel merged patches`);
  }
  return (img.height / side) * (img.width / side);
}

/** Occurrences of `token` (the template token) in `text`. */
export function countImageTokens(text: string, token: string): number {
  return token === '' ? 0 : text.split(token).length - 1;
}

/** The text one image of `count` tokens takes in place of its template token, by the processor's rule. */
export function imageSequence(count: number, v: Pick<PromptVision, 'imageToken' | 'rule'>): string {
  const tokens = v.imageToken.repeat(count);
  // Gemma3Processor.full_image_sequence
  return v.rule.kind === 'gemma3' ? `\n\n${v.rule.boiToken}${tokens}${v.rule.eoiToken}\n\n` : tokens;
}

/** `text` with its i-th template token replaced by image i's sequence (the processors' expansion); the text must hold
 * one template token per image (countImageTokens). Each is replaced once: Gemma 3's sequence holds the boi token again. */
export function expandImageTokens(text: string, images: readonly Pick<PreparedImage, 'height' | 'width'>[], v: PromptVision): string {
  const pieces = text.split(v.templateToken);
  if (pieces.length - 1 !== images.length) throw placeholderMismatch(pieces.length - 1, images.length, v);
  let out = pieces[0]!;
  for (let i = 0; i < images.length; i++) out += imageSequence(imageTokenCount(images[i]!, v), v) + pieces[i + 1]!;
  return out;
}

/** The 422 for placeholders (null: image tokens that are not whole images) that do not match the images. */
export function placeholderMismatch(placeholders: number | null, images: number, v: PromptVision): EngineError {
  const s = (n: number) => (n === 1 ? '' : 's');
  const found = placeholders === null ? 'image tokens that are not whole images' : `${placeholders} image placeholder${s(placeholders)} (${v.templateToken})`;
  const fix = images === 0 ? `do not write ${v.templateToken} in the text, or send the image it stands for`
    : 'each image needs exactly one placeholder: check that the chat template renders image parts and that `truncate` keeps every image';
  return new EngineError('validation', `the prompt has ${found} for ${images} image${s(images)}; ${fix}`);
}

/**
 * The images' token ranges in the tokenized prompt: image i takes the next run of its token count of image tokens.
 * A 422 when the placeholders and the images do not match (as transformers refuses "image features and image
 * tokens do not match"): a chat template that drops image parts, a prompt that writes the image token itself, or a
 * `truncate` that cut into an image.
 */
export function imageRefs(ids: readonly number[], images: readonly PreparedImage[], v: PromptVision): ImageRef[] {
  const at: number[] = [];
  for (let i = 0; i < ids.length; i++) if (ids[i] === v.imageTokenId) at.push(i);
  const counts = images.map((img) => imageTokenCount(img, v));
  const total = counts.reduce((a, b) => a + b, 0);
  if (at.length !== total) throw placeholderMismatch(placeholdersIn(at, images.length, v), images.length, v);
  let next = 0;
  return images.map((img, i) => {
    const length = counts[i]!;
    const start = at[next]!;
    if (at[next + length - 1]! - start !== length - 1) {
      throw new EngineError('validation', `image ${i + 1}'s ${length} placeholder tokens are not consecutive in the tokenized prompt`);
    }
    next += length;
    return { key: img.key, start, length };
  });
}

/** How many images the image tokens at `at` stand for, where that can be told (null: tokens that are not whole
 * images). A fixed count divides them; for a dynamic tower each run of consecutive image tokens is one placeholder
 * (the template writes <|vision_start|> and <|vision_end|> around each), unless the runs are as many as the images
 * (then their lengths are what is wrong: a `truncate` that cut into one). */
function placeholdersIn(at: readonly number[], images: number, v: PromptVision): number | null {
  if (v.tokensPerImage !== undefined) return at.length % v.tokensPerImage === 0 ? at.length / v.tokensPerImage : null;
  const runs = at.filter((p, i) => i === 0 || at[i - 1] !== p - 1).length;
  return runs === images ? null : runs;
}
