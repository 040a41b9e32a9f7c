// Sequence-classification adapters (POST /classify, /v1/classify) against transformers + PEFT: PEFT task_type SEQ_CLS
// adapters (LoRA pairs + a trained score head, test/fixtures/classify/<case>/<adapter>, made with their reference
// logits by test/fixtures/golden/make_classifiers.py) on the llama and qwen2 golden models: every sequence, alone and
// batched with the other classifier, at --num-shard 1 and 2 (llama); softmax / sigmoid and raw logits; labels from
// the adapter's config.json; bad input refused with nothing held after.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { activate } from '../../coordinator/http/classify-routes.js';
import { startGoldenServer, textOf, type GoldenServer } from '../helpers/golden-server.js';

const ROOT = join(import.meta.dirname, '../../../test/fixtures/classify');
interface Entry { adapter: string; tokens: number[]; logits: number[] }
const FIXTURE = JSON.parse(readFileSync(join(ROOT, 'classify.json'), 'utf8')) as {
  cases: Record<string, { adapters: { name: string; num_labels: number; labels: string[] | null }[]; entries: Entry[] }> };
const TOL = 1e-4;

const maxDiff = (a: number[], b: number[]) => {
  assert.equal(a.length, b.length);
  return Math.max(...a.map((x, i) => Math.abs(x - b[i]!)));
};

