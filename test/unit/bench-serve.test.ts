// weft bench serve (against an in-process fake of /generate_stream) and baseline (the script's command
// line, and the clear message where python3 lacks torch/transformers/peft).
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { PRESETS, baselineArgs, pythonStackMissing, runBaseline, runServeOnce, summarizeRun } from '../../deploy/bench/index.js';
import { loopbackUrl } from '../../deploy/bench/serve-client.js';
import { adapterLoadsBetween, draftAcceptRate, hitRate, parseServerCounters } from '../../deploy/bench/serve.js';

/** Streams `max_new_tokens` TGI token events 2 ms apart; adapter 'bench-2' gets 424, 'bench-3' a mid-stream error. */
function fakeServer(): Server {
  return createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const { parameters } = JSON.parse(body) as { parameters: { max_new_tokens: number; adapter_id?: string } };
      if (req.url !== '/generate_stream') return void res.writeHead(404).end();
      if (parameters.adapter_id === 'bench-2') return void res.writeHead(424, { 'content-type': 'application/json' }).end('{"error":"x"}');
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      let i = 0;
      const tick = setInterval(() => {
        i++;
        if (parameters.adapter_id === 'bench-3' && i === 2) {
          res.end(`data: ${JSON.stringify({ error: 'boom', error_type: 'generation' })}\n\n`);
          return clearInterval(tick);
        }
        const last = i === parameters.max_new_tokens;
        res.write(`data: ${JSON.stringify({ index: i, token: { id: i, text: 'x', logprob: 0, special: false }, generated_text: last ? 'x' : null, details: null })}\n\n`);
        if (last) {
          clearInterval(tick);
          res.end();
        }
      }, 2);
    });
  });
}

