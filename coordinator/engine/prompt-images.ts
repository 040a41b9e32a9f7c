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
// - PixtralProcessor (Mistral 3): the template writes the image token (`[IMG]`); each becomes the image's rows of
//   image tokens, each row ended by a break token (`[IMG_BREAK]`), the last by the end token (`[IMG_END]`) instead.
//   The shards report rowBreaks: an image's ImageRef covers its whole run, breaks included (rows·(cols + 1) tokens),
//   its features filling only the image-token positions.
// - Idefics3Processor, SmolVLMProcessor: the template writes the image token (`<image>`); each becomes the image's
//   tiles, each tile `<fake_token_around_image><row_r_col_c>` + image token × image_seq_len, a newline after each row of
//   tiles, then "\n<fake_token_around_image><global-img>" + image token × image_seq_len + "<fake_token_around_image>"
//   for the global image (an image not split: only that, without the newlines). Each tile is one image for the shards:
//   one ImageRef per run of image_seq_len image tokens, in prompt order.
import type { ImageRef, VisionInfo } from '../../protocol/index.js';
import { shardImages, type PreparedImage } from '../vision/index.js';
import { EngineError } from './types.js';

/** How the model's processor turns what its chat template writes for one image into that image's tokens. */
export type ImageTokenRule =
  /** LlavaProcessor, Qwen2VLProcessor: the image token is repeated to the image's token count. */
  | { kind: 'repeat' }
  /** Gemma3Processor: the begin-of-image token becomes "\n\n" + boi + image token × count + eoi + "\n\n". */
  | { kind: 'gemma3'; boiToken: string; eoiToken: string }
  /** PixtralProcessor: the image token becomes rows of (image token × cols + break token), the last break the end token. */
  | { kind: 'pixtral'; breakToken: string; endToken: string; breakTokenId: number; endTokenId: number }
  /** Idefics3Processor, SmolVLMProcessor: the image token becomes the image's tiles and global image, each framed by the
   * fake token (`<fake_token_around_image>`) and tagged (`<row_r_col_c>`, the global token `<global-img>`). */
  | { kind: 'idefics3'; fakeToken: string; globalToken: string; globalTokenId: number };

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

/** The rows and columns of image tokens of a dynamic-resolution tower's image (already resized). */
export function imageGrid(img: Pick<PreparedImage, 'height' | 'width'>, v: Pick<PromptVision, 'patchSize' | 'mergeSize'>): [number, number] {
  const side = v.patchSize! * v.mergeSize!;
  if (img.height % side !== 0 || img.width % side !== 0) {
    throw new Error(`an image of ${img.width} x ${img.height} pixels is not a whole number of ${side}-pixel merged patches`);
  }
  return [img.height / side, img.width / side];
}

/** The image tokens `img` takes (its features): the tower's fixed count, or its (already resized) grid's merged
 * patches. */
export function imageTokenCount(img: Pick<PreparedImage, 'height' | 'width'>, v: PromptVision): number {
  if (v.tokensPerImage !== undefined) return v.tokensPerImage;
  const [rows, cols] = imageGrid(img, v);
  return rows * cols;
}

/** Occurrences of `token` (the template token) in `text`. */
export function countImageTokens(text: string, token: string): number {
  return token === '' ? 0 : text.split(token).length - 1;
}

/** The text one image of `count` image tokens takes in place of its template token, by the processor's rule (one
 * without row breaks: Pixtral's depends on the rows and columns, rowSequence). */
export function imageSequence(count: number, v: Pick<PromptVision, 'imageToken' | 'rule'>): string {
  if (v.rule.kind === 'pixtral' || v.rule.kind === 'idefics3') {
    throw new Error(`imageSequence: a ${v.rule.kind} image's sequence depends on its rows and columns (rowSequence, tiledSequence)`);
  }
  const tokens = v.imageToken.repeat(count);
  // Gemma3Processor.full_image_sequence
  return v.rule.kind === 'gemma3' ? `\n\n${v.rule.boiToken}${tokens}${v.rule.eoiToken}\n\n` : tokens;
}

