// weft bench: the pure parts (percentiles, the DESIGN.md §9 bound arithmetic, the load generator's
// distributions) and a tiny end-to-end decode run that must produce a complete JSON report.
import { cudaInfo } from '../../kernels/cuda.js';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseArgs } from '../../deploy/config/index.js';
import {
  PRESETS, adapterBytes, baseDecodeBytes, decodeBound, decodeBytes, decodeCases, exponentialGap, kvReadBytes,
  loraKernelBytes, median, paramCounts, percentile, planRequests, poissonArrivals, powerLawSampler, powerLawWeights,
  prefillFlops, presetOf, resolveBackend, runBench, summarize, uniform01,
} from '../../deploy/bench/index.js';
import { ensureAdapters, resolveModel } from '../../deploy/bench/model-source.js';
import { loadAdapterDir } from '../../shard/adapters/index.js';

const near = (actual: number, expected: number, rel: number, what: string) =>
  assert.ok(Math.abs(actual / expected - 1) <= rel, `${what}: ${actual} is not within ${rel * 100}% of ${expected}`);

describe('bench statistics', () => {
  it('percentiles interpolate between ranks', () => {
    const v = [10, 1, 9, 2, 8, 3, 7, 4, 6, 5];
    assert.equal(percentile(v, 0), 1);
    assert.equal(percentile(v, 100), 10);
    assert.equal(median(v), 5.5);
    assert.equal(percentile([1, 2, 3], 50), 2);
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
    near(percentile(hundred, 99), 99.01, 1e-9, 'p99 of 1..100');
    assert.ok(Number.isNaN(percentile([], 50)));
    assert.throws(() => percentile(v, 101), RangeError);
    assert.deepEqual(v.slice(0, 2), [10, 1], 'input left unsorted');
    const s = summarize(v);
    assert.deepEqual([s.n, s.min, s.max, s.mean], [10, 1, 10, 5.5]);
  });
});

describe('bench bounds (DESIGN.md §9)', () => {
  const llama = PRESETS['llama2-7b'];

  it('Llama-2-7B has 6.74 B parameters; fp16 decode reads 13.2 GB of base weights', () => {
    near(paramCounts(llama).total, 6.738e9, 0.001, 'parameters');
    near(baseDecodeBytes(llama, 2), 13.2e9, 0.02, 'base bytes');
  });

  it('a rank-16 adapter on all 7 modules is about 80 MB in fp16', () => {
    near(adapterBytes(llama, 16, 2), 80e6, 0.02, 'adapter bytes');
    assert.equal(adapterBytes(llama, 32, 2), 2 * adapterBytes(llama, 16, 2));
  });

  it('KV read bytes follow context × layers × 2 × kv_heads × head_dim × bytes × batch', () => {
    assert.equal(kvReadBytes(llama, 512, 32, 2), 512 * 32 * 2 * 32 * 128 * 2 * 32);
    assert.equal(kvReadBytes(PRESETS.tiny, 10, 3, 4), 10 * 2 * 2 * 2 * 16 * 4 * 3);
  });

  it('reproduces the H100 example: 4.4 ms base, +27 µs per adapter, 8.1 ms and 3,940 tok/s at batch 32 × 32 adapters', () => {
    const bw = 3.0e12;
    const base = decodeBytes(llama, { batch: 1, adapters: 0, rank: 16, context: 0 }, 2, 2);
    near(decodeBound(base.total, bw, 1).ms, 4.4, 0.02, 'base-only bound ms');
    near((adapterBytes(llama, 16, 2) / bw) * 1e6, 27, 0.02, 'µs per distinct adapter');
    const full = decodeBytes(llama, { batch: 32, adapters: 32, rank: 16, context: 512 }, 2, 2);
    assert.equal(full.total, full.base + full.adapters + full.kv);
    const bound = decodeBound(full.total, bw, 32);
    near(bound.ms, 8.1, 0.02, 'bound ms');
    near(bound.tokPerS, 3940, 0.02, 'bound tok/s');
  });

  it('prefill FLOPs are about 2·params·tokens plus attention', () => {
    const t = 2048;
    const flops = prefillFlops(llama, t);
    const linear = 2 * paramCounts(llama).layers * t;
    assert.ok(flops > linear);
    near(flops, 2 * (paramCounts(llama).layers + paramCounts(llama).lmHead / t) * t + 2 * 32 * 32 * 128 * t * (t + 1), 1e-12, 'flops');
    near(flops, 2 * paramCounts(llama).total * t, 0.1, '≈ 2·params·tokens');
    assert.ok(prefillFlops(llama, t, 16) > flops);
  });

  it('LoRA kernel bytes count each distinct adapter once plus the activations', () => {
    const c = { module: 'h→h', inDim: 4096, outDim: 4096, tokens: 8, adapters: 2, rank: 16 };
    assert.equal(loraKernelBytes({ ...c, op: 'shrink' }), (2 * 16 * 4096 + 8 * 4096) * 4);
    assert.equal(loraKernelBytes({ ...c, op: 'expand' }), (2 * 4096 * 16 + 2 * 8 * 4096) * 4);
  });

  it('decode cases: base first per (context, batch), adapters never above batch', () => {
    const cases = decodeCases({ batch: [1, 8], adapters: [1, 8], rank: [16], context: [128] });
    assert.deepEqual(cases.map((c) => [c.batch, c.adapters]), [[1, 0], [1, 1], [8, 0], [8, 1], [8, 8]]);
  });

  it('presets are named preset:<name>', () => {
    assert.equal(presetOf('preset:small'), 'small');
    assert.equal(presetOf('/models/x'), null);
    assert.throws(() => presetOf('preset:huge'), /unknown preset 'huge'.*preset:tiny/);
  });

  it('--device cuda fails clearly where no GPU is usable (bf16 byte counts where one is)', (t) => {
    assert.equal(resolveBackend('cpu').weightBytes, 4);
    if (cudaInfo().available) {
      t.diagnostic('a GPU is usable here: checking the CUDA byte sizes instead');
      assert.equal(resolveBackend('cuda').weightBytes, 2);
      return;
    }
    assert.throws(() => resolveBackend('cuda'), /--device cuda: .*Use --device cpu/);
  });
});

