// The image side of a vision-language model's prefill (LLaVA): a new sequence's images are encoded once, when it
// arrives (pixels from the ImageStore, the sequence's adapter's vision-tower LoRA), and their feature rows are kept
// with the sequence until its prompt is done; each prompt chunk then takes the rows of the placeholder positions it
// covers as embedding overrides (ForwardBatch.embedRows). A sequence whose image never comes (or is malformed)
// fails alone. With tensor parallelism every rank must decide alike — which images are there is agreed over the
// collective — so the ranks' batches stay the same.
import type { NativeVisionModel, VisionLoraPart } from '../../kernels/index.js';
import type { NewSequence } from '../../protocol/index.js';
import type { VisionSpec } from '../models/llava-spec.js';
import type { ImageStore } from './image-store.js';

/** One image of a sequence: tokens [start, start + length) take rows of `features` [length, hidden]. */
export interface SeqImage {
  key: string;
  start: number;
  length: number;
  features: Float32Array;
}

export interface VisionPrefillOptions {
  vision: NativeVisionModel;
  spec: VisionSpec;
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

/** What prepare() made of a new sequence: its images' rows, or why it fails. */
export type Prepared = { images: SeqImage[] } | { error: string };

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
      // Images wholly inside the cached prefix were computed with it: only the others are needed.
      const refs = ns.images.filter((r) => r.start + r.length > (ns.cached ?? 0));
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
      const wrong = refs.map((r) => [r.key, this.o.images.get(r.key)!] as const)
        .find(([, img]) => img.height !== this.o.spec.imageSize || img.width !== this.o.spec.imageSize);
      if (wrong) {
        out.set(ns.seqId, { error: `image '${wrong[0]}' is ${wrong[1].height}×${wrong[1].width} pixels; this model takes ` +
          `${this.o.spec.imageSize}×${this.o.spec.imageSize} (resize and crop it as the model's image processor does)` });
        continue;
      }
      const slot = this.o.loraOf(ns.adapterSlot) ? ns.adapterSlot : -1;
      const list = groups.get(slot) ?? [];
      for (const r of refs) if (!list.includes(r.key)) list.push(r.key);
      if (list.length > 0) groups.set(slot, list);  // none when every image lies in the cached prefix
    }
    const features = new Map<string, Float32Array>();  // `${slot}/${key}` -> [tokensPerImage, hidden]
    const rows = this.o.spec.tokensPerImage * this.o.hidden;
    for (const [slot, list] of groups) {
      const px = this.o.images.get(list[0]!)!.pixels.length;
      const pixels = new Float32Array(px * list.length);
      list.forEach((key, i) => pixels.set(this.o.images.get(key)!.pixels, i * px));
      const encoded = await this.o.vision.encode(pixels, list.length, slot >= 0 ? this.o.loraOf(slot) : undefined);
      list.forEach((key, i) => features.set(`${slot}/${key}`, encoded.subarray(i * rows, (i + 1) * rows)));
    }
    for (const { ns, refs } of needed.values()) {
      if (out.has(ns.seqId)) continue;
      const slot = this.o.loraOf(ns.adapterSlot) ? ns.adapterSlot : -1;
      out.set(ns.seqId, { images: refs.map((r) => ({ key: r.key, start: r.start, length: r.length, features: features.get(`${slot}/${r.key}`)! })) });
      for (const r of refs) this.o.images.pin(r.key);
    }
  }

  /** Unpins a sequence's images (its prompt is done, or it ended). */
  release(images: readonly SeqImage[] | undefined): void {
    for (const img of images ?? []) this.o.images.unpin(img.key);
  }

  /** Why a sequence's image references cannot be right, or null. */
  private checkRefs(ns: NewSequence): string | null {
    const total = ns.tokens.length + (ns.pending ?? 0), per = this.o.spec.tokensPerImage;
    const sorted = [...ns.images!].sort((a, b) => a.start - b.start);
    for (const [i, r] of sorted.entries()) {
      if (r.length !== per) return `image '${r.key}' covers ${r.length} tokens; this model's images take ${per}`;
      if (r.start < 0 || r.start + r.length > total) return `image '${r.key}' covers tokens [${r.start}, ${r.start + r.length}) outside the prompt's ${total}`;
      if (i > 0 && r.start < sorted[i - 1]!.start + sorted[i - 1]!.length) return `images '${sorted[i - 1]!.key}' and '${r.key}' overlap`;
      for (let t = r.start; t < Math.min(r.start + r.length, ns.tokens.length); t++) {
        if (ns.tokens[t] !== this.o.spec.imageTokenId) {
          return `token ${t} (${ns.tokens[t]}) of image '${r.key}' is not the image token ${this.o.spec.imageTokenId}`;
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
 * the placeholder positions it covers and their feature rows.
 */
export function imageOverrides(rows: readonly { at: number; firstPos: number; count: number; images?: readonly SeqImage[] }[],
  hidden: number): { embedRows: Int32Array; embedValues: Float32Array } | null {
  const idx: number[] = [], parts: Float32Array[] = [];
  for (const row of rows) {
    for (const img of row.images ?? []) {
      const lo = Math.max(img.start, row.firstPos), hi = Math.min(img.start + img.length, row.firstPos + row.count);
      for (let p = lo; p < hi; p++) {
        idx.push(row.at + p - row.firstPos);
        parts.push(img.features.subarray((p - img.start) * hidden, (p - img.start + 1) * hidden));
      }
    }
  }
  if (idx.length === 0) return null;
  const embedValues = new Float32Array(idx.length * hidden);
  parts.forEach((p, i) => embedValues.set(p, i * hidden));
  return { embedRows: Int32Array.from(idx), embedValues };
}