/** PixtralProcessor.replace_image_token: `rows` rows of image token × `cols` + break token, the last break the end
 * token. */
export function rowSequence(rows: number, cols: number, imageToken: string, rule: { breakToken: string; endToken: string }): string {
  const row = imageToken.repeat(cols);
  return `${row}${rule.breakToken}`.repeat(rows - 1) + row + rule.endToken;
}

/** Idefics3Processor's / SmolVLMProcessor's replace_image_token (_prompt_split_image, _prompt_single_image): an image
 * split into `rows` × `cols` tiles of `seqLen` image tokens each, then its global image; 0 × 0: the global image alone. */
export function tiledSequence(rows: number, cols: number, seqLen: number, imageToken: string, rule: { fakeToken: string; globalToken: string }): string {
  const tokens = imageToken.repeat(seqLen);
  const global = `${rule.fakeToken}${rule.globalToken}${tokens}${rule.fakeToken}`;
  if (rows === 0 && cols === 0) return global;
  let text = '';
  for (let r = 1; r <= rows; r++) {
    for (let c = 1; c <= cols; c++) text += `${rule.fakeToken}<row_${r}_col_${c}>${tokens}`;
    text += '\n';
  }
  return `${text}\n${global}`;
}

/** The text image `img` takes in place of its template token. */
function sequenceOf(img: Pick<PreparedImage, 'height' | 'width' | 'tiles'>, v: PromptVision): string {
  if (v.rule.kind === 'idefics3') return tiledSequence(img.tiles?.rows ?? 0, img.tiles?.cols ?? 0, v.tokensPerImage!, v.imageToken, v.rule);
  if (v.rule.kind !== 'pixtral') return imageSequence(imageTokenCount(img, v), v);
  const [rows, cols] = imageGrid(img, v);
  return rowSequence(rows, cols, v.imageToken, v.rule);
}

/** `text` with its i-th template token replaced by image i's sequence (the processors' expansion); the text must hold
 * one template token per image (countImageTokens). Each is replaced once: Gemma 3's sequence holds the boi token again. */
export function expandImageTokens(text: string, images: readonly Pick<PreparedImage, 'height' | 'width' | 'tiles'>[], v: PromptVision): string {
  const pieces = text.split(v.templateToken);
  if (pieces.length - 1 !== images.length) throw placeholderMismatch(pieces.length - 1, images.length, v);
  let out = pieces[0]!;
  for (let i = 0; i < images.length; i++) out += sequenceOf(images[i]!, v) + pieces[i + 1]!;
  return out;
}

/**
 * An offset into expandImageTokens' text mapped back onto `text`: one inside image i's sequence onto its placeholder
 * (its start, or with `stop` its end), one outside shifted by the sequences before it.
 */
