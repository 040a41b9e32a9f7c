// Quantized checkpoints: which quantization_configs are read and which are refused (with what to do), the 8-bit
// float decoders, and the dequantizing view over a checkpoint (hidden packed tensors, rank windows, clear errors
// for a checkpoint that lacks what its config says). The numbers themselves are checked against transformers +
// PEFT by the golden cases llama_awq, llama_gptq, mistral_gptq8, qwen2_fp8, llama_ct_w4a16, phi3_ct_fp8,
// mistral_ct_int8, llama_ct_nvfp4 and qwen2_ct_mxfp4 (test/conformance/golden, integration/tensor-parallel; made by
// make_quantized.py); here the NVFP4/MXFP4 and unpacked FP8/int8 layouts are also checked on hand-computed blocks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuOps } from '../../kernels/index.js';
import { decodeFloats, FP8_TABLES, WeightStore, type DType, type FloatDType, type Slice, type TensorSource } from '../../shard/formats/index.js';
import { openModelWeights } from '../../shard/models/model-weights.js';
import { INT8_TABLE } from '../../shard/models/quantized/dequantize.js';
import { DequantizingStore } from '../../shard/models/quantized/dequantizing-store.js';
import { quantSchemeOf } from '../../shard/models/quantized/quant-config.js';
import { GOLDEN_ROOT } from '../helpers/golden.js';

