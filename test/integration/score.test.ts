// Score and rerank (POST /score, /v1/score, /rerank, /v1/rerank, /v2/rerank) on the golden llama model over real
// shards: every score equals the cosine similarity of the same texts' /v1/embeddings vectors (base and adapter),
// 1:N and N:N pairing, each distinct text embedded once, rerank order, top_n and return_documents, bad input
// refused naming the field, and a model pooled otherwise refused like the embeddings routes (behind API keys).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadGoldenCase } from '../helpers/golden.js';
import { startGoldenServer, tokenizedGoldenModel, type GoldenServer } from '../helpers/golden-server.js';

const TOL = 1e-5;
// Word-level tokenizer: "tN" is token N, so each text's token count is its word count.
const QUERY = 't5 t17 t42 t99';
const DOCS = ['t5 t17 t42 t98', 't300 t301 t302', 't7 t17 t42 t99 t100', 't450 t12', 't5 t17'];
const words = (t: string) => t.split(' ').length;
const ADAPTER = { model: 'all_r8', adapter_source: 'local' };

function cosine(a: number[], b: number[]): number {
  let ab = 0, aa = 0, bb = 0;
  a.forEach((x, i) => { ab += x * b[i]!; aa += x * x; bb += b[i]! * b[i]!; });
  return ab / Math.sqrt(aa * bb);
}

interface RerankResult { index: number; relevance_score: number; document?: { text: string } }

