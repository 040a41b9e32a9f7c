// The native bulk half-precision decoder (cpuOps.decodeHalf, used by the weight loader through
// useBulkHalfDecoder) equals the TypeScript reference bit for bit on every one of the 65,536 fp16 and bf16
// patterns (NaN stays NaN), writes exactly [outOffset, outOffset + n), and refuses bad arguments.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpuOps } from '../../kernels/index.js';
import { bf16ToF32, decodeFloats, f16ToF32, useBulkHalfDecoder } from '../../shard/formats/index.js';

const all = Uint16Array.from({ length: 65536 }, (_, i) => i);

for (const [name, bf16, ref] of [['fp16', false, f16ToF32], ['bf16', true, bf16ToF32]] as const) {
  test(`decodeHalf ${name}: all 65,536 patterns equal the reference, written at the offset only`, () => {
    const out = new Float32Array(65536 + 10).fill(7);
    cpuOps.decodeHalf(all, bf16, out, 5);
    for (let h = 0; h < 65536; h++) {
      const want = Math.fround(ref(h)), got = out[5 + h]!;
      if (!(Object.is(got, want) || (Number.isNaN(got) && Number.isNaN(want)))) assert.fail(`${name} 0x${h.toString(16)}: ${got} vs ${want}`);
    }
    assert.deepEqual([...out.subarray(0, 5)], [7, 7, 7, 7, 7]);
    assert.deepEqual([...out.subarray(65541)], [7, 7, 7, 7, 7]);
  });
}

test('decodeFloats gives the same floats with and without the bulk decoder', () => {
  const bytes = new Uint8Array(all.buffer.slice(0));
  for (const dtype of ['F16', 'BF16'] as const) {
    const js = new Float32Array(65536), native = new Float32Array(65536);
    useBulkHalfDecoder(null);
    decodeFloats(dtype, bytes, js);
    useBulkHalfDecoder((s, b, o, off) => cpuOps.decodeHalf(s, b, o, off));
    decodeFloats(dtype, bytes, native);
    assert.deepEqual(new Uint32Array(native.buffer), new Uint32Array(js.buffer), dtype);
  }
});

test('decodeHalf refuses a non-Uint16Array source and an output that is too short', () => {
  assert.throws(() => cpuOps.decodeHalf(new Int16Array(4) as unknown as Uint16Array, false, new Float32Array(4), 0), /src must be a Uint16Array/);
  assert.throws(() => cpuOps.decodeHalf(new Uint16Array(4), false, new Float32Array(4), 1), /out is too short/);
});