const tmp = mkdtempSync(join(tmpdir(), 'weft-quant-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
const caseModel = (name: string) => join(GOLDEN_ROOT, name, 'model');
const where = 'config.json';
const scheme = (q: unknown) => quantSchemeOf({ quantization_config: q }, where);

test('quantization_config: the formats weft dequantizes are read with their parameters', () => {
  assert.equal(quantSchemeOf({}, where), null);
  assert.deepEqual(scheme({ quant_method: 'awq', bits: 4, group_size: 128, version: 'gemm', zero_point: true }), { method: 'awq', bits: 4, groupSize: 128 });
  assert.deepEqual(scheme({ quant_method: 'gptq', bits: 4, group_size: 128, desc_act: true }),
    { method: 'gptq', bits: 4, groupSize: 128, actOrder: true, zeroOffset: 1 });
  assert.deepEqual(scheme({ quant_method: 'gptq', bits: 8, group_size: -1, checkpoint_format: 'gptq_v2' }),
    { method: 'gptq', bits: 8, groupSize: -1, actOrder: false, zeroOffset: 0 });
  assert.deepEqual(scheme({ quant_method: 'fp8', weight_block_size: [128, 128] }), { method: 'fp8', block: [128, 128] });
  assert.deepEqual(scheme({ quant_method: 'bitsandbytes', load_in_4bit: true, bnb_4bit_quant_type: 'nf4' }), { method: 'bitsandbytes', bits: 4 });
  assert.deepEqual(scheme({ quant_method: 'bitsandbytes', load_in_8bit: true }), { method: 'bitsandbytes', bits: 8 });
  assert.deepEqual(scheme({ quant_method: 'compressed-tensors', format: 'pack-quantized',
    config_groups: { g: { targets: ['Linear'], weights: { num_bits: 4, type: 'int', strategy: 'group', group_size: 64 } } } }),
  { method: 'compressed-tensors', intBits: 4, groupSize: 64, block: null });
  // NVFP4 (W4A4: its input_activations ignored) and MXFP4: FP4 float weights, groups of 16 / 32.
  assert.deepEqual(scheme({ quant_method: 'compressed-tensors', format: 'nvfp4-pack-quantized', config_groups: { g: { targets: ['Linear'],
    weights: { num_bits: 4, type: 'float', strategy: 'tensor_group', group_size: 16, symmetric: true },
    input_activations: { num_bits: 4, type: 'float', strategy: 'tensor_group', group_size: 16, dynamic: 'local' } } } }),
  { method: 'compressed-tensors', intBits: null, groupSize: 16, block: null });
  assert.deepEqual(scheme({ quant_method: 'compressed-tensors', format: 'mxfp4-pack-quantized',
    config_groups: { g: { weights: { num_bits: 4, type: 'float', strategy: 'group', group_size: 32 } } } }),
  { method: 'compressed-tensors', intBits: null, groupSize: 32, block: null });
  // A vision-language config's text_config carries it too; gpt-oss's MXFP4 experts have their own loader.
  assert.equal(quantSchemeOf({ text_config: { quantization_config: { quant_method: 'fp8' } } }, where)?.method, 'fp8');
  assert.equal(scheme({ quant_method: 'mxfp4' }), null);
});

test('quantization_config: what weft cannot read is refused naming it and what to use instead', () => {
  const refused: [unknown, RegExp][] = [
    [{ quant_method: 'bitsandbytes' }, /a bitsandbytes quantization_config says neither load_in_4bit nor load_in_8bit/],
    [{ quant_method: 'hqq' }, /quant_method 'hqq' is not supported; weft reads AWQ \(gemm\), GPTQ/],
    [{ quant_method: 'awq', bits: 4, version: 'gemv' }, /AWQ version 'gemv' is not supported/],
    [{ quant_method: 'awq', bits: 8 }, /AWQ with 8 bits is not supported/],
    [{ quant_method: 'gptq', bits: 3 }, /GPTQ with 3 bits is not supported .*straddle/],
    [{ quant_method: 'gptq', bits: 4, checkpoint_format: 'marlin' }, /checkpoint_format 'marlin' is not supported/],
    [{ quant_method: 'gptq', bits: 4, group_size: 0 }, /group_size must be a positive integer or -1, got 0/],
    [{ quant_method: 'fp8', weight_block_size: [128] }, /weight_block_size must be \[rows, cols\]/],
    [{ quant_method: 'compressed-tensors', format: 'mxfp8-quantized', config_groups: { g: { weights: { num_bits: 8, type: 'float' } } } },
      /format 'mxfp8-quantized' is not supported/],
    [{ quant_method: 'compressed-tensors', format: 'float-quantized', config_groups: { g: { weights: { num_bits: 4, type: 'float' } } } },
      /4-bit float weights \(NVFP4\/MXFP4\) need format nvfp4-pack-quantized or mxfp4-pack-quantized, not 'float-quantized'/],
    [{ quant_method: 'compressed-tensors', format: 'nvfp4-pack-quantized', config_groups: { g: { weights: { num_bits: 4, type: 'int' } } } },
      /format 'nvfp4-pack-quantized' holds 4-bit float weights, not 4-bit int/],
    [{ quant_method: 'compressed-tensors', format: 'nvfp4-pack-quantized', config_groups: { g: { weights: { num_bits: 4, type: 'float', symmetric: false } } } },
      /FP4 weights with zero points \(symmetric: false\) are not supported/],
    [{ quant_method: 'compressed-tensors', format: 'int-quantized', sparsity_config: { format: 'sparse-24-bitmask' },
      config_groups: { g: { weights: { num_bits: 8, type: 'int' } } } }, /sparsity \(sparse-24-bitmask\) is not supported/],
    [{ quant_method: 'compressed-tensors', format: 'pack-quantized', config_groups: {} }, /has no config_groups/],
  ];
  for (const [q, message] of refused) assert.throws(() => scheme(q), message, JSON.stringify(q));
});

test('8-bit floats decode as float8_e4m3fn, float8_e5m2 and e8m0 define them', () => {
  const { F8_E4M3: e4m3, F8_E5M2: e5m2, F8_E8M0: e8m0 } = FP8_TABLES;
  assert.equal(e4m3[0x38], 1);
  assert.equal(e4m3[0xb8], -1);
  assert.equal(e4m3[0x7e], 448);           // the largest finite value: no infinities in the fn variant
  assert.ok(Number.isNaN(e4m3[0x7f]!) && Number.isNaN(e4m3[0xff]!));
  assert.equal(e4m3[0x01], 2 ** -9);       // smallest subnormal: 1/8 · 2^-6
  assert.equal(e4m3[0x08], 2 ** -6);       // smallest normal
  assert.equal(e5m2[0x3c], 1);
  assert.equal(e5m2[0x7c], Infinity);
  assert.ok(Number.isNaN(e5m2[0x7d]!));
  assert.equal(e5m2[0x7b], 57344);
  assert.equal(e8m0[127], 1);
  assert.equal(e8m0[130], 8);
  assert.ok(Number.isNaN(e8m0[0xff]!));
});

test('the dequantizing view hides packed tensors, shows float weights and reads any rank window of them', () => {
  for (const [name, packed] of [['llama_awq', 'qweight'], ['llama_gptq', 'g_idx'], ['llama_ct_w4a16', 'weight_zero_point'], ['qwen2_fp8', 'weight_scale_inv'],
    ['llama_bnb_nf4', 'weight.nested_absmax'], ['qwen2_bnb_int8', 'SCB'], ['llama_ct_nvfp4', 'input_global_scale'], ['qwen2_ct_mxfp4', 'weight_packed']] as const) {
    const store = openModelWeights(caseModel(name));
    try {
      assert.ok(store instanceof DequantizingStore, name);
      const q = 'model.layers.0.mlp.down_proj';
      assert.ok(store.has(`${q}.weight`) && !store.has(`${q}.${packed}`), name);
      assert.ok(store.names().includes(`${q}.weight`) && !store.names().some((n) => n.endsWith(`.${packed}`)), name);
      const inter = (JSON.parse(readFileSync(join(caseModel(name), 'config.json'), 'utf8')) as { intermediate_size: number }).intermediate_size;
      assert.deepEqual(store.info(`${q}.weight`).shape, [64, inter]);  // down_proj: [hidden, intermediate]
      const full = store.readF32(`${q}.weight`);
      const rows = store.readF32(`${q}.weight`, { dim: 0, start: 16, end: 48 });
      const cols = store.readF32(`${q}.weight`, { dim: 1, start: 40, end: 120 });
      assert.deepEqual(rows, full.slice(16 * inter, 48 * inter), name);
      assert.deepEqual(cols, Float32Array.from({ length: 64 * 80 }, (_, k) => full[Math.floor(k / 80) * inter + 40 + (k % 80)]!), name);
      assert.ok(full.some((v) => v !== 0) && full.every(Number.isFinite), name);
      assert.throws(() => store.readF32(`${q}.weight`, { dim: 0, start: 0, end: 65 }), /outside/);
    } finally {
      store.close();
    }
  }
});

/** The store without some tensors (a checkpoint missing them). */
function without(store: TensorSource, missing: (name: string) => boolean): TensorSource {
  return {
    dir: store.dir,
    names: () => store.names().filter((n) => !missing(n)),
    has: (n) => !missing(n) && store.has(n),
    info: (n) => store.info(n),
    readF32: (n, s) => store.readF32(n, s),
    readBytes: (n, s) => store.readBytes(n, s),
    close: () => store.close(),
  };
}

test('a checkpoint that lacks what its quantization needs fails naming the tensor', () => {
  const awq = WeightStore.openDir(caseModel('llama_awq'));
  const awqScheme = scheme({ quant_method: 'awq', bits: 4, group_size: 32 })!;
  assert.throws(() => new DequantizingStore(without(awq, (n) => n === 'model.layers.1.self_attn.o_proj.qzeros'), awqScheme),
    /quantized weight needs 'model\.layers\.1\.self_attn\.o_proj\.qzeros', which the checkpoint lacks/);
  // The wrong group size for the stored scales is caught at open, not as wrong numbers.
  assert.throws(() => new DequantizingStore(awq, scheme({ quant_method: 'awq', bits: 4, group_size: 16 })!), /down_proj\.qzeros' has shape \[5, 8\], expected \[10, 8\]/);
  const fp8 = WeightStore.openDir(caseModel('qwen2_fp8'));
  // An FP8 weight whose scales are gone is not read as if it were unscaled.
  const view = new DequantizingStore(without(fp8, (n) => n === 'model.layers.0.mlp.up_proj.weight_scale_inv'), scheme({ quant_method: 'fp8', weight_block_size: [32, 48] })!);
  assert.throws(() => view.readF32('model.layers.0.mlp.up_proj.weight'), /stored quantized \(F8_E4M3\) without the scales/);
  assert.throws(() => new DequantizingStore(fp8, scheme({ quant_method: 'fp8', weight_block_size: [64, 64] })!), /\[64, 64\] blocks of/);
  awq.close();
  fp8.close();
});

test('a config that says quantized over weights that are not is refused, as is a refused method at open', () => {
  const dir = join(tmp, 'plain-said-awq');
  cpSync(caseModel('llama'), dir, { recursive: true });
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, quantization_config: { quant_method: 'awq', bits: 4, group_size: 32 } }));
  assert.throws(() => openModelWeights(dir), /quantization_config says 'awq' but no weight in .* is stored that way/);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, quantization_config: { quant_method: 'hqq' } }));
  assert.throws(() => openModelWeights(dir), /quant_method 'hqq' is not supported/);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  const plain = openModelWeights(dir);
  assert.ok(plain instanceof WeightStore);
  plain.close();
});