describe('score and rerank: llama', () => {
  let g: GoldenServer;
  /** The /v1/embeddings vector of each text (not normalised: cosine() does it), with `extra` (an adapter). */
  async function vectors(texts: string[], extra: Record<string, unknown> = {}): Promise<Map<string, number[]>> {
    const r = await g.post('/v1/embeddings', { input: texts, normalize: false, ...extra });
    assert.equal(r.status, 200, r.text);
    return new Map(texts.map((t, i) => [t, r.json.data[i].embedding as number[]]));
  }
  const expectClose = (got: number, want: number, what: string) =>
    assert.ok(Math.abs(got - want) <= TOL, `${what}: ${got} vs cosine ${want} (diff ${Math.abs(got - want)})`);

  before(async () => { g = await startGoldenServer(); });
  after(async () => { await g.close(); });

  test('1:N: one text_1 against every text_2, the cosine of their embeddings; each distinct text embedded once', async () => {
    const v = await vectors([QUERY, ...DOCS]);
    const text2 = [...DOCS, DOCS[0]!, QUERY];  // a repeated text, and text_1 itself
    for (const path of ['/score', '/v1/score']) {
      const r = await g.post(path, { text_1: QUERY, text_2: text2 });
      assert.equal(r.status, 200, r.text);
      assert.match(r.json.id, /^score-[0-9a-f]{32}$/);
      assert.equal(r.json.object, 'list');
      assert.equal(r.json.model, g.server.engine.info.modelId);
      assert.ok(Math.abs(r.json.created - Date.now() / 1000) < 60, `created ${r.json.created}`);
      assert.deepEqual(r.json.data.map((d: { index: number; object: string }) => [d.index, d.object]), text2.map((_, i) => [i, 'score']));
      text2.forEach((t, i) => expectClose(r.json.data[i].score, cosine(v.get(QUERY)!, v.get(t)!), `${path} pair ${i}`));
      expectClose(r.json.data[text2.length - 1].score, 1, 'a text against itself');
      const distinct = [QUERY, ...DOCS].reduce((n, t) => n + words(t), 0);
      assert.deepEqual(r.json.usage, { prompt_tokens: distinct, total_tokens: distinct });
    }
    // text_1 as a one-element list, and a single text_2 (1:1), score the same.
    const list = await g.post('/score', { text_1: [QUERY], text_2: DOCS });
    assert.equal(list.status, 200, list.text);
    DOCS.forEach((t, i) => expectClose(list.json.data[i].score, cosine(v.get(QUERY)!, v.get(t)!), `[text_1] pair ${i}`));
    const one = await g.post('/score', { text_1: QUERY, text_2: DOCS[2] });
    assert.equal(one.status, 200, one.text);
    assert.equal(one.json.data.length, 1);
    expectClose(one.json.data[0].score, cosine(v.get(QUERY)!, v.get(DOCS[2]!)!), '1:1');
  });

  test('N:N: the lists zipped, pair i is text_1[i] with text_2[i]', async () => {
    const text1 = [QUERY, DOCS[1]!, DOCS[3]!];
    const text2 = [DOCS[0]!, DOCS[2]!, DOCS[1]!];
    const v = await vectors([...new Set([...text1, ...text2])]);
    const r = await g.post('/v1/score', { text_1: text1, text_2: text2 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.data.length, 3);
    text1.forEach((t, i) => expectClose(r.json.data[i].score, cosine(v.get(t)!, v.get(text2[i]!)!), `zipped pair ${i}`));
    // Not 1:N: pair 1 is not text_1[0] against text_2[1].
    assert.ok(Math.abs(r.json.data[1].score - cosine(v.get(QUERY)!, v.get(text2[1]!)!)) > 1e-3, 'pairs are zipped');
  });

  test('rerank: most relevant first, each relevance_score the cosine with the query, on every path', async () => {
    const v = await vectors([QUERY, ...DOCS]);
    const want = DOCS.map((t, index) => ({ index, score: cosine(v.get(QUERY)!, v.get(t)!) })).sort((a, b) => b.score - a.score);
    assert.ok(want.some((w, i) => w.index !== i), 'the fixture documents are not already in order');
    for (const path of ['/rerank', '/v1/rerank', '/v2/rerank']) {
      const r = await g.post(path, { query: QUERY, documents: DOCS });
      assert.equal(r.status, 200, r.text);
      assert.match(r.json.id, /^rerank-[0-9a-f]{32}$/);
      assert.equal(r.json.model, g.server.engine.info.modelId);
      const results = r.json.results as RerankResult[];
      assert.deepEqual(results.map((x) => x.index), want.map((w) => w.index), `${path} order`);
      results.forEach((x, i) => {
        expectClose(x.relevance_score, want[i]!.score, `${path} document ${x.index}`);
        assert.deepEqual(x.document, { text: DOCS[x.index] }, 'documents come back by default');
      });
      assert.deepEqual(r.json.usage, { total_tokens: [QUERY, ...DOCS].reduce((n, t) => n + words(t), 0) });
    }
  });

  test('rerank: top_n cuts to the most relevant (0: all), return_documents false leaves them out, {text} documents', async () => {
    const all = (await g.post('/rerank', { query: QUERY, documents: DOCS })).json.results as RerankResult[];
    assert.equal(all.length, DOCS.length);
    const top2 = await g.post('/v1/rerank', { query: QUERY, documents: DOCS, top_n: 2 });
    assert.equal(top2.status, 200, top2.text);
    assert.deepEqual(top2.json.results.map((x: RerankResult) => x.index), all.slice(0, 2).map((x) => x.index));
    for (const topN of [0, 99, null]) {
      const r = await g.post('/rerank', { query: QUERY, documents: DOCS, top_n: topN });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.results.length, DOCS.length, `top_n ${topN}`);
    }
    const bare = await g.post('/v2/rerank', { query: QUERY, documents: DOCS, return_documents: false, top_n: 3 });
    assert.equal(bare.status, 200, bare.text);
    assert.equal(bare.json.results.length, 3);
    for (const x of bare.json.results as RerankResult[]) assert.deepEqual(Object.keys(x).sort(), ['index', 'relevance_score']);
    const objects = await g.post('/rerank', { query: QUERY, documents: DOCS.map((text) => ({ text })) });
    assert.equal(objects.status, 200, objects.text);
    assert.deepEqual(objects.json.results.map((x: RerankResult) => [x.index, x.document?.text]), all.map((x) => [x.index, DOCS[x.index]]));
    (objects.json.results as RerankResult[]).forEach((x, i) => expectClose(x.relevance_score, all[i]!.relevance_score, `{text} ${x.index}`));
  });

  test('an adapter (`model`) scores with its own embeddings, not the base model\'s', async () => {
    const base = await vectors([QUERY, ...DOCS]);
    const tuned = await vectors([QUERY, ...DOCS], ADAPTER);
    const r = await g.post('/score', { text_1: QUERY, text_2: DOCS, ...ADAPTER });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.model, 'all_r8');
    DOCS.forEach((t, i) => expectClose(r.json.data[i].score, cosine(tuned.get(QUERY)!, tuned.get(t)!), `adapter pair ${i}`));
    const apart = Math.max(...DOCS.map((t, i) => Math.abs(r.json.data[i].score - cosine(base.get(QUERY)!, base.get(t)!))));
    assert.ok(apart > 1e-3, `adapter scores differ from the base model's (max diff ${apart})`);
    const rr = await g.post('/rerank', { query: QUERY, documents: DOCS, ...ADAPTER });
    assert.equal(rr.status, 200, rr.text);
    for (const x of rr.json.results as RerankResult[]) {
      expectClose(x.relevance_score, cosine(tuned.get(QUERY)!, tuned.get(DOCS[x.index]!)!), `adapter rerank ${x.index}`);
    }
  });

  test('truncate_prompt_tokens keeps the last tokens of every text', async () => {
    const v = await vectors(['t42 t99', 't42 t98']);
    const r = await g.post('/score', { text_1: QUERY, text_2: DOCS[0], truncate_prompt_tokens: 2 });
    assert.equal(r.status, 200, r.text);
    expectClose(r.json.data[0].score, cosine(v.get('t42 t99')!, v.get('t42 t98')!), 'last two tokens of each');
    assert.equal(r.json.usage.prompt_tokens, 4);
  });

  test('bad input is a 422 naming the field (an unknown adapter a 404); nothing is held after', async () => {
    for (const [path, b, status, why] of [
      ['/score', { text_1: ['t1', 't2'], text_2: ['t3', 't4', 't5'] }, 422, /`text_1` holds 2 texts and `text_2` 3/],
      ['/v1/score', { text_1: ['t1', 't2'], text_2: 't3' }, 422, /`text_1` holds 2 texts and `text_2` 1/],
      ['/score', { text_1: [], text_2: 't3' }, 422, /`text_1` is empty/],
      ['/score', { text_1: 't1', text_2: ['t2', ''] }, 422, /`text_2\[1\]` is an empty string/],
      ['/score', { text_1: 5, text_2: 't3' }, 422, /`text_1` must be a string or a list of strings/],
      ['/score', { text_1: 't1', text_2: [[1, 2]] }, 422, /`text_2\[0\]` must be a non-empty string/],
      ['/score', { text_2: 't3' }, 422, /`text_1` must be a string/],
      ['/score', { text_1: 't1', text_2: 't3', temperature: 1 }, 422, /unknown field `temperature`/],
      ['/score', { text_1: 't1', text_2: 't3', model: 3 }, 422, /`model` must be a string/],
      ['/score', { text_1: 't1', text_2: 't3', truncate_prompt_tokens: 0 }, 422, /`truncate_prompt_tokens` must be a positive integer/],
      ['/score', { text_1: 't1', text_2: Array(2049).fill('t1') }, 422, /`text_2` holds 2049 inputs; at most 2048/],
      ['/rerank', { query: QUERY, documents: [] }, 422, /`documents` is empty/],
      ['/rerank', { query: QUERY, documents: ['t1', ''] }, 422, /`documents\[1\]` is an empty string/],
      ['/rerank', { query: QUERY, documents: 't1' }, 422, /`documents` must be a list/],
      ['/rerank', { query: QUERY, documents: ['t1', 7] }, 422, /`documents\[1\]` must be a non-empty string/],
      ['/rerank', { query: QUERY, documents: [{ text: 't1', title: 'x' }] }, 422, /`documents\[0\]`: unknown field `title`/],
      ['/rerank', { query: QUERY, documents: [{ text: 2 }] }, 422, /`documents\[0\].text` must be a string/],
      ['/rerank', { query: ['t1'], documents: ['t1'] }, 422, /`query` must be a non-empty string/],
      ['/rerank', { query: '', documents: ['t1'] }, 422, /`query` must be a non-empty string/],
      ['/v1/rerank', { query: QUERY, documents: ['t1'], top_n: 1.5 }, 422, /`top_n` must be an integer/],
      ['/v2/rerank', { query: QUERY, documents: ['t1'], return_documents: 'yes' }, 422, /`return_documents` must be true or false/],
      ['/rerank', { query: QUERY, documents: ['t1'], rank_fields: ['text'] }, 422, /unknown field `rank_fields`/],
      ['/rerank', [QUERY], 422, /the body must be a JSON object/],
      ['/rerank', { query: QUERY, documents: ['t1'], model: 'no_such_adapter', adapter_source: 'local' }, 404, /no_such_adapter/],
    ] as const) {
      const r = await g.post(path, b);
      assert.equal(r.status, status, `${path} ${JSON.stringify(b).slice(0, 120)}: ${r.text}`);
      assert.match(r.text, why);
      assert.equal(typeof r.json.error?.message, 'string', 'an OpenAI-shaped error');
    }
    const stats = g.server.engine.stats();
    assert.equal(stats.usedBlocks, 0);
    assert.equal(stats.running + stats.waiting, 0);
  });
});

