// Image bytes to RGB pixels as transformers' load_image gives them to an image processor: PIL's decoding,
// PIL.ImageOps.exif_transpose, then convert('RGB'). Decoding is sharp's (libvips: libspng for PNG, mozjpeg — the
// libjpeg-turbo decoder PIL also uses — for JPEG, libwebp, cgif); what differs from PIL is undone here:
//  - ICC profiles are ignored (PIL does not apply them);
//  - alpha is dropped, not composited (convert('RGB') of RGBA / LA / P with transparency keeps the colour values);
//  - 16-bit PNGs: PIL keeps the high byte of each RGB sample, and opens 16-bit greyscale as mode I, whose convert('RGB')
//    clips to 255 (sharp would scale by 1/257).
// Only PNG, JPEG, GIF and WebP are accepted (sniffed from the bytes): sharp reads more (SVG, TIFF, HEIF…), and an
// image URL is untrusted input, so its attack surface stays at the formats clients send.
import type { Metadata, SharpConstructor } from 'sharp';
import type { RgbImage } from './clip-preprocess.js';
import { ImageInputError } from './image-error.js';

export type ImageFormat = 'png' | 'jpeg' | 'gif' | 'webp';

/** The format by magic bytes, or null. */
export function sniffFormat(bytes: Uint8Array): ImageFormat | null {
  const at = (i: number, ...b: number[]) => b.every((x, j) => bytes[i + j] === x);
  if (at(0, 0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return 'png';
  if (at(0, 0xff, 0xd8, 0xff)) return 'jpeg';
  if (at(0, 0x47, 0x49, 0x46, 0x38)) return 'gif';
  if (at(0, 0x52, 0x49, 0x46, 0x46) && at(8, 0x57, 0x45, 0x42, 0x50)) return 'webp';
  return null;
}

/** sharp, loaded on first use: a text-only server never loads its native library (nor fails on a platform without it). */
export function loadSharp(): Promise<SharpConstructor> {
  return sharpModule ??= import('sharp').then((m) => m.default);
}
let sharpModule: Promise<SharpConstructor> | undefined;

/**
 * Decodes `bytes` to RGB. `maxPixels` bounds width x height before any pixel is decoded (a small file can declare a
 * huge image: a decompression bomb); `label` names the image in errors.
 */
export async function decodeRgb(bytes: Uint8Array, maxPixels: number, label: string): Promise<RgbImage> {
  const format = sniffFormat(bytes);
  if (format === null) throw new ImageInputError(422, `${label} is not a PNG, JPEG, GIF or WebP image`);
  const sharp = await loadSharp();
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (e) {
    throw new ImageInputError(422, `${label} could not be decoded as ${format.toUpperCase()}: ${(e as Error).message}`);
  }
  const width = meta.width ?? 0, height = meta.height ?? 0;
  if (width < 1 || height < 1) throw new ImageInputError(422, `${label} has no pixels (${width} x ${height})`);
  if (width * height > maxPixels) {
    throw new ImageInputError(413, `${label} is ${width} x ${height} = ${width * height} pixels, over the server's limit of ${maxPixels} ` +
      '(--max-image-pixels); send a smaller image');
  }
  const sixteen = meta.depth === 'ushort';
  const grey = meta.space === 'b-w' || meta.space === 'grey16';
  try {
    // pages: 1 — an animated GIF or WebP is its first frame, as PIL opens it.
    let pipeline = sharp(bytes, { ignoreIcc: true, autoOrient: true, pages: 1, limitInputPixels: maxPixels });
    if (sixteen) pipeline = pipeline.toColourspace(grey ? 'grey16' : 'rgb16');
    const { data, info } = await pipeline.raw(sixteen ? { depth: 'ushort' } : {}).toBuffer({ resolveWithObject: true });
    const samples = sixteen ? new Uint16Array(data.buffer, data.byteOffset, data.byteLength / 2) : data;
    return toRgb(samples, info.width, info.height, info.channels, sixteen, grey && info.channels === 1);
  } catch (e) {
    if (e instanceof ImageInputError) throw e;
    throw new ImageInputError(422, `${label} could not be decoded as ${format.toUpperCase()}: ${(e as Error).message}`);
  }
}

/** Interleaved samples (1 to 4 channels; a last channel of 2 or 4 is alpha) to RGB bytes, PIL's convert('RGB'). */
function toRgb(samples: ArrayLike<number>, width: number, height: number, channels: number, sixteen: boolean,
  grey16: boolean): RgbImage {
  const n = width * height;
  const rgb = new Uint8Array(n * 3);
  // 16-bit: PIL keeps the high byte of RGB (and LA) samples; a lone 16-bit grey channel is clipped (mode I).
  const byte = !sixteen ? (v: number) => v : grey16 ? (v: number) => (v > 255 ? 255 : v) : (v: number) => v >> 8;
  const colour = channels >= 3;
  for (let i = 0; i < n; i++) {
    const s = i * channels;
    if (colour) {
      rgb[i * 3] = byte(samples[s]!);
      rgb[i * 3 + 1] = byte(samples[s + 1]!);
      rgb[i * 3 + 2] = byte(samples[s + 2]!);
    } else {
      const g = byte(samples[s]!);
      rgb[i * 3] = g;
      rgb[i * 3 + 1] = g;
      rgb[i * 3 + 2] = g;
    }
  }
  return { width, height, rgb };
}
