// Speculative decoding (--speculate): a decoding sequence's next tokens are guessed from its own earlier tokens
// and checked in the same forward pass. The served output must be exactly what the server gives without it —
// greedy and seeded sampling with penalties, stop sequences, adapters, streaming — while steps yield several
// tokens where the guesses hold. TP=2 so that a rank other than 0 verifies too; 4-token KV blocks so that drafts
// cross block boundaries; prefix caching on, so that blocks holding rejected drafts must never be shared.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGoldenServer, textOf, type GoldenServer } from '../helpers/golden-server.js';

const ADAPTERS = [null, 'all_r8', 'qv_r4', 'rslora_r16'];

/** A counter's value in a /metrics scrape. */
const counter = (metrics: string, name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN);

describe('speculative decoding == plain decoding (TP=2)', () => {
  let plain: GoldenServer;
  let spec: GoldenServer;
  before(async () => {
    plain = await startGoldenServer({ numShard: 2, blockSize: 4 });
    spec = await startGoldenServer({ numShard: 2, blockSize: 4 }, { flags: ['--speculate', '4'] });
  });
  after(async () => { await plain.close(); await spec.close(); });

  test('same tokens, texts and finish reasons for 24 concurrent mixed requests; drafts accepted; no KV block left held', async () => {
    const info = await Promise.all([plain, spec].map(async (g) => (await fetch(`${g.url}/info`)).json()));
    assert.deepEqual(info.map((i) => i.speculate), [0, 4]);
    const reqs = Array.from({ length: 24 }, (_, k) => {
      const a = ADAPTERS[k % 4];
      // Long enough for the tiny model's output to fall into repeats the lookup can predict.
      const parameters: Record<string, unknown> = { max_new_tokens: 8 + ((k * 5) % 33), details: true, ignore_eos_token: k % 2 === 0 };
      if (k % 3 === 1) Object.assign(parameters, { do_sample: true, seed: 2000 + k, temperature: 0.7, top_k: 20 });
      if (k % 3 === 2) Object.assign(parameters, { do_sample: true, seed: 3000 + k, temperature: 0.9, repetition_penalty: 1.2, frequency_penalty: 0.3 });
      if (a) Object.assign(parameters, { adapter_id: a, adapter_source: 'local' });
      const len = 2 + ((k * 7) % 30);
      const ids = Array.from({ length: len }, (_, i) => plain.c.sequences[(k + Math.floor(i / 12)) % 3][i % 3]);
      return { inputs: textOf(ids), parameters };
    });
    // Every fifth request stops at the text of its own fifth token (found by running it once without).
    for (let k = 0; k < reqs.length; k += 5) {
      const probe = await plain.post('/generate', reqs[k]);
      reqs[k].parameters.stop = [probe.json.details.tokens[Math.min(4, probe.json.details.tokens.length - 1)].text];
    }
    const [one, two] = await Promise.all([plain, spec].map((g) => Promise.all(reqs.map((r) => g.post('/generate', r)))));
    one.forEach((r, k) => {
      assert.equal(r.status, 200, r.text);
      assert.equal(two[k].status, 200, two[k].text);
      const ids = (x: typeof r) => x.json.details.tokens.map((t: { id: number }) => t.id);
      assert.deepEqual(ids(two[k]), ids(r), `request ${k}`);
      assert.equal(two[k].json.generated_text, r.json.generated_text, `request ${k}`);
      assert.equal(two[k].json.details.finish_reason, r.json.details.finish_reason, `request ${k}`);
      assert.equal(two[k].json.details.generated_tokens, r.json.details.generated_tokens, `request ${k}`);
      // The log-probs come from the same distributions (computed in a row of several positions instead of one).
      two[k].json.details.tokens.forEach((t: { logprob: number }, i: number) =>
        assert.ok(Math.abs(t.logprob - r.json.details.tokens[i].logprob) < 1e-4, `request ${k} token ${i}`));
    });
    assert.ok(one.some((r) => r.json.details.finish_reason === 'stop_sequence'), 'a stop sequence ended some request');
    assert.ok(one.some((r) => r.json.details.finish_reason === 'length'), 'some request ran to its length');
    const [m0, m1] = await Promise.all([plain, spec].map(async (g) => (await fetch(`${g.url}/metrics`)).text()));
    assert.equal(counter(m0, 'weft_spec_draft_tokens_total'), 0);
    const drafted = counter(m1, 'weft_spec_draft_tokens_total'), accepted = counter(m1, 'weft_spec_accepted_tokens_total');
    console.log(`speculation: ${accepted} of ${drafted} drafts accepted`);
    assert.ok(accepted > 20 && accepted < drafted, `${accepted} of ${drafted} drafts accepted`);
    for (const m of [m0, m1]) assert.match(m, /^weft_kv_blocks_used 0$/m);
    // Fewer steps for the same tokens: the step-duration histogram counts steps.
    const steps = [m0, m1].map((m) => counter(m, 'weft_step_duration_seconds_count'));
    console.log(`steps: plain ${steps[0]}, speculative ${steps[1]}`);
    assert.ok(steps[1]! < steps[0]!, `steps: plain ${steps[0]}, speculative ${steps[1]}`);
  });

  test('a stream gets one event per token, in order, when a step yields several', async () => {
    const body = { inputs: textOf(plain.c.sequences[1]), parameters: { max_new_tokens: 40, ignore_eos_token: true, details: true } };
    const whole = await plain.post('/generate', body);
    const before = counter(await (await fetch(`${spec.url}/metrics`)).text(), 'weft_spec_accepted_tokens_total');
    const sse = await spec.post('/generate_stream', body);
    assert.equal(sse.status, 200);
    const events = sse.text.split('\n').filter((l) => l.startsWith('data:')).map((l) => JSON.parse(l.slice(5)));
    assert.deepEqual(events.map((e) => e.token.id), whole.json.details.tokens.map((t: { id: number }) => t.id));
    assert.equal(events.at(-1).generated_text, whole.json.generated_text);
    const after = counter(await (await fetch(`${spec.url}/metrics`)).text(), 'weft_spec_accepted_tokens_total');
    assert.ok(after > before, 'this request accepted no draft: the test shows nothing');
  });
});
