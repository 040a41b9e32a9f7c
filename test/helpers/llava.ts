// The vision-language golden cases under the names the tests used first (LLaVA's unprefixed, Qwen's and Gemma 3's
// with a prefix); they live in ./vlm.ts, which new code imports.
import type { ImageData, ImageRef, NewSequence } from '../../protocol/index.js';
import { llavaRelayout, vlmGoldenKey, vlmImageKey, vlmImageMessages, vlmNewSeq, type Gemma3Case, type Gemma3Sequence,
  type LlavaCase, type LlavaSequence, type NewSeqOptions, type QwenVlCase, type QwenVlSequence } from './vlm.js';

export { LLAVA_ROOT, VLM_ROOT, gemma3Relayout, llavaCases, loadGemma3Case, loadLlavaCase, loadQwenVlCase, qwenRelayoutV5,
  qwenVlCases, type Gemma3Case, type Gemma3Sequence, type LlavaCase, type LlavaSequence, type QwenVlCase,
  type QwenVlImage, type QwenVlSequence } from './vlm.js';

export const imageKey = (c: LlavaCase, image: string): string => vlmImageKey(c, image);
export const imageMessages = (c: LlavaCase, image: string, chunks = 3, key = imageKey(c, image)): ImageData[] =>
  vlmImageMessages(c, image, chunks, key);
export const imageRefs = (c: LlavaCase, seq: LlavaSequence): ImageRef[] => c.imageRefs(seq);
export const llavaNewSeq = (c: LlavaCase, s: number, o: NewSeqOptions): NewSequence => vlmNewSeq(c, s, o);
export const goldenKey = (c: LlavaCase, s: number, slot: number): string => vlmGoldenKey(c, s, slot);
export const relayout = llavaRelayout;

export const qwenImageKey = (c: QwenVlCase, image: string): string => vlmImageKey(c, image);
export const qwenImageMessages = (c: QwenVlCase, image: string, chunks = 3, key = qwenImageKey(c, image)): ImageData[] =>
  vlmImageMessages(c, image, chunks, key);
export const qwenImageRefs = (c: QwenVlCase, seq: QwenVlSequence): ImageRef[] => c.imageRefs(seq);
export const qwenNewSeq = (c: QwenVlCase, s: number, o: NewSeqOptions): NewSequence => vlmNewSeq(c, s, o);
export const qwenGoldenKey = (c: QwenVlCase, s: number, slot: number, decode = false): string => vlmGoldenKey(c, s, slot, decode);

export const gemma3ImageMessages = (c: Gemma3Case, image: string, chunks = 3): ImageData[] => vlmImageMessages(c, image, chunks);
export const gemma3ImageRefs = (c: Gemma3Case, seq: Gemma3Sequence): ImageRef[] => c.imageRefs(seq);
export const gemma3NewSeq = (c: Gemma3Case, s: number, o: NewSeqOptions): NewSequence => vlmNewSeq(c, s, o);