test('behind --api-key, and for a model its sentence-transformers config pools by weightedmean: refused as /v1/embeddings is', async () => {
  const dir = tokenizedGoldenModel(loadGoldenCase('llama'));
  writeFileSync(join(dir, 'modules.json'), JSON.stringify([
    { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
    { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' }]));
  mkdirSync(join(dir, '1_Pooling'));
  writeFileSync(join(dir, '1_Pooling', 'config.json'), JSON.stringify({ pooling_mode_weightedmean_tokens: true, pooling_mode_lasttoken: false }));
  const g = await startGoldenServer({ modelId: dir, apiKeys: ['k-score'] });
  try {
    const key = { authorization: 'Bearer k-score' };
    for (const [path, b] of [['/score', { text_1: 't1', text_2: 't2' }], ['/v2/rerank', { query: 't1', documents: ['t2'] }]] as const) {
      assert.equal((await g.post(path, b)).status, 401, `${path} without a key`);
      const r = await g.post(path, b, key);
      assert.equal(r.status, 422, r.text);
      assert.match(r.text, /pools by 'weightedmean'; weft pools by 'lasttoken', 'mean', 'max' or 'cls' only/);
    }
    assert.equal((await g.post('/v1/completions', { prompt: 't1 t2', max_tokens: 2 }, key)).status, 200, 'generation is unaffected');
  } finally {
    await g.close();
  }
});
