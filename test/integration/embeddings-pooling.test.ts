// sentence-transformers embedding models against their pipeline run on transformers (test/fixtures/embeddings/
// st-embeddings.json, made by test/fixtures/golden/make_st_embeddings.py): EmbeddingGemma-shaped (bidirectional
// Gemma3TextModel → mean pooling → two Dense → Normalize) and a mean-pooled decoder (the golden llama → Dense with a
// bias and Tanh), each at --num-shard 1 and 2, every input alone and batched; mean pooling across a prefill split
// into chunks and beside a cached prefix; --pooling-type overriding the config; generation refused on the
// bidirectional model; configs weft cannot run refused by name.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadGoldenCase } from '../helpers/golden.js';
import { startGoldenServer, tokenizedGoldenModel, type GoldenServer } from '../helpers/golden-server.js';

const FIXTURES = join(import.meta.dirname, '../../../test/fixtures/embeddings');
type Mode = 'mean' | 'cls' | 'max' | 'lasttoken';
interface GemmaEntry { tokens: number[]; embedding: number[] }
interface LlamaEntry extends Record<Mode, number[]> { tokens: number[] }
const FIXTURE = JSON.parse(readFileSync(join(FIXTURES, 'st-embeddings.json'), 'utf8')) as {
  embeddinggemma: { dimension: number; entries: GemmaEntry[] }; 'llama-st': { dimension: number; entries: LlamaEntry[] } };
const GEMMA = FIXTURE.embeddinggemma, LLAMA = FIXTURE['llama-st'];
const TOL = 1e-4;

function maxDiff(a: number[], b: number[]): number {
  assert.equal(a.length, b.length, 'vector length');
  return Math.max(...a.map((x, i) => Math.abs(x - b[i]!)));
}
const unit = (v: number[]) => {
  const n = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  return v.map((x) => x / n);
};

/** Each input alone, then all at once (their prefills batched together): every vector within TOL of `want`. */
async function checkVectors(g: GoldenServer, inputs: number[][], want: number[][], label: string): Promise<number> {
  let worst = 0;
  const check = (got: number[], i: number, how: string) => {
    const err = maxDiff(got, want[i]!);
    assert.ok(err <= TOL, `${label} input ${i} (${inputs[i]!.length} tokens) ${how}: max err ${err}`);
    worst = Math.max(worst, err);
  };
  for (const [i, tokens] of inputs.entries()) {
    const r = await g.post('/v1/embeddings', { input: [tokens], normalize: false });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.usage.prompt_tokens, tokens.length);
    check(r.json.data[0].embedding, i, 'alone');
  }
  const together = await Promise.all(inputs.map((tokens) => g.post('/v1/embeddings', { input: [tokens], normalize: false })));
  together.forEach((r, i) => {
    assert.equal(r.status, 200, r.text);
    check(r.json.data[0].embedding, i, 'batched');
  });
  return worst;
}

/** The golden llama decoder served with llama-st's sentence-transformers modules (mean pooling, Dense + Tanh). */
function llamaSt(pooling?: Record<string, unknown>): string {
  const dir = tokenizedGoldenModel(loadGoldenCase('llama'));
  for (const f of ['modules.json', '1_Pooling', '2_Dense']) cpSync(join(FIXTURES, 'llama-st', f), join(dir, f), { recursive: true });
  if (pooling) writeFileSync(join(dir, '1_Pooling', 'config.json'), JSON.stringify({ word_embedding_dimension: 64, ...pooling }));
  return dir;
}

