// Embeddings (POST /v1/embeddings, POST /embed) against transformers + PEFT: the final hidden state at the last
// position of each golden sequence (test/fixtures/embeddings/embeddings.json, made by
// test/fixtures/golden/make_embeddings.py) for the base model and every adapter of five golden architectures, each
// input alone and all of them batched together, at --num-shard 1 and 2 (llama); normalised, cut to `dimensions`,
// base64; TEI's /embed; bad input refused with nothing held after.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sentenceTransformersPooling } from '../../coordinator/http/embeddings-routes.js';
import { loadGoldenCase } from '../helpers/golden.js';
import { startGoldenServer, tokenizedGoldenModel, type GoldenServer } from '../helpers/golden-server.js';

interface Entry { adapter: string | null; tokens: number[]; hidden: number[] }
const FIXTURE = JSON.parse(readFileSync(join(import.meta.dirname, '../../../test/fixtures/embeddings/embeddings.json'), 'utf8')) as {
  cases: Record<string, { hidden_size: number; entries: Entry[] }> };
const TOL = 1e-4;

function maxDiff(a: number[], b: number[]): number {
  assert.equal(a.length, b.length);
  return Math.max(...a.map((x, i) => Math.abs(x - b[i]!)));
}
const unit = (v: number[]) => {
  const n = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  return v.map((x) => x / n);
};
const body = (e: Entry, extra: Record<string, unknown> = {}) => ({ input: [e.tokens], ...(e.adapter ? { model: e.adapter, adapter_source: 'local' } : {}), ...extra });

async function checkCase(g: GoldenServer, entries: Entry[], label: string): Promise<void> {
  // Each input alone, and all at once (their prefills batched together, adapters mixed).
  const alone: number[][] = [];
  for (const e of entries) {
    const r = await g.post('/v1/embeddings', body(e, { normalize: false }));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.usage.prompt_tokens, e.tokens.length);
    alone.push(r.json.data[0].embedding);
  }
  const together = await Promise.all(entries.map((e) => g.post('/v1/embeddings', body(e, { normalize: false }))));
  entries.forEach((e, i) => {
    const what = `${label} ${e.adapter ?? 'base'} [${e.tokens.slice(0, 4).join(',')}…]`;
    assert.ok(maxDiff(alone[i]!, e.hidden) <= TOL, `${what} alone: max err ${maxDiff(alone[i]!, e.hidden)}`);
    const t = together[i]!;
    assert.equal(t.status, 200, t.text);
    assert.ok(maxDiff(t.json.data[0].embedding, e.hidden) <= TOL, `${what} batched: max err ${maxDiff(t.json.data[0].embedding, e.hidden)}`);
  });
}

