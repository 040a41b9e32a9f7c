// transformers' CLIPImageProcessor (PIL backend) on an RGB image: resize (PIL), center crop (zero padding where the
// image is smaller), rescale (in float64, then cast to float32) and normalize (in float32), channels first. Each
// step keeps transformers' arithmetic so the pixel values equal its output bit for bit.
import type { CommonProcessorFields } from './config-fields.js';
import type { ClipProcessorConfig } from './preprocessor-config.js';
import { resizeRgb } from './pil-resample.js';

export interface RgbImage {
  width: number;
  height: number;
  /** width x height x 3 bytes, row-major, RGB. */
  rgb: Uint8Array;
}

export interface PixelValues {
  height: number;
  width: number;
  /** float32 [3, height, width]. */
  data: Float32Array;
}

/**
 * transformers' get_resize_output_image_size(default_to_square=False): the shorter edge becomes `shortest`, the
 * longer int(shortest * long / short) (Python's float division, truncated). Returns [height, width].
 */
export function shortestEdgeSize(height: number, width: number, shortest: number): [number, number] {
  const [short, long] = width <= height ? [width, height] : [height, width];
  const newLong = Math.trunc(shortest * long / short);
  return width <= height ? [newLong, shortest] : [shortest, newLong];
}

/** Python's floor division. */
const floorDiv = (a: number, b: number): number => Math.floor(a / b);

/**
 * transformers' center_crop on an RGB image: the centered crop of size h x w; where the image is smaller, it is first
 * placed (centered, rounding the pad up) on a zero image large enough.
 */
export function centerCrop(img: RgbImage, h: number, w: number): RgbImage {
  const { width: W, height: H } = img;
  let top = floorDiv(H - h, 2);
  let left = floorDiv(W - w, 2);
  if (top >= 0 && top + h <= H && left >= 0 && left + w <= W) {
    const out = new Uint8Array(h * w * 3);
    for (let y = 0; y < h; y++) out.set(img.rgb.subarray(((top + y) * W + left) * 3, ((top + y) * W + left + w) * 3), y * w * 3);
    return { width: w, height: h, rgb: out };
  }
  const newH = Math.max(h, H), newW = Math.max(w, W);
  const topPad = Math.ceil((newH - H) / 2), leftPad = Math.ceil((newW - W) / 2);
  top += topPad;
  left += leftPad;
  const y0 = Math.max(0, top), y1 = Math.min(newH, top + h);
  const x0 = Math.max(0, left), x1 = Math.min(newW, left + w);
  const outW = x1 - x0, outH = y1 - y0;
  const out = new Uint8Array(outH * outW * 3);  // zeros: the padding
  for (let y = y0; y < y1; y++) {
    const sy = y - topPad;
    if (sy < 0 || sy >= H) continue;
    for (let x = x0; x < x1; x++) {
      const sx = x - leftPad;
      if (sx < 0 || sx >= W) continue;
      const s = (sy * W + sx) * 3, o = ((y - y0) * outW + (x - x0)) * 3;
      out[o] = img.rgb[s]!;
      out[o + 1] = img.rgb[s + 1]!;
      out[o + 2] = img.rgb[s + 2]!;
    }
  }
  return { width: outW, height: outH, rgb: out };
}

/** The whole pipeline: the float32 pixel values the model's vision tower takes. */
export function preprocessClip(img: RgbImage, c: ClipProcessorConfig): PixelValues {
  let cur = img;
  if (c.doResize) {
    const [h, w] = 'shortestEdge' in c.size ? shortestEdgeSize(cur.height, cur.width, c.size.shortestEdge) : [c.size.height, c.size.width];
    cur = { width: w, height: h, rgb: resizeRgb(cur.rgb, cur.width, cur.height, w, h, c.resample) };
  }
  if (c.doCenterCrop) cur = centerCrop(cur, c.cropSize.height, c.cropSize.width);
  return rescaleNormalize(cur, c);
}

/** transformers' rescale then normalize on the (resized) uint8 image, channels first — what every processor here
 * ends with. */
export function rescaleNormalize(img: RgbImage, c: CommonProcessorFields): PixelValues {
  const { width, height, rgb } = img;
  const plane = width * height;
  const data = new Float32Array(3 * plane);
  const mean = c.imageMean.map((m) => Math.fround(m));
  const std = c.imageStd.map((s) => Math.fround(s));
  for (let ch = 0; ch < 3; ch++) {
    const m = mean[ch]!, s = std[ch]!;
    for (let i = 0; i < plane; i++) {
      // rescale: uint8 -> float64 times the factor, then float32; normalize: (x - mean) / std in float32.
      let v = c.doRescale ? Math.fround(rgb[i * 3 + ch]! * c.rescaleFactor) : rgb[i * 3 + ch]!;
      if (c.doNormalize) v = Math.fround(Math.fround(v - m) / s);
      data[ch * plane + i] = v;
    }
  }
  return { height, width, data };
}