test('the native dequantization refuses sizes that do not match the dimensions instead of reading past the arrays', () => {
  const w = { o0: 0, o1: 8, i0: 0, i1: 4 };
  const ok = cpuOps.dequantAwq(new Int32Array(4), new Int32Array(1), new Float32Array(8).fill(1), 8, 4, 4, w);
  assert.equal(ok.length, 32);
  assert.throws(() => cpuOps.dequantAwq(new Int32Array(3), new Int32Array(1), new Float32Array(8), 8, 4, 4, w), /qweight must be \[in, out\/8\]/);
  assert.throws(() => cpuOps.dequantAwq(new Int32Array(4), new Int32Array(1), new Float32Array(8), 8, 4, 4, { ...w, o1: 9 }), /window outside the weight/);
  assert.throws(() => cpuOps.dequantGptq(new Int32Array(8), new Int32Array(1), new Float32Array(8), Int32Array.from([0, 0, 0, 0, 0, 0, 0, 1]), 8, 8, 4, 8, 0, { o0: 0, o1: 8, i0: 0, i1: 8 }),
    /gIdx names a group past the scales/);
  assert.throws(() => cpuOps.dequantBnb4(new Uint8Array(15), new Float32Array(1), new Float32Array(16), 8, 4, 64, w), /packed must hold ceil\(out·in\/2\) bytes/);
  assert.throws(() => cpuOps.dequantPacked(new Int32Array(8), new Float32Array(8), 1, 4, null, new Int32Array(2), 8, 4, 4, w), /zeroPoint must be/);
});

