// The LLaVA golden cases (test/fixtures/llava/<case>, made by test/fixtures/golden/make_llava.py): prompts with
// images, the images' pixel values, and transformers + PEFT logits.
import { mkdtempSync, readFileSync, readdirSync, copyFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile, writeSafetensors } from '../../shard/formats/index.js';
import { GREEDY } from '../../shard/index.js';
import { PROTOCOL_VERSION, float32ToBytes, type ImageData, type ImageRef, type NewSequence } from '../../protocol/index.js';

export const LLAVA_ROOT = fileURLToPath(new URL('../../../test/fixtures/llava', import.meta.url));

export interface LlavaSequence {
  prompt: string;
  ids: number[];
  /** Image names, in prompt order. */
  images: string[];
}

export interface LlavaCase {
  name: string;
  dir: string;
  modelDir: string;
  sequences: LlavaSequence[];
  adapters: { name: string; dir: string }[];
  imageTokenId: number;
  tokensPerImage: number;
  imageSize: number;
  vocab: number;
  logits(key: string): Float32Array;
  /** float32 pixel values [3, S, S] of an image, as the HF image processor gave them. */
  pixels(image: string): Float32Array;
}

export function llavaCases(): string[] {
  return readdirSync(LLAVA_ROOT).filter((d) => existsSync(join(LLAVA_ROOT, d, 'cases.json'))).sort();
}

export function loadLlavaCase(name: string): LlavaCase {
  const dir = join(LLAVA_ROOT, name);
  const c = JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8'));
  const file = SafetensorsFile.open(join(dir, 'golden.safetensors'));
  return {
    name, dir, modelDir: join(dir, c.model), sequences: c.sequences,
    adapters: c.adapters.map((a: { name: string; dir: string }) => ({ name: a.name, dir: join(dir, a.dir) })),
    imageTokenId: c.image_token_id, tokensPerImage: c.tokens_per_image, imageSize: c.image_size,
    vocab: file.info('base/seq0').shape[1]!,
    logits: (key) => file.readF32(key),
    pixels: (image) => {
      const b = readFileSync(join(dir, c.images[image].pixel_values));
      return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    },
  };
}

/** An image's key as a coordinator would name it (any string works; the same image has one key). */
export const imageKey = (c: LlavaCase, image: string): string => `${c.name}-${image}`;

/** The image's image.data messages, `chunks` of them. */
export function imageMessages(c: LlavaCase, image: string, chunks = 3, key = imageKey(c, image)): ImageData[] {
  const bytes = float32ToBytes(c.pixels(image));
  const per = Math.ceil(bytes.byteLength / chunks);
  return Array.from({ length: chunks }, (_, i) => ({ v: PROTOCOL_VERSION, type: 'image.data' as const, key, height: c.imageSize,
    width: c.imageSize, chunk: i, chunks, data: bytes.slice(i * per, Math.min(bytes.byteLength, (i + 1) * per)) }));
}

/** The ImageRefs of a sequence: each run of image tokens, named by its image in order. */
export function imageRefs(c: LlavaCase, seq: LlavaSequence): ImageRef[] {
  const refs: ImageRef[] = [];
  for (let t = 0; t < seq.ids.length; t++) {
    if (seq.ids[t] !== c.imageTokenId || (t > 0 && seq.ids[t - 1] === c.imageTokenId && (t - refs.at(-1)!.start) < c.tokensPerImage)) continue;
    refs.push({ key: imageKey(c, seq.images[refs.length]!), start: t, length: c.tokensPerImage });
  }
  if (refs.length !== seq.images.length) throw new Error(`sequence '${seq.prompt}': ${refs.length} image runs for ${seq.images.length} images`);
  return refs;
}

/** A NewSequence of a case's sequence (all its tokens, its own blocks from `firstBlock`). */
export function llavaNewSeq(c: LlavaCase, s: number, o: { seqId: string; slot: number; firstBlock: number; blockSize: number;
  logits?: NewSequence['logits']; topN?: number; extraBlocks?: number }): NewSequence {
  const seq = c.sequences[s]!;
  const n = Math.ceil(seq.ids.length / o.blockSize) + (o.extraBlocks ?? 0);
  const refs = imageRefs(c, seq);
  return { seqId: o.seqId, adapterSlot: o.slot, tokens: seq.ids, blockTable: Array.from({ length: n }, (_, j) => o.firstBlock + j),
    sampling: GREEDY, generated: [], logits: o.logits ?? 'all', promptLogprobs: false, topN: o.topN ?? 0,
    ...(refs.length > 0 ? { images: refs } : {}) };
}