describe('bench serve', () => {
  let server: Server;
  let url: URL;
  before(async () => {
    server = fakeServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('closed loop: counts tokens, times TTFT and ITL, sorts errors by status', async () => {
    const row = await runServeOnce({ url, requests: 40, rate: 0, concurrency: 4, adapterIds: ['bench-0', 'bench-1', 'bench-2', 'bench-3'],
      adapterSource: null, alpha: 0, promptWords: [2, 4], outputTokens: [3, 3], seed: 2 });
    assert.equal(row.requests, 40);
    const failed = Object.values(row.errors).reduce((s, v) => s + v, 0);
    assert.equal(row.completed + failed, 40);
    assert.ok((row.errors['http-424'] ?? 0) > 0, JSON.stringify(row.errors));
    assert.ok((row.errors['stream-error'] ?? 0) > 0, JSON.stringify(row.errors));
    assert.deepEqual(Object.keys(row.errors).sort(), ['http-424', 'stream-error']);
    assert.ok(row.ttftMs.p50 >= 1 && row.ttftMs.p99 >= row.ttftMs.p50);
    assert.ok(row.itlMs.p50 >= 1 && row.itlMs.p50 < 100);
    assert.ok(row.reqPerS > 0 && row.outputTokPerS > 0);
  });

  it('open loop: Poisson arrivals at --rate, all to the base model', async () => {
    const t0 = performance.now();
    const row = await runServeOnce({ url, requests: 10, rate: 100, concurrency: 1, adapterIds: [], adapterSource: null,
      promptWords: [1, 2], outputTokens: [2, 4], seed: 4 });
    assert.equal(row.completed, 10);
    assert.deepEqual(row.errors, {});
    assert.equal(row.adapters, 0);
    assert.ok(performance.now() - t0 < 5000);
  });

  it('stops at the deadline and counts what was never sent', () => {
    const ok = { outcome: 'ok' as const, adapter: null, ttftMs: 5, itlMs: [1, 2], tokens: 3, e2eMs: 8 };
    const row = summarizeRun([ok, null, { ...ok, outcome: 'timeout', ttftMs: null, itlMs: [], tokens: 0 }], 1, 3, 2);
    assert.deepEqual(row.errors, { 'not-sent': 1, timeout: 1 });
    assert.equal(row.completed, 1);
    assert.equal(row.reqPerS, 0.5);
    assert.equal(row.outputTokPerS, 1.5);
  });

  it('loads loopback servers only', () => {
    assert.equal(loopbackUrl('http://localhost:3000').port, '3000');
    assert.ok(loopbackUrl('http://127.0.0.1:8080/'));
    assert.ok(loopbackUrl('http://[::1]:8080'));
    assert.throws(() => loopbackUrl('http://example.com:3000'), /only loads servers on this machine/);
    assert.throws(() => loopbackUrl('http://10.0.0.5:3000'), /only loads servers on this machine/);
  });
});

describe('bench baseline', () => {
  const o = { shape: PRESETS.tiny, modelDir: null, modelLabel: 'preset:tiny', device: 'cpu' as const,
    batch: [1, 4], adapters: [1, 4], rank: [8], context: [16], newTokens: 4 };

  it('passes the decode grid to peft_baseline.py, always with a base-only point', () => {
    const args = baselineArgs('/x/peft_baseline.py', '/t/config.json', o, '/t/out.json');
    assert.deepEqual(args, ['/x/peft_baseline.py', '--config', '/t/config.json', '--batch', '1,4', '--adapters', '0,1,4', '--rank', '8',
      '--context', '16', '--new-tokens', '4', '--dtype', 'float16', '--device', 'cpu', '--output', '/t/out.json']);
  });

  it('says clearly that it needs the GPU machine when python3 lacks torch/peft', { skip: pythonStackMissing() === null && 'python3 has torch + peft here' }, async () => {
    const logs: string[] = [];
    const report = await runBaseline({ ...o, log: (m) => logs.push(m) });
    assert.equal(report.rows.length, 0);
    assert.match(String(report.setup.skipped), /needs python3 with torch, transformers and peft, as on the GPU machine/);
    assert.match(logs.join('\n'), /Nothing was measured/);
    assert.match(String(report.setup.command), /peft_baseline\.py --config .*config\.json --batch 1,4 --adapters 0,1,4/);
  });
});

describe('bench serve: the server counters it reads from /metrics', () => {
  const scrape = (hit: number, prompt: number, loads?: [number, number, number, number], fromHost = 0) => [
    `weft_prefix_cache_hit_tokens_total ${hit}`, `weft_prompt_tokens_total ${prompt}`,
    '# TYPE weft_adapter_load_seconds histogram', `weft_adapter_loads_from_host_total ${fromHost}`,
    ...(loads ? [`weft_adapter_load_seconds_bucket{le="+Inf",phase="read"} ${loads[0]}`,
      `weft_adapter_load_seconds_sum{phase="read"} ${loads[1]}`, `weft_adapter_load_seconds_count{phase="read"} ${loads[0]}`,
      `weft_adapter_load_seconds_sum{phase="install"} ${loads[3]}`, `weft_adapter_load_seconds_count{phase="install"} ${loads[2]}`] : []),
  ].join('\n');

  it('prefix hits and adapter loads between two readings; a server with no loads yet counts zero', () => {
    const before = parseServerCounters(scrape(10, 100));
    const after = parseServerCounters(scrape(40, 200, [3, 0.39, 3, 0.012], 2));
    assert.deepEqual(before?.loads, { read: { count: 0, sum: 0 }, install: { count: 0, sum: 0 }, fromHost: 0 });
    assert.equal(hitRate(before, after), 0.3);
    const loads = adapterLoadsBetween(before, after)!;
    assert.equal(loads.count, 3);
    assert.equal(loads.fromHost, 2, 'two of them from host RAM');
    assert.ok(Math.abs(loads.readMsMean! - 130) < 1e-9 && Math.abs(loads.installMsMean! - 4) < 1e-9, JSON.stringify(loads));
    assert.deepEqual(adapterLoadsBetween(after, after), { count: 0, fromHost: 0, readMsMean: null, installMsMean: null });
    const older = parseServerCounters(scrape(40, 200, [3, 0.39, 3, 0.012]).replace(/^weft_adapter_loads_from_host_total.*$/m, ''));
    assert.equal(adapterLoadsBetween(older, older)?.fromHost, null, 'a server without the counter: not known');
  });

  it('a server without the adapter histogram (another engine) gives no load figures; without prompt counters, nothing', () => {
    const plain = parseServerCounters('weft_prefix_cache_hit_tokens_total 1\nweft_prompt_tokens_total 2');
    assert.equal(plain?.loads, null);
    assert.equal(adapterLoadsBetween(plain, plain), null);
    assert.equal(parseServerCounters('something_else 1'), null);
    assert.equal(draftAcceptRate(plain, plain), null, 'no speculation counters: not known');
  });

  it('the share of draft tokens accepted between two readings (speculative decoding)', () => {
    const spec = (drafted: number, accepted: number) =>
      parseServerCounters(`weft_prefix_cache_hit_tokens_total 1\nweft_prompt_tokens_total 2\nweft_spec_draft_tokens_total ${drafted}\nweft_spec_accepted_tokens_total ${accepted}`);
    assert.equal(draftAcceptRate(spec(100, 10), spec(300, 90)), 0.4);
    assert.equal(draftAcceptRate(spec(100, 10), spec(100, 10)), null, 'nothing drafted in the run');
  });
});