/** An in-memory checkpoint: tensors as raw little-endian bytes (slices along dim 0 only). */
function memoryStore(tensors: Record<string, { dtype: DType; shape: number[]; bytes: Uint8Array }>): TensorSource {
  const get = (n: string) => {
    const t = tensors[n];
    if (!t) throw new Error(`no tensor '${n}'`);
    return t;
  };
  const bytesOf = (n: string, s?: Slice) => {
    const t = get(n);
    if (!s) return t.bytes.slice();
    assert.equal(s.dim, 0, 'memoryStore slices rows only');
    const row = t.bytes.length / t.shape[0]!;
    return t.bytes.slice(s.start * row, s.end * row);
  };
  return {
    dir: 'memory',
    names: () => Object.keys(tensors),
    has: (n) => n in tensors,
    info: (n) => ({ name: n, dtype: get(n).dtype, shape: [...get(n).shape], file: 'memory', byteOffset: 0, byteLength: get(n).bytes.length }),
    readBytes: bytesOf,
    readF32: (n, s) => {
      const b = bytesOf(n, s), size = get(n).dtype === 'F32' ? 4 : 1, out = new Float32Array(b.length / size);
      decodeFloats(get(n).dtype as FloatDType, b, out, 0);
      return out;
    },
    close: () => {},
  };
}
const u8 = (dtype: DType, shape: number[], bytes: number[]) => ({ dtype, shape, bytes: Uint8Array.from(bytes) });
const f32 = (shape: number[], values: number[]) => ({ dtype: 'F32' as DType, shape, bytes: new Uint8Array(Float32Array.from(values).buffer) });
const rep = <T>(n: number, xs: T[]): T[] => Array.from({ length: n }, () => xs).flat();
const ct = (format: string, weights: object) => scheme({ quant_method: 'compressed-tensors', format, config_groups: { g: { weights } } })!;
const NVFP4 = ct('nvfp4-pack-quantized', { num_bits: 4, type: 'float', strategy: 'tensor_group', group_size: 16 });