/** Golden key of (sequence, slot) for a case's adapters (slot -1: base). */
export const goldenKey = (c: LlavaCase, s: number, slot: number): string =>
  slot < 0 ? `base/seq${s}` : `adapter/${c.adapters[slot]!.name}/seq${s}`;

/**
 * A copy of the case's model in the other checkpoint layout: transformers 5's in-memory names
 * (model.language_model.*, model.vision_tower.*, model.multi_modal_projector.*, lm_head.*), or the Hub's llava-hf
 * names with CLIPVisionModel's vision_model (vision_tower.vision_model.*). The fixture itself is as save_pretrained
 * writes it (language_model.model.*, language_model.lm_head.*, vision_tower.*, multi_modal_projector.*).
 */
export function relayout(c: LlavaCase, layout: 'v5' | 'hub'): string {
  const dir = mkdtempSync(join(tmpdir(), `weft-llava-${layout}-`));
  for (const f of readdirSync(c.modelDir)) if (f !== 'model.safetensors') copyFileSync(join(c.modelDir, f), join(dir, f));
  const src = SafetensorsFile.open(join(c.modelDir, 'model.safetensors'));
  const rename = (n: string): string => layout === 'v5'
    ? n.replace(/^language_model\.model\./, 'model.language_model.').replace(/^language_model\.lm_head\./, 'lm_head.')
      .replace(/^vision_tower\./, 'model.vision_tower.').replace(/^multi_modal_projector\./, 'model.multi_modal_projector.')
    : n.replace(/^vision_tower\./, 'vision_tower.vision_model.');
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  for (const n of src.names()) tensors[rename(n)] = { dtype: 'F32', shape: src.info(n).shape, data: src.readF32(n) };
  src.close();
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  return dir;
}

// ---- Qwen2-VL / Qwen2.5-VL (test/fixtures/vlm/<case>, made by test/fixtures/golden/make_qwen2_vl.py; layout in
// test/fixtures/vlm/README.md): dynamic-resolution images, each its own size and placeholder count.

export const VLM_ROOT = fileURLToPath(new URL('../../../test/fixtures/vlm', import.meta.url));

export interface QwenVlSequence {
  prompt: string;
  ids: number[];
  images: string[];
  /** Placeholder tokens of each image, in order. */
  image_tokens: number[];
  /** Tokens fed one decode step at a time after the prompt (golden rows `<key>/decode`); empty: none. */
  decode: number[];
}

export interface QwenVlImage {
  height: number;
  width: number;
  tokens: number;
  image_grid_thw: [number, number, number];
}

export interface QwenVlCase {
  name: string;
  dir: string;
  modelDir: string;
  sequences: QwenVlSequence[];
  adapters: { name: string; dir: string }[];
  imageTokenId: number;
  patchSize: number;
  mergeSize: number;
  images: Record<string, QwenVlImage>;
  vocab: number;
  logits(key: string): Float32Array;
  /** float32 [3, height, width]: the processor's normalized image before patchify (what image.data carries). */
  pixels(image: string): Float32Array;
}

export function qwenVlCases(): string[] {
  return readdirSync(VLM_ROOT).filter((d) => existsSync(join(VLM_ROOT, d, 'cases.json')) &&
    String(JSON.parse(readFileSync(join(VLM_ROOT, d, 'cases.json'), 'utf8')).architecture).startsWith('Qwen')).sort();
}

export function loadQwenVlCase(name: string): QwenVlCase {
  const dir = join(VLM_ROOT, name);
  const c = JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8'));
  const file = SafetensorsFile.open(join(dir, 'golden.safetensors'));
  return {
    name, dir, modelDir: join(dir, c.model), sequences: c.sequences,
    adapters: c.adapters.map((a: { name: string; dir: string }) => ({ name: a.name, dir: join(dir, a.dir) })),
    imageTokenId: c.image_token_id, patchSize: c.patch_size, mergeSize: c.merge_size, images: c.images,
    vocab: file.info('base/seq0').shape[1]!,
    logits: (key) => file.readF32(key),
    pixels: (image) => {
      const b = readFileSync(join(dir, c.images[image].pixel_values));
      return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    },
  };
}

