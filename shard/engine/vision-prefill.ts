// The image side of a vision-language model's prefill (LLaVA, Qwen2-VL, Gemma 3, Mistral 3): a new sequence's images are encoded once, when it
// arrives (pixels from the ImageStore, the sequence's adapter's vision-tower LoRA), and their feature rows are kept
// with the sequence until its prompt is done; each prompt chunk then takes the rows of the placeholder positions it
// covers as embedding overrides (ForwardBatch.embedRows) — with Mistral 3's row breaks, only its [IMG] positions. A sequence whose image never comes (or is malformed)
// fails alone. With tensor parallelism every rank must decide alike — which images are there is agreed over the
// collective — so the ranks' batches stay the same.
import type { NativePixtralVisionModel, NativeQwenVisionModel, NativeVisionModel, VisionLoraPart } from '../../kernels/index.js';
import type { NewSequence } from '../../protocol/index.js';
import type { VisionSpec } from '../models/llava-spec.js';
import type { QwenVisionSpec } from '../models/qwen-vl-spec.js';
import type { PixtralSpec } from '../models/pixtral-spec.js';
import type { ImageStore, StoredImage } from './image-store.js';
import type { MropeImage } from './mrope.js';

/** One image of a sequence: tokens [start, start + length) take rows of `features` [length, hidden] — or, with `cols`
 * (Mistral 3's row breaks), the range is rows of cols [IMG] tokens each followed by a break token: offset o takes
 * feature row ⌊o / (cols + 1)⌋ · cols + o mod (cols + 1), and the break positions (o mod (cols + 1) = cols) none. */
export interface SeqImage {
  key: string;
  start: number;
  length: number;
  features: Float32Array;
  cols?: number;
  /** Qwen3-VL: the deepstack features [sets, length, hidden], added to the hidden states of the image's tokens after
   * decoder layers 0 … sets − 1 (ForwardBatch.deepstackRows). */
  deepstack?: Float32Array;
}

/** The feature row of position `offset` of an image's range, or -1 for a row break (it keeps its token embedding). */
export function featureRow(img: Pick<SeqImage, 'cols'>, offset: number): number {
  if (img.cols === undefined) return offset;
  const c = offset % (img.cols + 1);
  return c === img.cols ? -1 : (offset - c) / (img.cols + 1) * img.cols + c;
}

/** The tower an image goes through: LLaVA's (one size, images batched), Qwen2-VL's or Mistral 3's Pixtral (any allowed
 * size, one by one). */
export type ImageEncoder =
  | { kind: 'llava'; model: NativeVisionModel; spec: VisionSpec }
  | { kind: 'qwen'; model: NativeQwenVisionModel; spec: QwenVisionSpec }
  | { kind: 'pixtral'; model: NativePixtralVisionModel; spec: PixtralSpec };

export interface VisionPrefillOptions {
  encoder: ImageEncoder;
  /** The language model's hidden size: a feature row's length. */
  hidden: number;
  images: ImageStore;
  /** An adapter slot's vision-tower LoRA parts (none: undefined). */
  loraOf: (slot: number) => VisionLoraPart[] | undefined;
  /** Tensor parallelism: sums a Float32Array over the ranks in place (every rank calls it alike); absent at TP 1. */
  sumOverRanks?: (flags: Float32Array) => void;
  world: number;
  /** How long a step waits for an image not complete yet (default 30 s). */
  waitMs?: number;
}

/** What prepare() made of a new sequence: its images' rows (those past its cached prefix) and, for multimodal RoPE,
 * every image's grid of merged patches — or why it fails. */
export type Prepared = { images: SeqImage[]; grids?: MropeImage[] } | { error: string };

/** How long a rank waits between two agreements on which images are there (tensor parallelism). */
const ROUND_MS = 200;

export class VisionPrefill {
  private readonly waitMs: number;

  constructor(private readonly o: VisionPrefillOptions) {
    this.waitMs = o.waitMs ?? 30_000;
  }

