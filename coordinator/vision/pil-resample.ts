// Pillow's Image.resize for 8-bit RGB images (no box, no reducing_gap — how transformers' image processors call it),
// reproduced to the byte: a separable convolution, horizontal pass first (only when the width changes) into an
// 8-bit image, then the vertical pass (only when the height changes). The filter weights of each output pixel
// are computed in double precision, normalized to sum 1, then turned into 22-bit fixed-point integers; a pixel
// is the rounded, clipped fixed-point sum. Every step below follows Pillow's libImaging/Resample.c in its order
// of operations, because a different rounding order moves values by one and the vision tower would see other
// pixels than it does under transformers.

/** PIL's resampling filters by their Image.Resampling number (preprocessor_config.json's `resample`). */
export const PIL_FILTERS: Readonly<Record<number, { name: string; support: number; weight: (x: number) => number }>> = {
  1: { name: 'LANCZOS', support: 3, weight: lanczos },
  2: { name: 'BILINEAR', support: 1, weight: bilinear },
  3: { name: 'BICUBIC', support: 2, weight: bicubic },
  4: { name: 'BOX', support: 0.5, weight: box },
  5: { name: 'HAMMING', support: 1, weight: hamming },
};

// 32 bits of an int: 8 for the pixel, 2 for the overshoot of filters with negative lobes, the rest for the fraction.
const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;
const HALF = 2 ** (PRECISION_BITS - 1);

function box(x: number): number {
  return x > -0.5 && x <= 0.5 ? 1 : 0;
}

function bilinear(x: number): number {
  const ax = x < 0 ? -x : x;
  return ax < 1 ? 1 - ax : 0;
}

// Float constants of the C source (0.54f, 0.46f): their float32 values, used in double arithmetic.
const HAMMING_A = Math.fround(0.54);
const HAMMING_B = Math.fround(0.46);

function hamming(x: number): number {
  let ax = x < 0 ? -x : x;
  if (ax === 0) return 1;
  if (ax >= 1) return 0;
  ax = ax * Math.PI;
  return Math.sin(ax) / ax * (HAMMING_A + HAMMING_B * Math.cos(ax));
}

/** Keys' cubic convolution with a = -0.5, written as Resample.c writes it (same operation order). */
function bicubic(x: number): number {
  const a = -0.5;
  const ax = x < 0 ? -x : x;
  if (ax < 1) return ((a + 2.0) * ax - (a + 3.0)) * ax * ax + 1;
  if (ax < 2) return (((ax - 5) * ax + 8) * ax - 4) * a;
  return 0;
}

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

function lanczos(x: number): number {
  return x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0;
}

/** Per output position: the first input index, how many inputs, and their fixed-point weights (ksize per position). */
interface Coefficients {
  ksize: number;
  bounds: Int32Array;  // [xmin, count] per output position
  weights: Int32Array; // ksize per output position
}

/** Resample.c's precompute_coeffs + normalize_coeffs_8bpc over the whole input range [0, inSize). */
function coefficients(inSize: number, outSize: number, filter: { support: number; weight: (x: number) => number }): Coefficients {
  const scale = inSize / outSize;
  const filterscale = scale < 1 ? 1 : scale;
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const ss = 1.0 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;  // in0 is 0: `in0 + (xx + 0.5) * scale`
    let ww = 0;
    // C's (int) cast truncates toward zero; a negative start is clamped to 0 either way.
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const count = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    for (let x = 0; x < count; x++) {
      const w = filter.weight((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < count; x++) {
      const v = ww !== 0 ? k[x]! / ww : k[x]!;
      // (int)(±0.5 + v * 2^22): rounds half away from zero by truncation
      weights[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = count;
  }
  return { ksize, bounds, weights };
}

/** The fixed-point sum to a byte: Resample.c's clip8 (an arithmetic shift, clamped to 0..255). */
function clip8(sum: number): number {
  const v = Math.floor(sum / ONE);
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Resizes an RGB image (3 bytes per pixel, row-major) to outWidth x outHeight with a PIL filter (PIL_FILTERS'
 * numbers); returns the new RGB bytes. Exactly Pillow's result for the same input bytes.
 */
export function resizeRgb(rgb: Uint8Array, width: number, height: number, outWidth: number, outHeight: number, resample: number): Uint8Array {
  const filter = PIL_FILTERS[resample];
  if (filter === undefined) throw new RangeError(`PIL resampling filter ${resample} is not supported (1 LANCZOS, 2 BILINEAR, 3 BICUBIC, 4 BOX, 5 HAMMING)`);
  if (rgb.length !== width * height * 3) throw new RangeError(`RGB buffer of ${rgb.length} bytes is not ${width} x ${height} x 3`);
  if (outWidth === width && outHeight === height) return rgb.slice();
  const vert = coefficients(height, outHeight, filter);
  let src = rgb;
  let rows = height;
  let rowOffset = 0;  // the first input row the vertical pass reads, in `src`
  if (outWidth !== width) {
    // Only the rows the vertical pass reads are resampled horizontally (Pillow's ybox_first..ybox_last).
    const first = vert.bounds[0]!;
    const last = vert.bounds[(outHeight - 1) * 2]! + vert.bounds[(outHeight - 1) * 2 + 1]!;
    src = horizontal(rgb, width, first, last, outWidth, coefficients(width, outWidth, filter));
    rows = last - first;
    rowOffset = first;
  }
  if (outHeight === height) return src;
  return vertical(src, outWidth, rows, rowOffset, outHeight, vert);
}

function horizontal(rgb: Uint8Array, width: number, firstRow: number, lastRow: number, outWidth: number, c: Coefficients): Uint8Array {
  const out = new Uint8Array(outWidth * (lastRow - firstRow) * 3);
  const { ksize, bounds, weights } = c;
  for (let y = firstRow; y < lastRow; y++) {
    const row = y * width * 3;
    const outRow = (y - firstRow) * outWidth * 3;
    for (let xx = 0; xx < outWidth; xx++) {
      const xmin = bounds[xx * 2]!;
      const count = bounds[xx * 2 + 1]!;
      const kb = xx * ksize;
      let s0 = HALF, s1 = HALF, s2 = HALF;
      for (let x = 0; x < count; x++) {
        const w = weights[kb + x]!;
        const p = row + (x + xmin) * 3;
        s0 += rgb[p]! * w;
        s1 += rgb[p + 1]! * w;
        s2 += rgb[p + 2]! * w;
      }
      const o = outRow + xx * 3;
      out[o] = clip8(s0);
      out[o + 1] = clip8(s1);
      out[o + 2] = clip8(s2);
    }
  }
  return out;
}

/** `rowOffset`: input row r of the original image is row r - rowOffset of `src`. */
function vertical(src: Uint8Array, width: number, rows: number, rowOffset: number, outHeight: number, c: Coefficients): Uint8Array {
  const out = new Uint8Array(width * outHeight * 3);
  const { ksize, bounds, weights } = c;
  const stride = width * 3;
  for (let yy = 0; yy < outHeight; yy++) {
    const ymin = bounds[yy * 2]! - rowOffset;
    const count = bounds[yy * 2 + 1]!;
    if (ymin < 0 || ymin + count > rows) throw new RangeError('resize: vertical bounds outside the horizontally resampled rows');
    const kb = yy * ksize;
    for (let i = 0; i < stride; i++) {
      let s = HALF;
      for (let y = 0; y < count; y++) s += src[(y + ymin) * stride + i]! * weights[kb + y]!;
      out[yy * stride + i] = clip8(s);
    }
  }
  return out;
}
