// The engine's side of vision-language models: the image pipeline (coordinator/vision), the prompt's placeholders
// (prompt-images.ts: each processor's rule), chat messages as templates read them, and the image data a step's new
// sequences need.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelInfo, NewSequence, VisionInfo } from '../../protocol/index.js';
import type { ChatContentPart, ChatMessage, TokenizerPool } from '../tokenizer/index.js';
import {
  DEFAULT_IMAGE_LIMITS, ImageProcessor, PreprocessorConfigError, outputSize, type ImageInput, type ImageLimits, type ImageProcessorConfig,
  shardImages, type Idefics3ProcessorConfig, type PixtralProcessorConfig, type PreparedImage,
} from '../vision/index.js';
import { imagePlaceholderText } from './image-placeholder.js';
import { EngineError, type EngineInfo, type GenerateRequest, type RenderMessage } from './types.js';
import {
  countImageTokens, expandImageTokens, imageRefs, placeholderMismatch, templateTokenOf, unexpandOffsets, type ImageTokenRule, type PromptVision,
} from './prompt-images.js';

export class EngineVision {
  private constructor(readonly prompt: PromptVision, private readonly processor: ImageProcessor) {}

  /** For a model whose shards report ModelInfo.vision; null for a text-only one. Throws (at start) when the model's
   * preprocessor_config.json is missing, describes a processor weft does not reproduce, or does not fit the tower
   * the shards report (a fixed size for a dynamic-resolution tower, other patch sizes, …). */
  static create(model: ModelInfo, tokenizer: TokenizerPool, limits: ImageLimits = DEFAULT_IMAGE_LIMITS): EngineVision | null {
    if (model.vision === undefined) return null;
    const vision = model.vision;
    const imageToken = tokenizer.decodeSync([vision.imageTokenId], { skipSpecialTokens: false });
    if (imageToken === '' || tokenizer.tokenId(imageToken) !== vision.imageTokenId) {
      throw new Error(`the model's image token id ${vision.imageTokenId} is not a token of its tokenizer (decodes to ${JSON.stringify(imageToken)})`);
    }
    let processor: ImageProcessor;
    try {
      processor = ImageProcessor.create(tokenizer.modelDir, limits);
    } catch (e) {
      if (e instanceof PreprocessorConfigError) throw new Error(`cannot serve images: ${e.message}`, { cause: e });
      throw e;
    }
    const mismatch = towerMismatch(vision, processor.config);
    if (mismatch !== null) {
      void processor.close();
      throw new Error(`cannot serve images: ${mismatch}`);
    }
    let rule: ImageTokenRule;
    try {
      rule = tokenRule(processor.config, tokenizer, imageToken);
    } catch (e) {
      void processor.close();
      throw e;
    }
    const templateToken = templateTokenOf(rule, imageToken);
    const specialTokens = [...tokenizer.specialTokenIds].map((id) => tokenizer.decodeSync([id], { skipSpecialTokens: false }));
    const imagePlaceholder = imagePlaceholderText(templateToken, { chatTemplate: tokenizer.chatTemplate, bosToken: tokenizer.bosToken,
      eosToken: tokenizer.eosToken, specialTokens });
    return new EngineVision({ ...vision, imageToken, templateToken, imagePlaceholder, rule }, processor);
  }

  get info(): NonNullable<EngineInfo['vision']> {
    const { imageToken, templateToken, imagePlaceholder, imageTokenId, tokensPerImage, imageSize, patchSize, mergeSize, bidirectionalImages, rowBreaks } = this.prompt;
    return { imageToken, imagePlaceholder, imageTokenId, ...(templateToken !== imageToken ? { templateToken } : {}),
      ...(tokensPerImage !== undefined ? { tokensPerImage } : {}),
      ...(imageSize !== undefined ? { imageSize } : {}), ...(patchSize !== undefined ? { patchSize } : {}),
      ...(mergeSize !== undefined ? { mergeSize } : {}), ...(bidirectionalImages === true ? { bidirectionalImages } : {}),
      ...(rowBreaks === true ? { rowBreaks } : {}), maxImagesPerPrompt: this.processor.limits.maxImagesPerPrompt };
  }

