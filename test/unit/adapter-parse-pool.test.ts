// The shard's adapter worker threads (shard/adapters/parse-pool.ts): a read, and a merge read and merged there
// (`merged_adapters` used to merge on the shard's main thread: seconds of stalled steps for TIES on 7B-sized
// adapters), give exactly what the same calls give on this thread; a bad merge rejects with its reason.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeRandomAdapters } from '../../deploy/bench/synthetic.js';
import { PRESETS } from '../../deploy/bench/shapes.js';
import { AdapterParser } from '../../shard/adapters/parse-pool.js';
import { mergeAdapters } from '../../shard/adapters/merge.js';
import { loadAdapterDir, type LoadedAdapter } from '../../shard/adapters/peft-config.js';
import type { MergeRecipe } from '../../protocol/index.js';

const root = mkdtempSync(join(tmpdir(), 'weft-parse-pool-'));
const parser = new AdapterParser();
after(async () => {
  await parser.close();
  rmSync(root, { recursive: true, force: true });
});
const shape = PRESETS.tiny;
const [a, b] = writeRandomAdapters(root, shape, { names: ['a', 'b'], rank: 8, dtype: 'bfloat16', seed: 3 });
const [c] = writeRandomAdapters(join(root, 'r4'), shape, { names: ['c'], rank: 4, dtype: 'bfloat16', seed: 5 });

function assertSame(got: LoadedAdapter, want: LoadedAdapter): void {
  assert.deepEqual(got.config, want.config);
  assert.deepEqual([...got.tensors.keys()].sort(), [...want.tensors.keys()].sort());
  for (const [name, t] of want.tensors) {
    const g = got.tensors.get(name)!;
    assert.deepEqual(g.shape, t.shape, name);
    assert.ok(Buffer.from(g.data.buffer, g.data.byteOffset, g.data.byteLength)
      .equals(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)), `${name}: bits differ`);
  }
}

test('a read on a worker thread equals loadAdapterDir here, bit for bit', async () => {
  assertSame(await parser.parse(a!), loadAdapterDir(a!));
});

for (const strategy of ['linear', 'ties', 'dare_linear', 'dare_ties', 'cat'] as const) {
  test(`a ${strategy} merge on a worker thread equals mergeAdapters here, bit for bit`, async () => {
    const recipe: MergeRecipe = { dirs: [a!, b!], weights: [0.7, 0.4], strategy, majoritySignMethod: 'total', seed: 11,
      ...(strategy === 'linear' || strategy === 'cat' ? {} : { density: 0.5 }) };
    const here = mergeAdapters([loadAdapterDir(a!), loadAdapterDir(b!)], { weights: recipe.weights, strategy,
      density: recipe.density ?? null, majoritySignMethod: 'total', seed: 11 });
    assertSame(await parser.merge(recipe), here);
  });
}

test('a merge the strategy cannot do rejects with the reason; the pool keeps working', async () => {
  const recipe: MergeRecipe = { dirs: [a!, c!], weights: [0.5, 0.5], strategy: 'linear', majoritySignMethod: 'total', seed: 1 };
  await assert.rejects(parser.merge(recipe), /rank/);
  await assert.rejects(parser.merge({ ...recipe, dirs: [a!, join(root, 'missing')] }), /adapter_config\.json/);
  assertSame(await parser.parse(b!), loadAdapterDir(b!));
});
