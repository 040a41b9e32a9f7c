// vLLM's allowed_token_ids and bad_words (and logit_bias) on the OpenAI routes, through the real server at
// --num-shard 2: the answer's tokens come only from the allowed list, and greedy picks the list's most likely token
// by transformers' logits (the golden file), not the model's overall argmax; a bad word is never completed; bad
// lists are 422s. The same filters in beam search (the beams a reference search over the filtered exact logits
// finds: a banned token never extends a beam) and in the Responses API.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { beamChoices, choicesOf, referenceBeams } from '../helpers/beam-reference.js';
import { startGoldenServer, textOf, type GoldenServer } from '../helpers/golden-server.js';

/** A chat template that renders the messages' text as it is, so a chat prompt is the same tokens as a completion's. */
const TEMPLATE = "{% for m in messages %}{{ m['content'] }} {% endfor %}";

describe('token filters at --num-shard 2', () => {
  let g: GoldenServer;
  let seq: number[];
  let V: number;
  /** The vocabulary by transformers' next-token logit after golden sequence 0, most likely first. */
  let order: number[];
  before(async () => {
    g = await startGoldenServer({}, { flags: ['--num-shard', '2'], chatTemplate: TEMPLATE });
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
    const none = await complete({ allowed_token_ids: [order[1], order[2]], bad_words: [`t${order[1]}`, `t${order[2]}`] });
    assert.equal(none.status, 422, none.text);
    assert.match(none.text, /`bad_words` ban every token in `allowed_token_ids`/);
  });

  test('beam search: allowed_token_ids, bad_words and logit_bias shape every beam\'s next token; a banned token never extends a beam', async () => {
    const beams = async (body: Record<string, unknown>, width: number, steps: number) => {
      const r = await g.post('/v1/completions', { prompt: seq, max_tokens: steps, n: width, use_beam_search: true, ...body });
      assert.equal(r.status, 200, r.text);
      return choicesOf(r.json);
    };
    const masked = (banned: (generated: readonly number[]) => number[]) => (generated: readonly number[], logits: Float64Array) => {
      for (const t of banned(generated)) logits[t] = -Infinity;
    };
    // Two allowed tokens, three beams: after one step only two beams exist, then the best three of four.
    const allowed = [order[3]!, order[7]!];
    const notAllowed = [...order.keys()].filter((t) => !allowed.includes(t));
    for (const steps of [1, 3]) {
      const expected = await referenceBeams(g.c, { prompt: seq, width: 3, steps, filter: masked(() => notAllowed) });
      assert.equal(expected.length, steps === 1 ? 2 : 3);
      assert.deepEqual(await beams({ allowed_token_ids: allowed }, 3, steps), beamChoices(expected), `allowed_token_ids, ${steps} steps`);
    }
    // With bad words that ban both allowed tokens after the first: a beam ending in it has nothing left and ends there.
    const [a, b] = allowed as [number, number];
    const stuck = await referenceBeams(g.c, { prompt: seq, width: 2, steps: 3,
      filter: masked((gen) => [...notAllowed, ...(gen.at(-1) === a ? [a, b] : [])]) });
    assert.ok(stuck.some((beam) => beam.tokens.at(-1) === a && beam.tokens.length < 3), 'the reference has a beam that ends early');
    assert.deepEqual(await beams({ allowed_token_ids: allowed, bad_words: [`t${a} t${a}`, `t${a} t${b}`] }, 2, 3), beamChoices(stuck));
    // A one-token bad word (the argmax) and a two-token one: the best beam's first two tokens once the argmax is banned.
    const one = masked(() => [order[0]!]);
    const [top] = await referenceBeams(g.c, { prompt: seq, width: 2, steps: 3, filter: one });
    const [x, y] = top!.tokens as [number, number];
    const both = masked((gen) => [order[0]!, ...(gen.at(-1) === x ? [y] : [])]);
    const expected = await referenceBeams(g.c, { prompt: seq, width: 2, steps: 3, filter: both });
    assert.notDeepEqual(expected[0]!.tokens.slice(0, 2), [x, y], 'the two-token word changes the answer');
    assert.deepEqual(await beams({ bad_words: [`t${order[0]}`, `t${x} t${y}`] }, 2, 3), beamChoices(expected), 'bad_words');
    // logit_bias: the least likely token pushed up, the most likely down.
    const bias = { [order[V - 1]!]: 12, [order[0]!]: -100 };
    const biased = (_gen: readonly number[], logits: Float64Array) => { for (const [t, b] of Object.entries(bias)) logits[Number(t)]! += b; };
    assert.deepEqual(await beams({ logit_bias: bias }, 2, 2), beamChoices(await referenceBeams(g.c, { prompt: seq, width: 2, steps: 2, filter: biased })),
      'logit_bias');
    for (const [body, why] of [[{ allowed_token_ids: [V] }, /allowed_token_ids/], [{ allowed_token_ids: [a], bad_words: [`t${a}`] }, /nothing could be generated/]] as const) {
      const bad = await g.post('/v1/completions', { prompt: seq, max_tokens: 2, n: 2, use_beam_search: true, ...body });
      assert.equal(bad.status, 422, bad.text);
      assert.match(bad.text, why);
    }
  });

  test('Responses API: allowed_token_ids, bad_words and logit_bias as on chat completions', async () => {
    const respond = async (extra: Record<string, unknown>): Promise<string> => {
      const r = await g.post('/v1/responses', { input: textOf(seq), max_output_tokens: 1, temperature: 0, ...extra });
      assert.equal(r.status, 200, r.text);
      return r.json.output[0].content[0].text.trim();
    };
    assert.equal(await respond({}), `t${order[0]}`, 'greedy: the golden argmax');
    assert.equal(await respond({ allowed_token_ids: [order[V - 1]!, order[V - 2]!, order[V - 3]!] }), `t${order[V - 3]}`);
    assert.equal(await respond({ bad_words: [`t${order[0]}`] }), `t${order[1]}`, 'the runner-up by the golden logits');
    assert.equal(await respond({ logit_bias: { [order[V - 1]!]: 100 } }), `t${order[V - 1]}`);
    for (const [field, value] of [['allowed_token_ids', []], ['bad_words', ['']], ['logit_bias', { x: 1 }]] as const) {
      const r = await g.post('/v1/responses', { input: textOf(seq), max_output_tokens: 1, [field]: value });
      assert.equal(r.status, 422, r.text);
      assert.match(r.text, new RegExp(field));
    }
  });
});
