// A shard's images (vision-language models): `image.data` chunks assembled into pixel arrays by key. The coordinator
// publishes an image before the step that refers to it; a step waits here (bounded) for one still on its way. An
// image stays while a sequence that refers to it is prefilling (pinned), and after that while it is among the most
// recently used within a byte budget and not older than a while (the same image in the next request is not sent
// again if the coordinator knows it is here; it is resent otherwise, and simply replaces this copy).
import { bytesToFloat32, type ImageData } from '../../protocol/index.js';

export interface StoredImage {
  height: number;
  width: number;
  /** float32 [channels, height, width], as the model's image processor gave them. */
  pixels: Float32Array;
}

interface Partial {
  height: number;
  width: number;
  chunks: (Uint8Array | undefined)[];
  got: number;
  bytes: number;
  since: number;
}

interface Entry extends StoredImage {
  pins: number;
  lastUsed: number;
}

export interface ImageStoreOptions {
  /** Colour channels of the model's pixel values (3). */
  channels: number;
  /** Complete, unpinned images kept up to this many bytes (default 256 MiB). */
  maxBytes?: number;
  /** An unpinned image unused this long is dropped; chunks of an image not complete this long too (default 10 min). */
  maxAgeMs?: number;
  now?: () => number;
}

export class ImageStore {
  private readonly complete = new Map<string, Entry>();
  private readonly partial = new Map<string, Partial>();
  /** Why an image's chunks were refused (sizes that do not add up): a step waiting for it fails at once with this. */
  private readonly refused = new Map<string, string>();
  private readonly waiters = new Map<string, (() => void)[]>();
  private bytes = 0;
  private readonly maxBytes: number;
  private readonly maxAgeMs: number;
  private readonly now: () => number;

  constructor(private readonly o: ImageStoreOptions) {
    this.maxBytes = o.maxBytes ?? 256 * 2 ** 20;
    this.maxAgeMs = o.maxAgeMs ?? 10 * 60_000;
    this.now = o.now ?? Date.now;
  }

  /** Takes one chunk; the image is usable once every chunk came. A chunk that does not fit is dropped, and the
   * reason kept for the step that waits for the image. */
  put(msg: Pick<ImageData, 'key' | 'height' | 'width' | 'chunk' | 'chunks' | 'data'>): void {
    const { key, height, width, chunk, chunks, data } = msg;
    const want = this.o.channels * height * width * 4;
    if (!(Number.isInteger(height) && height > 0 && Number.isInteger(width) && width > 0 && Number.isInteger(chunks) &&
      chunks > 0 && Number.isInteger(chunk) && chunk >= 0 && chunk < chunks)) {
      return this.refuse(key, `chunk ${chunk} of ${chunks} of a ${height}×${width} image is malformed`);
    }
    let p = this.partial.get(key);
    if (p && (p.height !== height || p.width !== width || p.chunks.length !== chunks)) {
      this.partial.delete(key);  // a resend with other sizes: start over with this one
      p = undefined;
    }
    if (!p) {
      p = { height, width, chunks: new Array(chunks).fill(undefined), got: 0, bytes: 0, since: this.now() };
      this.partial.set(key, p);
    }
    if (p.chunks[chunk] === undefined) {
      p.chunks[chunk] = new Uint8Array(data);  // a copy: the decoded message's bytes are a view into its buffer
      p.got++;
      p.bytes += data.byteLength;
    }
    if (p.got < chunks) return;
    this.partial.delete(key);
    if (p.bytes !== want) {
      return this.refuse(key, `its chunks hold ${p.bytes} bytes, not ${want} (float32 [${this.o.channels}, ${height}, ${width}])`);
    }
    const all = new Uint8Array(want);
    let at = 0;
    for (const c of p.chunks) {
      all.set(c!, at);
      at += c!.byteLength;
    }
    const old = this.complete.get(key);
    if (old) this.bytes -= old.pixels.byteLength;
    this.complete.set(key, { height, width, pixels: bytesToFloat32(all), pins: old?.pins ?? 0, lastUsed: this.now() });
    this.bytes += want;
    this.refused.delete(key);
    this.wake(key);
    this.trim();
  }

  get(key: string): StoredImage | undefined {
    const e = this.complete.get(key);
    if (e) e.lastUsed = this.now();
    return e;
  }

  /** Why the image's chunks were refused, if they were. */
  refusal(key: string): string | undefined {
    return this.refused.get(key);
  }

  /** Resolves when the image is complete (true) or refused / the time is up (false). */
  waitFor(key: string, deadline: number): Promise<boolean> {
    if (this.complete.has(key)) return Promise.resolve(true);
    if (this.refused.has(key) || deadline <= this.now()) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        resolve(this.complete.has(key));
      };
      const timer = setTimeout(() => {
        const list = this.waiters.get(key);
        if (list) this.waiters.set(key, list.filter((f) => f !== done));
        resolve(this.complete.has(key));
      }, deadline - this.now());
      (this.waiters.get(key) ?? this.waiters.set(key, []).get(key)!).push(done);
    });
  }

  /** A prefilling sequence refers to it: it is not dropped until unpinned. */
  pin(key: string): void {
    const e = this.complete.get(key);
    if (e) e.pins++;
  }

  unpin(key: string): void {
    const e = this.complete.get(key);
    if (e && e.pins > 0) e.pins--;
    this.trim();
  }

  /** Bytes of complete images held. */
  get heldBytes(): number {
    return this.bytes;
  }

  private refuse(key: string, why: string): void {
    this.partial.delete(key);
    this.refused.set(key, why);
    this.wake(key);
  }

  private wake(key: string): void {
    const list = this.waiters.get(key);
    this.waiters.delete(key);
    for (const f of list ?? []) f();
  }

  /** Drops stale chunks, then unpinned images too old or past the byte budget, least recently used first. */
  private trim(): void {
    const now = this.now();
    for (const [key, p] of this.partial) if (now - p.since > this.maxAgeMs) this.partial.delete(key);
    const unpinned = [...this.complete].filter(([, e]) => e.pins === 0).sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    for (const [key, e] of unpinned) {
      if (this.bytes <= this.maxBytes && now - e.lastUsed <= this.maxAgeMs) break;
      this.complete.delete(key);
      this.bytes -= e.pixels.byteLength;
    }
    if (this.refused.size > 1024) this.refused.clear();  // reasons are for the step right after; never unbounded
  }
}
