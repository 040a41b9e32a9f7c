// The vision-language golden cases: prompts with images, the images' pixel values and transformers + PEFT logits.
// LLaVA: test/fixtures/llava/<case> (make_llava.py); Qwen2-VL / Qwen2.5-VL: test/fixtures/vlm/<case>
// (make_qwen2_vl.py); Gemma 3: test/fixtures/vlm/gemma3 (make_gemma3_vlm.py); Mistral 3: test/fixtures/vlm/mistral3
// (make_mistral3_vlm.py). Layout: test/fixtures/vlm/README.md.
import { mkdtempSync, readFileSync, readdirSync, copyFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile, writeSafetensors } from '../../shard/formats/index.js';
import { GREEDY } from '../../shard/index.js';
import { PROTOCOL_VERSION, float32ToBytes, type ImageData, type ImageRef, type NewSequence } from '../../protocol/index.js';

export const LLAVA_ROOT = fileURLToPath(new URL('../../../test/fixtures/llava', import.meta.url));
export const VLM_ROOT = fileURLToPath(new URL('../../../test/fixtures/vlm', import.meta.url));

export interface VlmSequence {
  prompt: string;
  ids: number[];
  /** Image names, in prompt order. */
  images: string[];
  /** Tokens fed one decode step at a time after the prompt (golden rows `<key>/decode`); absent or empty: none. */
  decode?: number[];
}

/** What every vision-language case has; each model's case adds its own fields. */
export interface VlmCase<S extends VlmSequence = VlmSequence> {
  name: string;
  dir: string;
  modelDir: string;
  sequences: S[];
  adapters: { name: string; dir: string }[];
  imageTokenId: number;
  vocab: number;
  /** The fixture's images, in cases.json order. */
  imageNames: string[];
  logits(key: string): Float32Array;
  /** float32 [3, height, width] of an image: what image.data carries. */
  pixels(image: string): Float32Array;
  imageDims(image: string): { height: number; width: number };
  /** The ImageRefs of one of the case's sequences, in order. */
  imageRefs(seq: S): ImageRef[];
}

/** The fields every case reads alike from <root>/<name>/cases.json and golden.safetensors, and cases.json itself. */
export function openVlmCase(root: string, name: string): { base: Omit<VlmCase, 'imageDims' | 'imageRefs' | 'sequences'>; json: any } {
  const dir = join(root, name);
  const json = JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8'));
  const file = SafetensorsFile.open(join(dir, 'golden.safetensors'));
  return {
    json,
    base: {
      name, dir, modelDir: join(dir, json.model),
      adapters: json.adapters.map((a: { name: string; dir: string }) => ({ name: a.name, dir: join(dir, a.dir) })),
      imageTokenId: json.image_token_id, vocab: file.info('base/seq0').shape[1]!, imageNames: Object.keys(json.images),
      logits: (key) => file.readF32(key),
      pixels: (image) => {
        const b = readFileSync(join(dir, json.images[image].pixel_values));
        return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
      },
    },
  };
}

/** An image's key as a coordinator would name it (any string works; the same image has one key). */
export const vlmImageKey = (c: VlmCase, image: string): string => `${c.name}-${image}`;

/** The ImageRefs of a sequence whose images' ranges start at `starts` (in image order), each `length(image)` long. */
function refsAtStarts(c: VlmCase, seq: VlmSequence, starts: number[], length: (image: string) => number): ImageRef[] {
  return starts.map((start, i) => ({ key: vlmImageKey(c, seq.images[i]!), start, length: length(seq.images[i]!) }));
}

/** The image's image.data messages, `chunks` of them. */
export function vlmImageMessages(c: VlmCase, image: string, chunks = 3, key = vlmImageKey(c, image)): ImageData[] {
  const bytes = float32ToBytes(c.pixels(image));
  const per = Math.ceil(bytes.byteLength / chunks);
  const { height, width } = c.imageDims(image);
  return Array.from({ length: chunks }, (_, i) => ({ v: PROTOCOL_VERSION, type: 'image.data' as const, key, height, width,
    chunk: i, chunks, data: bytes.slice(i * per, Math.min(bytes.byteLength, (i + 1) * per)) }));
}

