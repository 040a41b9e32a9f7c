// Multimodal RoPE positions (Qwen2-VL, Qwen2.5-VL), as transformers' get_rope_index gives them: a text token's
// three coordinates (temporal, height, width) are equal; an image's placeholder tokens — rows × cols merged patches,
// row-major — sit at (t0, t0 + row, t0 + col), where t0 is where the next text token would have been; the text
// after an image continues from t0 + max(rows, cols) (its largest coordinate + 1). So past the last image a token's
// position is its index plus a constant delta (what transformers keeps as rope_deltas for decode steps), and every
// position depends only on the tokens and images before it: chunked prefill, cached prefixes, drafts and a
// recompute after preemption all get the same positions from the prompt's tokens and its images' grids.

/** An image of a sequence: tokens [start, start + rows · cols) on a grid of rows × cols merged patches. */
export interface MropeImage {
  start: number;
  rows: number;
  cols: number;
}

interface Placed extends MropeImage {
  /** The image's temporal position (and the base of its heights and widths). */
  t0: number;
  /** Position minus index for the text after this image. */
  deltaAfter: number;
}

export class MropePositions {
  private readonly placed: Placed[] = [];

  constructor(images: readonly MropeImage[]) {
    let delta = 0;  // position - index of the text before the next image
    for (const img of [...images].sort((a, b) => a.start - b.start)) {
      const t0 = img.start + delta;
      const end = img.start + img.rows * img.cols;
      delta = t0 + Math.max(img.rows, img.cols) - end;
      this.placed.push({ ...img, t0, deltaAfter: delta });
    }
  }

  /** Position minus index past the last image (transformers' rope delta); 0 without images. */
  get delta(): number {
    return this.placed.at(-1)?.deltaAfter ?? 0;
  }

  /** Writes token `index`'s (t, h, w) into out[at], out[at + stride], out[at + 2 · stride]. */
  write(index: number, out: Int32Array, at: number, stride: number): void {
    let img: Placed | undefined;
    for (let i = this.placed.length - 1; i >= 0; i--) {
      if (this.placed[i]!.start <= index) {
        img = this.placed[i];
        break;
      }
    }
    if (img && index < img.start + img.rows * img.cols) {
      const k = index - img.start;
      out[at] = img.t0;
      out[at + stride] = img.t0 + Math.floor(k / img.cols);
      out[at + 2 * stride] = img.t0 + (k % img.cols);
      return;
    }
    const p = index + (img?.deltaAfter ?? 0);
    out[at] = p;
    out[at + stride] = p;
    out[at + 2 * stride] = p;
  }
}
