// The distributed server end to end: `weft launch` with real shard processes over NATS, HTTP requests
// with mixed adapters in the same batches, checked against the PEFT golden logits.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { prefillMatchesGolden, startGoldenServer, textOf, type GoldenServer } from '../helpers/golden-server.js';

const ADAPTERS = [null, 'all_r8', 'qv_r4', 'rslora_r16'];

for (const numShard of [1, 2]) {
  describe(`server TP=${numShard}`, () => {
    let g: GoldenServer;
    before(async () => { g = await startGoldenServer({ numShard }); });
    after(async () => { await g.close(); });

    test('concurrent prefill logprobs for base + 3 adapters equal the golden log-softmax', async () => {
      const jobs = [];
      for (let s = 0; s < g.c.sequences.length; s++) {
        for (const a of ADAPTERS) {
          const params: Record<string, unknown> = { max_new_tokens: 1, details: true, decoder_input_details: true };
          if (a) Object.assign(params, { adapter_id: a, adapter_source: 'local' });
          jobs.push(g.post('/generate', { inputs: textOf(g.c.sequences[s]), parameters: params }).then((r) => ({ r, s, a })));
        }
      }
      for (const { r, s, a } of await Promise.all(jobs)) {
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.details.prefill[0].logprob, null);
        prefillMatchesGolden(g.c, r.json, a ? `adapter/${a}/seq${s}` : `base/seq${s}`, g.c.sequences[s]);
      }
    });

    test('32 concurrent greedy requests over mixed adapters each equal the request served alone', async () => {
      const reqs = Array.from({ length: 32 }, (_, k) => {
        const a = ADAPTERS[k % 4];
        const seq = g.c.sequences[k % 3].slice(0, 3 + (k % 5));
        const parameters: Record<string, unknown> = { max_new_tokens: 6 + (k % 7), details: true };
        if (a) Object.assign(parameters, { adapter_id: a, adapter_source: 'local' });
        return { inputs: textOf(seq), parameters };
      });
      const alone: Awaited<ReturnType<GoldenServer['post']>>[] = [];
      for (const r of reqs) alone.push(await g.post('/generate', r));
      const together = await Promise.all(reqs.map((r) => g.post('/generate', r)));
      together.forEach((t, k) => {
        assert.equal(t.status, 200, t.text);
        assert.deepEqual(t.json.details.tokens.map((x: { id: number }) => x.id), alone[k].json.details.tokens.map((x: { id: number }) => x.id), `request ${k}`);
        assert.equal(t.json.generated_text, alone[k].json.generated_text);
      });
    });

    test('per-request metrics: one TTFT, an inter-token gap per later token, the finish reason, the length', async () => {
      const scrape = async () => {
        const text = await (await fetch(`${g.url}/metrics`)).text();
        const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
        return { ttft: num(/^weft_time_to_first_token_seconds_count (\d+)$/m), itl: num(/^weft_time_per_output_token_seconds_count (\d+)$/m),
          length: num(/^weft_requests_finished_total\{reason="length"\} (\d+)$/m),
          generated: num(/^weft_request_generated_tokens_sum (\d+)$/m), ttftSum: num(/^weft_time_to_first_token_seconds_sum (\S+)$/m) };
      };
      const before = await scrape();
      const t0 = performance.now();
      const r = await g.post('/generate', { inputs: textOf(g.c.sequences[0]), parameters: { max_new_tokens: 5, adapter_id: 'qv_r4',
        adapter_source: 'local', details: true, ignore_eos_token: true } });
      const elapsed = (performance.now() - t0) / 1000;
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.details.generated_tokens, 5);
      const after = await scrape();
      assert.equal(after.ttft - before.ttft, 1);
      assert.equal(after.itl - before.itl, 4);
      assert.equal(after.length - before.length, 1);
      assert.equal(after.generated - before.generated, 5);
      const ttft = after.ttftSum - before.ttftSum;
      assert.ok(ttft > 0 && ttft <= elapsed, `TTFT ${ttft} s within the request's ${elapsed} s`);
    });

    test('streaming output equals non-streaming output', async () => {
      const body = { inputs: textOf(g.c.sequences[1]), parameters: { max_new_tokens: 10, adapter_id: 'all_r8', adapter_source: 'local', details: true } };
      const plain = await g.post('/generate', body);
      const stream = await g.post('/generate_stream', body);
      assert.equal(stream.status, 200);
      const events = stream.text.split('\n').filter((l) => l.startsWith('data:')).map((l) => JSON.parse(l.slice(5)));
      assert.ok(events.length >= 1);
      assert.deepEqual(events.map((e) => e.token.id), plain.json.details.tokens.map((t: { id: number }) => t.id));
      assert.equal(events.at(-1).generated_text, plain.json.generated_text);
      assert.equal(events.at(-1).details.finish_reason, plain.json.details.finish_reason);
    });
  });
}

