// What the HTTP layer hands the engine for a request's images, and what comes back ready for the shards.

/** An image as a request gives it: its URL and where it is in the request (for error messages). */
export interface ImageInput {
  url: string;
  /** e.g. "messages[0].content[1]"; errors say "image <at>". */
  at: string;
}

/** An image's pixel values as the model's image processor gives them (float32 [3, height, width]) and their key. */
export interface PreparedImage {
  /** A content hash of the pixel values: the same image sent twice has one key (protocol ImageData.key). */
  key: string;
  height: number;
  width: number;
  data: Float32Array;
  /** A tiling processor's image (Idefics3's, SmolVLM's): every image the shards see for it, in the prompt's order — the
   * rows × cols tiles row-major, then the global image (whose key and pixel values are this image's own) — and the
   * split's rows and cols (0 × 0: not split, one part). Absent: the image is its one part. */
  tiles?: { rows: number; cols: number; parts: readonly PreparedImage[] };
}

/** The images the shards see for `img`, in prompt order: its tiles, or itself. */
export function shardImages(img: PreparedImage): readonly PreparedImage[] {
  return img.tiles?.parts ?? [img];
}

/** The server's limits on images (flags). */
export interface ImageLimits {
  /** --max-images-per-prompt. */
  maxImagesPerPrompt: number;
  /** --max-image-bytes: one image's file. */
  maxImageBytes: number;
  /** --max-image-pixels: one image's decoded width x height. */
  maxImagePixels: number;
  /** --image-fetch-timeout-ms. */
  fetchTimeoutMs: number;
  /** --allowed-local-media-path (null: file:// refused). */
  allowedLocalMediaPath: string | null;
  /** --allowed-media-domains (empty: any host). */
  allowedMediaDomains: readonly string[];
}

export const DEFAULT_IMAGE_LIMITS: Readonly<ImageLimits> = Object.freeze({
  maxImagesPerPrompt: 4,
  maxImageBytes: 20 * 1024 * 1024,
  maxImagePixels: 40_000_000,
  fetchTimeoutMs: 10_000,
  allowedLocalMediaPath: null,
  allowedMediaDomains: [],
});