export interface NewSeqOptions {
  seqId: string;
  slot: number;
  firstBlock: number;
  blockSize: number;
  logits?: NewSequence['logits'];
  topN?: number;
  extraBlocks?: number;
}

/** A NewSequence of a case's sequence `s` (all its tokens, its own blocks from `firstBlock`, room for its decode
 * tokens). */
export function vlmNewSeq<S extends VlmSequence>(c: VlmCase<S>, s: number, o: NewSeqOptions): NewSequence {
  const seq = c.sequences[s]!;
  const n = Math.ceil((seq.ids.length + (seq.decode?.length ?? 0)) / o.blockSize) + (o.extraBlocks ?? 0);
  const refs = c.imageRefs(seq);
  return { seqId: o.seqId, adapterSlot: o.slot, tokens: seq.ids, blockTable: Array.from({ length: n }, (_, j) => o.firstBlock + j),
    sampling: GREEDY, generated: [], logits: o.logits ?? 'all', promptLogprobs: false, topN: o.topN ?? 0,
    ...(refs.length > 0 ? { images: refs } : {}) };
}

/** Golden key of (sequence, slot) (slot -1: base); `decode`: the rows of the prompt's last position and each decode
 * token. */
export const vlmGoldenKey = (c: VlmCase, s: number, slot: number, decode = false): string =>
  `${slot < 0 ? 'base' : `adapter/${c.adapters[slot]!.name}`}/seq${s}${decode ? '/decode' : ''}`;

/** A safetensors file copied with its tensors renamed (F32 kept as it is). */
export function copyRenamedSafetensors(from: string, to: string, rename: (name: string) => string): void {
  const src = SafetensorsFile.open(from);
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  for (const n of src.names()) tensors[rename(n)] = { dtype: 'F32', shape: src.info(n).shape, data: src.readF32(n) };
  src.close();
  writeSafetensors(to, tensors, { format: 'pt' });
}

/** A copy of the case's last adapter (in a new temporary folder named after `tag`) with its tensors renamed: one on a
 * module the engine must refuse. */
export function renamedAdapter(c: VlmCase, tag: string, rename: (name: string) => string): string {
  const dir = mkdtempSync(join(tmpdir(), `weft-${tag}-`));
  const from = c.adapters.at(-1)!.dir;
  copyFileSync(join(from, 'adapter_config.json'), join(dir, 'adapter_config.json'));
  copyRenamedSafetensors(join(from, 'adapter_model.safetensors'), join(dir, 'adapter_model.safetensors'), rename);
  return dir;
}

/** A tensor's name in transformers 5's in-memory layout (model.language_model.*, model.vision_tower.*,
 * model.multi_modal_projector.*, lm_head.*) from its name as save_pretrained writes a LLaVA-like model
 * (language_model.model.*, language_model.lm_head.*, vision_tower.*, multi_modal_projector.*). */
const savedToV5 = (n: string): string => n.replace(/^language_model\.model\./, 'model.language_model.')
  .replace(/^language_model\.lm_head\./, 'lm_head.').replace(/^vision_tower\./, 'model.vision_tower.')
  .replace(/^multi_modal_projector\./, 'model.multi_modal_projector.');

/** A copy of the case's model (in a new temporary folder named after `tag`) with its tensors renamed. */
export function relayoutModel(c: VlmCase, tag: string, rename: (name: string) => string): string {
  const dir = mkdtempSync(join(tmpdir(), `weft-${tag}-`));
  for (const f of readdirSync(c.modelDir)) if (f !== 'model.safetensors') copyFileSync(join(c.modelDir, f), join(dir, f));
  copyRenamedSafetensors(join(c.modelDir, 'model.safetensors'), join(dir, 'model.safetensors'), rename);
  return dir;
}

// ---- LLaVA: fixed-size images of tokens_per_image <image> tokens each.

