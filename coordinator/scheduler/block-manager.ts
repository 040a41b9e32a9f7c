// Paged KV-cache bookkeeping. The coordinator decides which block ids each sequence owns; shards hold
// the memory. A sequence with L stored tokens owns exactly ceil(L / blockSize) blocks.

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

export class BlockManager {
  readonly numBlocks: number;
  readonly blockSize: number;
  /** Free block ids; popped from the end, so a fresh manager hands out 0, 1, 2, … */
  private readonly freeList: number[];
  private readonly tables = new Map<string, number[]>();

  constructor(numBlocks: number, blockSize: number) {
    checkCount('numBlocks', numBlocks, 1);
    checkCount('blockSize', blockSize, 1);
    this.numBlocks = numBlocks;
    this.blockSize = blockSize;
    this.freeList = [];
    for (let id = numBlocks - 1; id >= 0; id--) this.freeList.push(id);
  }

  get freeBlocks(): number {
    return this.freeList.length;
  }

  get usedBlocks(): number {
    return this.numBlocks - this.freeList.length;
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

  canAllocate(numTokens: number): boolean {
    return this.blocksFor(numTokens) <= this.freeList.length;
  }

  /** Gives seqId a fresh block table covering numTokens tokens. */
  allocate(seqId: string, numTokens: number): number[] {
    checkCount('numTokens', numTokens, 0);
    if (this.tables.has(seqId)) {
      throw new BlockAllocationError(`sequence ${seqId} already holds blocks`, 'ALREADY_ALLOCATED');
    }
    const table = this.take(this.blocksFor(numTokens), seqId);
    this.tables.set(seqId, table);
    return [...table];
  }

  /** Blocks appendSlots(seqId, newLength) would take. */
  missingBlocks(seqId: string, newLength: number): number {
    return this.missingBlocksOf(this.table(seqId), newLength);
  }

  canAppend(seqId: string, newLength: number): boolean {
    return this.missingBlocksOf(this.table(seqId), newLength) <= this.freeList.length;
  }

  /** Extends seqId's table to cover newLength tokens; returns only the block ids added (often none). */
  appendSlots(seqId: string, newLength: number): number[] {
    checkCount('newLength', newLength, 0);
    const table = this.table(seqId);
    const added = this.take(this.missingBlocksOf(table, newLength), seqId);
    table.push(...added);
    return added;
  }

  free(seqId: string): void {
    const table = this.table(seqId);
    this.tables.delete(seqId);
    // Push in reverse so the lowest ids of this table are reused first.
    for (let i = table.length - 1; i >= 0; i--) this.freeList.push(table[i]!);
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

  private take(count: number, seqId: string): number[] {
    if (count > this.freeList.length) {
      throw new BlockAllocationError(
        `sequence ${seqId} needs ${count} more KV blocks but only ${this.freeList.length} of ${this.numBlocks} are free`,
        'OUT_OF_BLOCKS',
      );
    }
    const taken: number[] = [];
    for (let i = 0; i < count; i++) taken.push(this.freeList.pop()!);
    return taken;
  }
}
