// The engine's side of vision-language models: the image pipeline (coordinator/vision), the prompt's placeholders
// (prompt-images.ts), chat messages as templates read them, and the image data a step's new sequences need.
import type { ModelInfo, NewSequence } from '../../protocol/index.js';
import type { ChatContentPart, ChatMessage, TokenizerPool } from '../tokenizer/index.js';
import { DEFAULT_IMAGE_LIMITS, ImageProcessor, PreprocessorConfigError, type ImageInput, type ImageLimits, type PreparedImage } from '../vision/index.js';
import { EngineError, type EngineInfo, type GenerateRequest, type RenderMessage } from './types.js';
import { countImageTokens, expandImageTokens, imageRefs, placeholderMismatch, type PromptVision } from './prompt-images.js';

export class EngineVision {
  private constructor(readonly prompt: PromptVision, private readonly processor: ImageProcessor) {}

  /** For a model whose shards report ModelInfo.vision; null for a text-only one. Throws (at start) when the model's
   * preprocessor_config.json is missing or describes a processor weft does not reproduce. */
  static create(model: ModelInfo, tokenizer: TokenizerPool, limits: ImageLimits = DEFAULT_IMAGE_LIMITS): EngineVision | null {
    if (model.vision === undefined) return null;
    const { imageTokenId, tokensPerImage, imageSize } = model.vision;
    if (tokensPerImage === undefined || imageSize === undefined) {
      throw new Error('cannot serve images: the shards report a dynamic-resolution vision tower, which this coordinator ' +
        'does not prepare images for (only fixed-size towers such as LLaVA\'s CLIP)');
    }
    const imageToken = tokenizer.decodeSync([model.vision.imageTokenId], { skipSpecialTokens: false });
    if (imageToken === '' || tokenizer.tokenId(imageToken) !== model.vision.imageTokenId) {
      throw new Error(`the model's image token id ${model.vision.imageTokenId} is not a token of its tokenizer (decodes to ${JSON.stringify(imageToken)})`);
    }
    let processor: ImageProcessor;
    try {
      processor = ImageProcessor.create(tokenizer.modelDir, limits);
    } catch (e) {
      if (e instanceof PreprocessorConfigError) throw new Error(`cannot serve images: ${e.message}`, { cause: e });
      throw e;
    }
    return new EngineVision({ imageTokenId, tokensPerImage, imageSize, imageToken }, processor);
  }

  get info(): NonNullable<EngineInfo['vision']> {
    const { imageToken, imageTokenId, tokensPerImage, imageSize } = this.prompt;
    return { imageToken, imageTokenId, tokensPerImage, imageSize, maxImagesPerPrompt: this.processor.limits.maxImagesPerPrompt };
  }

  prepare(inputs: readonly ImageInput[], signal?: AbortSignal): Promise<PreparedImage[]> {
    return this.processor.load(inputs, signal);
  }

  /** The text to tokenize: each placeholder expanded; a 422 early when their number is not the images'. */
  expand(req: GenerateRequest): string {
    const n = req.images?.length ?? 0;
    const found = countImageTokens(req.inputs, this.prompt.imageToken);
    if (found !== n) throw placeholderMismatch(found, n, this.prompt);
    return found === 0 ? req.inputs : expandImageTokens(req.inputs, this.prompt);
  }

  refs(ids: readonly number[], req: GenerateRequest) {
    return imageRefs(ids, req.images ?? [], this.prompt);
  }

  close(): Promise<void> {
    return this.processor.close();
  }
}

/** A request's images for a model without a vision tower: a 422 that says so. */
export function refuseImages(modelId: string): EngineError {
  return new EngineError('validation', `${modelId} does not take images: it is a text-only model (its shards report no vision tower); ` +
    'send text only, or serve a vision-language model (LlavaForConditionalGeneration)');
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