export type LlavaSequence = VlmSequence;

export interface LlavaCase extends VlmCase<LlavaSequence> {
  tokensPerImage: number;
  imageSize: number;
}

export function llavaCases(): string[] {
  return readdirSync(LLAVA_ROOT).filter((d) => existsSync(join(LLAVA_ROOT, d, 'cases.json'))).sort();
}

export function loadLlavaCase(name: string): LlavaCase {
  const { base, json } = openVlmCase(LLAVA_ROOT, name);
  const c: LlavaCase = {
    ...base, sequences: json.sequences, tokensPerImage: json.tokens_per_image, imageSize: json.image_size,
    imageDims: () => ({ height: c.imageSize, width: c.imageSize }),
    // Each run of image tokens, named by its image in order (adjacent images: a run of tokensPerImage each).
    imageRefs: (seq) => {
      const refs: ImageRef[] = [];
      for (let t = 0; t < seq.ids.length; t++) {
        if (seq.ids[t] !== c.imageTokenId || (t > 0 && seq.ids[t - 1] === c.imageTokenId && (t - refs.at(-1)!.start) < c.tokensPerImage)) continue;
        refs.push({ key: vlmImageKey(c, seq.images[refs.length]!), start: t, length: c.tokensPerImage });
      }
      if (refs.length !== seq.images.length) throw new Error(`sequence '${seq.prompt}': ${refs.length} image runs for ${seq.images.length} images`);
      return refs;
    },
  };
  return c;
}

/**
 * A copy of the LLaVA case's model in the other checkpoint layout: transformers 5's in-memory names
 * (model.language_model.*, model.vision_tower.*, model.multi_modal_projector.*, lm_head.*), or the Hub's llava-hf
 * names with CLIPVisionModel's vision_model (vision_tower.vision_model.*). The fixture itself is as save_pretrained
 * writes it (language_model.model.*, language_model.lm_head.*, vision_tower.*, multi_modal_projector.*).
 */
export function llavaRelayout(c: LlavaCase, layout: 'v5' | 'hub'): string {
  return relayoutModel(c, `llava-${layout}`,
    layout === 'v5' ? savedToV5 : (n) => n.replace(/^vision_tower\./, 'vision_tower.vision_model.'));
}

// ---- Qwen2-VL / Qwen2.5-VL: dynamic-resolution images, each its own size and placeholder count.

export interface QwenVlSequence extends VlmSequence {
  /** Placeholder tokens of each image, in order. */
  image_tokens: number[];
  decode: number[];
}

export interface QwenVlImage {
  height: number;
  width: number;
  tokens: number;
  image_grid_thw: [number, number, number];
}

export interface QwenVlCase extends VlmCase<QwenVlSequence> {
  /** cases.json's architecture (Qwen3VLForConditionalGeneration, Qwen3VLMoeForConditionalGeneration, …). */
  architecture: string;
  patchSize: number;
  mergeSize: number;
  images: Record<string, QwenVlImage>;
}

/** The Qwen VL cases of a family: 'Qwen2' (Qwen2-VL, Qwen2.5-VL; the default) or 'Qwen3' (Qwen3-VL). */
export function qwenVlCases(family: 'Qwen2' | 'Qwen3' = 'Qwen2'): string[] {
  return readdirSync(VLM_ROOT).filter((d) => existsSync(join(VLM_ROOT, d, 'cases.json')) &&
    String(JSON.parse(readFileSync(join(VLM_ROOT, d, 'cases.json'), 'utf8')).architecture).startsWith(family)).sort();
}