for (const [name, shards] of [['llama', 1], ['llama', 2], ['qwen2', 1]] as const) {
  describe(`classify: ${name}, --num-shard ${shards}`, () => {
    let g: GoldenServer;
    const fixture = FIXTURE.cases[name]!;
    before(async () => {
      g = await startGoldenServer({}, { caseName: name, flags: ['--num-shard', String(shards), '--adapter-root', join(ROOT, name),
        '--preload-adapter', `sentiment-clf=${join(ROOT, name, 'sentiment')}`] });
    });
    after(async () => { await g.close(); });
    const classify = (e: Entry, extra: Record<string, unknown> = {}) =>
      g.post('/classify', { model: e.adapter, adapter_source: 'local', input: [e.tokens], use_activation: false, ...extra });

    test('logits equal transformers + PEFT\'s, every adapter and sequence, alone and batched together', async () => {
      for (const e of fixture.entries) {
        const r = await classify(e);
        assert.equal(r.status, 200, r.text);
        assert.ok(maxDiff(r.json.data[0].probs, e.logits) <= TOL, `${name} ${e.adapter} alone: ${r.json.data[0].probs} vs ${e.logits}`);
        assert.equal(r.json.data[0].num_classes, e.logits.length);
        assert.equal(r.json.usage.prompt_tokens, e.tokens.length);
      }
      const together = await Promise.all(fixture.entries.map((e) => classify(e)));
      together.forEach((r, i) => {
        assert.equal(r.status, 200, r.text);
        assert.ok(maxDiff(r.json.data[0].probs, fixture.entries[i]!.logits) <= TOL, `${name} batched #${i}`);
      });
    });

    if (name !== 'llama' || shards !== 1) return;

    test('probabilities, labels, several inputs in one request, the preloaded name, /v1/classify', async () => {
      const sentiment = fixture.entries.filter((e) => e.adapter === 'sentiment');
      const r = await g.post('/v1/classify', { model: 'sentiment-clf', input: sentiment.map((e) => e.tokens) });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.object, 'list');
      assert.match(r.json.id, /^classify-[0-9a-f]{32}$/);
      assert.equal(r.json.model, 'sentiment-clf');
      const names = fixture.adapters.find((a) => a.name === 'sentiment')!.labels!;
      r.json.data.forEach((d: { index: number; label: string; probs: number[] }, i: number) => {
        const ref = sentiment[i]!.logits;
        assert.equal(d.index, i);
        assert.ok(maxDiff(d.probs, activate(ref)) <= 1e-5, `softmax #${i}`);
        assert.ok(Math.abs(d.probs.reduce((a, x) => a + x, 0) - 1) < 1e-9);
        assert.equal(d.label, names[ref.indexOf(Math.max(...ref))]);
      });
      const reward = fixture.entries.find((e) => e.adapter === 'reward')!;
      const one = await g.post('/classify', { model: 'reward', adapter_source: 'local', input: textOf(reward.tokens) });
      assert.equal(one.status, 200, one.text);
      assert.equal(one.json.data[0].label, 'LABEL_0', 'no config.json: transformers\' default label names');
      assert.ok(Math.abs(one.json.data[0].probs[0] - 1 / (1 + Math.exp(-reward.logits[0]!))) <= 1e-5, 'a one-label head: sigmoid');
    });

    test('a one-label classifier adapter is a cross-encoder on /score and /rerank: each pair joined, scored like transformers + PEFT', async () => {
      // The word-level test tokenizer has no pair template: a pair's input is its two texts' tokens in a row, so a
      // golden sequence split in two must score the sigmoid of that sequence's reference logit.
      const reward = fixture.entries.filter((e) => e.adapter === 'reward');
      const halves = reward.map((e) => [textOf(e.tokens.slice(0, 2)), textOf(e.tokens.slice(2))] as const);
      const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
      const s = await g.post('/v1/score', { model: 'reward', adapter_source: 'local', text_1: halves.map((h) => h[0]), text_2: halves.map((h) => h[1]) });
      assert.equal(s.status, 200, s.text);
      s.json.data.forEach((d: { index: number; score: number }, i: number) => {
        assert.ok(Math.abs(d.score - sigmoid(reward[i]!.logits[0]!)) <= 1e-5, `pair ${i}: ${d.score} vs ${sigmoid(reward[i]!.logits[0]!)}`);
      });
      assert.equal(s.json.usage.prompt_tokens, reward.reduce((n, e) => n + e.tokens.length, 0));
      const docs = [halves[0]![1], textOf(reward[1]!.tokens), textOf(reward[2]!.tokens)];
      const rr = await g.post('/rerank', { model: 'reward', adapter_source: 'local', query: halves[0]![0], documents: docs });
      assert.equal(rr.status, 200, rr.text);
      const scores = rr.json.results as { index: number; relevance_score: number }[];
      assert.deepEqual(scores.map((r) => r.relevance_score), [...scores.map((r) => r.relevance_score)].sort((a, b) => b - a), 'most relevant first');
      const first = scores.find((r) => r.index === 0)!;
      assert.ok(Math.abs(first.relevance_score - sigmoid(reward[0]!.logits[0]!)) <= 1e-5);
      // A three-label classifier is not a cross-encoder: its scores stay cosine similarities (in [-1, 1], self = 1).
      const bi = await g.post('/score', { model: 'sentiment', adapter_source: 'local', text_1: 't5 t6', text_2: ['t5 t6'] });
      assert.equal(bi.status, 200, bi.text);
      assert.ok(Math.abs(bi.json.data[0].score - 1) < 1e-5);
    });

    test('a classifier adapter still generates (its head unused); refusals leave nothing held', async () => {
      const gen = await g.post('/generate', { inputs: 'Hello there', parameters: { adapter_id: 'sentiment-clf', max_new_tokens: 3 } });
      assert.equal(gen.status, 200, gen.text);
      for (const [b, status, why] of [
        [{ input: 'x' }, 422, /must name a sequence-classification adapter .*this base model has no classification head/],
        [{ model: 'all_r8', adapter_source: 'local', input: 'x' }, 422, /not a sequence classifier \(task_type "CAUSAL_LM"\)/],
        [{ model: 'nope', adapter_source: 'local', input: 'x' }, 404, /nope/],
        [{ model: 'sentiment-clf', input: [] }, 422, /`input` is empty/],
        [{ model: 'sentiment-clf', input: 'x', use_activation: 'yes' }, 422, /use_activation/],
        [{ model: 'sentiment-clf', input: 'x', top_k: 2 }, 422, /unknown field `top_k`/],
      ] as [Record<string, unknown>, number, RegExp][]) {
        const r = await g.post('/classify', b);
        assert.equal(r.status, status, `${JSON.stringify(b)}: ${r.text}`);
        assert.match(r.json.error.message, why);
      }
      const stats = g.server.engine.stats();
      assert.equal(stats.usedBlocks, 0);
      assert.equal(stats.adapterRefs, 0);
    });
  });
}