  prepare(inputs: readonly ImageInput[], signal?: AbortSignal): Promise<PreparedImage[]> {
    return this.processor.load(inputs, signal);
  }

  /** The text to tokenize: each placeholder expanded to its image's tokens; a 422 early when their number is not the
   * images'. */
  expand(req: Pick<GenerateRequest, 'inputs' | 'images'>): string {
    const images = req.images ?? [];
    const found = countImageTokens(req.inputs, this.prompt.templateToken);
    if (found !== images.length) throw placeholderMismatch(found, images.length, this.prompt);
    return found === 0 ? req.inputs : expandImageTokens(req.inputs, images, this.prompt);
  }

  refs(ids: readonly number[], req: Pick<GenerateRequest, 'images'>) {
    return imageRefs(ids, req.images ?? [], this.prompt);
  }

  /** Token spans of the expanded text (expand) as spans of `req.inputs`: an image's tokens span its placeholder. */
  placeholderSpans<S extends { start: number; stop: number }>(req: Pick<GenerateRequest, 'inputs' | 'images'>, spans: readonly S[]): S[] {
    const at = unexpandOffsets(req.inputs, req.images ?? [], this.prompt);
    return spans.map((s) => ({ ...s, start: at(s.start, false), stop: at(s.stop, true) }));
  }

  close(): Promise<void> {
    return this.processor.close();
  }
}

/** Why the preprocessor's images do not fit the tower the shards report (null: they do), naming both sides' values. */
export function towerMismatch(v: VisionInfo, c: ImageProcessorConfig): string | null {
  const fixed = v.tokensPerImage !== undefined && v.imageSize !== undefined;
  const dynamic = v.patchSize !== undefined && v.mergeSize !== undefined;
  if (fixed === dynamic) {
    return `the shards report an incomplete vision tower (${JSON.stringify(v)}): either tokensPerImage and imageSize, or patchSize and mergeSize`;
  }
  if (c.kind === 'pixtral') return pixtralMismatch(v, c, dynamic);
  if (c.kind === 'idefics3') return idefics3Mismatch(v, c, dynamic);
  if (v.rowBreaks === true) {
    return `the shards report a vision tower whose images end each row of tokens with a break token (rowBreaks: Pixtral, Mistral 3) ` +
      `but preprocessor_config.json describes ${PROCESSOR_NAMES[c.kind]}, whose prompts have none (PixtralImageProcessor's do)`;
  }
  if (c.kind === 'qwen2_vl') {
    if (!dynamic) {
      return `preprocessor_config.json describes Qwen2VLImageProcessor (dynamic resolution) but the shards report a fixed-size vision tower ` +
        `(${v.imageSize} x ${v.imageSize} pixels, ${v.tokensPerImage} tokens per image)`;
    }
    if (c.patchSize !== v.patchSize || c.mergeSize !== v.mergeSize) {
      return `preprocessor_config.json has patch_size ${c.patchSize} and merge_size ${c.mergeSize} but the shards' vision tower has ` +
        `patch size ${v.patchSize} and merge size ${v.mergeSize} (config.json's vision_config): they must agree`;
    }
    return null;
  }
  const name = c.kind === 'gemma3' ? 'Gemma3ImageProcessor' : 'CLIPImageProcessor';
  if (dynamic) {
    return `the shards report a dynamic-resolution vision tower (patch size ${v.patchSize}, merge size ${v.mergeSize}) but ` +
      `preprocessor_config.json describes ${name}, which gives every image one fixed size`;
  }
  if (c.kind === 'gemma3' && c.imageSeqLength !== v.tokensPerImage) {
    return `processor_config.json gives Gemma3Processor an image_seq_length of ${c.imageSeqLength} tokens per image but the shards' model ` +
      `takes ${v.tokensPerImage} (config.json's mm_tokens_per_image): they must agree`;
  }
  const size = outputSize(c);
  if (size === null) {
    return `preprocessor_config.json's CLIPImageProcessor gives images of varying sizes (no center crop, a shortest-edge resize) but the ` +
      `shards' vision tower takes ${v.imageSize} x ${v.imageSize} pixels`;
  }
  if (size[0] !== v.imageSize || size[1] !== v.imageSize) {
    return `preprocessor_config.json gives ${size[1]} x ${size[0]} pixel images (its ${c.kind === 'gemma3' ? 'size' : 'crop_size or size'}) but the shards' vision tower ` +
      `takes ${v.imageSize} x ${v.imageSize} (config.json's vision_config.image_size)`;
  }
  return null;
}

