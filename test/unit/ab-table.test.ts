// The A/B table behind `bash test/gpu/suite.sh ab-decode|ab-prefill`: reports of one scenario side by side per
// grid point, changes against the first report, and refusals that say what is wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { abRows, formatAb, parseVariantArgs, type Variant } from '../../deploy/bench/ab-table.js';

const decode = (rows: [number, number, number, number][]): Variant['report'] => ({
  scenario: 'decode',
  rows: rows.map(([batch, adapters, stepMs, pctOfBound]) => ({ batch, adapters, stepMs, pctOfBound })),
});

test('decode points of the first report, each variant relative to it; a point a variant lacks is empty', () => {
  const variants: Variant[] = [
    { label: 'default', report: decode([[32, 0, 10, 80], [32, 32, 12.5, 65]]) },
    { label: 'fused', report: decode([[32, 32, 10, 81.25], [32, 0, 10.5, 76]]) },
    { label: 'partial', report: decode([[32, 0, 9, 88]]) },
  ];
  const rows = abRows(variants);
  assert.deepEqual(rows.map((r) => r.point), ['batch 32 × 0 adapters', 'batch 32 × 32 adapters']);
  assert.deepEqual(rows[1]!.cells.map((c) => c.ms), [12.5, 10, null]);
  assert.ok(Math.abs(rows[1]!.cells[1]!.change! - -20) < 1e-9);
  assert.ok(Math.abs(rows[0]!.cells[1]!.change! - 5) < 1e-9);
  assert.equal(rows[0]!.cells[0]!.change, 0);
  const text = formatAb(variants);
  assert.match(text, /fused vs default/);
  assert.match(text, /-20\.0 %/);
  assert.match(text, /\+5\.0 %/);
  assert.match(text, /—/);  // partial lacks 32 × 32
});

test('prefill rows are keyed by prompt tokens and adapters', () => {
  const report = (ms: number): Variant['report'] => ({ scenario: 'prefill', rows: [{ tokens: 2048, adapters: 1, ms, pctOfBound: 40 }] });
  const rows = abRows([{ label: 'mma', report: report(80) }, { label: 'pipelined', report: report(60) }]);
  assert.equal(rows[0]!.point, '2048 tokens × 1 adapter');
  assert.ok(Math.abs(rows[0]!.cells[1]!.change! - -25) < 1e-9);
});

test('mixed or unsupported scenarios are refused with the file named', () => {
  assert.throws(() => abRows([]), /at least one/);
  assert.throws(() => abRows([{ label: 'a', report: { scenario: 'serve', rows: [] } }]), /decode or prefill/);
  assert.throws(() => abRows([{ label: 'a', report: decode([]) }, { label: 'b', report: { scenario: 'prefill', rows: [] } }]),
    /b: a 'prefill' report among 'decode'/);
});

test('label=path arguments; a bare path is labelled by its file name', () => {
  const files: Record<string, string> = { '/x/decode-fused-1.json': JSON.stringify(decode([])), 'y.json': JSON.stringify(decode([])) };
  const v = parseVariantArgs(['fused=/x/decode-fused-1.json', 'y.json'], (p) => files[p]!);
  assert.deepEqual(v.map((x) => x.label), ['fused', 'y']);
  assert.equal(v[0]!.report.scenario, 'decode');
});