for (const [name, shards] of [['llama', 1], ['llama', 2], ['mistral', 1], ['qwen2', 1], ['phi3', 1], ['gpt2', 1]] as const) {
  describe(`embeddings: ${name}, --num-shard ${shards}`, () => {
    let g: GoldenServer;
    before(async () => { g = await startGoldenServer({}, { caseName: name, flags: ['--num-shard', String(shards)] }); });
    after(async () => { await g.close(); });

    test('the last position\'s final hidden state equals transformers + PEFT\'s, base and every adapter, alone and batched', async () => {
      await checkCase(g, FIXTURE.cases[name]!.entries, `${name}/tp${shards}`);
    });

    if (name !== 'llama' || shards !== 1) return;

    test('normalised by default, cut to `dimensions` before, base64 float32 on request; several inputs in order', async () => {
      const entries = FIXTURE.cases.llama!.entries.filter((e) => e.adapter === null);
      const metric = async (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(await fetch(`${g.url}/metrics`).then((m) => m.text()))?.[1] ?? 0);
      const [generated0, prompt0] = [await metric('weft_generated_tokens_total'), await metric('weft_prompt_tokens_total')];
      const r = await g.post('/v1/embeddings', { input: entries.map((e) => e.tokens) });
      assert.equal(await metric('weft_generated_tokens_total'), generated0, 'an embedding generates no token');
      assert.equal(await metric('weft_prompt_tokens_total'), prompt0 + entries.reduce((n, e) => n + e.tokens.length, 0));
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.object, 'list');
      assert.deepEqual(r.json.data.map((d: { index: number; object: string }) => [d.index, d.object]), entries.map((_, i) => [i, 'embedding']));
      entries.forEach((e, i) => assert.ok(maxDiff(r.json.data[i].embedding, unit(e.hidden)) <= TOL, `input ${i}`));
      assert.equal(r.json.usage.prompt_tokens, entries.reduce((n, e) => n + e.tokens.length, 0));
      const cut = await g.post('/v1/embeddings', { input: [entries[0]!.tokens], dimensions: 16, encoding_format: 'base64' });
      assert.equal(cut.status, 200, cut.text);
      const bytes = Buffer.from(cut.json.data[0].embedding, 'base64');
      const v = [...new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)];
      assert.equal(v.length, 16);
      assert.ok(maxDiff(v, unit(entries[0]!.hidden.slice(0, 16))) <= TOL, 'the first 16 values, renormalised');
    });

    test('TEI /embed: text inputs, an adapter by adapter_id, normalize false', async () => {
      const e = FIXTURE.cases.llama!.entries.find((x) => x.adapter === 'all_r8')!;
      const text = e.tokens.map((t) => `t${t}`).join(' ');
      const r = await g.post('/embed', { inputs: [text, text], adapter_id: 'all_r8', adapter_source: 'local', normalize: false });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.length, 2);
      for (const v of r.json) assert.ok(maxDiff(v, e.hidden) <= TOL);
    });

    test('bad input is a 422 (an unknown adapter a 404) naming the problem; nothing is held after', async () => {
      for (const [path, b, status, why] of [
        ['/v1/embeddings', { input: [] }, 422, /`input` is empty/],
        ['/v1/embeddings', { input: [''] }, 422, /empty string/],
        ['/v1/embeddings', { input: 'x', dimensions: 65 }, 422, /from 1 to the model's embedding size, 64/],
        ['/v1/embeddings', { input: 'x', encoding_format: 'int8' }, 422, /encoding_format/],
        ['/v1/embeddings', { input: 'x', temperature: 1 }, 422, /unknown field `temperature`/],
        ['/v1/embeddings', { input: [[1, 2, 100000]] }, 422, /token/],
        ['/v1/embeddings', { input: 't1 t2', model: 'no_such_adapter', adapter_source: 'local' }, 404, /no_such_adapter/],
        ['/embed', { inputs: [1, 2] }, 422, /`inputs\[0\]` must be a non-empty string/],
        ['/embed', { inputs: 'x', truncation_direction: 'Right' }, 422, /truncation_direction/],
      ] as const) {
        const r = await g.post(path, b);
        assert.equal(r.status, status, `${JSON.stringify(b)}: ${r.text}`);
        assert.match(r.text, why);
      }
      const stats = g.server.engine.stats();
      assert.equal(stats.usedBlocks, 0);
      assert.equal(stats.running + stats.waiting, 0);
    });
  });
}

/** A sentence-transformers layout: modules.json naming a Pooling module whose config sets `mode`. */
function withPooling(dir: string, mode: string): string {
  writeFileSync(join(dir, 'modules.json'), JSON.stringify([
    { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
    { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
    { idx: 2, name: '2', path: '2_Normalize', type: 'sentence_transformers.models.Normalize' }]));
  mkdirSync(join(dir, '1_Pooling'), { recursive: true });
  writeFileSync(join(dir, '1_Pooling', 'config.json'), JSON.stringify({ word_embedding_dimension: 64, pooling_mode_cls_token: false,
    pooling_mode_mean_tokens: mode === 'mean', pooling_mode_lasttoken: mode === 'lasttoken',
    pooling_mode_weightedmean_tokens: mode === 'weightedmean', include_prompt: true }));
  return dir;
}

test('the pooling a sentence-transformers config names: one weft does not run (weightedmean) is refused by name', async () => {
  assert.equal(sentenceTransformersPooling(mkdtempSync(join(tmpdir(), 'weft-nopool-'))), null);
  assert.equal(sentenceTransformersPooling(withPooling(mkdtempSync(join(tmpdir(), 'weft-pool-')), 'lasttoken')), 'lasttoken');
  assert.equal(sentenceTransformersPooling(withPooling(mkdtempSync(join(tmpdir(), 'weft-pool-')), 'mean')), 'mean');
  const weighted = withPooling(tokenizedGoldenModel(loadGoldenCase('llama')), 'weightedmean');
  assert.equal(sentenceTransformersPooling(weighted), 'weightedmean');
  const g = await startGoldenServer({ modelId: weighted });
  try {
    const r = await g.post('/v1/embeddings', { input: 't1 t2' });
    assert.equal(r.status, 422, r.text);
    assert.match(r.text, /pools by 'weightedmean'; weft pools by 'lasttoken', 'mean', 'max' or 'cls' only/);
    assert.equal((await g.post('/embed', { inputs: 't1 t2' })).status, 422);
    assert.equal((await g.post('/v1/completions', { prompt: 't1 t2', max_tokens: 2 })).status, 200, 'generation is unaffected');
  } finally {
    await g.close();
  }
});