const PROCESSOR_NAMES: Record<ImageProcessorConfig['kind'], string> = {
  clip: 'CLIPImageProcessor', qwen2_vl: 'Qwen2VLImageProcessor', gemma3: 'Gemma3ImageProcessor', pixtral: 'PixtralImageProcessor',
  idefics3: 'Idefics3ImageProcessor',
};

/** towerMismatch for Idefics3ImageProcessor / SmolVLMImageProcessor: a fixed-size tower taking every tile at
 * max_image_size.longest_edge, image_seq_len tokens each. */
function idefics3Mismatch(v: VisionInfo, c: Idefics3ProcessorConfig, dynamic: boolean): string | null {
  const name = c.processorClass === 'SmolVLMProcessor' ? 'SmolVLMImageProcessor' : 'Idefics3ImageProcessor';
  if (dynamic) {
    return `the shards report a dynamic-resolution vision tower (patch size ${v.patchSize}, merge size ${v.mergeSize}) but ` +
      `preprocessor_config.json describes ${name}, which gives tiles of one fixed size`;
  }
  if (v.rowBreaks === true || v.bidirectionalImages === true) {
    return `the shards report a vision tower whose image tokens ${v.rowBreaks === true ? 'end each row with a break token (rowBreaks)' : 'attend both ways (bidirectionalImages)'} ` +
      `but preprocessor_config.json describes ${name}, whose tiles have neither`;
  }
  if (c.tileSize !== v.imageSize) {
    return `preprocessor_config.json gives ${name} tiles of ${c.tileSize} x ${c.tileSize} pixels (max_image_size.longest_edge) but the ` +
      `shards' vision tower takes ${v.imageSize} x ${v.imageSize} (config.json's vision_config.image_size): they must agree`;
  }
  if (c.imageSeqLen !== v.tokensPerImage) {
    return `processor_config.json gives ${c.processorClass} an image_seq_len of ${c.imageSeqLen} tokens per tile but the shards' model takes ` +
      `${v.tokensPerImage} ((image_size / patch_size)² / scale_factor² of config.json): they must agree`;
  }
  return null;
}

/** towerMismatch for PixtralImageProcessor: a dynamic-resolution tower with row breaks, PixtralProcessor's patch_size
 * and spatial_merge_size (processor_config.json) its patch and merge sizes. */
function pixtralMismatch(v: VisionInfo, c: PixtralProcessorConfig, dynamic: boolean): string | null {
  if (!dynamic) {
    return `preprocessor_config.json describes PixtralImageProcessor (dynamic resolution) but the shards report a fixed-size vision tower ` +
      `(${v.imageSize} x ${v.imageSize} pixels, ${v.tokensPerImage} tokens per image)`;
  }
  if (v.rowBreaks !== true) {
    return `preprocessor_config.json describes PixtralImageProcessor, whose prompts end each row of image tokens with ${c.breakToken}, but the ` +
      `shards' model reports no row breaks (rowBreaks; patch size ${v.patchSize}, merge size ${v.mergeSize}): it is not a Pixtral tower`;
  }
  if (c.patchSize !== v.patchSize || c.mergeSize !== v.mergeSize) {
    return `processor_config.json gives PixtralProcessor patch_size ${c.patchSize} and spatial_merge_size ${c.mergeSize} but the shards' vision ` +
      `tower has patch size ${v.patchSize} and merge size ${v.mergeSize} (config.json's vision_config.patch_size, spatial_merge_size): they must agree`;
  }
  return null;
}

