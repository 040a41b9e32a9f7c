import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockAllocationError, BlockManager } from '../../coordinator/scheduler/index.js';

function code(c: string): (e: unknown) => boolean {
  return (e) => e instanceof BlockAllocationError && e.code === c;
}

test('blocksFor rounds up at block boundaries', () => {
  const bm = new BlockManager(8, 4);
  assert.deepEqual([0, 1, 3, 4, 5, 8, 9].map((n) => bm.blocksFor(n)), [0, 1, 1, 1, 2, 2, 3]);
  assert.equal(bm.capacityTokens, 32);
});

test('allocate takes ceil(n / blockSize) blocks, lowest ids first', () => {
  const bm = new BlockManager(8, 4);
  assert.deepEqual(bm.allocate('a', 4), [0]);
  assert.deepEqual(bm.allocate('b', 5), [1, 2]);
  assert.deepEqual(bm.allocate('c', 0), []);
  assert.equal(bm.usedBlocks, 3);
  assert.equal(bm.freeBlocks, 5);
  assert.deepEqual(bm.blockTable('b'), [1, 2]);
  assert.ok(bm.has('c'));
});

test('appendSlots adds a block only when the length crosses a boundary', () => {
  const bm = new BlockManager(8, 4);
  bm.allocate('a', 3);
  assert.deepEqual(bm.appendSlots('a', 4), []);
  assert.deepEqual(bm.appendSlots('a', 5), [1]);
  assert.deepEqual(bm.appendSlots('a', 8), []);
  assert.deepEqual(bm.appendSlots('a', 9), [2]);
  assert.deepEqual(bm.appendSlots('a', 3), [], 'a shorter length never shrinks the table');
  assert.deepEqual(bm.appendSlots('a', 17), [3, 4]);
  assert.deepEqual(bm.blockTable('a'), [0, 1, 2, 3, 4]);
});

test('canAllocate and canAppend at the edge of the free pool', () => {
  const bm = new BlockManager(3, 2);
  assert.ok(bm.canAllocate(6));
  assert.ok(!bm.canAllocate(7));
  bm.allocate('a', 4);
  assert.ok(bm.canAppend('a', 6));
  assert.ok(!bm.canAppend('a', 7));
  assert.ok(bm.canAllocate(2));
  assert.ok(!bm.canAllocate(3));
  assert.ok(bm.canAllocate(0));
});

test('free returns every block and they are reused', () => {
  const bm = new BlockManager(4, 2);
  bm.allocate('a', 3);
  bm.allocate('b', 4);
  bm.free('a');
  assert.equal(bm.usedBlocks, 2);
  assert.ok(!bm.has('a'));
  assert.deepEqual(bm.allocate('c', 4), [0, 1]);
  bm.free('b');
  bm.free('c');
  assert.equal(bm.usedBlocks, 0);
  assert.equal(bm.freeBlocks, 4);
});

test('running out of blocks throws and changes nothing', () => {
  const bm = new BlockManager(2, 4);
  bm.allocate('a', 5);
  assert.throws(() => bm.allocate('b', 1), code('OUT_OF_BLOCKS'));
  assert.ok(!bm.has('b'));
  assert.throws(() => bm.appendSlots('a', 9), code('OUT_OF_BLOCKS'));
  assert.deepEqual(bm.blockTable('a'), [0, 1]);
  assert.equal(bm.freeBlocks, 0);
});

test('double allocate and unknown sequences are named errors', () => {
  const bm = new BlockManager(4, 4);
  bm.allocate('a', 1);
  assert.throws(() => bm.allocate('a', 1), code('ALREADY_ALLOCATED'));
  assert.throws(() => bm.free('zz'), code('UNKNOWN_SEQUENCE'));
  assert.throws(() => bm.appendSlots('zz', 4), code('UNKNOWN_SEQUENCE'));
  assert.throws(() => bm.canAppend('zz', 4), code('UNKNOWN_SEQUENCE'));
  assert.throws(() => bm.blockTable('zz'), code('UNKNOWN_SEQUENCE'));
  bm.free('a');
  assert.throws(() => bm.free('a'), code('UNKNOWN_SEQUENCE'));
  assert.throws(() => bm.free('a'), (e) => e instanceof Error && e.name === 'BlockAllocationError' && /\ba\b/.test(e.message));
});

test('constructor and counts are validated', () => {
  assert.throws(() => new BlockManager(0, 4), code('INVALID_ARGUMENT'));
  assert.throws(() => new BlockManager(4, 0), code('INVALID_ARGUMENT'));
  assert.throws(() => new BlockManager(4, 1.5), code('INVALID_ARGUMENT'));
  const bm = new BlockManager(4, 4);
  assert.throws(() => bm.allocate('a', -1), code('INVALID_ARGUMENT'));
  assert.throws(() => bm.allocate('a', Number.NaN), code('INVALID_ARGUMENT'));
});

test('many allocate/append/free cycles never lose or duplicate a block', () => {
  const bm = new BlockManager(16, 3);
  const lengths = new Map<string, number>();
  let x = 12345;
  const rand = (n: number): number => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x % n;
  };
  for (let i = 0; i < 2000; i++) {
    const id = `s${rand(8)}`;
    const len = lengths.get(id);
    if (len === undefined) {
      const n = 1 + rand(10);
      if (bm.canAllocate(n)) {
        bm.allocate(id, n);
        lengths.set(id, n);
      }
    } else if (rand(4) === 0) {
      bm.free(id);
      lengths.delete(id);
    } else if (bm.canAppend(id, len + 1)) {
      bm.appendSlots(id, len + 1);
      lengths.set(id, len + 1);
    }
    const owned = [...lengths.keys()].flatMap((s) => bm.blockTable(s));
    assert.equal(new Set(owned).size, owned.length, 'no block owned twice');
    assert.equal(owned.length, bm.usedBlocks);
    for (const [s, n] of lengths) assert.equal(bm.blockTable(s).length, Math.ceil(n / 3));
  }
  for (const id of lengths.keys()) bm.free(id);
  assert.equal(bm.usedBlocks, 0);
});