// Async scheduling (the default) sends step N+1 before step N's result is back: every rank feeds the token it
// sampled itself; chunked prefill splits prompts longer than what is left of --max-batch-prefill-tokens over
// several steps; prefix caching (the default) starts prompts from the KV blocks of earlier ones with the same
// leading tokens and adapter. The same concurrent mix — seeded sampling with penalties, stop sequences,
// prompts of 2 to 40 tokens sharing prefixes, mixed adapters, TP=2 so a rank other than 0 must sample too —
// must give exactly what one step at a time with whole prompts computed from scratch gives.
describe('server: async scheduling + chunked prefill + prefix caching == one step at a time, whole prompts (TP=2)', () => {
  let sync: GoldenServer;
  let overlapped: GoldenServer;
  before(async () => {
    sync = await startGoldenServer({ numShard: 2 }, { flags: ['--async-scheduling=false', '--prefix-caching=false'] });
    // Prompts of 9+ tokens are split; 4-token blocks so that short shared prefixes are cached.
    overlapped = await startGoldenServer({ numShard: 2, maxBatchPrefillTokens: 8, blockSize: 4 });
  });
  after(async () => { await sync.close(); await overlapped.close(); });

  test('same tokens, texts and finish reasons for 24 concurrent mixed requests; no KV block left held', async () => {
    const info = await Promise.all([sync, overlapped].map(async (g) => (await fetch(`${g.url}/info`)).json()));
    assert.deepEqual(info.map((i) => [i.async_scheduling, i.prefix_caching]), [[false, false], [true, true]]);
    const reqs = Array.from({ length: 24 }, (_, k) => {
      const a = ADAPTERS[k % 4];
      const parameters: Record<string, unknown> = { max_new_tokens: 4 + (k % 9), details: true };
      if (k % 3 !== 0) Object.assign(parameters, { do_sample: true, seed: 1000 + k, temperature: 0.8, top_k: 20, repetition_penalty: 1.3 });
      if (a) Object.assign(parameters, { adapter_id: a, adapter_source: 'local' });
      // 2..40 tokens: the golden sequences repeated (the word-level tokenizer maps "tN" to id N).
      const len = 2 + ((k * 7) % 39);
      const ids = Array.from({ length: len }, (_, i) => sync.c.sequences[(k + Math.floor(i / 12)) % 3][i % 3]);
      return { inputs: textOf(ids), parameters };
    });
    // Every fifth request stops at the text of its own third token (found by running it once without).
    for (let k = 0; k < reqs.length; k += 5) {
      const probe = await sync.post('/generate', reqs[k]);
      reqs[k].parameters.stop = [probe.json.details.tokens[2].text];
    }
    const [one, two] = await Promise.all([sync, overlapped].map((g) => Promise.all(reqs.map((r) => g.post('/generate', r)))));
    one.forEach((r, k) => {
      assert.equal(r.status, 200, r.text);
      assert.equal(two[k].status, 200, two[k].text);
      assert.deepEqual(two[k].json.details.tokens.map((x: { id: number }) => x.id), r.json.details.tokens.map((x: { id: number }) => x.id), `request ${k}`);
      assert.equal(two[k].json.generated_text, r.json.generated_text, `request ${k}`);
      assert.equal(two[k].json.details.finish_reason, r.json.details.finish_reason, `request ${k}`);
    });
    assert.ok(one.some((r) => r.json.details.finish_reason === 'stop_sequence'), 'a stop sequence ended some request');
    const hits: number[] = [];
    for (const g of [sync, overlapped]) {
      const metrics = await (await fetch(`${g.url}/metrics`)).text();
      assert.match(metrics, /^weft_kv_blocks_used 0$/m);
      hits.push(Number(/^weft_prefix_cache_hit_tokens_total (\d+)$/m.exec(metrics)?.[1]));
    }
    assert.equal(hits[0], 0);
    assert.ok(hits[1]! > 0, 'no prompt started from cached blocks');
  });
});