for (const shards of [1, 2]) {
  describe(`EmbeddingGemma-shaped (bidirectional Gemma3TextModel, mean, Dense, Dense, Normalize), --num-shard ${shards}`, () => {
    let g: GoldenServer;
    // A prefill budget below the longest prompts: a bidirectional prompt must still be computed whole.
    before(async () => {
      g = await startGoldenServer({ modelId: join(FIXTURES, 'embeddinggemma'), maxBatchPrefillTokens: 8 },
        { flags: ['--num-shard', String(shards)] });
    });
    after(async () => { await g.close(); });

    test('vectors equal the sentence-transformers pipeline on transformers, alone and batched', async () => {
      const worst = await checkVectors(g, GEMMA.entries.map((e) => e.tokens), GEMMA.entries.map((e) => e.embedding), `gemma/tp${shards}`);
      console.log(`EmbeddingGemma-shaped, --num-shard ${shards}: max abs error ${worst.toExponential(2)}`);
    });

    if (shards !== 1) return;

    test('a prompt sharing a cached block with an earlier one is computed whole: no prefix cache for bidirectional attention', async () => {
      const [long, shared] = [GEMMA.entries[4]!, GEMMA.entries[5]!];
      assert.deepEqual(shared.tokens.slice(0, 16), long.tokens.slice(0, 16));
      for (const e of [long, shared]) {
        const r = await g.post('/v1/embeddings', { input: [e.tokens] });
        assert.equal(r.status, 200, r.text);
        assert.ok(maxDiff(r.json.data[0].embedding, e.embedding) <= TOL, `max err ${maxDiff(r.json.data[0].embedding, e.embedding)}`);
      }
      assert.equal(g.server.engine.stats().cachedBlocks, 0, 'nothing registered in the prefix cache');
    });

    test('/info, `dimensions` up to the last Dense\'s out_features, TEI /embed, text inputs', async () => {
      const info = await (await fetch(`${g.url}/info`)).json() as Record<string, unknown>;
      assert.equal(info.model_pipeline_tag, 'feature-extraction');
      assert.equal(info.embedding_dimension, GEMMA.dimension);
      assert.equal(info.pooling, 'mean');
      assert.equal(info.prefix_caching, false);
      const e = GEMMA.entries[3]!;
      const cut = await g.post('/v1/embeddings', { input: [e.tokens], dimensions: 8 });
      assert.equal(cut.status, 200, cut.text);
      assert.ok(maxDiff(cut.json.data[0].embedding, unit(e.embedding.slice(0, 8))) <= TOL, 'the first 8 values, renormalised');
      const over = await g.post('/v1/embeddings', { input: [e.tokens], dimensions: GEMMA.dimension + 1 });
      assert.equal(over.status, 422, over.text);
      assert.match(over.text, new RegExp(`embedding size, ${GEMMA.dimension}`));
      const tei = await g.post('/embed', { inputs: e.tokens.map((t) => `t${t}`).join(' ') });
      assert.equal(tei.status, 200, tei.text);
      assert.ok(maxDiff(tei.json[0], e.embedding) <= TOL);
    });

    test('generation is refused with a 422 saying the model only embeds', async () => {
      for (const [path, b] of [['/generate', { inputs: 't5 t6', parameters: { max_new_tokens: 2 } }],
        ['/v1/completions', { prompt: 't5 t6', max_tokens: 2 }]] as const) {
        const r = await g.post(path, b);
        assert.equal(r.status, 422, `${path}: ${r.text}`);
        assert.match(r.text, /is an embedding model \(its attention is bidirectional/);
      }
      const stats = g.server.engine.stats();
      assert.equal(stats.usedBlocks, 0);
    });
  });

  describe(`mean-pooled decoder (golden llama, Dense 64→48 with bias and Tanh), chunked prefill, --num-shard ${shards}`, () => {
    let g: GoldenServer;
    // Prompts of up to 40 tokens over a prefill budget of 8: the mean is pooled over up to five chunks.
    before(async () => {
      g = await startGoldenServer({ modelId: llamaSt(), maxBatchPrefillTokens: 8 }, { flags: ['--num-shard', String(shards)] });
    });
    after(async () => { await g.close(); });

    test('vectors equal Dense(mean of every position\'s state), alone and batched', async () => {
      const worst = await checkVectors(g, LLAMA.entries.map((e) => e.tokens), LLAMA.entries.map((e) => e.mean), `llama-mean/tp${shards}`);
      console.log(`mean-pooled llama + Dense(Tanh), chunked, --num-shard ${shards}: max abs error ${worst.toExponential(2)}`);
    });

    test('a prompt whose first 32 tokens are cached is pooled over all of its positions', async () => {
      const [long, shared] = [LLAMA.entries[4]!, LLAMA.entries[5]!];
      assert.deepEqual(shared.tokens.slice(0, 32), long.tokens.slice(0, 32));
      // A generation request computes (and caches) the shared blocks; the embedding after it must not start there.
      const gen = await g.post('/generate', { inputs: long.tokens.map((t) => `t${t}`).join(' '), parameters: { max_new_tokens: 1 } });
      assert.equal(gen.status, 200, gen.text);
      assert.ok(g.server.engine.stats().cachedBlocks >= 2, 'the shared prefix is in the prefix cache');
      const r = await g.post('/v1/embeddings', { input: [shared.tokens], normalize: false });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.usage.prompt_tokens, shared.tokens.length);
      assert.ok(maxDiff(r.json.data[0].embedding, shared.mean) <= TOL, `max err ${maxDiff(r.json.data[0].embedding, shared.mean)}`);
    });

    if (shards !== 1) return;

    test('generation is unaffected; /info reports the pooling and the Dense width', async () => {
      assert.equal((await g.post('/v1/completions', { prompt: 't1 t2', max_tokens: 2 })).status, 200);
      const info = await (await fetch(`${g.url}/info`)).json() as Record<string, unknown>;
      assert.deepEqual([info.model_pipeline_tag, info.pooling, info.embedding_dimension], ['text-generation', 'mean', LLAMA.dimension]);
    });
  });
}

