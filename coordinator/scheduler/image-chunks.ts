// Chunked prefill around images whose tokens attend to each other both ways (SchedulerConfig.bidirectionalImages,
// ModelInfo.vision.bidirectionalImages: Gemma 3). An image's earlier tokens need its later ones, so a prefill chunk
// never ends inside an image's range [start, start + length): it ends before the image, or runs to the image's end.
// An image that does not fit in what is left of the step's prefill budget waits for a step where it does; one larger
// than the whole budget goes whole, over it, as a step's first prefill work (as prompts that must stay whole do).
// A cached prefix may end inside an image (its blocks were computed with the whole image); the chunk that continues
// it then runs at least to the image's end.
import type { ImageRef } from '../../protocol/index.js';

/**
 * How many tokens the next prefill chunk of a sequence takes from position `from` on: at most `left` (the step's
 * prefill budget left) and `remaining` (its prefill tokens not yet sent), moved so that it does not end inside an
 * image when `bidirectional`. `fresh`: nothing else is prefilled in this step yet (an image over the budget may then go
 * whole). 0: nothing fits now (the sequence waits).
 */
export function chunkLength(from: number, remaining: number, left: number, images: readonly ImageRef[], bidirectional: boolean,
  fresh: boolean): number {
  const n = Math.max(0, Math.min(left, remaining));
  if (!bidirectional || n === remaining || images.length === 0) return n;
  const end = from + n;
  const inside = images.find((img) => img.start < end && end < img.start + img.length);
  if (inside === undefined) return n;
  // End before the image when the chunk has tokens before it; else the image must be whole in this chunk.
  if (inside.start > from) return inside.start - from;
  const need = inside.start + inside.length - from;
  return fresh ? Math.min(need, remaining) : 0;
}

/** Whether a chunk boundary at `end` (tokens [0, end) computed, the rest later) splits one of `images`. */
export function splitsImage(end: number, images: readonly ImageRef[]): boolean {
  return images.some((img) => img.start < end && end < img.start + img.length);
}