  get images(): ImageStore {
    return this.o.images;
  }

  /** The images of every new sequence that has some: waited for, checked and encoded. Sequences without images are
   * not in the map. */
  async prepare(newSeqs: readonly NewSequence[]): Promise<Map<string, Prepared>> {
    const out = new Map<string, Prepared>();
    const needed = new Map<string, { ns: NewSequence; refs: NonNullable<NewSequence['images']> }>();
    for (const ns of newSeqs) {
      if (!ns.images || ns.images.length === 0) continue;
      const problem = this.checkRefs(ns);
      if (problem) {
        out.set(ns.seqId, { error: `new sequence '${ns.seqId}': ${problem}` });
        continue;
      }
      // Images wholly inside the cached prefix were computed with it: only the others are encoded. Multimodal RoPE
      // needs every image's grid for the positions after it, so those are waited for too (the coordinator
      // publishes all of a new sequence's images).
      const refs = this.mrope ? ns.images : ns.images.filter((r) => r.start + r.length > (ns.cached ?? 0));
      needed.set(ns.seqId, { ns, refs });
    }
    const keys = [...new Set([...needed.values()].flatMap(({ refs }) => refs.map((r) => r.key)))].sort();
    const present = await this.agreePresent(keys);
    // Held through the encodes below (an image.data put meanwhile may trim the store); released at the end.
    for (const k of present) this.o.images.pin(k);
    try {
      await this.encodeAll(needed, present, out);
    } finally {
      for (const k of present) this.o.images.unpin(k);
    }
    return out;
  }

  private async encodeAll(needed: Map<string, { ns: NewSequence; refs: NonNullable<NewSequence['images']> }>,
    present: Set<string>, out: Map<string, Prepared>): Promise<void> {
    // Encode once per (adapter slot, image): the same image under two adapters with vision LoRA differs.
    const groups = new Map<number, string[]>();
    for (const { ns, refs } of needed.values()) {
      const missing = refs.map((r) => r.key).find((k) => !present.has(k));
      if (missing !== undefined) {
        const why = this.o.images.refusal(missing);
        out.set(ns.seqId, { error: why ? `image '${missing}' was refused: ${why}`
          : `image '${missing}' did not arrive within ${this.waitMs} ms (its image.data chunks never all came)` });
        continue;
      }
      const problem = refs.map((r) => this.misfit(r, this.o.images.get(r.key)!, ns)).find((p) => p !== null);
      if (problem) {
        out.set(ns.seqId, { error: problem });
        continue;
      }
      const slot = this.o.loraOf(ns.adapterSlot) ? ns.adapterSlot : -1;
      const list = groups.get(slot) ?? [];
      for (const r of this.encoded(ns, refs)) if (!list.includes(r.key)) list.push(r.key);
      if (list.length > 0) groups.set(slot, list);  // none when every image lies in the cached prefix
    }
    const features = new Map<string, Float32Array>();  // `${slot}/${key}` -> [its tokens, hidden]
    for (const [slot, list] of groups) {
      const encoded = await this.encode(list.map((key) => this.o.images.get(key)!), slot >= 0 ? this.o.loraOf(slot) : undefined);
      list.forEach((key, i) => features.set(`${slot}/${key}`, encoded[i]!));
    }
    for (const { ns, refs } of needed.values()) {
      if (out.has(ns.seqId)) continue;
      const slot = this.o.loraOf(ns.adapterSlot) ? ns.adapterSlot : -1;
      const used = this.encoded(ns, refs);
      out.set(ns.seqId, { images: used.map((r) => ({ key: r.key, start: r.start, length: r.length,
        ...this.split(features.get(`${slot}/${r.key}`)!, r.length),
        ...(this.rowBreaks ? { cols: this.grid(this.o.images.get(r.key)!).cols } : {}) })),
        ...(this.mrope ? { grids: refs.map((r) => ({ start: r.start, ...this.grid(this.o.images.get(r.key)!) })) } : {}) });
      for (const r of used) this.o.images.pin(r.key);
    }
  }