describe('bench load generator', () => {
  it('power-law popularity matches its weights', () => {
    const w = powerLawWeights(8, 1);
    near(w.reduce((s, v) => s + v, 0), 1, 1e-12, 'sum');
    near(w[0]! / w[3]!, 4, 1e-12, 'P(0)/P(3) at alpha 1');
    const draw = powerLawSampler(8, 1, uniform01(3));
    const counts = new Array<number>(8).fill(0);
    const n = 200_000;
    for (let i = 0; i < n; i++) counts[draw()]!++;
    counts.forEach((c, i) => assert.ok(Math.abs(c / n - w[i]!) < 0.005, `adapter ${i}: ${c / n} vs ${w[i]}`));
    const flat = powerLawWeights(5, 0);
    flat.forEach((p) => near(p, 0.2, 1e-12, 'alpha 0 is uniform'));
  });

  it('Poisson arrivals have mean gap 1/rate', () => {
    const u = uniform01(11);
    const gaps = Array.from({ length: 50_000 }, () => exponentialGap(5, u));
    near(gaps.reduce((s, g) => s + g, 0) / gaps.length, 0.2, 0.03, 'mean gap (s)');
    assert.ok(gaps.every((g) => g >= 0));
    const at = poissonArrivals(20_000, 50, uniform01(5));
    assert.ok(at.every((t, i) => i === 0 || t >= at[i - 1]!));
    near(at[at.length - 1]! / at.length, 20, 0.05, 'mean gap (ms) at 50 req/s');
    assert.throws(() => exponentialGap(0, u), RangeError);
  });

  it('plans requests deterministically within the ranges', () => {
    const o = { count: 500, rate: 0, adapters: ['a', 'b', 'c'], alpha: 1, promptWords: [4, 9] as const, outputTokens: [2, 5] as const, seed: 9 };
    const plan = planRequests(o);
    assert.deepEqual(planRequests(o), plan);
    assert.equal(plan.length, 500);
    for (const r of plan) {
      assert.equal(r.atMs, 0);
      assert.ok(r.promptWords >= 4 && r.promptWords <= 9 && r.prompt.split(' ').length === r.promptWords);
      assert.ok(r.maxNewTokens >= 2 && r.maxNewTokens <= 5);
    }
    const share = plan.filter((r) => r.adapter === 'a').length / plan.length;
    assert.ok(share > 0.45 && share < 0.65, `most popular adapter share ${share}`);
    assert.ok(planRequests({ ...o, adapters: [] }).every((r) => r.adapter === null));
    assert.ok(planRequests({ ...o, rate: 10 }).some((r) => r.atMs > 0));
    const shared = planRequests({ ...o, sharedPrefixWords: 12 });
    const head = shared[0]!.prompt.split(' ').slice(0, 12).join(' ');
    for (const r of shared) {
      assert.ok(r.prompt.startsWith(`${head} `), 'every prompt starts with the same 12 words');
      assert.ok(r.promptWords >= 16 && r.promptWords <= 21 && r.prompt.split(' ').length === r.promptWords);
    }
    assert.ok(new Set(shared.map((r) => r.prompt)).size > 400, 'and goes on with its own words');
  });
});