export const qwenImageKey = (c: QwenVlCase, image: string): string => `${c.name}-${image}`;

export function qwenImageMessages(c: QwenVlCase, image: string, chunks = 3, key = qwenImageKey(c, image)): ImageData[] {
  const bytes = float32ToBytes(c.pixels(image));
  const per = Math.ceil(bytes.byteLength / chunks);
  const { height, width } = c.images[image]!;
  return Array.from({ length: chunks }, (_, i) => ({ v: PROTOCOL_VERSION, type: 'image.data' as const, key, height, width,
    chunk: i, chunks, data: bytes.slice(i * per, Math.min(bytes.byteLength, (i + 1) * per)) }));
}

/** The ImageRefs of a sequence: its runs of image tokens, in order, each as long as its image's token count. */
export function qwenImageRefs(c: QwenVlCase, seq: QwenVlSequence): ImageRef[] {
  const refs: ImageRef[] = [];
  for (let t = 0; t < seq.ids.length; t++) {
    if (seq.ids[t] !== c.imageTokenId) continue;
    const length = seq.image_tokens[refs.length]!;
    refs.push({ key: qwenImageKey(c, seq.images[refs.length]!), start: t, length });
    t += length - 1;
  }
  if (refs.length !== seq.images.length) throw new Error(`sequence '${seq.prompt}': ${refs.length} image runs for ${seq.images.length} images`);
  return refs;
}

export function qwenNewSeq(c: QwenVlCase, s: number, o: { seqId: string; slot: number; firstBlock: number; blockSize: number;
  logits?: NewSequence['logits']; topN?: number; extraBlocks?: number }): NewSequence {
  const seq = c.sequences[s]!;
  const n = Math.ceil((seq.ids.length + seq.decode.length) / o.blockSize) + (o.extraBlocks ?? 0);
  const refs = qwenImageRefs(c, seq);
  return { seqId: o.seqId, adapterSlot: o.slot, tokens: seq.ids, blockTable: Array.from({ length: n }, (_, j) => o.firstBlock + j),
    sampling: GREEDY, generated: [], logits: o.logits ?? 'all', promptLogprobs: false, topN: o.topN ?? 0,
    ...(refs.length > 0 ? { images: refs } : {}) };
}

/** Golden key of (sequence, slot) (slot -1: base); `decode`: the rows of the prompt's last position and each decode token. */
export const qwenGoldenKey = (c: QwenVlCase, s: number, slot: number, decode = false): string =>
  `${slot < 0 ? 'base' : `adapter/${c.adapters[slot]!.name}`}/seq${s}${decode ? '/decode' : ''}`;

/** A copy of the case's model with transformers 5's in-memory names (model.language_model.*, model.visual.*,
 * lm_head.*); the fixture itself has the Hub's (model.layers.*, visual.*), as save_pretrained writes them. */
export function qwenRelayoutV5(c: QwenVlCase): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-qwen-vl-v5-'));
  for (const f of readdirSync(c.modelDir)) if (f !== 'model.safetensors') copyFileSync(join(c.modelDir, f), join(dir, f));
  const src = SafetensorsFile.open(join(c.modelDir, 'model.safetensors'));
  const rename = (n: string): string => n.replace(/^model\./, 'model.language_model.').replace(/^visual\./, 'model.visual.');
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  for (const n of src.names()) tensors[rename(n)] = { dtype: 'F32', shape: src.info(n).shape, data: src.readF32(n) };
  src.close();
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  return dir;
}

// ---- Gemma 3 (test/fixtures/vlm/gemma3, made by test/fixtures/golden/make_gemma3_vlm.py): fixed-size images of
// tokens_per_image <image_soft_token> placeholders each, attending to each other both ways.

export interface Gemma3Sequence {
  prompt: string;
  /** The prompt after Gemma3Processor's expansion of each <start_of_image>. */
  expanded: string;
  ids: number[];
  images: string[];
  image_starts: number[];
  decode: number[];
}