// An NVFP4 weight [2, 32]: two groups of 16 columns a row. Row 0's first bytes hold the codes 0..15 in column order
// (column 2k in the low nibble), then 0x17 (6, then 0.5); row 1 is 0x9a (−1, then −0.5). FP8 E4M3 scales 1, 2 | 0.5,
// 4 (0x38, 0x40 | 0x30, 0x48) over the global scale 2: 0.5, 1 | 0.25, 2.
const nvfp4Tensors = () => ({
  'l.weight_packed': u8('U8', [2, 16], [0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe, ...rep(8, [0x17]), ...rep(16, [0x9a])]),
  'l.weight_scale': u8('F8_E4M3', [2, 2], [0x38, 0x40, 0x30, 0x48]),
  'l.weight_global_scale': f32([1], [2]),
  'l.input_global_scale': f32([1], [1000]),
});
const NVFP4_EXPECTED = [
  0, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, -0, -0.25, -0.5, -0.75, -1, -1.5, -2, -3, ...rep(8, [6, 0.5]),
  ...rep(8, [-0.25, -0.125]), ...rep(8, [-2, -1]),
];

test('NVFP4: two E2M1 codes a byte (low nibble first) times the FP8 group scale over the global scale, on a hand-computed block', () => {
  const view = new DequantizingStore(memoryStore(nvfp4Tensors()), NVFP4);
  assert.deepEqual(view.names(), ['l.weight']);  // packed, scales, global scale and the activations' input_global_scale hidden
  assert.deepEqual(view.info('l.weight').shape, [2, 32]);
  assert.deepEqual([...view.readF32('l.weight')], NVFP4_EXPECTED);
  assert.deepEqual([...view.readF32('l.weight', { dim: 0, start: 1, end: 2 })], NVFP4_EXPECTED.slice(32));
  assert.deepEqual([...view.readF32('l.weight', { dim: 1, start: 15, end: 18 })], [-3, 6, 0.5, -0.125, -2, -1]);
  assert.throws(() => view.readBytes('l.weight_global_scale'), /part of a quantized weight/);
});