/**
 * The processor's rule for the image placeholders (prompt-images.ts): Gemma3Processor's for Gemma3ImageProcessor (its
 * begin- and end-of-image tokens from tokenizer_config.json's boi_token / eoi_token, as transformers' tokenizer
 * reads them, else Gemma 3's `<start_of_image>` / `<end_of_image>`; both must be tokens of the tokenizer), else the image
 * token repeated (LlavaProcessor, Qwen2VLProcessor).
 */
export function tokenRule(c: ImageProcessorConfig, tokenizer: Pick<TokenizerPool, 'modelDir' | 'tokenId'>, imageToken?: string): ImageTokenRule {
  if (c.kind === 'pixtral') return pixtralRule(c, tokenizer, imageToken);
  if (c.kind === 'idefics3') return idefics3Rule(c, tokenizer, imageToken);
  if (c.kind !== 'gemma3') return { kind: 'repeat' };
  const named = tokenizerConfigTokens(tokenizer.modelDir, ['boi_token', 'eoi_token']);
  const boiToken = named.boi_token ?? '<start_of_image>';
  const eoiToken = named.eoi_token ?? '<end_of_image>';
  for (const [what, token] of [['begin-of-image (boi_token)', boiToken], ['end-of-image (eoi_token)', eoiToken]] as const) {
    if (tokenizer.tokenId(token) === null) {
      throw new Error(`cannot serve images: Gemma3Processor needs the ${what} token ${JSON.stringify(token)}, which is not a token of the model's tokenizer`);
    }
  }
  return { kind: 'gemma3', boiToken, eoiToken };
}

/** PixtralProcessor's rule: its image_break_token / image_end_token (processor_config.json, else [IMG_BREAK] / [IMG_END]),
 * tokens of the tokenizer; its image_token must be the shards' image token (`imageToken`, decoded from imageTokenId). */
function pixtralRule(c: PixtralProcessorConfig, tokenizer: Pick<TokenizerPool, 'tokenId'>, imageToken: string | undefined): ImageTokenRule {
  if (imageToken !== undefined && c.imageToken !== imageToken) {
    throw new Error(`cannot serve images: processor_config.json gives PixtralProcessor the image token ${JSON.stringify(c.imageToken)} but the ` +
      `shards' model replaces token ${JSON.stringify(imageToken)} (config.json's image_token_index): they must agree`);
  }
  const ids: number[] = [];
  for (const [what, token] of [['row-break (image_break_token)', c.breakToken], ['end-of-image (image_end_token)', c.endToken]] as const) {
    const id = tokenizer.tokenId(token);
    if (id === null) {
      throw new Error(`cannot serve images: PixtralProcessor needs the ${what} token ${JSON.stringify(token)}, which is not a token of the model's tokenizer`);
    }
    ids.push(id);
  }
  return { kind: 'pixtral', breakToken: c.breakToken, endToken: c.endToken, breakTokenId: ids[0]!, endTokenId: ids[1]! };
}

/** Idefics3Processor's rule (its fixed `<fake_token_around_image>`, `<image>`, `<global-img>`) or SmolVLMProcessor's (the
 * tokenizer's fake_image_token, image_token, global_image_token: tokenizer_config.json, else those); the image token must
 * be the shards' (`imageToken`), the fake and global tokens tokens of the tokenizer. */
function idefics3Rule(c: Idefics3ProcessorConfig, tokenizer: Pick<TokenizerPool, 'modelDir' | 'tokenId'>, imageToken: string | undefined): ImageTokenRule {
  const named = c.processorClass === 'SmolVLMProcessor'
    ? tokenizerConfigTokens(tokenizer.modelDir, ['fake_image_token', 'image_token', 'global_image_token']) : {};
  const fakeToken = named.fake_image_token ?? '<fake_token_around_image>';
  const globalToken = named.global_image_token ?? '<global-img>';
  const procImage = named.image_token ?? '<image>';
  if (imageToken !== undefined && procImage !== imageToken) {
    throw new Error(`cannot serve images: ${c.processorClass}'s image token is ${JSON.stringify(procImage)} but the shards' model replaces token ` +
      `${JSON.stringify(imageToken)} (config.json's image_token_id): they must agree`);
  }
  const ids: number[] = [];
  for (const [what, token] of [['fake_token_around_image', fakeToken], ['global image', globalToken]] as const) {
    const id = tokenizer.tokenId(token);
    if (id === null) {
      throw new Error(`cannot serve images: ${c.processorClass} needs the ${what} token ${JSON.stringify(token)}, which is not a token of the model's tokenizer`);
    }
    ids.push(id);
  }
  return { kind: 'idefics3', fakeToken, globalToken, globalTokenId: ids[1]! };
}

