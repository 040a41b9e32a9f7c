// The Nsight Compute summary behind `bash test/gpu/suite.sh profile`: ncu's raw CSV (after the profiled
// program's own output), quoted fields with commas, the unit row, and per-kernel sums.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { csvFields, kernelName, summarizeNcuCsv } from '../../deploy/bench/kernel-profile.js';

const CSV = [
  '==PROF== Connected to process 1873 (/tmp/nodebin/node)',
  '| batch | adapters | step ms |',
  '"ID","Kernel Name","Grid Size","gpu__time_duration.sum"',
  '"","","","usecond"',
  '"0","void weft::<unnamed>::rope_kernel<__nv_bfloat16>(T1 *, long, long)","(32, 1, 1)","15.5"',
  '"1","nvjet_sm90_tst_144x64_64x8_4x1_v_bz_TNN","(4, 22, 1)","1,040.5"',
  '"2","void weft::<unnamed>::rope_kernel<__nv_bfloat16>(T1 *, long, long)","(32, 1, 1)","14.5"',
  '"3","truncated row"',
  '==PROF== Disconnected from process 1873',
].join('\n');

test('csv fields keep commas inside quotes and unescape doubled quotes', () => {
  assert.deepEqual(csvFields('"a, b","c""d",e'), ['a, b', 'c"d', 'e']);
});

test('kernel names lose the return type and argument list, keep template arguments', () => {
  assert.equal(kernelName('void ns::k<float, std::pair<int, int>>(const T *, long)'), 'ns::k<float, std::pair<int, int>>');
  assert.equal(kernelName('nvjet_sm90_tst_144x64'), 'nvjet_sm90_tst_144x64');
});

test('per-kernel totals, most time first, in µs whatever the unit row says', () => {
  const rows = summarizeNcuCsv(CSV);
  assert.deepEqual(rows.map((r) => [r.kernel, r.launches, r.totalUs]), [
    ['nvjet_sm90_tst_144x64_64x8_4x1_v_bz_TNN', 1, 1040.5],
    ['weft::<unnamed>::rope_kernel<__nv_bfloat16>', 2, 30],
  ]);
  assert.equal(rows[1]!.meanUs, 15);
  assert.equal(rows[1]!.grid, '(32, 1, 1)');
  assert.ok(Math.abs(rows[0]!.share + rows[1]!.share - 100) < 1e-9);
  const ns = summarizeNcuCsv(CSV.replace('"usecond"', '"nsecond"'));
  assert.equal(ns[0]!.totalUs, 1.0405);
});

test('a file without the ncu header says how to make one', () => {
  assert.throws(() => summarizeNcuCsv('bench: wrote x.json\n'), /--csv --page raw/);
});
