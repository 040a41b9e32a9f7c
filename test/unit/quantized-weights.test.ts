// Quantized checkpoints: which quantization_configs are read and which are refused (with what to do), the 8-bit
// float decoders, and the dequantizing view over a checkpoint (hidden packed tensors, rank windows, clear errors
// for a checkpoint that lacks what its config says). The numbers themselves are checked against transformers +
// PEFT by the golden cases llama_awq, llama_gptq, mistral_gptq8, qwen2_fp8, llama_ct_w4a16, phi3_ct_fp8 and
// mistral_ct_int8 (test/conformance/golden, integration/tensor-parallel; made by make_quantized.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuOps } from '../../kernels/index.js';
import { FP8_TABLES, WeightStore, type TensorSource } from '../../shard/formats/index.js';
import { openModelWeights } from '../../shard/models/model-weights.js';
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
    [{ quant_method: 'compressed-tensors', format: 'nvfp4-pack-quantized', config_groups: { g: { weights: { num_bits: 4, type: 'float' } } } },
      /format 'nvfp4-pack-quantized' is not supported/],
    [{ quant_method: 'compressed-tensors', format: 'float-quantized', config_groups: { g: { weights: { num_bits: 4, type: 'float' } } } },
      /4-bit float weights \(NVFP4\/MXFP4\) are not supported/],
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
    ['llama_bnb_nf4', 'weight.nested_absmax'], ['qwen2_bnb_int8', 'SCB']] as const) {
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