/** Named tokens (`keys`) from tokenizer_config.json: top level (transformers 4's files) or under extra_special_tokens. */
function tokenizerConfigTokens<K extends string>(modelDir: string, keys: readonly K[]): Partial<Record<K, string>> {
  const file = join(modelDir, 'tokenizer_config.json');
  if (!existsSync(file)) return {};
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    return {};  // the tokenizer loaded it already; a file it could not read would have failed there
  }
  const extra = typeof raw.extra_special_tokens === 'object' && raw.extra_special_tokens !== null && !Array.isArray(raw.extra_special_tokens)
    ? raw.extra_special_tokens as Record<string, unknown> : {};
  const text = (key: string): string | undefined => {
    const v = raw[key] ?? extra[key];
    if (typeof v === 'string') return v;
    // an AddedToken as JSON: {"content": "<start_of_image>", …}
    if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
    return undefined;
  };
  const out: Partial<Record<K, string>> = {};
  for (const k of keys) {
    const t = text(k);
    if (t !== undefined) out[k] = t;
  }
  return out;
}

/** A request's images for a model without a vision tower: a 422 that says so. */
export function refuseImages(modelId: string): EngineError {
  return new EngineError('validation', `${modelId} does not take images: it is a text-only model (its shards report no vision tower); ` +
    'send text only, or serve a vision-language model (LlavaForConditionalGeneration, Qwen2VLForConditionalGeneration, Gemma3ForConditionalGeneration, ' +
    'Mistral3ForConditionalGeneration, Idefics3ForConditionalGeneration, SmolVLMForConditionalGeneration, …)');
}

/**
 * Chat messages as the template gets them: plain strings, or — when any message has images, or the model takes
 * images and its template loops over content parts — every message's content as parts. A message whose text was
 * changed after its parts were made (a tool prompt appended) keeps its parts with the new text after them.
 */
export function templateMessages(messages: readonly RenderMessage[], asParts: boolean): ChatMessage[] {
  if (!asParts && !messages.some((m) => m.parts !== undefined)) return messages.map(({ parts: _, ...m }) => m);
  return messages.map(({ parts, ...m }) => ({ ...m, content: partsOf(m.content, parts) }));
}

function partsOf(content: string, parts: ChatContentPart[] | undefined): ChatContentPart[] {
  if (parts === undefined) return [{ type: 'text', text: content }];
  const joined = parts.map((p) => (p.type === 'text' ? p.text : '')).join('');
  if (content === joined) return parts;
  if (content.startsWith(joined)) return [...parts, { type: 'text', text: content.slice(joined.length) }];
  return [{ type: 'text', text: content }];
}

/** The images a step's new sequences refer to, each once (a rank keeps an image by key while it is needed). */
export function stepImages(newSeqs: readonly NewSequence[], imagesOf: (seqId: string) => readonly PreparedImage[] | undefined): PreparedImage[] {
  const out = new Map<string, PreparedImage>();
  for (const ns of newSeqs) {
    if (!ns.images?.length) continue;
    const images = (imagesOf(ns.seqId) ?? []).flatMap((img) => shardImages(img));
    for (const ref of ns.images) {
      const img = images.find((i) => i.key === ref.key);
      if (img === undefined) throw new Error(`sequence ${ns.seqId} refers to image ${ref.key}, which its request does not hold`);
      out.set(img.key, img);
    }
  }
  return [...out.values()];
}
