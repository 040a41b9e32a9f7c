import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  SafetensorsError,
  SafetensorsFile,
  WeightStore,
  bf16ToF32,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  writeSafetensors,
} from '../../shard/formats/index.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'weft-st-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
let seq = 0;
const tmpFile = (name = 'x.safetensors'): string => join(tmp, `${seq++}-${name}`);

/** A safetensors file from a raw header object and data bytes (for malformed cases). */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), headerText?: string): string {
  const json = Buffer.from(headerText ?? JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const p = tmpFile();
  writeFileSync(p, Buffer.concat([len, json, data]));
  return p;
}

const bytesOf = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const sameF32 = (a: Float32Array, b: Float32Array, what: string): void => assert.ok(a.length === b.length && bytesOf(a).equals(bytesOf(b)), what);
function iota(n: number, f = (i: number) => i): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = f(i);
  return out;
}

function throwsST(fn: () => unknown, re: RegExp, path?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${String(e)}`);
    assert.match(e.message, re);
    if (path) assert.ok(e.message.includes(path), `message should name ${path}: ${e.message}`);
    return true;
  });
}

test('f16 decode: normals, subnormals, zero signs, inf, nan', () => {
  assert.equal(f16ToF32(0x3c00), 1);
  assert.equal(f16ToF32(0xc000), -2);
  assert.equal(f16ToF32(0x7bff), 65504);
  assert.equal(f16ToF32(0x0400), 2 ** -14);
  assert.equal(f16ToF32(0x0001), 2 ** -24);
  assert.equal(f16ToF32(0x03ff), 1023 * 2 ** -24);
  assert.ok(Object.is(f16ToF32(0x8000), -0));
  assert.equal(f16ToF32(0x7c00), Infinity);
  assert.equal(f16ToF32(0xfc00), -Infinity);
  assert.ok(Number.isNaN(f16ToF32(0x7e00)));
  assert.ok(Number.isNaN(f16ToF32(0xfc01)));
});

test('f16 encode rounds to nearest even, overflows to inf, underflows through subnormals', () => {
  assert.equal(f32ToF16(1), 0x3c00);
  assert.equal(f32ToF16(65504), 0x7bff);
  assert.equal(f32ToF16(65519), 0x7bff); // below the halfway point to 65536
  assert.equal(f32ToF16(65520), 0x7c00); // halfway: ties to even, which is the infinity encoding
  assert.equal(f32ToF16(1e6), 0x7c00);
  assert.equal(f32ToF16(-1e6), 0xfc00);
  assert.equal(f32ToF16(1 + 2 ** -11), 0x3c00); // tie → even mantissa 0
  assert.equal(f32ToF16(1 + 3 * 2 ** -11), 0x3c02); // tie → even mantissa 2
  assert.equal(f32ToF16(1 + 2 ** -11 + 2 ** -20), 0x3c01); // just above the tie
  assert.equal(f32ToF16(2 ** -24), 0x0001);
  assert.equal(f32ToF16(2 ** -25), 0x0000); // tie between 0 and the smallest subnormal → 0
  assert.equal(f32ToF16(1.5 * 2 ** -25), 0x0001);
  assert.equal(f32ToF16(3 * 2 ** -25), 0x0002); // tie between 1 and 2 units → 2
  assert.equal(f32ToF16(2 ** -14 - 2 ** -25), 0x0400); // rounds up into the smallest normal
  assert.equal(f32ToF16(1e-10), 0);
  assert.equal(f32ToF16(-0), 0x8000);
  assert.equal(f32ToF16(Infinity), 0x7c00);
  assert.equal(f32ToF16(NaN) & 0x7e00, 0x7e00);
  for (let h = 0; h < 65536; h++) {
    const v = f16ToF32(h);
    if (!Number.isNaN(v)) assert.equal(f32ToF16(v), h, `f16 bits 0x${h.toString(16)} round-trip`);
  }
});

test('bf16 encode/decode: ties to even, inf, nan, f32 subnormals, full round-trip', () => {
  assert.equal(f32ToBf16(1), 0x3f80);
  assert.equal(bf16ToF32(0x3f80), 1);
  assert.equal(bf16ToF32(0xc0a0), -5);
  assert.equal(f32ToBf16(1 + 2 ** -8), 0x3f80);
  assert.equal(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82);
  assert.equal(f32ToBf16(1 + 2 ** -8 + 2 ** -20), 0x3f81);
  assert.equal(f32ToBf16(3.4028234663852886e38), 0x7f80); // max f32 rounds up to inf
  assert.equal(f32ToBf16(-Infinity), 0xff80);
  assert.equal(f32ToBf16(NaN) & 0x7fc0, 0x7fc0);
  assert.equal(f32ToBf16(2 ** -130), 0x0008);
  assert.equal(bf16ToF32(0x0008), 2 ** -130);
  assert.ok(Number.isNaN(bf16ToF32(0x7fc1)));
  for (let h = 0; h < 65536; h++) {
    const v = bf16ToF32(h);
    if (!Number.isNaN(v)) assert.equal(f32ToBf16(v), h);
  }
});

test('write → read round trip for F32, F16 and BF16 with metadata', () => {
  const p = tmpFile();
  const a = iota(12, (i) => i * 0.5 - 3);
  const b = Float32Array.from([0.1, -2.5, 65504, 2 ** -24, 1 / 3, 7e4]);
  const c = Float32Array.from([1, -0.5, 0.1, 3e38, -1e-40]);
  writeSafetensors(p, { a: { dtype: 'F32', shape: [3, 4], data: a }, b: { dtype: 'F16', shape: [6], data: b }, c: { dtype: 'BF16', shape: [5, 1], data: c } }, { format: 'pt' });
  const headerLen = Number(readFileSync(p).readBigUInt64LE(0));
  assert.equal((8 + headerLen) % 8, 0);
  const f = SafetensorsFile.open(p);
  assert.deepEqual(f.metadata, { format: 'pt' });
  assert.deepEqual(f.names().sort(), ['a', 'b', 'c']);
  assert.ok(f.has('a') && !f.has('z'));
  assert.deepEqual(f.info('a'), { name: 'a', dtype: 'F32', shape: [3, 4], file: p, byteOffset: 8 + headerLen, byteLength: 48 });
  assert.deepEqual(f.readF32('a'), a);
  assert.deepEqual([...f.readF32('b')], [...b].map((v) => f16ToF32(f32ToF16(v))));
  assert.equal(f.readF32('b')[5], Infinity);
  assert.deepEqual([...f.readF32('c')], [...c].map((v) => bf16ToF32(f32ToBf16(v))));
  assert.deepEqual(f.info('c').shape, [5, 1]);
  f.close();
  throwsST(() => f.readF32('a'), /closed/);

  const mixed = tmpFile();
  writeSafetensors(mixed, { h: { dtype: 'F16', shape: [3], data: iota(3) }, w: { dtype: 'F32', shape: [2], data: iota(2) } });
  const m = SafetensorsFile.open(mixed);
  assert.equal(m.info('w').byteOffset % 4, 0, 'F32 data is written before F16 so it stays 4-aligned');
  assert.deepEqual(m.readF32('h'), iota(3));
  m.close();
});

test('slices along dims 0, 1 and 2 read exactly the sub-tensor, for every float dtype', () => {
  const shape = [4, 6, 3];
  const data = iota(72, (i) => i - 20);
  const p = tmpFile();
  writeSafetensors(p, { f32: { dtype: 'F32', shape, data }, f16: { dtype: 'F16', shape, data }, bf16: { dtype: 'BF16', shape, data } });
  const f = SafetensorsFile.open(p);
  const ref = (dim: number, start: number, end: number): number[] => {
    const out: number[] = [];
    for (let i = 0; i < 4; i++) for (let j = 0; j < 6; j++) for (let k = 0; k < 3; k++) {
      const idx = [i, j, k][dim]!;
      if (idx >= start && idx < end) out.push(data[(i * 6 + j) * 3 + k]!);
    }
    return out;
  };
  for (const name of ['f32', 'f16', 'bf16']) {
    for (const [dim, start, end] of [[0, 1, 3], [1, 2, 5], [2, 1, 2], [0, 0, 4], [1, 3, 3]] as const) {
      assert.deepEqual([...f.readF32(name, { dim, start, end })], ref(dim, start, end), `${name} dim ${dim} [${start}, ${end})`);
    }
  }
  const bytes = f.readBytes('f16', { dim: 1, start: 2, end: 5 });
  assert.equal(bytes.byteLength, 4 * 3 * 3 * 2);
  assert.equal(f16ToF32(bytes[0]! | (bytes[1]! << 8)), ref(1, 2, 5)[0]);
  throwsST(() => f.readF32('f32', { dim: 3, start: 0, end: 1 }), /slice dim 3 out of range/, p);
  throwsST(() => f.readF32('f32', { dim: 1, start: 4, end: 7 }), /slice \[4, 7\) along dim 1 is not within \[0, 6\]/);
  throwsST(() => f.readF32('f32', { dim: 0, start: 2, end: 1 }), /not within/);
  throwsST(() => f.readF32('nope'), /no tensor named 'nope'/);
  f.close();
});

test('integer tensors are described but not converted by readF32', () => {
  const p = rawFile({ ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, new Uint8Array(16).fill(1));
  const f = SafetensorsFile.open(p);
  assert.equal(f.info('ids').dtype, 'I64');
  assert.equal(f.readBytes('ids').byteLength, 16);
  throwsST(() => f.readF32('ids'), /tensor 'ids' has dtype I64; readF32 reads float tensors only \(F32\/F16\/BF16\/F64\/F8_E4M3/);
  f.close();
});

test('F64 tensors convert to float32', () => {
  const p = rawFile({ d: { dtype: 'F64', shape: [3], data_offsets: [0, 24] } }, new Uint8Array(Float64Array.from([1.5, -2, 1e-3]).buffer));
  const f = SafetensorsFile.open(p);
  assert.deepEqual(f.readF32('d'), Float32Array.from([1.5, -2, 1e-3]));
  f.close();
});

test('corrupt and truncated files fail with errors naming the file and tensor', () => {
  const short = tmpFile();
  writeFileSync(short, Buffer.from([1, 2, 3]));
  throwsST(() => SafetensorsFile.open(short), /file is 3 bytes, too short/, short);
  throwsST(() => SafetensorsFile.open(join(tmp, 'missing.safetensors')), /cannot open/);

  const huge = Buffer.alloc(16);
  huge.writeBigUInt64LE(1000n);
  const hugeP = tmpFile();
  writeFileSync(hugeP, huge);
  throwsST(() => SafetensorsFile.open(hugeP), /header length 1000 exceeds the file size 16/, hugeP);

  throwsST(() => SafetensorsFile.open(rawFile(null, undefined, '{"a": [1,')), /header is not valid UTF-8 JSON/);
  throwsST(() => SafetensorsFile.open(rawFile([1, 2])), /header must be a JSON object/);
  const four = new Uint8Array(16);
  throwsST(() => SafetensorsFile.open(rawFile({ x: { dtype: 'C64', shape: [2], data_offsets: [0, 16] } }, four)), /tensor 'x': unknown or unsupported dtype "C64"/);
  throwsST(() => SafetensorsFile.open(rawFile({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, four)), /tensor 'x': data_offsets \[0, 8\] hold 8 bytes but F32 \[3\] needs 12/);
  throwsST(() => SafetensorsFile.open(rawFile({ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, four)), /tensor 'x': shape must be an array of non-negative integers/);
  throwsST(() => SafetensorsFile.open(rawFile({ x: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, four)), /data_offsets must be \[begin, end\]/);
  throwsST(
    () => SafetensorsFile.open(rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, four)),
    /tensor 'b' data_offsets \[4, 12\] overlap tensor 'a' \[0, 8\]/,
  );
  throwsST(
    () => SafetensorsFile.open(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, four)),
    /tensor 'b' starts at data offset 8 but the previous tensor ends at 4/,
  );
  throwsST(() => SafetensorsFile.open(rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, four)), /data section is 16 bytes but the tensors cover 8/);
  throwsST(() => SafetensorsFile.open(rawFile({ __metadata__: { k: 1 } })), /__metadata__ value for 'k' must be a string/);

  const good = tmpFile();
  writeSafetensors(good, { a: { dtype: 'F32', shape: [4], data: iota(4) }, b: { dtype: 'BF16', shape: [8], data: iota(8) } });
  truncateSync(good, readFileSync(good).length - 3);
  throwsST(() => SafetensorsFile.open(good), /tensor 'b': data_offsets \[16, 32\] run past the end of the data section \(29 bytes; file truncated\?\)/, good);
});

test('bounded reads: every chunking path gives the same result', () => {
  const shape = [7, 9, 5];
  const data = iota(7 * 9 * 5, (i) => i * 0.25 - 40);
  const p = tmpFile();
  writeSafetensors(p, { h: { dtype: 'F16', shape, data }, f: { dtype: 'F32', shape, data } });
  const whole = SafetensorsFile.open(p);
  const slices = [undefined, { dim: 0, start: 2, end: 6 }, { dim: 1, start: 3, end: 8 }, { dim: 2, start: 1, end: 4 }, { dim: 1, start: 0, end: 9 }];
  // 8: pieces of 4 halves; 50: rows (90 B for dim 1) larger than a chunk; 200 and 1000: several whole rows per read
  for (const chunkBytes of [8, 50, 200, 1000]) {
    const f = SafetensorsFile.open(p, { chunkBytes });
    for (const s of slices) {
      for (const name of ['h', 'f']) {
        sameF32(f.readF32(name, s), whole.readF32(name, s), `${name} chunk ${chunkBytes} slice ${JSON.stringify(s)}`);
        assert.deepEqual(f.readBytes(name, s), whole.readBytes(name, s));
      }
    }
    f.close();
  }
  assert.deepEqual(whole.readF32('f', { dim: 2, start: 1, end: 4 }).subarray(0, 3), data.subarray(1, 4));
  whole.close();
  throwsST(() => SafetensorsFile.open(p, { chunkBytes: 2 }), /chunkBytes must be an integer >= 8/);
});

test('a 67 MB tensor reads whole and sliced', () => {
  const rows = 4100;
  const cols = 4100;
  const data = iota(rows * cols, (i) => (i % 1021) - 500);
  const p = tmpFile();
  writeSafetensors(p, { w: { dtype: 'F32', shape: [rows, cols], data } });
  const f = SafetensorsFile.open(p);
  sameF32(f.readF32('w'), data, 'whole tensor');
  const want = new Float32Array(rows * 100);
  for (let r = 0; r < rows; r++) want.set(data.subarray(r * cols + 4000, r * cols + 4100), r * 100);
  sameF32(f.readF32('w', { dim: 1, start: 4000, end: 4100 }), want, 'dim-1 slice');
  sameF32(f.readF32('w', { dim: 0, start: 4000, end: 4100 }), data.subarray(4000 * cols, 4100 * cols), 'dim-0 slice');
  f.close();
});

test('WeightStore: single file, sharded with index json, and clear errors', () => {
  const single = join(tmp, 'single');
  const sharded = join(tmp, 'sharded');
  const empty = join(tmp, 'empty');
  for (const d of [single, sharded, empty]) mkdirSync(d);
  writeSafetensors(join(single, 'model.safetensors'), { 'lm_head.weight': { dtype: 'F32', shape: [2, 2], data: iota(4) } });
  const s = WeightStore.openDir(single);
  assert.deepEqual(s.names(), ['lm_head.weight']);
  assert.deepEqual(s.readF32('lm_head.weight', { dim: 0, start: 1, end: 2 }), Float32Array.from([2, 3]));
  s.close();

  const shard1 = 'model-00001-of-00002.safetensors';
  const shard2 = 'model-00002-of-00002.safetensors';
  writeSafetensors(join(sharded, shard1), { 'a.weight': { dtype: 'BF16', shape: [2, 3], data: iota(6) }, 'b.weight': { dtype: 'F32', shape: [2], data: iota(2, (i) => -i) } });
  writeSafetensors(join(sharded, shard2), { 'c.weight': { dtype: 'F16', shape: [3, 2], data: iota(6, (i) => i / 2) } });
  const index = { metadata: { total_size: 32 }, weight_map: { 'a.weight': shard1, 'b.weight': shard1, 'c.weight': shard2 } };
  writeFileSync(join(sharded, 'model.safetensors.index.json'), JSON.stringify(index));
  const w = WeightStore.openDir(sharded);
  assert.deepEqual(w.names().sort(), ['a.weight', 'b.weight', 'c.weight']);
  assert.ok(w.has('c.weight') && !w.has('d.weight'));
  assert.equal(w.info('c.weight').file, join(sharded, shard2));
  assert.equal(w.info('a.weight').dtype, 'BF16');
  assert.deepEqual(w.readF32('a.weight', { dim: 1, start: 1, end: 3 }), Float32Array.from([1, 2, 4, 5]));
  assert.deepEqual(w.readF32('c.weight'), iota(6, (i) => i / 2));
  throwsST(() => w.readF32('d.weight'), /no tensor named 'd.weight'/);
  w.close();

  writeFileSync(join(sharded, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { ...index.weight_map, 'd.weight': shard2 } }));
  throwsST(() => WeightStore.openDir(sharded), /tensor 'd.weight' is mapped to model-00002-of-00002.safetensors, which does not contain it/);
  writeFileSync(join(sharded, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'a.weight': '../single/model.safetensors' } }));
  throwsST(() => WeightStore.openDir(sharded), /weight_map entry 'a.weight' must name a file in/);
  writeFileSync(join(sharded, 'model.safetensors.index.json'), '{"weight_map": 3}');
  throwsST(() => WeightStore.openDir(sharded), /missing "weight_map" object/);
  throwsST(() => WeightStore.openDir(empty), /no weights found: looked for model.safetensors and model.safetensors.index.json/, empty);
});

test('golden model directories load tensor by tensor', () => {
  for (const arch of ['llama', 'gpt2', 'phi3']) {
    const w = WeightStore.openDir(join(ROOT, 'test/fixtures/golden', arch, 'model'));
    assert.ok(w.names().length > 5);
    for (const name of w.names()) {
      const info = w.info(name);
      assert.equal(w.readF32(name).length, info.shape.reduce((a, b) => a * b, 1), name);
    }
    w.close();
  }
});