describe('server: bad input and failures', () => {
  let g: GoldenServer;
  before(async () => { g = await startGoldenServer({ numShard: 2 }); });
  after(async () => { await g.close(); });

  test('bad requests get the documented status and the server keeps serving', async () => {
    const ok = { inputs: textOf([1, 2, 3]), parameters: { max_new_tokens: 2 } };
    const cases: [unknown, number][] = [
      ['{"inputs": ', 400], // unparseable JSON: 400, as TGI (axum) answers
      [{ parameters: { max_new_tokens: 2 } }, 422],
      [{ inputs: 't1', parameters: { max_new_tokens: -1 } }, 422],
      [{ inputs: 't1', parameters: { max_new_tokens: 100000 } }, 422],
      [{ inputs: 't1', parameters: { max_new_tokens: 2, bogus: 1 } }, 422],
      [{ inputs: textOf(Array.from({ length: 200 }, (_, i) => i)), parameters: { max_new_tokens: 2 } }, 422],
      [{ inputs: 't1', parameters: { adapter_id: '../../../../etc', adapter_source: 'local' } }, 403],
      [{ inputs: 't1', parameters: { adapter_id: '/etc', adapter_source: 'local' } }, 403],
      [{ inputs: 't1', parameters: { adapter_id: 'no_such_adapter', adapter_source: 'local' } }, 404],
    ];
    for (const [body, status] of cases) {
      const r = await g.post('/generate', body);
      assert.equal(r.status, status, `${JSON.stringify(body).slice(0, 80)} → ${r.status} ${r.text}`);
      assert.equal(typeof r.json.error, 'string');
      assert.equal(typeof r.json.error_type, 'string');
      const after = await g.post('/generate', ok);
      assert.equal(after.status, 200, after.text);
    }
    const stats = g.server.engine.stats();
    assert.equal(stats.usedBlocks, 0);
    assert.equal(stats.running + stats.waiting, 0);
  });

  test('ignore_eos_token generates past EOS; truncate keeps the last prompt tokens', async () => {
    const eos: number[] = (await (await fetch(`${g.url}/info`)).json()).eos_token_ids;
    const params = { max_new_tokens: 120, do_sample: true, temperature: 5, details: true };
    const ids = (r: { json: any }) => r.json.details.tokens.map((t: { id: number }) => t.id) as number[];
    let found: { seed: number; at: number; tokens: number[] } | null = null;
    for (let seed = 1; seed <= 40 && found === null; seed++) { // a flat distribution: EOS turns up within a few seeds
      const r = await g.post('/generate', { inputs: textOf([4, 5, 6]), parameters: { ...params, seed, ignore_eos_token: true } });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual([r.json.details.finish_reason, r.json.details.generated_tokens], ['length', 120]);
      const at = ids(r).findIndex((t) => eos.includes(t));
      if (at >= 0 && at < 119) found = { seed, at, tokens: ids(r) };
    }
    assert.ok(found !== null, 'no seed sampled EOS');
    const stopped = await g.post('/generate', { inputs: textOf([4, 5, 6]), parameters: { ...params, seed: found.seed } });
    assert.equal(stopped.json.details.finish_reason, 'eos_token');
    assert.deepEqual(ids(stopped), found.tokens.slice(0, found.at + 1), 'the same tokens up to the EOS it ignored');
    // min_new_tokens: EOS cannot be drawn before that many tokens (the same seed now passes its EOS).
    const min = found.at + 3;
    const atLeast = await g.post('/generate', { inputs: textOf([4, 5, 6]), parameters: { ...params, seed: found.seed, min_new_tokens: min } });
    assert.equal(atLeast.status, 200, atLeast.text);
    assert.ok(atLeast.json.details.generated_tokens >= min, `${atLeast.json.details.generated_tokens} < ${min}`);
    assert.ok(!ids(atLeast).slice(0, min).some((t) => eos.includes(t)), 'no EOS among the first min_new_tokens');
    const tooMany = await g.post('/generate', { inputs: textOf([4, 5, 6]), parameters: { ...params, min_new_tokens: 121 } });
    assert.equal(tooMany.status, 422, 'min_new_tokens above max_new_tokens');

    const seq = g.c.sequences[0];
    const greedy = { max_new_tokens: 6, details: true, decoder_input_details: true };
    const cut = await g.post('/generate', { inputs: textOf(seq), parameters: { ...greedy, truncate: 4 } });
    const oaCut = await g.post('/v1/completions', { prompt: textOf(seq), max_tokens: 6, temperature: 0, truncate_prompt_tokens: 4 });
    assert.equal(oaCut.json.usage.prompt_tokens, 4, 'truncate_prompt_tokens (vLLM) keeps the last 4 prompt tokens');
    assert.equal(cut.status, 200, cut.text);
    assert.deepEqual(cut.json.details.prefill.map((t: { id: number }) => t.id), seq.slice(-4));
    const direct = await g.post('/generate', { inputs: textOf(seq.slice(-4)), parameters: greedy });
    assert.deepEqual(ids(cut), ids(direct));
    const long = await g.post('/generate', { inputs: textOf(seq), parameters: { ...greedy, truncate: 1000 } });
    assert.equal(long.status, 422, 'truncate above the input limit');
    // A stop sequence does not end a generation before min_new_tokens either.
    const first = direct.json.details.tokens[0].text as string;
    const stopAtOnce = await g.post('/generate', { inputs: textOf(seq.slice(-4)), parameters: { ...greedy, stop: [first] } });
    assert.deepEqual([stopAtOnce.json.details.finish_reason, stopAtOnce.json.details.generated_tokens], ['stop_sequence', 1]);
    const later = await g.post('/generate', { inputs: textOf(seq.slice(-4)), parameters: { ...greedy, stop: [first], min_new_tokens: 3 } });
    assert.ok(later.json.details.generated_tokens >= 3, `stopped after ${later.json.details.generated_tokens} token(s)`);
    assert.deepEqual(ids(later).slice(0, 3), ids(direct).slice(0, 3), 'greedy tokens unchanged (EOS was not among them)');
    // The OpenAI routes cut at a stop only from min_tokens on too, whole and streamed alike.
    const oa = { prompt: textOf(seq.slice(-4)), max_tokens: 6, temperature: 0, stop: [first] };
    assert.equal((await g.post('/v1/completions', oa)).json.choices[0].text, '', 'without min_tokens: cut at once');
    const withStop = await g.post('/v1/completions', { ...oa, include_stop_str_in_output: true });
    assert.equal(withStop.json.choices[0].text, first, 'include_stop_str_in_output keeps the stop sequence');
    const kept = await g.post('/v1/completions', { ...oa, min_tokens: 3 });
    assert.ok(kept.json.usage.completion_tokens >= 3 && kept.json.choices[0].text.startsWith(first), kept.text);
    // stop_token_ids (vLLM, OpenAI routes): the first greedy token not seen before ends the completion where it is drawn.
    const greedyIds = ids(direct);
    const at = greedyIds.findIndex((t, i) => i > 0 && !greedyIds.slice(0, i).includes(t));
    assert.ok(at > 0, `no new token among ${greedyIds}`);
    const body = { prompt: textOf(seq.slice(-4)), max_tokens: 6, temperature: 0 };
    const cut2 = await g.post('/v1/completions', { ...body, stop_token_ids: [greedyIds[at]] });
    assert.equal(cut2.status, 200, cut2.text);
    assert.deepEqual([cut2.json.choices[0].finish_reason, cut2.json.usage.completion_tokens], ['stop', at + 1]);
    const full = await g.post('/v1/completions', { ...body, stop_token_ids: [greedyIds[at]], ignore_eos: true, min_tokens: 6 });
    assert.equal(full.json.usage.completion_tokens, 6, 'min_tokens holds a stop token back too');
    const outside = await g.post('/v1/completions', { ...body, stop_token_ids: [1_000_000] });
    assert.equal(outside.status, 422, outside.text);
    assert.match(outside.text, /stop_token_ids 1000000 is outside the vocabulary/);
  });

  test('best_of 3: the answer has the highest mean token log-prob; every sequence is its seed\'s output', async () => {
    const params = { max_new_tokens: 8, do_sample: true, temperature: 1.5, details: true };
    const r = await g.post('/generate', { inputs: textOf([4, 5, 6]), parameters: { ...params, best_of: 3 } });
    assert.equal(r.status, 200, r.text);
    const seqs = [r.json.details, ...r.json.details.best_of_sequences];
    assert.equal(seqs.length, 3);
    const mean = (d: { tokens: { logprob: number }[] }) => d.tokens.reduce((n, t) => n + t.logprob, 0) / d.tokens.length;
    for (const other of seqs.slice(1)) assert.ok(mean(seqs[0]) >= mean(other), `${mean(seqs[0])} < ${mean(other)}`);
    const texts = [r.json.generated_text, ...r.json.details.best_of_sequences.map((b: { generated_text: string }) => b.generated_text)];
    for (let i = 0; i < 3; i++) {
      const alone = await g.post('/generate', { inputs: textOf([4, 5, 6]), parameters: { ...params, seed: seqs[i].seed } });
      assert.equal(alone.json.generated_text, texts[i], `sequence ${i} (seed ${seqs[i].seed})`);
    }
  });

  test('a client that disconnects mid-generation frees its KV blocks; over --max-concurrent-requests answers 429', async () => {
    const ac = new AbortController();
    const pending = fetch(`${g.url}/generate_stream`, { method: 'POST', signal: ac.signal, headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: textOf(g.c.sequences[1]), parameters: { max_new_tokens: 200 } }) });
    const res = await pending;
    const reader = res.body!.getReader();
    await reader.read(); // the first token arrived: the sequence holds KV blocks
    assert.ok(g.server.engine.stats().usedBlocks > 0);
    ac.abort();
    const deadline = Date.now() + 5000;
    while (g.server.engine.stats().usedBlocks > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(g.server.engine.stats().usedBlocks, 0, 'blocks freed after the disconnect');

    const g2 = await startGoldenServer({ maxConcurrentRequests: 2 });
    try {
      const long = { inputs: textOf([4, 5, 6]), parameters: { max_new_tokens: 150 } };
      const rs = await Promise.all(Array.from({ length: 6 }, () => g2.post('/generate', long)));
      const codes = rs.map((r) => r.status).sort();
      assert.ok(codes.includes(429) && codes.includes(200), JSON.stringify(codes));
      const over = rs.find((r) => r.status === 429)!;
      assert.equal(over.json.error_type, 'overloaded');
    } finally {
      await g2.close();
    }
  });

  test('an adapter path that escapes --adapter-root through a symlink is refused (403)', async () => {
    const { mkdtempSync, symlinkSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const root = mkdtempSync(join(tmpdir(), 'weft-root-'));
    symlinkSync(join(g.c.dir, 'adapters', 'qv_r4'), join(root, 'escape')); // a real adapter, but outside the root
    const g3 = await startGoldenServer({ adapterRoots: [root] });
    try {
      const r = await g3.post('/generate', { inputs: 't1', parameters: { adapter_id: 'escape', adapter_source: 'local' } });
      assert.equal(r.status, 403, r.text);
      assert.match(r.json.error, /outside the allowed --adapter-root/);
    } finally {
      await g3.close();
    }
  });

  test('killing a shard mid-request fails that request clearly; the next request succeeds', async () => {
    const body = { inputs: textOf(g.c.sequences[0]), parameters: { max_new_tokens: 240 } };
    const pending = g.post('/generate', body);
    await new Promise((r) => setTimeout(r, 150));
    const pid = g.server.supervisor.pids()[1];
    process.kill(pid, 'SIGKILL');
    const r = await pending;
    assert.equal(r.status, 500, r.text);
    assert.match(r.json.error, /shard/);
    const deadline = Date.now() + 60_000;
    while (!g.server.engine.healthy() && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
    const next = await g.post('/generate', { inputs: textOf(g.c.sequences[1]), parameters: { max_new_tokens: 4, adapter_id: 'qv_r4', adapter_source: 'local' } });
    assert.equal(next.status, 200, next.text);
    assert.equal(g.server.engine.stats().usedBlocks, 0);
  });
});
