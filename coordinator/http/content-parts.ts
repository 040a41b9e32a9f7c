// Message content as the chat routes take it: a string, or content parts — text, and images for vision-language
// models (OpenAI's {"type": "image_url", "image_url": {"url", "detail"}}, also the {"image_url": "<url>"} shorthand
// some clients send; the Responses API's {"type": "input_image", "image_url"}). Text parts are joined without a
// separator (as LoRAX does); a message with images also keeps its parts, in order, for the chat template
// ({"type": "image"} where each image was: transformers' convention). And TGI's markdown images in /generate inputs.
import type { ChatContentPart } from '../tokenizer/index.js';
import type { GenerationEngine } from '../engine/types.js';
import type { ImageInput, PreparedImage } from '../vision/index.js';
import { validationError } from './errors.js';
import { asObject, str } from './validate.js';

/** A message's content: its text, and its parts when it has an image. */
export interface ParsedContent {
  text: string;
  parts?: ChatContentPart[];
}

const DETAILS = ['auto', 'low', 'high'];

/**
 * `v` (a message's content) at `at`; image parts are appended to `images` (null: images are not allowed here — the
 * error says where they are).
 */
export function contentOf(v: unknown, at: string, images: ImageInput[] | null = null): ParsedContent {
  if (v === undefined || v === null) throw validationError(`missing field \`${at}\``);
  if (typeof v === 'string') return { text: v };
  if (!Array.isArray(v)) throw validationError(`\`${at}\` must be a string or an array of content parts`);
  const parts: ChatContentPart[] = [];
  let hasImage = false;
  v.forEach((part, j) => {
    const p = asObject(part, `\`${at}[${j}]\``);
    const where = `${at}[${j}]`;
    if (p.type === 'image_url' || p.type === 'input_image') {
      if (images === null) throw validationError(`\`${where}\`: image parts are only for user messages`);
      images.push({ url: imageUrlOf(p, where), at: where });
      parts.push({ type: 'image' });
      hasImage = true;
      return;
    }
    if (p.type !== 'text') {
      throw typeof p.type === 'string'
        ? validationError(`\`${where}.type\` ${p.type.slice(0, 64)} is not supported: only text and image_url parts`)
        : validationError(`\`${where}.type\` must be "text" or "image_url"`);
    }
    for (const key of Object.keys(p)) {
      if (key !== 'type' && key !== 'text') throw validationError(`unknown field \`${where}.${key.slice(0, 64)}\``);
    }
    parts.push({ type: 'text', text: str(p.text, `${where}.text`) });
  });
  const text = parts.map((p) => (p.type === 'text' ? p.text : '')).join('');
  return hasImage ? { text, parts } : { text };
}

/** An image part's URL: image_url {url, detail} or the string shorthand (chat), or input_image's (Responses API). */
function imageUrlOf(p: Record<string, unknown>, at: string): string {
  const known = p.type === 'image_url' ? ['type', 'image_url'] : ['type', 'image_url', 'detail', 'file_id'];
  for (const key of Object.keys(p)) {
    if (!known.includes(key)) throw validationError(`unknown field \`${at}.${key.slice(0, 64)}\``);
  }
  if (p.type === 'input_image') {
    if (p.file_id !== undefined && p.file_id !== null) {
      throw validationError(`\`${at}.file_id\` is not supported: weft has no Files API; send the image as \`image_url\` (an http(s) or data: URL)`);
    }
    detailOf(p.detail, `${at}.detail`);
    if (p.image_url === undefined || p.image_url === null) throw validationError(`missing field \`${at}.image_url\``);
    return urlOf(p.image_url, `${at}.image_url`);
  }
  const v = p.image_url;
  if (v === undefined || v === null) throw validationError(`missing field \`${at}.image_url\``);
  if (typeof v === 'string') return urlOf(v, `${at}.image_url`);
  const o = asObject(v, `\`${at}.image_url\``);
  for (const key of Object.keys(o)) {
    if (key !== 'url' && key !== 'detail') throw validationError(`unknown field \`${at}.image_url.${key.slice(0, 64)}\``);
  }
  detailOf(o.detail, `${at}.image_url.detail`);
  if (o.url === undefined || o.url === null) throw validationError(`missing field \`${at}.image_url.url\``);
  return urlOf(o.url, `${at}.image_url.url`);
}

/** `detail` is OpenAI's resolution hint: a fixed-resolution tower (CLIP at 336 px) has one resolution, and a dynamic
 * one (Qwen2-VL) takes what the model's preprocessor_config.json bounds (as vLLM does), so any is accepted. */
function detailOf(v: unknown, at: string): void {
  if (v === undefined || v === null) return;
  if (typeof v !== 'string' || !DETAILS.includes(v)) throw validationError(`\`${at}\` must be one of ${DETAILS.join(', ')}`);
}

function urlOf(v: unknown, at: string): string {
  const url = str(v, at);
  if (url === '') throw validationError(`\`${at}\` cannot be empty`);
  return url;
}

/**
 * TGI's images in /generate inputs: markdown `![](url)` (empty alt text, TGI's pattern) becomes the model's image
 * placeholder (`<image>`; `<|vision_start|><|image_pad|><|vision_end|>`), its URL one of the request's images. Only
 * for a vision-language model (for others it is text).
 */
export function markdownImages(inputs: string, placeholder: string): { text: string; images: ImageInput[] } {
  const images: ImageInput[] = [];
  const text = inputs.replace(/!\[\]\(([^)]*)\)/g, (_, url: string) => {
    images.push({ url: url.trim(), at: `inputs (markdown image ${images.length + 1})` });
    return placeholder;
  });
  return { text, images };
}

/** A request's images loaded once (for all its choices): none without inputs; a 422 when the model takes none. */
export async function loadImages(engine: GenerationEngine, inputs: readonly ImageInput[]): Promise<PreparedImage[]> {
  if (inputs.length === 0) return [];
  if (engine.info.vision === undefined || engine.prepareImages === undefined) {
    throw validationError(`${engine.info.modelId} does not take images: it is a text-only model; send text only, or serve a ` +
      'vision-language model (LlavaForConditionalGeneration, Qwen2VLForConditionalGeneration, Gemma3ForConditionalGeneration, ' +
      'Mistral3ForConditionalGeneration, …)');
  }
  return engine.prepareImages(inputs);
}

/**
 * A chat prompt's tokens as the chat route feeds them to the model (/tokenize with `messages`, /chat_tokenize): its
 * images loaded as the chat route loads them (loadImages: a text-only model's 422, an image's 413 / 422 naming it) and
 * each placeholder expanded by the engine's prompt path (engine.tokenize with images).
 */
export async function tokenizeChatPrompt(engine: GenerationEngine, text: string, templated: boolean, images: readonly ImageInput[]) {
  return engine.tokenize(text, templated, await loadImages(engine, images));
}
