// A vision-language model's image pipeline on the coordinator: fetches a request's images (image-fetch.ts), then
// decodes and preprocesses each on a piscina worker (image-worker.ts) into the pixel values the shards' vision tower
// takes. One request's images are loaded once, whatever its number of choices.
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { loadSharp } from './decode.js';
import { fetchImageBytes } from './image-fetch.js';
import { ImageInputError } from './image-error.js';
import type { ImageTask, ImageTaskResult } from './image-worker.js';
import { readPreprocessorConfig, type ImageProcessorConfig } from './preprocessor-config.js';
import type { ImageInput, ImageLimits, PreparedImage } from './types.js';

export class ImageProcessor {
  #closed = false;

  private constructor(readonly config: ImageProcessorConfig, readonly limits: ImageLimits, private readonly pool: Piscina<ImageTask, ImageTaskResult>) {}

  /** Reads `modelDir`'s preprocessor_config.json (throws PreprocessorConfigError when it cannot be used) and starts
   * the workers (default: a quarter of the cores, 1 to 4). */
  static create(modelDir: string, limits: ImageLimits, threads?: number): ImageProcessor {
    const config = readPreprocessorConfig(modelDir);
    const n = threads ?? Math.max(1, Math.min(4, Math.floor(availableParallelism() / 4)));
    const pool = new Piscina<ImageTask, ImageTaskResult>({
      filename: fileURLToPath(new URL('./image-worker.js', import.meta.url)),
      minThreads: 0, maxThreads: n, idleTimeout: 30_000,
    });
    return new ImageProcessor(config, limits, pool);
  }

  /** A request's images, in order; ImageInputError (413/422) naming the first one that cannot be used. */
  async load(inputs: readonly ImageInput[], signal?: AbortSignal): Promise<PreparedImage[]> {
    if (this.#closed) throw new Error('ImageProcessor is closed');
    if (inputs.length > this.limits.maxImagesPerPrompt) {
      throw new ImageInputError(422, `the request has ${inputs.length} images; at most ${this.limits.maxImagesPerPrompt} per prompt ` +
        '(--max-images-per-prompt)');
    }
    // sharp's shared libraries must be loaded by the main thread before worker threads use them (glibc Linux), or
    // they can be unloaded under a worker that exits; the workers start on demand, after this.
    await loadSharp();
    // Fetched together (one slow URL does not wait behind another), processed as workers come free.
    return Promise.all(inputs.map(async (input) => {
      const label = `image ${input.at}`;
      const bytes = await fetchImageBytes(input.url, this.limits, label, signal);
      const r = await this.pool.run({ bytes, config: this.config, maxPixels: this.limits.maxImagePixels, label }, signal ? { signal } : {});
      if (!r.ok) throw new ImageInputError(r.status, r.message);
      const global = r.parts.at(-1)!;
      const image: PreparedImage = { key: global.key, height: global.height, width: global.width, data: global.data };
      // a tiling processor's image: its parts (the global one last: the image's own pixel values)
      if (r.tiled) image.tiles = { rows: r.rows, cols: r.cols, parts: r.parts };
      return image;
    }));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.pool.close();
  }
}