describe('--pooling-type overrides the sentence-transformers config\'s pooling (its Dense module still applies)', () => {
  for (const [flag, mode] of [['cls', 'cls'], ['max', 'max'], ['last', 'lasttoken']] as const) {
    test(`--pooling-type ${flag}`, async () => {
      const g = await startGoldenServer({ modelId: llamaSt(), maxBatchPrefillTokens: 8 }, { flags: ['--pooling-type', flag] });
      try {
        const worst = await checkVectors(g, LLAMA.entries.map((e) => e.tokens), LLAMA.entries.map((e) => e[mode]), `llama-${flag}`);
        console.log(`--pooling-type ${flag}: max abs error ${worst.toExponential(2)}`);
        const info = await (await fetch(`${g.url}/info`)).json() as Record<string, unknown>;
        assert.equal(info.pooling, flag);
      } finally {
        await g.close();
      }
    });
  }

  test('a pooling weft does not run is refused by name; --pooling-type serves the model anyway', async () => {
    const dir = llamaSt({ pooling_mode_weightedmean_tokens: true });
    let g = await startGoldenServer({ modelId: dir });
    try {
      for (const [path, b] of [['/v1/embeddings', { input: 't1 t2' }], ['/embed', { inputs: 't1 t2' }], ['/score', { text_1: 't1', text_2: 't2' }]] as const) {
        const r = await g.post(path, b);
        assert.equal(r.status, 422, `${path}: ${r.text}`);
        assert.match(r.text, /pools by 'weightedmean'; weft pools by 'lasttoken', 'mean', 'max' or 'cls' only \(--pooling-type/);
      }
      assert.equal((await g.post('/v1/completions', { prompt: 't1 t2', max_tokens: 2 })).status, 200, 'generation is unaffected');
    } finally {
      await g.close();
    }
    g = await startGoldenServer({ modelId: dir }, { flags: ['--pooling-type', 'mean'] });
    try {
      const e = LLAMA.entries[3]!;
      const r = await g.post('/v1/embeddings', { input: [e.tokens], normalize: false });
      assert.equal(r.status, 200, r.text);
      assert.ok(maxDiff(r.json.data[0].embedding, e.mean) <= TOL);
    } finally {
      await g.close();
    }
  });
});