test('MXFP4: E2M1 codes times 2^(e − 127) per group of 32, on a hand-computed block; FP4 layouts that do not fit are refused', () => {
  const mx = ct('mxfp4-pack-quantized', { num_bits: 4, type: 'float', strategy: 'group', group_size: 32 });
  // [1, 64]: group 0 bytes 0x2c (−2, then 1) at 2^0, group 1 bytes 0x07 (6, then 0) at 2^−3.
  const view = new DequantizingStore(memoryStore({
    'l.weight_packed': u8('U8', [1, 32], [...rep(16, [0x2c]), ...rep(16, [0x07])]), 'l.weight_scale': u8('U8', [1, 2], [127, 124]),
  }), mx);
  assert.deepEqual([...view.readF32('l.weight')], [...rep(16, [-2, 1]), ...rep(16, [0.75, 0])]);
  const bad = (extra: object, s = NVFP4) => () => new DequantizingStore(memoryStore({ ...nvfp4Tensors(), ...extra }), s);
  assert.throws(bad({ 'l.weight_shape': { dtype: 'I64', shape: [2], bytes: new Uint8Array(BigInt64Array.from([2n, 48n]).buffer) } }),
    /'l\.weight_packed' \[2, 16\] does not hold FP4 \[2, 48\]/);
  assert.throws(bad({ 'l.weight_scale': u8('F8_E4M3', [2, 3], rep(6, [0x38])) }), /'l\.weight_scale' \[2, 3\] is not one scale per row and group of 16/);
  assert.throws(bad({ 'l.weight_global_scale': f32([2], [2, 2]) }), /weight_global_scale' must hold one value/);
  const zp = new DequantizingStore(memoryStore({ ...nvfp4Tensors(), 'l.weight_zero_point': u8('F8_E4M3', [2, 2], [0, 0x38, 0, 0]) }), NVFP4);
  assert.throws(() => zp.readF32('l.weight'), /weight_zero_point' is not zero: asymmetric FP4 is not supported/);
  assert.throws(() => cpuOps.dequantFp4(new Uint8Array(31), new Float32Array(4), 2, 16, 2, 32, { o0: 0, o1: 2, i0: 0, i1: 32 }), /packed must be \[out, ceil\(in\/2\)\] bytes/);
  assert.throws(() => cpuOps.dequantFp4(new Uint8Array(32), new Float32Array(4), 2, 8, 2, 32, { o0: 0, o1: 2, i0: 0, i1: 32 }), /groups must be ceil\(inDim \/ groupSize\)/);
});

test('unpacked int8 and FP8 weights: (code − zero point) × scale through group and block grids, on hand-computed blocks', () => {
  // int8 [2, 4], groups of 2 columns, asymmetric: scales [[0.5, 2], [0.25, 1]], zero points [[1, −1], [0, 2]] (int8).
  const int8 = new DequantizingStore(memoryStore({
    'l.weight': u8('I8', [2, 4], [0x80, 0xff, 0, 127, 5, 6, 7, 8]), 'l.weight_scale': f32([2, 2], [0.5, 2, 0.25, 1]),
    'l.weight_zero_point': u8('I8', [2, 2], [1, 0xff, 0, 2]), 'l.input_scale': f32([1], [3]),
  }), ct('int-quantized', { num_bits: 8, type: 'int', strategy: 'group', group_size: 2, symmetric: false }));
  assert.deepEqual(int8.names(), ['l.weight']);
  assert.deepEqual([...int8.readF32('l.weight')], [-64.5, -1, 2, 256, 1.25, 1.5, 5, 6]);
  assert.deepEqual([...int8.readF32('l.weight', { dim: 0, start: 1, end: 2 })], [1.25, 1.5, 5, 6]);
  assert.deepEqual([...int8.readF32('l.weight', { dim: 1, start: 1, end: 3 })], [-1, 2, 1.5, 5]);
  // FP8 E4M3 [2, 4] (1, −1, 2, 448 | 0.5, 2^−9, 4, 0) with weight_scale_inv per [2, 2] block: 3 | 0.5.
  const fp8 = new DequantizingStore(memoryStore({
    'l.weight': u8('F8_E4M3', [2, 4], [0x38, 0xb8, 0x40, 0x7e, 0x30, 0x01, 0x48, 0x00]), 'l.weight_scale_inv': f32([1, 2], [3, 0.5]),
  }), scheme({ quant_method: 'fp8', weight_block_size: [2, 2] })!);
  assert.deepEqual([...fp8.readF32('l.weight')], [3, -3, 1, 224, 1.5, 3 * 2 ** -9, 2, 0]);
  const w = { o0: 0, o1: 2, i0: 0, i1: 4 }, grid = { data: new Float32Array(2), rowsPer: 1, cols: 1, colsPer: 4 };
  assert.throws(() => cpuOps.dequantUnpacked(new Uint8Array(7), INT8_TABLE, 4, grid, null, 1, 2, w), /values must hold the window's rows/);
  assert.throws(() => cpuOps.dequantUnpacked(new Uint8Array(8), new Float32Array(16), 4, grid, null, 1, 2, w), /table must hold 256 values/);
  assert.throws(() => cpuOps.dequantUnpacked(new Uint8Array(8), INT8_TABLE, 4, { ...grid, colsPer: 2 }, null, 1, 2, w), /scale\.data must be/);
  assert.throws(() => cpuOps.dequantUnpacked(new Uint8Array(8), INT8_TABLE, 4, grid, { data: new Int32Array(1), rowsPer: 1, cols: 1, colsPer: 4 }, 1, 2, w),
    /zeroPoint\.data must be/);
});
