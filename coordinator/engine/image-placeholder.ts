// The text that stands for one image where no chat template writes it: TGI's markdown images in /generate inputs.
// TGI writes each model's image token sequence (`<image>` for LLaVA; `<|vision_start|><|image_pad|><|vision_end|>`
// for Qwen2-VL); weft asks the model's own chat template instead of keeping a list: it renders a user message
// "text, image, text" and keeps, from what stands between the two texts, the image token with the special tokens
// written right around it (the template's wrapper; text such as Qwen's optional "Picture 1: " is not part of it).
// A template that renders images elsewhere (LLaVA-1.5's puts them before all text) gives the bare image token; a model
// without a template whose tokenizer has Qwen2-VL's vision tokens gets Qwen2-VL's wrapper (as TGI writes it).
import { renderChat, templateIteratesContent } from '../tokenizer/index.js';

// Sentinels no template writes itself.
const BEFORE = 'WEFT_IMAGE_BEFORE';
const AFTER = 'WEFT_IMAGE_AFTER';

export interface PlaceholderSource {
  chatTemplate: string | null;
  bosToken?: string | null;
  eosToken?: string | null;
  /** The texts of the tokenizer's special tokens (added tokens marked special). */
  specialTokens: readonly string[];
}

/** The image placeholder text for `imageToken` (see above); the bare image token when the template does not tell. */
export function imagePlaceholderText(imageToken: string, src: PlaceholderSource): string {
  const between = renderedImagePart(src);
  if (between === null || countOf(between, imageToken) !== 1) {
    const qwen = imageToken === '<|image_pad|>' && src.specialTokens.includes('<|vision_start|>') && src.specialTokens.includes('<|vision_end|>');
    return qwen ? `<|vision_start|>${imageToken}<|vision_end|>` : imageToken;
  }
  const specials = [...new Set(src.specialTokens)].filter((t) => t !== '' && t !== imageToken).sort((a, b) => b.length - a.length);
  const at = between.indexOf(imageToken);
  let start = at, end = at + imageToken.length;
  for (let grown = true; grown;) {
    grown = false;
    for (const t of specials) {
      if (between.startsWith(t, start - t.length) && start - t.length >= 0) {
        start -= t.length;
        grown = true;
        break;
      }
      if (between.startsWith(t, end)) {
        end += t.length;
        grown = true;
        break;
      }
    }
  }
  return between.slice(start, end);
}

/** What the template writes between a user message's two text parts around an image part; null when it cannot say. */
function renderedImagePart(src: PlaceholderSource): string | null {
  if (!templateIteratesContent(src.chatTemplate)) return null;
  let text: string;
  try {
    text = renderChat(src.chatTemplate, [{ role: 'user', content: [{ type: 'text', text: BEFORE }, { type: 'image' }, { type: 'text', text: AFTER }] }],
      { addGenerationPrompt: false, bosToken: src.bosToken ?? null, eosToken: src.eosToken ?? null });
  } catch {
    return null;  // a template that needs more than one user message: the bare token
  }
  const a = text.indexOf(BEFORE), b = text.indexOf(AFTER);
  return a < 0 || b < a ? null : text.slice(a + BEFORE.length, b);
}

function countOf(text: string, token: string): number {
  return text.split(token).length - 1;
}