describe('bench serve end to end (preset:tiny, a server it starts)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-serve-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('loads the real server with and without adapters and records the server settings that shape the numbers', async () => {
    const output = join(dir, 'serve.json');
    const config = parseArgs('bench', ['--scenario', 'serve', '--model', 'preset:tiny', '--batch', '4', '--adapters', '0,2',
      '--requests', '12', '--shared-prefix-words', '40', '--output', output], {});
    let table = '';
    await runBench(config, { out: (m) => { table += m; }, err: () => {} });
    const report = JSON.parse(readFileSync(output, 'utf8'));
    assert.deepEqual(report.rows.map((r: { adapters: number; completed: number }) => [r.adapters, r.completed]), [[0, 12], [2, 12]]);
    for (const row of report.rows) assert.ok(row.outputTokPerS > 0 && row.ttftMs.p50 > 0, JSON.stringify(row));
    // 12 prompts sharing 40 words: the server's prefix cache serves part of them (read from /metrics).
    for (const row of report.rows) assert.ok(row.prefixCacheHitRate > 0 && row.prefixCacheHitRate < 1, JSON.stringify(row));
    assert.match(table, /cached prompt %/);
    // Adapter loads the run caused, timed by the shards (from /metrics): none without adapters, both with 2.
    assert.deepEqual(report.rows[0].adapterLoads, { count: 0, fromHost: 0, readMsMean: null, installMsMean: null });
    const loads = report.rows[1].adapterLoads;
    assert.equal(loads.count, 2, JSON.stringify(loads));
    assert.equal(loads.fromHost, 0, 'first loads read the disk');
    assert.ok(loads.readMsMean > 0 && loads.installMsMean >= 0, JSON.stringify(loads));
    assert.match(table, /adapter loads \(from host; read \/ install ms\)/);
    assert.equal(report.setup.startedServer, true);
    assert.equal(report.setup.server.async_scheduling, true);
    assert.equal(report.setup.server.prefix_caching, true);
    const off = join(dir, 'serve-off.json');
    await runBench(parseArgs('bench', ['--scenario', 'serve', '--model', 'preset:tiny', '--batch', '4', '--adapters', '0',
      '--requests', '8', '--shared-prefix-words', '40', '--prefix-caching=false', '--output', off], {}), { out: () => {}, err: () => {} });
    const offReport = JSON.parse(readFileSync(off, 'utf8'));
    assert.equal(offReport.setup.server.prefix_caching, false);
    assert.equal(offReport.rows[0].prefixCacheHitRate, 0);
    assert.ok(Number.isInteger(report.setup.server.max_batch_prefill_tokens));
  });
});