// A base model published as LlamaForSequenceClassification (a reward model's shape: the decoder and a 2-label
// `score` head, no lm_head; test/fixtures/classify/base-llama from make_classifiers.py) against transformers'
// AutoModelForSequenceClassification, at --num-shard 1 and 2: /classify without an adapter uses its head; it
// refuses to generate; embeddings still work; a SEQ_CLS adapter's own head still applies on top of it.
for (const shards of [1, 2]) {
  describe(`classify: a *ForSequenceClassification base model, --num-shard ${shards}`, () => {
    let g: GoldenServer;
    const base = (FIXTURE as unknown as { base: { dir: string; labels: string[]; entries: Entry[] } }).base;
    before(async () => {
      g = await startGoldenServer({}, { weightsDir: join(ROOT, base.dir), flags: ['--num-shard', String(shards), '--adapter-root', join(ROOT, 'llama')] });
    });
    after(async () => { await g.close(); });

    test('its score head, alone and batched, equals transformers\'; labels from config.json; generation refused', async () => {
      const all = await Promise.all(base.entries.map((e) => g.post('/v1/classify', { model: g.server.engine.info.modelId, input: [e.tokens], use_activation: false })));
      all.forEach((r, i) => {
        assert.equal(r.status, 200, r.text);
        assert.ok(maxDiff(r.json.data[0].probs, base.entries[i]!.logits) <= TOL, `#${i}: ${r.json.data[0].probs} vs ${base.entries[i]!.logits}`);
      });
      const probs = await g.post('/classify', { input: base.entries.map((e) => textOf(e.tokens)) });
      assert.equal(probs.status, 200, probs.text);
      probs.json.data.forEach((d: { label: string; probs: number[] }, i: number) => {
        const ref = base.entries[i]!.logits;
        assert.equal(d.label, base.labels[ref.indexOf(Math.max(...ref))]);
        assert.ok(maxDiff(d.probs, activate(ref)) <= 1e-5);
      });
      const info = await fetch(`${g.url}/info`).then((r) => r.json()) as { model_pipeline_tag: string };
      assert.equal(info.model_pipeline_tag, 'text-classification');
      for (const [path, body] of [['/generate', { inputs: 't5 t6' }], ['/v1/completions', { prompt: 't5 t6', max_tokens: 2 }]] as const) {
        const r = await g.post(path, body);
        assert.equal(r.status, 422, r.text);
        assert.match(r.text, /served as a sequence classifier .*not text generation/);
      }
      const emb = await g.post('/v1/embeddings', { input: 't5 t6' });
      assert.equal(emb.status, 200, emb.text);
      assert.equal(emb.json.data[0].embedding.length, 64);
      const stats = g.server.engine.stats();
      assert.equal(stats.usedBlocks, 0);
      assert.equal(stats.running + stats.waiting, 0);
    });

    if (shards !== 1) return;
    test('a SEQ_CLS adapter on it applies its own head', async () => {
      const r = await g.post('/classify', { model: 'sentiment', adapter_source: 'local', input: 't5 t6', use_activation: false });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.data[0].num_classes, 3);
    });
  });
}

// --classifier-from-tokens: the llama golden model (a causal LM) served as a yes/no classifier by two of its own
// next-token logits; the reference is transformers' logits of the golden file at each sequence's last position.
describe('classify: --classifier-from-tokens on a causal LM', () => {
  let g: GoldenServer;
  before(async () => {
    g = await startGoldenServer({}, { flags: ['--classifier-from-tokens', 't5', '--classifier-from-tokens', 't9'] });
  });
  after(async () => { await g.close(); });

  test('the score is P(t9) of the two tokens at the last position, as transformers\' logits give it; /rerank uses it', async () => {
    const V = g.c.vocab;
    const diffs = g.c.sequences.map((seq, s) => {
      const logits = g.c.logits(`base/seq${s}`);
      return logits[(seq.length - 1) * V + 9]! - logits[(seq.length - 1) * V + 5]!;
    });
    const r = await g.post('/classify', { input: g.c.sequences, use_activation: false });
    assert.equal(r.status, 200, r.text);
    r.json.data.forEach((d: { label: string; probs: number[] }, s: number) => {
      assert.equal(d.label, 't9');
      assert.ok(Math.abs(d.probs[0]! - diffs[s]!) <= TOL, `seq ${s}: ${d.probs[0]} vs ${diffs[s]}`);
    });
    const seq = g.c.sequences[1]!;
    const rr = await g.post('/v1/rerank', { query: textOf(seq.slice(0, 4)), documents: [textOf(seq.slice(4))] });
    assert.equal(rr.status, 200, rr.text);
    assert.ok(Math.abs(rr.json.results[0].relevance_score - 1 / (1 + Math.exp(-diffs[1]!))) <= 1e-5);
    const gen = await g.post('/generate', { inputs: 't5 t6' });
    assert.equal(gen.status, 422, gen.text);
    assert.match(gen.text, /served as a sequence classifier/);
  });
});