export interface Gemma3Case {
  name: string;
  dir: string;
  modelDir: string;
  sequences: Gemma3Sequence[];
  adapters: { name: string; dir: string }[];
  imageTokenId: number;
  tokensPerImage: number;
  imageSize: number;
  vocab: number;
  logits(key: string): Float32Array;
  pixels(image: string): Float32Array;
}

export function loadGemma3Case(name = 'gemma3'): Gemma3Case {
  const dir = join(VLM_ROOT, name);
  const c = JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8'));
  const file = SafetensorsFile.open(join(dir, 'golden.safetensors'));
  return {
    name, dir, modelDir: join(dir, c.model), sequences: c.sequences,
    adapters: c.adapters.map((a: { name: string; dir: string }) => ({ name: a.name, dir: join(dir, a.dir) })),
    imageTokenId: c.image_token_id, tokensPerImage: c.tokens_per_image, imageSize: c.image_size,
    vocab: file.info('base/seq0').shape[1]!,
    logits: (key) => file.readF32(key),
    pixels: (image) => {
      const b = readFileSync(join(dir, c.images[image].pixel_values));
      return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    },
  };
}

export function gemma3ImageMessages(c: Gemma3Case, image: string, chunks = 3): ImageData[] {
  const bytes = float32ToBytes(c.pixels(image));
  const per = Math.ceil(bytes.byteLength / chunks);
  return Array.from({ length: chunks }, (_, i) => ({ v: PROTOCOL_VERSION, type: 'image.data' as const, key: `${c.name}-${image}`,
    height: c.imageSize, width: c.imageSize, chunk: i, chunks, data: bytes.slice(i * per, Math.min(bytes.byteLength, (i + 1) * per)) }));
}

export function gemma3ImageRefs(c: Gemma3Case, seq: Gemma3Sequence): ImageRef[] {
  return seq.image_starts.map((start, i) => ({ key: `${c.name}-${seq.images[i]!}`, start, length: c.tokensPerImage }));
}

export function gemma3NewSeq(c: Gemma3Case, s: number, o: { seqId: string; slot: number; firstBlock: number; blockSize: number;
  logits?: NewSequence['logits']; topN?: number; extraBlocks?: number }): NewSequence {
  const seq = c.sequences[s]!;
  const n = Math.ceil((seq.ids.length + seq.decode.length) / o.blockSize) + (o.extraBlocks ?? 0);
  const refs = gemma3ImageRefs(c, seq);
  return { seqId: o.seqId, adapterSlot: o.slot, tokens: seq.ids, blockTable: Array.from({ length: n }, (_, j) => o.firstBlock + j),
    sampling: GREEDY, generated: [], logits: o.logits ?? 'all', promptLogprobs: false, topN: o.topN ?? 0,
    ...(refs.length > 0 ? { images: refs } : {}) };
}

/**
 * A copy of the Gemma 3 case's model in another checkpoint layout: transformers 5's in-memory names
 * (model.language_model.*, model.vision_tower.*, model.multi_modal_projector.*), or the Hub's published ones
 * (language_model.model.*, vision_tower.vision_model.*, multi_modal_projector.*). The fixture itself is as
 * save_pretrained writes it (language_model.model.*, vision_tower.*, multi_modal_projector.*).
 */
export function gemma3Relayout(c: Gemma3Case, layout: 'v5' | 'hub'): string {
  const dir = mkdtempSync(join(tmpdir(), `weft-gemma3-${layout}-`));
  for (const f of readdirSync(c.modelDir)) if (f !== 'model.safetensors') copyFileSync(join(c.modelDir, f), join(dir, f));
  const src = SafetensorsFile.open(join(c.modelDir, 'model.safetensors'));
  const rename = (n: string): string => layout === 'v5'
    ? n.replace(/^language_model\.model\./, 'model.language_model.').replace(/^vision_tower\./, 'model.vision_tower.vision_model.')
      .replace(/^multi_modal_projector\./, 'model.multi_modal_projector.')
    : n.replace(/^vision_tower\./, 'vision_tower.vision_model.');
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  for (const n of src.names()) tensors[rename(n)] = { dtype: 'F32', shape: src.info(n).shape, data: src.readF32(n) };
  src.close();
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  return dir;
}
