// OpenAI's Predicted Outputs on a server without --speculate (TP=2, 4-token KV blocks): a request's `prediction`
// drafts its tokens, verified as any draft, so the answer is exactly the one without a prediction — greedy and
// seeded, with adapters, streamed — while a right prediction is taken whole (accepted_prediction_tokens) and a
// prediction with an edit in it is found again after the edit. Bad predictions are 422s.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGoldenServer, textOf, type GoldenServer } from '../helpers/golden-server.js';
import { PredictionCursor } from '../../shard/engine/prediction-drafts.js';

const TEMPLATE = "{% for m in messages %}{{ m['content'] }} {% endfor %}";

describe('the prediction cursor', () => {
  test('follows the output through the prediction, and finds it again after an edit, at the copy nearest where it left', () => {
    const p = [1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 9, 9];
    const c = new PredictionCursor(p);
    assert.deepEqual(c.propose([1], 3), [2, 3, 4], 'the output starts as predicted');
    assert.deepEqual(c.propose([1, 2, 3, 4], 2), [5, 6]);
    assert.deepEqual(c.propose([1, 2, 3, 4, 8], 2), [], 'an edit: the last tokens occur nowhere');
    assert.deepEqual(c.propose([1, 2, 3, 4, 8, 6, 7], 3), [1, 2, 3], 'found again by its last two tokens');
    assert.deepEqual(c.propose([1, 2, 3, 4, 8, 6, 7, 1, 2, 0, 1, 2, 3], 2), [9, 9], 'the copy nearest where it left, not the first');
    assert.deepEqual(new PredictionCursor([5, 6]).propose([7], 4), [], 'no match, no guess');
    assert.deepEqual(new PredictionCursor([5, 6]).propose([5, 6], 4), [], 'nothing left to predict');
  });
});

describe('Predicted Outputs (no --speculate, TP=2)', () => {
  let g: GoldenServer;
  before(async () => { g = await startGoldenServer({ numShard: 2, blockSize: 4 }, { chatTemplate: TEMPLATE }); });
  after(async () => { await g.close(); });

  const prompt = () => textOf([...g.c.sequences[0]!, ...g.c.sequences[1]!].slice(0, 10));
  const completion = (extra: Record<string, unknown>) => g.post('/v1/completions',
    { prompt: prompt(), max_tokens: 24, temperature: 0, ignore_eos: true, logprobs: 0, ...extra });
  const ids = (r: { json: any }) => r.json.choices[0].logprobs.tokens as string[];

  test('a right prediction is taken whole; a wrong one changes nothing but what is accepted', async () => {
    const plain = await completion({});
    assert.equal(plain.status, 200, plain.text);
    assert.equal(plain.json.usage.completion_tokens_details, undefined, 'no details without a prediction');
    const text: string = plain.json.choices[0].text;
    const words = text.trim().split(' ');
    assert.equal(words.length, 24);
    const right = await completion({ prediction: { type: 'content', content: text } });
    assert.equal(right.status, 200, right.text);
    assert.deepEqual(ids(right), ids(plain));
    assert.equal(right.json.choices[0].text, text);
    const details = right.json.usage.completion_tokens_details;
    // Each step feeds the token it sampled last and up to 8 of the prediction's after it: all of them accepted, so
    // only the first token and one per step after it are not the prediction's (24 tokens in 4 or 5 steps).
    assert.ok(details.accepted_prediction_tokens >= 18, `accepted ${details.accepted_prediction_tokens}`);
    assert.equal(details.accepted_prediction_tokens + details.rejected_prediction_tokens, 24);
    // An edit in the middle (two words replaced) and a wrong ending: found again after the edit.
    const edited = [...words.slice(0, 8), 't1', 't2', ...words.slice(10, 18), 't3', 't4', 't5'].join(' ');
    const wrong = await completion({ prediction: { type: 'content', content: [{ type: 'text', text: edited.slice(0, 20) }, { type: 'text', text: edited.slice(20) }] } });
    assert.equal(wrong.status, 200, wrong.text);
    assert.deepEqual(ids(wrong), ids(plain), 'the answer does not follow the prediction');
    const took = wrong.json.usage.completion_tokens_details.accepted_prediction_tokens;
    assert.ok(took >= 8 && took < details.accepted_prediction_tokens, `accepted ${took}: the stretches before and after the edit`);
  });

  test('seeded sampling, an adapter, chat and streaming: the same answer as without a prediction', async () => {
    const body = { messages: [{ role: 'user', content: prompt() }], max_tokens: 20, temperature: 0.8, seed: 7, model: 'all_r8',
      adapter_source: 'local', ignore_eos: true, n: 2 };
    const plain = await g.post('/v1/chat/completions', body);
    assert.equal(plain.status, 200, plain.text);
    const prediction = { type: 'content', content: plain.json.choices[0].message.content };
    const predicted = await g.post('/v1/chat/completions', { ...body, prediction });
    assert.equal(predicted.status, 200, predicted.text);
    assert.deepEqual(predicted.json.choices.map((c: any) => c.message.content), plain.json.choices.map((c: any) => c.message.content));
    assert.ok(predicted.json.usage.completion_tokens_details.accepted_prediction_tokens >= 14, 'choice 0 follows it');
    const r = await fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...body, n: 1, prediction, stream: true, stream_options: { include_usage: true } }) });
    const chunks = (await r.text()).split('\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)));
    assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), plain.json.choices[0].message.content);
    assert.ok(chunks.at(-1).usage.completion_tokens_details.accepted_prediction_tokens >= 14);
  });

  test('a prediction that is not {type: content, content} is a 422; KV blocks are all free after', async () => {
    for (const prediction of [{ type: 'text', content: 'x' }, { type: 'content' }, { type: 'content', content: [{ type: 'image' }] },
      { type: 'content', content: 'x', extra: 1 }, 'just text']) {
      const r = await completion({ prediction });
      assert.equal(r.status, 422, `${JSON.stringify(prediction)}: ${r.text}`);
      assert.match(r.text, /prediction/);
    }
    assert.equal(g.server.engine.stats().usedBlocks, 0);
  });
});
