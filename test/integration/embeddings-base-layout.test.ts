// A Qwen3-Embedding-shaped checkpoint (test/fixtures/embeddings/qwen3-embedding, made by
// test/fixtures/golden/make_qwen3_embedding.py): `Qwen3ForCausalLM` in config.json, tensors saved from Qwen3Model (no
// `model.` prefix, no lm_head, untied) — served as an embedding model (last-token pooling, Normalize), with LoRA
// adapters saved in both module-path forms (PEFT on the AutoModel: `layers.<i>.…`; on the causal LM:
// `model.layers.<i>.…`), alone and batched together, at --num-shard 1 and 2, and pooled by mean with the adapters.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readModelSpec } from '../../shard/models/index.js';
import { startGoldenServer, type GoldenServer } from '../helpers/golden-server.js';

const FIXTURES = join(import.meta.dirname, '../../../test/fixtures/embeddings');
const MODEL = join(FIXTURES, 'qwen3-embedding'), ADAPTERS = join(FIXTURES, 'qwen3-embedding-adapters');
interface Vectors { lasttoken: number[]; mean: number[] }
const REF = JSON.parse(readFileSync(join(FIXTURES, 'qwen3-embedding.json'), 'utf8')) as {
  sequences: number[][]; base: Vectors[]; adapters: Record<string, Vectors[]> };
const TOL = 1e-4;
const WHO = [null, 'ad_model', 'ad_causal'] as const;

const maxDiff = (a: number[], b: number[]) => {
  assert.equal(a.length, b.length, 'vector length');
  return Math.max(...a.map((x, i) => Math.abs(x - b[i]!)));
};
const want = (who: string | null, s: number): Vectors => (who === null ? REF.base[s]! : REF.adapters[who]![s]!);
const body = (who: string | null, s: number) => ({ input: [REF.sequences[s]], ...(who ? { model: who, adapter_source: 'local' } : {}) });

/** Every sequence under the base model and each adapter, all sent at once (one mixed batch): the worst error. */
async function checkMixed(g: GoldenServer, mode: keyof Vectors, label: string): Promise<number> {
  const jobs = WHO.flatMap((who) => REF.sequences.map(async (_, s) => {
    const r = await g.post('/v1/embeddings', body(who, s));
    assert.equal(r.status, 200, r.text);
    const err = maxDiff(r.json.data[0].embedding, want(who, s)[mode]);
    assert.ok(err <= TOL, `${label}: ${who ?? 'base'} sequence ${s} (${REF.sequences[s]!.length} tokens): max err ${err}`);
    return err;
  }));
  return Math.max(...await Promise.all(jobs));
}

test('the checkpoint reads as a base model (embedding-only) under its causal-LM name; tied, it still generates', () => {
  const spec = readModelSpec(MODEL);
  assert.deepEqual([spec.architecture, spec.baseModel, spec.tieEmbeddings], ['qwen3', true, true]);
  const tied = mkdtempSync(join(tmpdir(), 'weft-qwen3-tied-'));
  cpSync(MODEL, tied, { recursive: true });
  const cfg = JSON.parse(readFileSync(join(tied, 'config.json'), 'utf8'));
  writeFileSync(join(tied, 'config.json'), JSON.stringify({ ...cfg, tie_word_embeddings: true }));
  assert.equal(readModelSpec(tied).baseModel, undefined, 'a tied head is the embedding: transformers generates with it');
});

for (const shards of [1, 2]) {
  describe(`Qwen3-Embedding layout with adapters in both path forms, --num-shard ${shards}`, () => {
    let g: GoldenServer;
    before(async () => {
      g = await startGoldenServer({ modelId: MODEL, adapterRoots: [ADAPTERS], maxBatchPrefillTokens: 16 },
        { flags: ['--num-shard', String(shards)] });
    });
    after(async () => { await g.close(); });

    test('last-token vectors equal transformers + PEFT, base and both adapters in one batch', async () => {
      const worst = await checkMixed(g, 'lasttoken', `tp${shards}`);
      console.log(`Qwen3-Embedding layout, base + 2 adapters, --num-shard ${shards}: max abs error ${worst.toExponential(2)}`);
    });

    if (shards !== 1) return;

    test('generation is refused with a 422 (no language-model head); /info says feature-extraction', async () => {
      const r = await g.post('/v1/completions', { prompt: 't5 t6', max_tokens: 2 });
      assert.equal(r.status, 422, r.text);
      assert.match(r.text, /embedding model \(a base-model checkpoint without a language-model head/);
      const info = await (await fetch(`${g.url}/info`)).json() as Record<string, unknown>;
      assert.deepEqual([info.model_pipeline_tag, info.pooling], ['feature-extraction', 'last']);
      assert.equal(g.server.engine.stats().usedBlocks, 0);
    });
  });
}

describe('--pooling-type mean over the same model: pooled vectors with adapters', () => {
  let g: GoldenServer;
  // A prefill budget of 8: the 20- and 37-token prompts are pooled across chunks, beside other adapters' rows.
  before(async () => {
    g = await startGoldenServer({ modelId: MODEL, adapterRoots: [ADAPTERS], maxBatchPrefillTokens: 8 }, { flags: ['--pooling-type', 'mean'] });
  });
  after(async () => { await g.close(); });

  test('mean-pooled vectors equal transformers + PEFT for the base model and both adapters, batched', async () => {
    const worst = await checkMixed(g, 'mean', 'mean');
    console.log(`Qwen3-Embedding layout, --pooling-type mean, base + 2 adapters: max abs error ${worst.toExponential(2)}`);
  });
});