describe('bench decode end to end (preset:tiny)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('writes a JSON report with every field', async () => {
    const output = join(dir, 'decode.json');
    const config = parseArgs('bench', ['--scenario', 'decode', '--model', 'preset:tiny', '--batch', '1,2', '--adapters', '0,2',
      '--rank', '4', '--context', '8', '--output', output], {});
    const printed: string[] = [];
    await runBench(config, { out: (t) => printed.push(t), err: () => {} });
    assert.match(printed.join('\n'), /\| batch \| adapters \|/);
    const report = JSON.parse(readFileSync(output, 'utf8'));
    assert.equal(report.scenario, 'decode');
    assert.ok(report.setup.copyBandwidthBytesPerS > 0);
    assert.equal(report.setup.engineWeightBytes, 4);
    assert.deepEqual(report.rows.map((r: { batch: number; adapters: number }) => [r.batch, r.adapters]), [[1, 0], [2, 0], [2, 2]]);
    const fields = ['batch', 'adapters', 'rank', 'context', 'kvContext', 'steps', 'stepMs', 'stepMsP90', 'stepCpuMs', 'tokPerS', 'boundMs',
      'boundTokPerS', 'pctOfBound', 'overheadVsBasePct', 'boundOverheadPct', 'prefillMs'];
    for (const row of report.rows) {
      for (const f of fields) assert.ok(Number.isFinite(row[f]), `row field ${f} = ${row[f]}`);
      for (const f of ['base', 'adapters', 'kv', 'total']) assert.ok(Number.isFinite(row.bytes[f]), `bytes.${f}`);
      assert.ok(row.stepMs > 0 && row.tokPerS > 0 && row.boundMs > 0);
      near(row.tokPerS, (row.batch / row.stepMs) * 1e3, 1e-9, 'tok/s');
      near(row.pctOfBound, (row.boundMs / row.stepMs) * 100, 1e-9, '% of bound');
    }
    const [, base2, lora2] = report.rows;
    assert.equal(base2.overheadVsBasePct, 0);
    near(lora2.overheadVsBasePct, (lora2.stepMs / base2.stepMs - 1) * 100, 1e-9, 'overhead vs base');
    assert.equal(lora2.bytes.adapters, adapterBytes(PRESETS.tiny, 4, 4) * 2);
    assert.equal(base2.bytes.base, baseDecodeBytes(PRESETS.tiny, 4));
    assert.equal(report.setup.dora, false);
  });

  it('--dora runs the grid with DoRA adapters (magnitudes on every module) and says so', async () => {
    const output = join(dir, 'decode-dora.json');
    const config = parseArgs('bench', ['--scenario', 'decode', '--model', 'preset:tiny', '--batch', '2', '--adapters', '2',
      '--rank', '4', '--context', '8', '--dora', '--output', output], {});
    await runBench(config, { out: () => {}, err: () => {} });
    const report = JSON.parse(readFileSync(output, 'utf8'));
    assert.equal(report.setup.dora, true);
    assert.deepEqual(report.rows.map((r: { adapters: number }) => r.adapters), [0, 2]);
    const dirs = ensureAdapters(await resolveModel('preset:tiny', () => {}), 4, 2, true);
    const adapter = loadAdapterDir(dirs[0]!);
    assert.equal(adapter.config.useDora, true);
    assert.equal([...adapter.tensors.keys()].filter((k) => k.endsWith('lora_magnitude_vector')).length, PRESETS.tiny.layers * 7);
  });
});

describe('bench constraints (token masks)', () => {
  it('walks each document through its regex or grammar automaton and times new and cached masks', async () => {
    const printed: string[] = [];
    const report = await runBench(parseArgs('bench', ['--scenario', 'constraints'], {}), { out: (t) => printed.push(t), err: () => {} });
    assert.match(printed[0]!, /\| constraint +\| doc bytes \| tokens \| new states \|/);
    const rows = report.rows as { syntax: string; tokens: number; newStates: number; maskMeanMs: number; cachedMaskUs: number; documentBytes: number }[];
    assert.deepEqual(rows.map((r) => r.syntax), ['regex', 'regex', 'gbnf', 'gbnf', 'lark']);
    for (const r of rows) {
      assert.ok(r.tokens > 0 && r.tokens <= r.documentBytes, JSON.stringify(r));
      assert.ok(r.newStates > 0 && r.newStates <= r.tokens + 1, JSON.stringify(r));
      assert.ok(r.cachedMaskUs / 1000 < r.maskMeanMs, `a cached mask is a lookup: ${JSON.stringify(r)}`);
    }
    assert.equal((report.setup as { vocabularySize: number }).vocabularySize, 128_257);
    await assert.rejects(runBench(parseArgs('bench', ['--scenario', 'constraints', '--model', tmpdir()], {}), { out: () => {}, err: () => {} }),
      /has no tokenizer.json/);
  });
});
