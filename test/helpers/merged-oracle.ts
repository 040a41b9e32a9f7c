// The oracle of the adapter-kind tests (DoRA, embedding LoRA): a golden model serving the adapter under test in
// slot 0 and the case's first golden LoRA adapter in slot 1, next to the model with the adapter under test merged
// into it (as PEFT merges it) serving nothing. A mixed batch must give the merged model's logits on slot-0 rows and
// the golden logits on base and slot-1 rows.
import assert from 'node:assert/strict';
import { LocalEngine } from '../../shard/index.js';
import { maxAbsDiff, type GoldenCase } from './golden.js';

export interface MergedOracle {
  served: LocalEngine;
  merged: LocalEngine;
  dispose(): void;
}

export function openMergedOracle(c: GoldenCase, adapterDir: string, mergedDir: string): MergedOracle {
  const served = LocalEngine.open(c.modelDir, { numBlocks: 128, blockSize: 4, adapterSlots: 2 });
  served.loadAdapter(0, adapterDir);
  served.loadAdapter(1, c.adapters[0]!.dir);
  const merged = LocalEngine.open(mergedDir, { numBlocks: 64, blockSize: 4, adapterSlots: 1 });
  return { served, merged, dispose: () => { served.dispose(); merged.dispose(); } };
}

/**
 * Every golden sequence as the adapter under test, the base model, the golden adapter and the adapter again, in one
 * batch: each row within `tol` of its reference, and the adapter's rows away from the base model's (an adapter
 * that changed nothing would pass the first check on a base-only oracle).
 */
export async function expectMixedBatch(o: MergedOracle, c: GoldenCase, tol: number): Promise<void> {
  const items = c.sequences.flatMap((tokens, s) => [0, -1, 1, 0].map((adapterSlot) => ({ tokens, adapterSlot, s })));
  const out = await o.served.scoreBatch(items);
  for (let i = 0; i < items.length; i++) {
    const { adapterSlot, s } = items[i]!;
    const want = adapterSlot === -1 ? c.logits(`base/seq${s}`) : adapterSlot === 1 ? c.logits(`adapter/${c.adapters[0]!.name}/seq${s}`)
      : (await o.merged.scoreBatch([{ tokens: c.sequences[s]!, adapterSlot: -1 }]))[0]!;
    const e = maxAbsDiff(out[i]!, want);
    assert.ok(e <= tol, `item ${i} (slot ${adapterSlot}, seq${s}): max abs error ${e}`);
    if (adapterSlot === 0) assert.ok(maxAbsDiff(out[i]!, c.logits(`base/seq${s}`)) > 1e-2, `item ${i}: the adapter left the base logits`);
  }
}
