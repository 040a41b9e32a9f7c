// vLLM's allowed_token_ids and bad_words on the OpenAI routes, through the real server at --num-shard 2: the
// answer's tokens come only from the allowed list, and greedy picks the list's most likely token by transformers'
// logits (the golden file), not the model's overall argmax; a bad word is never completed; bad lists are 422s.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startGoldenServer, textOf, type GoldenServer } from '../helpers/golden-server.js';

describe('token filters at --num-shard 2', () => {
  let g: GoldenServer;
  let seq: number[];
  let V: number;
  /** The vocabulary by transformers' next-token logit after golden sequence 0, most likely first. */
  let order: number[];
  before(async () => {
    g = await startGoldenServer({}, { flags: ['--num-shard', '2'] });
    seq = g.c.sequences[0]!;
    V = g.c.vocab;
    const last = g.c.logits('base/seq0').subarray((seq.length - 1) * V, seq.length * V);
    order = [...last.keys()].sort((a, b) => last[b]! - last[a]!);
  });
  after(async () => { await g.close(); });

  test('allowed_token_ids: greedy takes the best allowed token; every token drawn is allowed; bad lists refused', async () => {
    const allowed = [order[V - 1]!, order[V - 2]!, order[V - 3]!];  // the three least likely tokens
    const r = await g.post('/v1/completions', { prompt: textOf(seq), max_tokens: 1, temperature: 0, allowed_token_ids: allowed });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.choices[0].text.trim(), `t${order[V - 3]}`, 'the most likely of the allowed three');
    const sampled = await g.post('/v1/completions', { prompt: textOf(seq), max_tokens: 8, temperature: 1, seed: 3, ignore_eos: true,
      allowed_token_ids: [5, 9, 12] });
    assert.equal(sampled.status, 200, sampled.text);
    const words = sampled.json.choices[0].text.trim().split(' ');
    assert.equal(words.length, 8);
    for (const w of words) assert.ok(['t5', 't9', 't12'].includes(w), `${w} was not allowed`);
    for (const bad of [[], [V], [-1], 'x']) {
      const b = await g.post('/v1/completions', { prompt: textOf(seq), max_tokens: 1, allowed_token_ids: bad });
      assert.equal(b.status, 422, `${JSON.stringify(bad)}: ${b.text}`);
      assert.match(b.text, /allowed_token_ids/);
    }
  });

  test('bad_words: a one-token word is never drawn (greedy takes the runner-up), a longer one never completed', async () => {
    const complete = (extra: Record<string, unknown>) =>
      g.post('/v1/completions', { prompt: textOf(seq), max_tokens: 3, temperature: 0, ignore_eos: true, ...extra });
    const free = await complete({});
    assert.equal(free.status, 200, free.text);
    const words = free.json.choices[0].text.trim().split(' ') as string[];
    assert.equal(words[0], `t${order[0]}`, 'greedy: the golden argmax');
    const one = await complete({ bad_words: [words[0]] });
    assert.equal(one.status, 200, one.text);
    const got = one.json.choices[0].text.trim().split(' ') as string[];
    assert.equal(got[0], `t${order[1]}`, 'the runner-up by the golden logits');
    assert.ok(!got.includes(words[0]!), `${words[0]} was drawn later`);
    const pair = await complete({ bad_words: [`${words[0]} ${words[1]}`] });
    assert.equal(pair.status, 200, pair.text);
    const paired = pair.json.choices[0].text.trim().split(' ') as string[];
    assert.equal(paired[0], words[0], 'the first token of a two-token bad word alone is fine');
    assert.notEqual(paired[1], words[1], 'but the word is never completed');
    for (const bad of [[''], [5], 'x', new Array(129).fill('a')]) {
      const b = await complete({ bad_words: bad });
      assert.equal(b.status, 422, `${JSON.stringify(bad).slice(0, 40)}: ${b.text}`);
      assert.match(b.text, /bad_words/);
    }
  });
});