export function loadQwenVlCase(name: string): QwenVlCase {
  const { base, json } = openVlmCase(VLM_ROOT, name);
  const c: QwenVlCase = {
    ...base, architecture: String(json.architecture), sequences: json.sequences, patchSize: json.patch_size, mergeSize: json.merge_size, images: json.images,
    imageDims: (image) => ({ height: c.images[image]!.height, width: c.images[image]!.width }),
    // Its runs of image tokens, in order, each as long as its image's token count.
    imageRefs: (seq) => {
      const refs: ImageRef[] = [];
      for (let t = 0; t < seq.ids.length; t++) {
        if (seq.ids[t] !== c.imageTokenId) continue;
        const length = seq.image_tokens[refs.length]!;
        refs.push({ key: vlmImageKey(c, seq.images[refs.length]!), start: t, length });
        t += length - 1;
      }
      if (refs.length !== seq.images.length) throw new Error(`sequence '${seq.prompt}': ${refs.length} image runs for ${seq.images.length} images`);
      return refs;
    },
  };
  return c;
}

/** A copy of the Qwen case's model with transformers 5's in-memory names (model.language_model.*, model.visual.*,
 * lm_head.*); the fixture itself has the Hub's (model.layers.*, visual.*), as save_pretrained writes them. */
export function qwenRelayoutV5(c: QwenVlCase): string {
  return relayoutModel(c, 'qwen-vl-v5', (n) => n.replace(/^model\./, 'model.language_model.').replace(/^visual\./, 'model.visual.'));
}

/** A copy of the Qwen3-VL case's model (saved as transformers 5 names it: model.language_model.*, model.visual.*) with
 * the older names Qwen2-VL's checkpoints use (model.layers.*, visual.*). */
export function qwenRelayoutFlat(c: QwenVlCase): string {
  return relayoutModel(c, 'qwen-vl-flat', (n) => n.replace(/^model\.language_model\./, 'model.').replace(/^model\.visual\./, 'visual.'));
}

/** A copy of the Qwen3-VL-MoE case's model with its fused experts as the Hub publishes them, (in, out) per expert:
 * gate_up_proj [E, hidden, 2I] and down_proj [E, I, hidden] (transformers 5 saves [E, 2I, hidden], [E, hidden, I]);
 * `broken`: gate_up_proj cut to 2I − 8 columns, a shape that fits neither layout. */
export function qwenExpertsInOut(c: QwenVlCase, broken = false): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-qwen-experts-in-out-'));
  for (const f of readdirSync(c.modelDir)) if (f !== 'model.safetensors') copyFileSync(join(c.modelDir, f), join(dir, f));
  const src = SafetensorsFile.open(join(c.modelDir, 'model.safetensors'));
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  for (const n of src.names()) {
    const shape = src.info(n).shape, data = src.readF32(n);
    if (!/\.mlp\.experts\.(gate_up|down)_proj$/.test(n)) {
      tensors[n] = { dtype: 'F32', shape, data };
      continue;
    }
    const [E, rows, cols] = shape as [number, number, number], keep = broken && n.endsWith('gate_up_proj') ? rows - 8 : rows;
    const t = new Float32Array(E * cols * keep);
    for (let e = 0; e < E; e++) for (let r = 0; r < keep; r++) for (let k = 0; k < cols; k++) t[(e * cols + k) * keep + r] = data[(e * rows + r) * cols + k]!;
    tensors[n] = { dtype: 'F32', shape: [E, cols, keep], data: t };
  }
  src.close();
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  return dir;
}

// ---- Gemma 3: fixed-size images of tokens_per_image <image_soft_token> placeholders each, attending to each other
// both ways.

export interface Gemma3Sequence extends VlmSequence {
  /** The prompt after Gemma3Processor's expansion of each <start_of_image>. */
  expanded: string;
  image_starts: number[];
  decode: number[];
}

export interface Gemma3Case extends VlmCase<Gemma3Sequence> {
  tokensPerImage: number;
  imageSize: number;
}

export function loadGemma3Case(name = 'gemma3'): Gemma3Case {
  const { base, json } = openVlmCase(VLM_ROOT, name);
  const c: Gemma3Case = {
    ...base, sequences: json.sequences, tokensPerImage: json.tokens_per_image, imageSize: json.image_size,
    imageDims: () => ({ height: c.imageSize, width: c.imageSize }),
    imageRefs: (seq) => refsAtStarts(c, seq, seq.image_starts, () => c.tokensPerImage),
  };
  return c;
}

