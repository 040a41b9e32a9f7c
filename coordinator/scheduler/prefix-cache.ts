// Prefix caching: content keys of full KV blocks, what an admission may reuse, what a finished step registers. A block's K/V depend on every token before it and on
// the adapter (LoRA on k/v projections changes them), so block i's key hashes block i-1's key, the adapter
// and block i's tokens: equal keys mean equal K/V (SHA-256: a collision would silently serve wrong K/V, so
// no short hash). An image's placeholder tokens are the same for every image, so the key of the block where an
// image starts also hashes the image's key (a hash of its pixels): from there on, every block's key differs per
// image (each hashes the one before), while the same image with the same text still shares.
import { createHash } from 'node:crypto';
import type { ImageRef } from '../../protocol/index.js';
import type { BlockManager } from './block-manager.js';
import type { Sequence } from './sequence.js';

/**
 * The salt of the first block: which weights computed the K/V (the base model, or one adapter key), and for a
 * longrope model whether they were rotated with its long factors (a prompt past the original context).
 */
export function prefixSalt(adapterKey: string | null, ropeLong = false): string {
  return (adapterKey === null ? 'base' : `adapter:${adapterKey}`) + (ropeLong ? ':rope-long' : '');
}

/**
 * Extends `hashes` (the keys of the first hashes.length blocks of `tokens`) to the first `count` full blocks.
 * Tokens only ever get appended to a sequence, so keys computed once stay valid.
 */
export function extendBlockHashes(hashes: string[], tokens: readonly number[], blockSize: number, salt: string, count: number,
  images: readonly ImageRef[] = []): void {
  const full = Math.min(count, Math.floor(tokens.length / blockSize));
  const bytes = new Uint8Array(new Int32Array(blockSize).buffer);
  const view = new DataView(bytes.buffer);
  for (let i = hashes.length; i < full; i++) {
    for (let j = 0; j < blockSize; j++) view.setInt32(j * 4, tokens[i * blockSize + j]!, true);
    const h = createHash('sha256');
    h.update(i === 0 ? salt : hashes[i - 1]!);
    h.update('\0');
    h.update(bytes);
    for (const img of images) {
      if (img.start >= i * blockSize && img.start < (i + 1) * blockSize) h.update(`\0image@${img.start}:${img.key}`);
    }
    hashes.push(h.digest('base64'));
  }
}

/** Extends seq.blockHashes to its first `count` full blocks. */
function hashBlocks(seq: Sequence, blockSize: number, count: number): void {
  extendBlockHashes(seq.blockHashes, seq.allTokens(), blockSize, prefixSalt(seq.adapterKey, seq.ropeLong), count, seq.images);
}

/** Leading full blocks an admission may take from the cache: all but the one holding the last token. */
function usableBlocks(seq: Sequence, blockSize: number): number {
  return Math.floor((seq.length - 1) / blockSize);
}

/**
 * The cached blocks an admission of seq can start from: its leading full blocks registered in the cache,
 * short of the block holding its last token (that token's logits must be computed, and a block being
 * written is never shared). None for a prompt whose every position is wanted (Sequence.usesPrefixCache).
 */
export function cachedPrefix(blocks: BlockManager, seq: Sequence): number[] {
  const usable = usableBlocks(seq, blocks.blockSize);
  if (!seq.usesPrefixCache || usable === 0) return [];
  hashBlocks(seq, blocks.blockSize, usable);
  return blocks.matchPrefix(seq.blockHashes.slice(0, usable));
}

/** Registers seq's full blocks whose K/V are now computed (its first `computed` tokens). */
export function registerComputed(blocks: BlockManager, seq: Sequence, computed: number, pending: PendingBlocks): void {
  const full = Math.floor(computed / blocks.blockSize);
  if (full <= seq.registeredBlocks) return;
  hashBlocks(seq, blocks.blockSize, full);
  const keys = seq.blockHashes.slice(seq.registeredBlocks, full);
  blocks.register(seq.seqId, seq.registeredBlocks, keys);
  pending.registered(seq.seqId, keys);
  seq.registeredBlocks += keys.length;
}

/**
 * The full prompt blocks of admitted sequences that steps already built are computing, by content key. A
 * waiting request whose next uncached block is one of them waits until it is registered instead of computing
 * the same K/V beside it (a burst of requests with one system prompt, `n` choices of one prompt): it is
 * skipped, not blocking the requests behind it, and admitted as soon as the block is in the cache or its
 * owner is gone.
 */
export class PendingBlocks {
  private readonly owner = new Map<string, string>();
  private readonly keysOf = new Map<string, string[]>();

  /** seq was admitted: its full prompt blocks not yet registered are being computed. */
  admitted(seq: Sequence, blockSize: number): void {
    const full = Math.floor(seq.prefillTotal / blockSize);
    if (full <= seq.registeredBlocks) return;
    hashBlocks(seq, blockSize, full);
    const keys = seq.blockHashes.slice(seq.registeredBlocks, full).filter((k) => !this.owner.has(k));
    for (const k of keys) this.owner.set(k, seq.seqId);
    this.keysOf.set(seq.seqId, keys);
  }

  registered(seqId: string, keys: readonly string[]): void {
    for (const k of keys) if (this.owner.get(k) === seqId) this.owner.delete(k);
  }

  /** seq ended or went back to the queue. */
  dropped(seqId: string): void {
    for (const k of this.keysOf.get(seqId) ?? []) if (this.owner.get(k) === seqId) this.owner.delete(k);
    this.keysOf.delete(seqId);
  }

  /** Whether seq should wait: its first block after the cached `hits` is being computed for another sequence. */
  shouldWait(seq: Sequence, hits: number, blockSize: number): boolean {
    if (!seq.usesPrefixCache) return false;
    if (hits >= usableBlocks(seq, blockSize)) return false;
    const owner = this.owner.get(seq.blockHashes[hits]!);
    return owner !== undefined && owner !== seq.seqId;
  }

  get size(): number {
    return this.owner.size;
  }
}
