// `weft bench --op-profile`: per-step shares from op totals, the breakdown table, the profile turned off again
// even when a step fails, and decode / prefill reports carrying each case's ops (preset:tiny on the CPU).
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatOpBreakdown, opShares, profileSteps, withOpBounds, type OpShare } from '../../deploy/bench/op-breakdown.js';
import { decodeOpBytes, decodeOpMs, prefillOpMs } from '../../deploy/bench/op-bounds.js';
import { PRESETS } from '../../deploy/bench/shapes.js';
import { runBench } from '../../deploy/bench/index.js';
import { parseArgs } from '../../deploy/config/index.js';
import type { OpTime } from '../../kernels/index.js';

describe('op breakdown', () => {
  it('per-step means, largest first, shares of the total', () => {
    const s = opShares([{ op: 'a', ms: 2, calls: 4 }, { op: 'b', ms: 6, calls: 2 }], 2);
    assert.deepEqual(s, [{ op: 'b', msPerStep: 3, callsPerStep: 1, pct: 75 }, { op: 'a', msPerStep: 1, callsPerStep: 2, pct: 25 }]);
    assert.deepEqual(opShares([], 3), []);
  });

  it('the table lists the top ops per case and sums the rest', () => {
    const ops = opShares([{ op: 'x', ms: 5, calls: 1 }, { op: 'y', ms: 3, calls: 1 }, { op: 'z', ms: 2, calls: 1 }], 1);
    const text = formatOpBreakdown([{ label: 'case 1', ops }], 2);
    const lines = text.split('\n');
    assert.equal(lines.length, 2 + 3);
    assert.match(lines[2]!, /^\| case 1 \|\s+x \|\s+5\.000 \|\s+1 \|\s+50\.0 \|\s+— \|\s+— \|$/);
    assert.match(lines[4]!, /\(1 other ops\) \|\s+2\.000 \|\s+1 \|\s+20\.0 \|\s+— \|\s+— \|$/);
  });

  it('each decode op\'s bytes bound: the H100 profile of 2026-11-23 read against it', () => {
    // docs/bench/2026-11-23-h100/ops-decode.json, batch 32 x 0 adapters, context 525.5, copy rate 3.014 TB/s, bf16.
    const report = JSON.parse(readFileSync('docs/bench/2026-11-23-h100/ops-decode.json', 'utf8'));
    const row = report.rows.find((r: { batch: number; adapters: number }) => r.batch === 32 && r.adapters === 0);
    const shape = report.setup.shape;
    const ops = withOpBounds(row.ops as OpShare[], (op) => decodeOpMs(op, shape, { batch: 32, kvContext: row.kvContext }, 2, 2,
      report.setup.copyBandwidthBytesPerS));
    const pct = (op: string) => ops.find((o) => o.op === op)!.pctOfBound!;
    // Attention reads 32 rows x 525.5 keys x K and V of 4,096 bf16 per layer: 84 % of the copy rate.
    assert.ok(Math.abs(pct('attention decode') - 84.5) < 1, `attention ${pct('attention decode')}`);
    assert.ok(Math.abs(pct('gemm up') - 83) < 2 && Math.abs(pct('gemm o') - 62) < 2, `gemm up ${pct('gemm up')}, o ${pct('gemm o')}`);
    assert.equal(ops.find((o) => o.op === 'sample')!.boundMs, undefined, 'no byte model: no bound');
    // gemm qkv at batch 1: the weights and one row in and out.
    const s7 = PRESETS['llama2-7b'];
    assert.equal(decodeOpBytes('gemm qkv', s7, { batch: 1, kvContext: 0 }, 2, 2), (4096 * 12288 + 4096 + 12288) * 2);
    assert.equal(decodeOpBytes('lora qkv bgmv', s7, { batch: 1, kvContext: 0 }, 2, 2), undefined);
    const text = formatOpBreakdown([{ label: 'b32', ops }]);
    assert.match(text, /\| % of bound \|/);
  });

  it('each prefill op\'s bound: FLOPs at the GEMM rate for GEMMs and attention, bytes for the rest', () => {
    // docs/bench/2026-11-23-h100/ops-prefill.json, 2,048 tokens base; GEMM rate 901 TFLOP/s, copy rate 3.01 TB/s.
    const report = JSON.parse(readFileSync('docs/bench/2026-11-23-h100/ops-prefill.json', 'utf8'));
    const row = report.rows.find((r: { tokens: number; adapters: number }) => r.tokens === 2048 && r.adapters === 0);
    const shape = report.setup.shape, gemmRate = report.setup.gemmFlopsPerS;
    const ops = withOpBounds(row.ops as OpShare[], (op) => prefillOpMs(op, shape, 2048, 2, gemmRate, 3.014e12));
    const pct = (op: string) => ops.find((o) => o.op === op)!.pctOfBound!;
    // gemm up: 2·2048·4096·22016 FLOPs a layer at 901 TFLOP/s = 0.41 ms, measured 15.8 ms / 32 = 0.49: ~83 %.
    assert.ok(pct('gemm up') > 75 && pct('gemm up') < 95, `gemm up ${pct('gemm up')}`);
    // SiLU·mul: 2048 × 3 × 11008 bf16 a layer at 3.01 TB/s = 45 us, measured ~100 us: ~45 %.
    assert.ok(Math.abs(pct('activation') - 45) < 5, `activation ${pct('activation')}`);
    assert.ok(pct('rope + kv write') < 40, `rope + kv write ${pct('rope + kv write')}`);
    assert.equal(prefillOpMs('lora qkv sgmv expand', shape, 2048, 2, gemmRate, 3e12), undefined);
  });

  it('profileSteps turns the profile on for the steps only, off again when a step fails', async () => {
    const calls: string[] = [];
    let pending: OpTime[] = [{ op: 'stale', ms: 9, calls: 1 }];
    const p = {
      setOpProfile: (on: boolean) => { calls.push(on ? 'on' : 'off'); },
      takeOpProfile: () => { const t = pending; pending = []; return t; },
    };
    const shares = await profileSteps(p, 2, async () => { pending.push({ op: 'step', ms: 1, calls: 1 }); });
    assert.deepEqual(calls, ['on', 'off']);
    assert.deepEqual(shares.map((s) => s.op), ['step', 'step'], 'what was recorded before the profiled steps is dropped');
    await assert.rejects(profileSteps(p, 1, async () => { throw new Error('boom'); }), /boom/);
    assert.deepEqual(calls, ['on', 'off', 'on', 'off']);
  });
});

