// LoRA on the token embedding (PEFT lora_embedding_A [r, vocab] / lora_embedding_B [hidden, r]): served adapters
// against the model with the adapter merged as PEFT merges it (test/helpers/lora-merge.ts) — the embedding alone,
// and an adapter shaped like a continued-pretraining recipe (q/v, embed_tokens and lm_head targeted, saved with
// PEFT's defaults, so with copies of the embedding's and lm_head's own weights) — alone, beside base and plain
// LoRA rows, and at TP=2 over real shard processes.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bytesToFloat32 } from '../../protocol/index.js';
import { loadGoldenCase, maxAbsDiff, type GoldenCase } from '../helpers/golden.js';
import { writeLoraMerged } from '../helpers/lora-merge.js';
import { expectMixedBatch, openMergedOracle, type MergedOracle } from '../helpers/merged-oracle.js';
import { ALPHA, RANK, writeEmbeddingAdapter } from '../helpers/embedding-adapter.js';
import { scoreStep, startShardCluster } from '../helpers/shard-cluster.js';

const TOL = 1e-4;
for (const [label, targets, copies] of [
  ['the embedding alone', ['embed_tokens'], false],
  ['q/v + embed_tokens + lm_head, saved with base-layer copies', ['q_proj', 'v_proj', 'embed_tokens', 'lm_head'], true],
] as const) {
  describe(`embedding LoRA: ${label}`, () => {
    let c: GoldenCase, root: string, oracle: MergedOracle;
    before(() => {
      c = loadGoldenCase('llama_lmhead');  // untied: lm_head is its own weight
      root = mkdtempSync(join(tmpdir(), 'weft-emb-lora-'));
      writeEmbeddingAdapter(c.modelDir, join(root, 'adapter'), [...targets], copies, 31);
      writeLoraMerged(c.modelDir, join(root, 'adapter'), join(root, 'merged'), ALPHA / RANK);
      oracle = openMergedOracle(c, join(root, 'adapter'), join(root, 'merged'));
    });
    after(() => {
      oracle?.dispose();
      rmSync(root, { recursive: true, force: true });
    });

    test('the merged model\'s logits, alone and beside base and LoRA rows', async () => {
      await expectMixedBatch(oracle, c, TOL);
    });

    test('at TP=2 over shard processes', async () => {
      const cluster = await startShardCluster({ modelDir: c.modelDir, world: 2 });
      try {
        await cluster.group.loadAdapter('emb', 0, { dir: join(root, 'adapter') });
        const items = c.sequences.map((tokens) => ({ tokens, slot: 0 }));
        const r = await cluster.group.step(scoreStep(items));
        assert.equal(r.error, undefined);
        for (let s = 0; s < items.length; s++) {
          const [want] = await oracle.merged.scoreBatch([{ tokens: c.sequences[s]!, adapterSlot: -1 }]);
          const e = maxAbsDiff(bytesToFloat32(r.outputs[s]!.logits!), want!);
          assert.ok(e <= TOL, `seq${s}: max abs error ${e}`);
        }
      } finally {
        await cluster.stop();
      }
    });
  });
}
