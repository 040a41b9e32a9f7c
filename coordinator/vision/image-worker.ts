// Piscina worker: decodes one image and computes its pixel values and content key, off the coordinator's event loop
// (a large photo's resize is hundreds of millions of multiply-adds).
import { createHash } from 'node:crypto';
import { decodeRgb } from './decode.js';
import { ImageInputError } from './image-error.js';
import { preprocessTiles } from './preprocess.js';
import type { ImageProcessorConfig } from './preprocessor-config.js';

export interface ImageTask {
  bytes: Uint8Array;
  config: ImageProcessorConfig;
  maxPixels: number;
  /** Names the image in error messages. */
  label: string;
}

/** One image the shards see. */
export interface ImagePart { key: string; height: number; width: number; data: Float32Array }

export type ImageTaskResult =
  /** parts: the images the shards see for this one, in prompt order (one, or a tiling processor's tiles then its global
   * image: rows × cols + 1; rows = cols = 0 when not split). */
  | { ok: true; parts: ImagePart[]; rows: number; cols: number; tiled: boolean }
  | { ok: false; status: 413 | 422; message: string };

/** The key of pixel values: equal keys mean equal pixels (SHA-256, as the prefix cache's block keys). */
export function pixelKey(height: number, width: number, data: Float32Array): string {
  const h = createHash('sha256');
  h.update(`${height}x${width}\0`);
  h.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return `sha256:${h.digest('base64url')}`;
}

export default async function processImage(task: ImageTask): Promise<ImageTaskResult> {
  try {
    const rgb = await decodeRgb(task.bytes, task.maxPixels, task.label);
    const { tiles, rows, cols } = preprocessTiles(rgb, task.config, task.label);
    const parts = tiles.map((px) => ({ key: pixelKey(px.height, px.width, px.data), height: px.height, width: px.width, data: px.data }));
    return { ok: true, parts, rows, cols, tiled: task.config.kind === 'idefics3' };
  } catch (e) {
    if (e instanceof ImageInputError) return { ok: false, status: e.status, message: e.message };
    throw e;
  }
}