  /** An image's encoder output as its features and (Qwen3-VL) deepstack sets, which follow them: [sets, length, hidden]. */
  private split(all: Float32Array, length: number): Pick<SeqImage, 'features' | 'deepstack'> {
    const e = this.o.encoder;
    if (e.kind !== 'qwen' || !e.spec.qwen3?.deepstack.length) return { features: all };
    const n = length * this.o.hidden;
    return { features: all.subarray(0, n), deepstack: all.subarray(n) };
  }

  /** Mistral 3: an image's range holds a break token after each row of [IMG] tokens. */
  private get rowBreaks(): boolean {
    return this.o.encoder.kind === 'pixtral';
  }

  /** Multimodal RoPE (Qwen2-VL): positions need every image's grid, not only the encoded ones'. */
  private get mrope(): boolean {
    return this.o.encoder.kind === 'qwen';
  }

  /** The refs whose features the sequence needs: those not wholly inside its cached prefix. */
  private encoded(ns: NewSequence, refs: NonNullable<NewSequence['images']>): NonNullable<NewSequence['images']> {
    return refs.filter((r) => r.start + r.length > (ns.cached ?? 0));
  }

  /** A Qwen2-VL / Pixtral image's grid of merged patches (rows × cols feature rows). */
  private grid(img: StoredImage): { rows: number; cols: number } {
    const e = this.o.encoder;
    const f = e.kind === 'llava' ? 1 : e.spec.patchSize * e.spec.mergeSize;
    return { rows: img.height / f, cols: img.width / f };
  }

  /** Why an image does not fit its reference or this tower, or null. */
  private misfit(r: NonNullable<NewSequence['images']>[number], img: StoredImage, ns: NewSequence): string | null {
    const e = this.o.encoder;
    if (e.kind === 'llava') {
      return img.height === e.spec.imageSize && img.width === e.spec.imageSize ? null
        : `image '${r.key}' is ${img.height}×${img.width} pixels; this model takes ${e.spec.imageSize}×${e.spec.imageSize} ` +
          '(resize and crop it as the model\'s image processor does)';
    }
    const f = e.spec.patchSize * e.spec.mergeSize;
    if (img.height % f !== 0 || img.width % f !== 0) {
      return `image '${r.key}' is ${img.height}×${img.width} pixels; this model takes sides that are multiples of ` +
        `patch_size · merge_size = ${f} (resize it as the image processor's smart_resize does)`;
    }
    if (e.kind === 'pixtral') return this.pixtralMisfit(r, img, ns);
    const tokens = (img.height / f) * (img.width / f);
    return tokens === r.length ? null : `image '${r.key}' (${img.height}×${img.width} pixels) takes ${tokens} placeholder ` +
      `tokens ((${img.height}/${f})·(${img.width}/${f})), but its reference covers ${r.length}`;
  }

  /** Mistral 3: why an image's range is not its rows of [IMG] tokens each ended by a break token, or null. */
  private pixtralMisfit(r: NonNullable<NewSequence['images']>[number], img: StoredImage, ns: NewSequence): string | null {
    const e = this.o.encoder as Extract<ImageEncoder, { kind: 'pixtral' }>;
    const { rows, cols } = this.grid(img);
    try {
      e.model.tokensFor(img.height, img.width);  // the rotary table's bound (image_size) too
    } catch (err) {
      return `image '${r.key}': ${(err as Error).message}`;
    }
    if (r.length !== rows * (cols + 1)) {
      return `image '${r.key}' (${img.height}×${img.width} pixels: ${rows} rows of ${cols} [IMG] tokens, each ended by a ` +
        `break token) spans ${rows * (cols + 1)} positions, but its reference covers ${r.length}`;
    }
    const id = e.spec.imageTokenId;
    for (let t = r.start; t < Math.min(r.start + r.length, ns.tokens.length); t++) {
      const brk = featureRow({ cols }, t - r.start) < 0;
      if (brk === (ns.tokens[t] === id)) {
        return `token ${t} (${ns.tokens[t]}) of image '${r.key}' should ${brk ? 'be a row break, not' : 'be'} the image ` +
          `token ${id} (an image of ${rows} × ${cols} tokens: each row of ${cols} ends with a break token)`;
      }
    }
    return null;
  }