/** Idefics3 / SmolVLM (test/fixtures/vlm/smolvlm, make_idefics3.py): each tile of an image is one image of the case
 * ('<png>.<k>', the global tile last), its run of tokens_per_image <image> tokens at image_starts, as Gemma 3's are. */
export const loadIdefics3Case = (name = 'smolvlm'): Gemma3Case => loadGemma3Case(name);

/**
 * A copy of the Gemma 3 case's model in another checkpoint layout: transformers 5's in-memory names
 * (model.language_model.*, model.vision_tower.*, model.multi_modal_projector.*), or the Hub's published ones
 * (language_model.model.*, vision_tower.vision_model.*, multi_modal_projector.*). The fixture itself is as
 * save_pretrained writes it (language_model.model.*, vision_tower.*, multi_modal_projector.*).
 */
export function gemma3Relayout(c: Gemma3Case, layout: 'v5' | 'hub'): string {
  return relayoutModel(c, `gemma3-${layout}`, (n) => layout === 'v5'
    ? n.replace(/^language_model\.model\./, 'model.language_model.').replace(/^vision_tower\./, 'model.vision_tower.vision_model.')
      .replace(/^multi_modal_projector\./, 'model.multi_modal_projector.')
    : n.replace(/^vision_tower\./, 'vision_tower.vision_model.'));
}

// ---- Mistral 3 (Pixtral): images of any size whose ranges hold rows of [IMG] tokens, each row ended by [IMG_BREAK]
// (the last by [IMG_END]); features go to the [IMG] positions only.

export interface Mistral3Sequence extends VlmSequence {
  /** The prompt after PixtralProcessor's expansion of each [IMG]. */
  expanded: string;
  /** Each image's first position (its first [IMG]); its range runs through its [IMG_END]. */
  image_starts: number[];
  decode: number[];
}

export interface Mistral3Image {
  height: number;
  width: number;
  /** Rows and columns of [IMG] tokens (merged patches). */
  rows: number;
  cols: number;
  /** Positions of its range: rows · (cols + 1). */
  tokens: number;
  /** [IMG] positions (feature rows): rows · cols. */
  features: number;
  expansion: string;
}

export interface Mistral3Case extends VlmCase<Mistral3Sequence> {
  breakTokenId: number;
  endTokenId: number;
  patchSize: number;
  mergeSize: number;
  images: Record<string, Mistral3Image>;
}

export function loadMistral3Case(name = 'mistral3'): Mistral3Case {
  const { base, json } = openVlmCase(VLM_ROOT, name);
  const c: Mistral3Case = {
    ...base, sequences: json.sequences, breakTokenId: json.image_break_token_id, endTokenId: json.image_end_token_id,
    patchSize: json.patch_size, mergeSize: json.merge_size, images: json.images,
    imageDims: (image) => ({ height: c.images[image]!.height, width: c.images[image]!.width }),
    imageRefs: (seq) => refsAtStarts(c, seq, seq.image_starts, (image) => c.images[image]!.tokens),
  };
  return c;
}

/** The tokens of an image's range as PixtralProcessor writes them: each row [IMG] × cols then [IMG_BREAK], the last
 * row's break [IMG_END]. */
export function mistral3RangeTokens(c: Mistral3Case, image: string): number[] {
  const { rows, cols } = c.images[image]!;
  return Array.from({ length: rows }, (_, r) =>
    [...Array<number>(cols).fill(c.imageTokenId), r === rows - 1 ? c.endTokenId : c.breakTokenId]).flat();
}

/**
 * A copy of the Mistral 3 case's model in transformers 5's in-memory layout (model.language_model.*,
 * model.vision_tower.*, model.multi_modal_projector.*, lm_head.*). The fixture itself has the Hub's published one
 * (language_model.model.*, language_model.lm_head.*, vision_tower.*, multi_modal_projector.*), as save_pretrained
 * writes it.
 */
export function mistral3RelayoutV5(c: Mistral3Case): string {
  return relayoutModel(c, 'mistral3-v5', savedToV5);
}
