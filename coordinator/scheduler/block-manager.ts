// Paged KV-cache bookkeeping. The coordinator decides which block ids each sequence owns; shards hold
// the memory. A sequence with L stored tokens holds exactly ceil(L / blockSize) blocks; with prefix caching
// its leading full blocks may be shared with other sequences (read-only: nobody writes a registered block).

export type BlockAllocationErrorCode = 'OUT_OF_BLOCKS' | 'ALREADY_ALLOCATED' | 'UNKNOWN_SEQUENCE' | 'INVALID_ARGUMENT';

export class BlockAllocationError extends Error {
  override readonly name = 'BlockAllocationError';
  readonly code: BlockAllocationErrorCode;

  constructor(message: string, code: BlockAllocationErrorCode, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

function checkCount(what: string, n: number, min: number): void {
  if (!Number.isSafeInteger(n) || n < min) {
    throw new BlockAllocationError(`${what} must be an integer >= ${min}, got ${n}`, 'INVALID_ARGUMENT');
  }
}

/**
 * Block ids per sequence, with optional prefix caching: a full block whose K/V were computed can be
 * registered under its content key (prefix-cache.ts); a later sequence with the same leading blocks shares
 * them (reference counted) instead of computing them again. A registered block nobody holds stays cached
 * until its id is needed: free ids go first, then cached ones, least recently released first.
 */
export class BlockManager {
  readonly numBlocks: number;
  readonly blockSize: number;
  /** Free, uncached block ids; popped from the end, so a fresh manager hands out 0, 1, 2, … */
  private readonly freeList: number[];
  private readonly tables = new Map<string, number[]>();
  /** Sequences holding each block. */
  private readonly refs: Int32Array;
  /** Content key of each registered block. */
  private readonly keyOf = new Map<number, string>();
  private readonly blockOf = new Map<string, number>();
  /** Registered blocks nobody holds, least recently released first (Map keeps insertion order). */
  private readonly evictable = new Map<number, true>();

  constructor(numBlocks: number, blockSize: number) {
    checkCount('numBlocks', numBlocks, 1);
    checkCount('blockSize', blockSize, 1);
    this.numBlocks = numBlocks;
    this.blockSize = blockSize;
    this.refs = new Int32Array(numBlocks);
    this.freeList = [];
    for (let id = numBlocks - 1; id >= 0; id--) this.freeList.push(id);
  }

  /** Blocks a sequence can get: free ones plus cached ones nobody holds. */
  get freeBlocks(): number {
    return this.freeList.length + this.evictable.size;
  }

  /** Blocks held by at least one sequence. */
  get usedBlocks(): number {
    return this.numBlocks - this.freeBlocks;
  }

  /** Registered blocks (held or not): K/V a new sequence with that prefix can reuse. */
  get cachedBlocks(): number {
    return this.keyOf.size;
  }

  /** Tokens the whole cache can hold. */
  get capacityTokens(): number {
    return this.numBlocks * this.blockSize;
  }

  /** Blocks needed to store numTokens tokens. */
  blocksFor(numTokens: number): number {
    return Math.ceil(numTokens / this.blockSize);
  }

  has(seqId: string): boolean {
    return this.tables.has(seqId);
  }

  /** The registered blocks for the leading keys, up to the first key not cached. */
  matchPrefix(keys: readonly string[]): number[] {
    const hits: number[] = [];
    for (const key of keys) {
      const block = this.blockOf.get(key);
      if (block === undefined) break;
      hits.push(block);
    }
    return hits;
  }

  /** Whether allocate(…, numTokens, hits) fits. */
  canAllocate(numTokens: number, hits: readonly number[] = []): boolean {
    // A hit nobody holds is counted in freeBlocks but is not available for the rest.
    const idleHits = hits.reduce((n, b) => n + (this.refs[b] === 0 ? 1 : 0), 0);
    return this.blocksFor(numTokens) - hits.length <= this.freeBlocks - idleHits;
  }

  /** Gives seqId a block table covering numTokens tokens: the cached `hits` (from matchPrefix) first, then
   * fresh blocks. */
  allocate(seqId: string, numTokens: number, hits: readonly number[] = []): number[] {
    checkCount('numTokens', numTokens, 0);
    if (this.tables.has(seqId)) {
      throw new BlockAllocationError(`sequence ${seqId} already holds blocks`, 'ALREADY_ALLOCATED');
    }
    if (hits.length > this.blocksFor(numTokens) || !this.canAllocate(numTokens, hits)) {
      throw new BlockAllocationError(`sequence ${seqId} needs ${this.blocksFor(numTokens) - hits.length} more KV blocks ` +
        `but only ${this.freeBlocks} of ${this.numBlocks} are free`, 'OUT_OF_BLOCKS');
    }
    for (const b of hits) {
      if (!this.keyOf.has(b)) throw new BlockAllocationError(`block ${b} is not a cached block`, 'INVALID_ARGUMENT');
      this.hold(b);
    }
    const table = [...hits, ...this.take(this.blocksFor(numTokens) - hits.length, seqId)];
    this.tables.set(seqId, table);
    return [...table];
  }

  /** Blocks appendSlots(seqId, newLength) would take. */
  missingBlocks(seqId: string, newLength: number): number {
    return this.missingBlocksOf(this.table(seqId), newLength);
  }

  /** Blocks free(seqId) would make available: the ones no other sequence holds. */
  releasableBlocks(seqId: string): number {
    return this.table(seqId).reduce((n, b) => n + (this.refs[b] === 1 ? 1 : 0), 0);
  }

  canAppend(seqId: string, newLength: number): boolean {
    return this.missingBlocksOf(this.table(seqId), newLength) <= this.freeBlocks;
  }

  /** Extends seqId's table to cover newLength tokens; returns only the block ids added (often none). */
  appendSlots(seqId: string, newLength: number): number[] {
    checkCount('newLength', newLength, 0);
    const table = this.table(seqId);
    const added = this.take(this.missingBlocksOf(table, newLength), seqId);
    table.push(...added);
    return added;
  }

  /**
   * Registers seqId's blocks [from, from + keys.length) under those content keys: their K/V are computed. A
   * key already cached (another block holds the same content) leaves this block unregistered.
   */
  register(seqId: string, from: number, keys: readonly string[]): void {
    const table = this.table(seqId);
    keys.forEach((key, i) => {
      const block = table[from + i];
      if (block === undefined) throw new BlockAllocationError(`sequence ${seqId} has no block ${from + i}`, 'INVALID_ARGUMENT');
      if (this.blockOf.has(key) || this.keyOf.has(block)) return;
      this.blockOf.set(key, block);
      this.keyOf.set(block, key);
    });
  }

  /** Forgets every content key (the shards' K/V can no longer be trusted, e.g. a shard restarted). Blocks
   * held by sequences stay theirs. */
  clearCache(): void {
    for (const block of this.evictable.keys()) this.freeList.push(block);
    this.evictable.clear();
    this.keyOf.clear();
    this.blockOf.clear();
  }

  free(seqId: string): void {
    const table = this.table(seqId);
    this.tables.delete(seqId);
    // Release in reverse: the lowest ids of this table are reused first, and of its cached blocks the last
    // (the least shared) are evicted first.
    for (let i = table.length - 1; i >= 0; i--) {
      const block = table[i]!;
      if (--this.refs[block]! > 0) continue;
      if (this.keyOf.has(block)) this.evictable.set(block, true);
      else this.freeList.push(block);
    }
  }

  blockTable(seqId: string): readonly number[] {
    return this.table(seqId);
  }

  private table(seqId: string): number[] {
    const table = this.tables.get(seqId);
    if (table === undefined) {
      throw new BlockAllocationError(`sequence ${seqId} holds no blocks`, 'UNKNOWN_SEQUENCE');
    }
    return table;
  }

  private missingBlocksOf(table: readonly number[], newLength: number): number {
    return Math.max(0, this.blocksFor(newLength) - table.length);
  }

  private hold(block: number): void {
    if (this.refs[block]++ === 0) this.evictable.delete(block);
  }

  private take(count: number, seqId: string): number[] {
    if (count > this.freeBlocks) {
      throw new BlockAllocationError(
        `sequence ${seqId} needs ${count} more KV blocks but only ${this.freeBlocks} of ${this.numBlocks} are free`,
        'OUT_OF_BLOCKS',
      );
    }
    const taken: number[] = [];
    for (let i = 0; i < count; i++) {
      let block = this.freeList.pop();
      if (block === undefined) {
        // Evict the least recently released cached block.
        block = this.evictable.keys().next().value as number;
        this.evictable.delete(block);
        this.blockOf.delete(this.keyOf.get(block)!);
        this.keyOf.delete(block);
      }
      this.refs[block] = 1;
      taken.push(block);
    }
    return taken;
  }
}