describe('bench --op-profile end to end (preset:tiny)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-ops-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const scenario of ['decode', 'prefill'] as const) {
    it(`${scenario}: every case carries its ops; the table follows the report's`, async () => {
      const output = join(dir, `${scenario}.json`);
      const config = parseArgs('bench', ['--scenario', scenario, '--model', 'preset:tiny', '--batch', '2', '--adapters', '0,1',
        '--rank', '4', '--context', '8', '--op-profile', '--output', output], {});
      const printed: string[] = [];
      await runBench(config, { out: (t) => printed.push(t), err: () => {} });
      assert.match(printed.join('\n'), /Where a step's time goes \(op profile\):\n\| case /);
      const report = JSON.parse(readFileSync(output, 'utf8'));
      assert.equal(report.rows.length, 2);
      for (const row of report.rows) {
        const ops = new Map<string, { msPerStep: number; callsPerStep: number; pct: number }>(
          row.ops.map((o: { op: string }) => [o.op, o]));
        assert.equal(ops.get('gemm qkv')?.callsPerStep, report.setup.shape.layers);
        assert.equal(ops.has('lora qkv'), row.adapters > 0, 'LoRA ops only with adapters');
        const pct = [...ops.values()].reduce((n, o) => n + o.pct, 0);
        assert.ok(Math.abs(pct - 100) < 1e-6, `shares sum to ${pct}`);
      }
      assert.ok(report.notes.some((n: string) => n.startsWith('ops:')));
    });
  }

  it('without --op-profile the rows have no ops', async () => {
    const output = join(dir, 'plain.json');
    await runBench(parseArgs('bench', ['--scenario', 'prefill', '--model', 'preset:tiny', '--context', '8', '--adapters', '0',
      '--output', output], {}), { out: () => {}, err: () => {} });
    const report = JSON.parse(readFileSync(output, 'utf8'));
    assert.equal(report.rows[0].ops, undefined);
  });
});