  /** Features [tokens, hidden] of each image, with one adapter's vision LoRA (or none). */
  private async encode(images: StoredImage[], lora: VisionLoraPart[] | undefined): Promise<Float32Array[]> {
    const e = this.o.encoder;
    if (e.kind !== 'llava') {  // one by one: their sizes differ, and attention never crosses images anyway
      const out: Float32Array[] = [];
      for (const img of images) out.push(await e.model.encode(img.pixels, img.height, img.width, lora));
      return out;
    }
    const px = images[0]!.pixels.length, rows = e.spec.tokensPerImage * this.o.hidden;
    const pixels = new Float32Array(px * images.length);
    images.forEach((img, i) => pixels.set(img.pixels, i * px));
    const encoded = await e.model.encode(pixels, images.length, lora);
    return images.map((_, i) => encoded.subarray(i * rows, (i + 1) * rows));
  }

  /** Unpins a sequence's images (its prompt is done, or it ended). */
  release(images: readonly SeqImage[] | undefined): void {
    for (const img of images ?? []) this.o.images.unpin(img.key);
  }

  /** Why a sequence's image references cannot be right, or null. */
  private checkRefs(ns: NewSequence): string | null {
    const e = this.o.encoder;
    const total = ns.tokens.length + (ns.pending ?? 0), imageTokenId = e.spec.imageTokenId;
    const sorted = [...ns.images!].sort((a, b) => a.start - b.start);
    for (const [i, r] of sorted.entries()) {
      // A Qwen2-VL image's count depends on its size: checked when it is here (misfit).
      if (e.kind === 'llava' && r.length !== e.spec.tokensPerImage) {
        return `image '${r.key}' covers ${r.length} tokens; this model's images take ${e.spec.tokensPerImage}`;
      }
      if (!(Number.isInteger(r.length) && r.length > 0)) return `image '${r.key}' covers ${r.length} tokens`;
      if (r.start < 0 || r.start + r.length > total) return `image '${r.key}' covers tokens [${r.start}, ${r.start + r.length}) outside the prompt's ${total}`;
      if (i > 0 && r.start < sorted[i - 1]!.start + sorted[i - 1]!.length) return `images '${sorted[i - 1]!.key}' and '${r.key}' overlap`;
      // Mistral 3's row breaks: the layout is checked when the image's size is known (pixtralMisfit).
      for (let t = r.start; e.kind !== 'pixtral' && t < Math.min(r.start + r.length, ns.tokens.length); t++) {
        if (ns.tokens[t] !== imageTokenId) {
          return `token ${t} (${ns.tokens[t]}) of image '${r.key}' is not the image token ${imageTokenId}`;
        }
      }
    }
    return null;
  }

  /**
   * The keys every rank has, after waiting up to waitMs for the missing ones. At TP > 1 the ranks agree in rounds
   * (each waits at most ROUND_MS, then the presence flags are summed over the collective), a bounded number of them,
   * so all reach the same answer and none blocks its event loop for long.
   */
  private async agreePresent(keys: string[]): Promise<Set<string>> {
    const store = this.o.images;
    if (keys.length === 0) return new Set();
    const deadline = Date.now() + this.waitMs;
    if (!this.o.sumOverRanks || this.o.world === 1) {
      await Promise.all(keys.map((k) => store.waitFor(k, deadline)));
      return new Set(keys.filter((k) => store.get(k) !== undefined));
    }
    const rounds = Math.max(1, Math.ceil(this.waitMs / ROUND_MS));
    for (let round = 1; ; round++) {
      const until = Math.min(deadline, Date.now() + ROUND_MS);
      await Promise.all(keys.map((k) => store.waitFor(k, until)));
      const flags = Float32Array.from(keys, (k) => (store.get(k) ? 1 : 0));
      this.o.sumOverRanks(flags);
      const everywhere = new Set(keys.filter((_, i) => flags[i] === this.o.world));
      if (everywhere.size === keys.length || round >= rounds) return everywhere;
    }
  }
}

