// The engine's side of vision-language models: the image pipeline (coordinator/vision), the prompt's placeholders
// (prompt-images.ts), chat messages as templates read them, and the image data a step's new sequences need.
import type { ModelInfo, NewSequence, VisionInfo } from '../../protocol/index.js';
import type { ChatContentPart, ChatMessage, TokenizerPool } from '../tokenizer/index.js';
import {
  DEFAULT_IMAGE_LIMITS, ImageProcessor, PreprocessorConfigError, outputSize, type ImageInput, type ImageLimits, type ImageProcessorConfig, type PreparedImage,
} from '../vision/index.js';
import { imagePlaceholderText } from './image-placeholder.js';
import { EngineError, type EngineInfo, type GenerateRequest, type RenderMessage } from './types.js';
import { countImageTokens, expandImageTokens, imageRefs, placeholderMismatch, type PromptVision } from './prompt-images.js';

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
    const specialTokens = [...tokenizer.specialTokenIds].map((id) => tokenizer.decodeSync([id], { skipSpecialTokens: false }));
    const imagePlaceholder = imagePlaceholderText(imageToken, { chatTemplate: tokenizer.chatTemplate, bosToken: tokenizer.bosToken,
      eosToken: tokenizer.eosToken, specialTokens });
    return new EngineVision({ ...vision, imageToken, imagePlaceholder }, processor);
  }

  get info(): NonNullable<EngineInfo['vision']> {
    const { imageToken, imagePlaceholder, imageTokenId, tokensPerImage, imageSize, patchSize, mergeSize } = this.prompt;
    return { imageToken, imagePlaceholder, imageTokenId, ...(tokensPerImage !== undefined ? { tokensPerImage } : {}),
      ...(imageSize !== undefined ? { imageSize } : {}), ...(patchSize !== undefined ? { patchSize } : {}),
      ...(mergeSize !== undefined ? { mergeSize } : {}), maxImagesPerPrompt: this.processor.limits.maxImagesPerPrompt };
  }

  prepare(inputs: readonly ImageInput[], signal?: AbortSignal): Promise<PreparedImage[]> {
    return this.processor.load(inputs, signal);
  }

  /** The text to tokenize: each placeholder expanded to its image's tokens; a 422 early when their number is not the
   * images'. */
  expand(req: GenerateRequest): string {
    const images = req.images ?? [];
    const found = countImageTokens(req.inputs, this.prompt.imageToken);
    if (found !== images.length) throw placeholderMismatch(found, images.length, this.prompt);
    return found === 0 ? req.inputs : expandImageTokens(req.inputs, images, this.prompt);
  }

  refs(ids: readonly number[], req: GenerateRequest) {
    return imageRefs(ids, req.images ?? [], this.prompt);
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
  if (dynamic) {
    return `the shards report a dynamic-resolution vision tower (patch size ${v.patchSize}, merge size ${v.mergeSize}) but ` +
      'preprocessor_config.json describes CLIPImageProcessor, which gives every image one fixed size';
  }
  const size = outputSize(c);
  if (size === null) {
    return `preprocessor_config.json's CLIPImageProcessor gives images of varying sizes (no center crop, a shortest-edge resize) but the ` +
      `shards' vision tower takes ${v.imageSize} x ${v.imageSize} pixels`;
  }
  if (size[0] !== v.imageSize || size[1] !== v.imageSize) {
    return `preprocessor_config.json gives ${size[1]} x ${size[0]} pixel images (its crop_size or size) but the shards' vision tower ` +
      `takes ${v.imageSize} x ${v.imageSize} (config.json's vision_config.image_size)`;
  }
  return null;
}

/** A request's images for a model without a vision tower: a 422 that says so. */
export function refuseImages(modelId: string): EngineError {
  return new EngineError('validation', `${modelId} does not take images: it is a text-only model (its shards report no vision tower); ` +
    'send text only, or serve a vision-language model (LlavaForConditionalGeneration, Qwen2VLForConditionalGeneration, …)');
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
    const images = imagesOf(ns.seqId) ?? [];
    for (const ref of ns.images) {
      const img = images.find((i) => i.key === ref.key);
      if (img === undefined) throw new Error(`sequence ${ns.seqId} refers to image ${ref.key}, which its request does not hold`);
      out.set(img.key, img);
    }
  }
  return [...out.values()];
}