export function unexpandOffsets(text: string, images: readonly Pick<PreparedImage, 'height' | 'width' | 'tiles'>[], v: PromptVision): (offset: number, stop: boolean) => number {
  const pieces = text.split(v.templateToken);
  const token = v.templateToken.length;
  const ranges: { at: number; from: number; length: number }[] = [];
  let at = pieces[0]!.length;
  let from = at;
  for (let i = 0; i < images.length && i + 1 < pieces.length; i++) {
    const length = sequenceOf(images[i]!, v).length;
    ranges.push({ at, from, length });
    at += token + pieces[i + 1]!.length;
    from += length + pieces[i + 1]!.length;
  }
  return (offset, stop) => {
    let shift = 0;
    for (const r of ranges) {
      if (stop ? offset <= r.from : offset < r.from) break;
      if (stop ? offset <= r.from + r.length : offset < r.from + r.length) return stop ? r.at + token : r.at;
      shift += r.length - token;
    }
    return offset - shift;
  };
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
  if (v.rule.kind === 'pixtral') return rowBreakRefs(ids, images, v, v.rule);
  if (v.rule.kind === 'idefics3') return tileRefs(ids, images, v, v.rule);
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

/**
 * imageRefs with row breaks (PixtralProcessor): image i takes the next rows·cols image tokens, laid out as the
 * processor writes them — each row of cols image tokens followed by the break token, the last row by the end token —
 * and its range covers them all, breaks included: rows·(cols + 1) positions from its first image token.
 */
function rowBreakRefs(ids: readonly number[], images: readonly PreparedImage[], v: PromptVision,
  rule: Extract<ImageTokenRule, { kind: 'pixtral' }>): ImageRef[] {
  const at: number[] = [];
  for (let i = 0; i < ids.length; i++) if (ids[i] === v.imageTokenId) at.push(i);
  const grids = images.map((img) => imageGrid(img, v));
  const total = grids.reduce((a, [rows, cols]) => a + rows * cols, 0);
  if (at.length !== total) throw placeholderMismatch(rowBreakRuns(ids, images.length, v, rule), images.length, v);
  let next = 0;
  return images.map((img, i) => {
    const [rows, cols] = grids[i]!;
    const start = at[next]!;
    for (let r = 0; r < rows; r++) {
      const row = start + r * (cols + 1);
      const ok = ids.slice(row, row + cols).every((t) => t === v.imageTokenId) && ids[row + cols] === (r === rows - 1 ? rule.endTokenId : rule.breakTokenId);
      if (!ok) {
        throw new EngineError('validation', `image ${i + 1}'s ${rows} rows of ${cols} image tokens are not laid out as the processor writes them ` +
          `(each row ended by ${rule.breakToken}, the last by ${rule.endToken}) in the tokenized prompt`);
      }
    }
    next += rows * cols;
    return { key: img.key, start, length: rows * (cols + 1) };
  });
}

/** How many images the runs of image, break and end tokens stand for (each run ends at an end token); null when they
 * are as many as the images (then their lengths are what is wrong: a `truncate` that cut into one). */
function rowBreakRuns(ids: readonly number[], images: number, v: PromptVision, rule: Extract<ImageTokenRule, { kind: 'pixtral' }>): number | null {
  let runs = 0;
  let inRun = false;
  for (const t of ids) {
    const part = t === v.imageTokenId || t === rule.breakTokenId || t === rule.endTokenId;
    if (part && !inRun) runs++;
    inRun = part && t !== rule.endTokenId;
  }
  return runs === images ? null : runs;
}

/**
 * imageRefs for a tiling processor (Idefics3Processor, SmolVLMProcessor): every tile of every image (its split tiles,
 * then its global image: shardImages) takes the next run of exactly tokensPerImage (image_seq_len) image tokens, and is
 * one ImageRef over that run, in prompt order.
 */
function tileRefs(ids: readonly number[], images: readonly PreparedImage[], v: PromptVision, rule: Extract<ImageTokenRule, { kind: 'idefics3' }>): ImageRef[] {
  const at: number[] = [];
  for (let i = 0; i < ids.length; i++) if (ids[i] === v.imageTokenId) at.push(i);
  const length = v.tokensPerImage!;
  const tiles = images.map((img) => shardImages(img));
  const total = tiles.reduce((a, t) => a + t.length * length, 0);
  if (at.length !== total) {
    const globals = ids.filter((t) => t === rule.globalTokenId).length;
    throw placeholderMismatch(globals === images.length ? null : globals, images.length, v);
  }
  const refs: ImageRef[] = [];
  let next = 0;
  tiles.forEach((parts, i) => parts.forEach((part, j) => {
    const start = at[next]!;
    const whole = at[next + length - 1]! - start === length - 1 && ids[start - 1] !== v.imageTokenId && ids[start + length] !== v.imageTokenId;
    if (!whole) {
      const which = j === parts.length - 1 ? 'global image' : `tile ${j + 1} of ${parts.length - 1}`;
      throw new EngineError('validation', `image ${i + 1}'s ${which} is not a run of ${length} consecutive image tokens in the tokenized prompt`);
    }
    next += length;
    refs.push({ key: part.key, start, length });
  }));
  return refs;
}