/**
 * The embedding overrides of a batch: for each row (its first batch index, first position, token count, images),
 * the placeholder positions it covers and their feature rows — and, Qwen3-VL, the same rows' deepstack features
 * ([sets, rows, hidden]: set s is added after decoder layer s).
 */
export function imageOverrides(rows: readonly { at: number; firstPos: number; count: number; images?: readonly SeqImage[] }[],
  hidden: number): { embedRows: Int32Array; embedValues: Float32Array; deepstackRows?: Int32Array; deepstackValues?: Float32Array } | null {
  const idx: number[] = [], parts: Float32Array[] = [], deep: { img: SeqImage; f: number }[] = [];
  for (const row of rows) {
    for (const img of row.images ?? []) {
      const lo = Math.max(img.start, row.firstPos), hi = Math.min(img.start + img.length, row.firstPos + row.count);
      for (let p = lo; p < hi; p++) {
        const f = featureRow(img, p - img.start);
        if (f < 0) continue;  // a row break: its token's embedding
        idx.push(row.at + p - row.firstPos);
        parts.push(img.features.subarray(f * hidden, (f + 1) * hidden));
        if (img.deepstack) deep.push({ img, f });
      }
    }
  }
  if (idx.length === 0) return null;
  const embedValues = new Float32Array(idx.length * hidden);
  parts.forEach((p, i) => embedValues.set(p, i * hidden));
  const embedRows = Int32Array.from(idx);
  if (deep.length === 0) return { embedRows, embedValues };
  // Every image of a Qwen3-VL model has its deepstack sets (the same count), so these rows are embedRows.
  const n = deep.length, sets = deep[0]!.img.deepstack!.length / (deep[0]!.img.length * hidden);
  if (n !== idx.length || deep.some(({ img }) => img.deepstack!.length !== sets * img.length * hidden)) {
    throw new Error('images with and without deepstack features (or unequal sets) in one batch');
  }
  const deepstackValues = new Float32Array(sets * n * hidden);
  for (let s = 0; s < sets; s++) {
    deep.forEach(({ img, f }, i) => deepstackValues.set(
      img.deepstack!.subarray((s * img.length + f) * hidden, (s * img.length + f + 1) * hidden), (s * n + i) * hidden));
  }
  return { embedRows, embedValues, deepstackRows: embedRows, deepstackValues };
}

/** Gemma 3: a sequence's images as [start, end) position pairs in order (BatchSeq.imageSpans), adjacent ones merged
 * into one (transformers' bidirectional blocks are runs of image tokens). */
export function imageSpans(images: readonly SeqImage[]): Int32Array {
  const spans: number[] = [];
  for (const img of [...images].sort((a, b) => a.start - b.start)) {
    if (spans.length > 0 && spans.at(-1) === img.start) spans[spans.length - 1] = img.start + img.length;
    else spans.push(img.start, img.start + img.length);
  }
  return Int32Array.from(spans);
}

/** Gemma 3: why a prompt row of positions [first, end) cannot run — it ends inside one of the images, whose tokens
 * attend to each other both ways — or null. */
export function splitImage(images: readonly SeqImage[] | undefined, first: number, end: number): string | null {
  const img = images?.find((i) => i.start < end && end < i.start + i.length);
  return img ? `its prefill chunk [${first}, ${end}) ends inside image '${img.key}' at [${img.start}, ${img.start + img.length}), ` +
    'whose tokens attend to each other both ways (Gemma 3): a chunk must hold the rest of an image' : null;
}
