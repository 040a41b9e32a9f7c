// The benchmarks' random checkpoints (deploy/bench/synthetic.ts): half-precision weights generated directly
// as bits must still load through the safetensors reader with the right dtypes and shapes, finite small values
// and norm weights of exactly 1; and writeSafetensors' already-encoded tensors are checked against their shape.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PRESETS, type ModelShape } from '../../deploy/bench/shapes.js';
import { loraModuleDims } from '../../deploy/bench/bounds.js';
import { RandomWeights, prng, writeRandomAdapters, writeRandomModel } from '../../deploy/bench/synthetic.js';
import {
  SafetensorsError, SafetensorsFile, WeightStore, bf16ToF32, encodeFloats, f16ToF32, f32ToF16, writeSafetensors,
} from '../../shard/formats/index.js';

const root = mkdtempSync(join(tmpdir(), 'weft-synthetic-test-'));
after(() => rmSync(root, { recursive: true, force: true }));

const ST = { float16: 'F16', bfloat16: 'BF16', float32: 'F32' } as const;

function readDir(dir: string): Map<string, Buffer> {
  return new Map(readdirSync(dir).sort().map((f) => [f, readFileSync(join(dir, f))]));
}

function checkModel(dir: string, shape: ModelShape): void {
  const dtype = ST[shape.dtype];
  const store = WeightStore.openDir(dir);
  try {
    const dims = loraModuleDims(shape);
    const expected = new Map<string, number[]>([
      ['model.embed_tokens.weight', [shape.vocab, shape.hidden]],
      ['model.norm.weight', [shape.hidden]],
      ['lm_head.weight', [shape.vocab, shape.hidden]],
    ]);
    for (let l = 0; l < shape.layers; l++) {
      expected.set(`model.layers.${l}.input_layernorm.weight`, [shape.hidden]);
      expected.set(`model.layers.${l}.post_attention_layernorm.weight`, [shape.hidden]);
      for (const [m, [inDim, outDim]] of Object.entries(dims)) {
        const parent = ['gate_proj', 'up_proj', 'down_proj'].includes(m) ? 'mlp' : 'self_attn';
        expected.set(`model.layers.${l}.${parent}.${m}.weight`, [outDim, inDim]);
      }
    }
    assert.deepEqual(store.names().sort(), [...expected.keys()].sort());
    let bytes = 0;
    for (const [name, dims2] of expected) {
      const info = store.info(name);
      assert.equal(info.dtype, dtype, `${name} dtype`);
      assert.deepEqual(info.shape, dims2, `${name} shape`);
      bytes += info.byteLength;
      const v = store.readF32(name);
      if (name.endsWith('norm.weight')) {
        assert.ok(v.every((x) => x === 1), `${name}: norm weights are exactly 1`);
        continue;
      }
      let nonzero = 0, sum = 0;
      for (const x of v) {
        assert.ok(Number.isFinite(x) && Math.abs(x) <= 0.02 * 1.01, `${name}: ${x} is not finite and within ±0.02`);
        if (x !== 0) nonzero++;
        sum += x;
      }
      assert.ok(nonzero > 0.95 * v.length, `${name}: ${nonzero}/${v.length} nonzero`);
      assert.ok(Math.abs(sum / v.length) < 0.002, `${name}: mean ${sum / v.length}`);
    }
    const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
    assert.equal(index.metadata.total_size, bytes);
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.deepEqual([config.hidden_size, config.num_hidden_layers, config.torch_dtype], [shape.hidden, shape.layers, shape.dtype]);
  } finally {
    store.close();
  }
}

describe('synthetic checkpoints', () => {
  it('preset:tiny (float16) loads with the right dtypes and shapes, finite small values and norm weights of 1', () => {
    const dir = join(root, 'tiny');
    mkdirSync(dir);
    writeRandomModel(dir, PRESETS.tiny, 1);
    checkModel(dir, PRESETS.tiny);
    assert.equal(readdirSync(dir).filter((f) => f.endsWith('.safetensors')).length, PRESETS.tiny.layers + 2);
  });

  for (const dtype of ['bfloat16', 'float32'] as const) {
    it(`${dtype} checkpoints too`, () => {
      const shape = { ...PRESETS.tiny, dtype };
      const dir = join(root, `tiny-${dtype}`);
      mkdirSync(dir);
      writeRandomModel(dir, shape, 1);
      checkModel(dir, shape);
    });
  }

  it('is deterministic in the seed', () => {
    const dirs = ['a', 'b', 'c'].map((n) => join(root, `seed-${n}`));
    dirs.forEach((d) => mkdirSync(d));
    writeRandomModel(dirs[0]!, PRESETS.tiny, 5);
    writeRandomModel(dirs[1]!, PRESETS.tiny, 5);
    writeRandomModel(dirs[2]!, PRESETS.tiny, 6);
    const [a, b, c] = dirs.map(readDir);
    assert.deepEqual(a, b);
    const layer = [...a!.keys()].find((f) => f.includes('00002-of'))!;
    assert.notDeepEqual(a!.get(layer), c!.get(layer));
  });

  it('adapters: A [r, in] and B [out, r] in the dtype, finite, within their scales, different per adapter', () => {
    const shape = PRESETS.tiny;
    const dirs = writeRandomAdapters(join(root, 'adapters'), shape, { names: ['x', 'y'], rank: 4, dtype: 'float16' });
    const dims = loraModuleDims(shape);
    const read = dirs.map((d) => {
      assert.equal(JSON.parse(readFileSync(join(d, 'adapter_config.json'), 'utf8')).r, 4);
      const f = SafetensorsFile.open(join(d, 'adapter_model.safetensors'));
      try {
        assert.equal(f.names().length, shape.layers * 7 * 2);
        const out = new Map<string, Float32Array>();
        for (let l = 0; l < shape.layers; l++) {
          for (const [m, [inDim, outDim]] of Object.entries(dims)) {
            const parent = ['gate_proj', 'up_proj', 'down_proj'].includes(m) ? 'mlp' : 'self_attn';
            const prefix = `base_model.model.model.layers.${l}.${parent}.${m}`;
            for (const [ab, dimsAB, half] of [['A', [4, inDim], 1 / Math.sqrt(inDim)], ['B', [outDim, 4], 0.01]] as const) {
              const name = `${prefix}.lora_${ab}.weight`;
              const info = f.info(name);
              assert.equal(info.dtype, 'F16');
              assert.deepEqual(info.shape, dimsAB);
              const v = f.readF32(name);
              assert.ok(v.every((x) => Number.isFinite(x) && Math.abs(x) <= half * 1.01), `${name}: values within ±${half}`);
              assert.ok(v.some((x) => x !== 0));
              out.set(name, v);
            }
          }
        }
        return out;
      } finally {
        f.close();
      }
    });
    const name = [...read[0]!.keys()].find((n) => n.includes('layers.1.mlp.down_proj.lora_A'))!;
    assert.notDeepEqual(read[0]!.get(name), read[1]!.get(name));
  });

  it('RandomWeights: big tensors copy the encoded pool, small ones draw every value', () => {
    for (const dtype of ['F16', 'BF16', 'F32'] as const) {
      const g = new RandomWeights(dtype, 3);
      for (const n of [100, 4096, 4097, 100_003]) {
        const t = g.tensor(n, 0.5, prng(n));
        assert.equal(t.length, n);
        assert.equal(t instanceof Float32Array, dtype === 'F32');
        const v = t instanceof Float32Array ? t : decodeBits(dtype as 'F16' | 'BF16', t);
        assert.ok(v.every((x) => Number.isFinite(x) && Math.abs(x) <= 0.25 * 1.01), `${dtype} n=${n}: within ±0.25`);
        const mean = v.reduce((s, x) => s + x, 0) / n;
        assert.ok(Math.abs(mean) < 0.05, `${dtype} n=${n}: mean ${mean}`);
        const distinct = new Set(v).size;
        assert.ok(distinct > Math.min(n, 1000) / 2, `${dtype} n=${n}: ${distinct} distinct values`);
        assert.deepEqual(new RandomWeights(dtype, 3).tensor(n, 0.5, prng(n)), t, 'same seed, same bytes');
      }
      const buf = g.alloc(20_000);
      assert.deepEqual(g.fill(buf, 0.1, prng(9)), new RandomWeights(dtype, 3).tensor(20_000, 0.1, prng(9)), 'fill = tensor');
      assert.throws(() => g.fill(dtype === 'F32' ? new Uint16Array(8) : new Float32Array(8), 0.1, prng(1)), TypeError);
    }
  });
});

/** F16/BF16 bits as float32 values (what readF32 would return). */
function decodeBits(dtype: 'F16' | 'BF16', bits: Uint16Array): Float32Array {
  return Float32Array.from(bits, (h) => (dtype === 'F16' ? f16ToF32(h) : bf16ToF32(h)));
}

describe('writeSafetensors with encoded bytes', () => {
  const values = Float32Array.from({ length: 12 }, (_, i) => (i - 5) / 8);

  it('writes Uint16Array bits and Uint8Array bytes as they are, beside float32 values', () => {
    const p = join(root, 'raw.safetensors');
    const f16bits = Uint16Array.from(values, (x) => f32ToF16(x));
    const bf16bytes = encodeFloats('BF16', values);
    const f32bytes = new Uint8Array(values.buffer.slice(0));
    writeSafetensors(p, {
      h: { dtype: 'F16', shape: [3, 4], data: f16bits },
      b: { dtype: 'BF16', shape: [12], data: bf16bytes },
      f: { dtype: 'F32', shape: [2, 6], data: f32bytes },
      v: { dtype: 'F16', shape: [12], data: values },
      sub: { dtype: 'F16', shape: [4], data: f16bits.subarray(4, 8) },
    });
    const f = SafetensorsFile.open(p);
    try {
      for (const n of ['h', 'b', 'f', 'v']) assert.deepEqual(f.readF32(n), values, n);
      assert.deepEqual(f.readF32('sub'), values.subarray(4, 8));
      assert.deepEqual(f.readBytes('h'), new Uint8Array(f16bits.buffer));
      assert.deepEqual(f.readBytes('h'), f.readBytes('v'));
      assert.deepEqual(f.info('f').shape, [2, 6]);
    } finally {
      f.close();
    }
  });

  it('refuses encoded data of the wrong length, naming the tensor, before writing anything', () => {
    const p = join(root, 'bad.safetensors');
    const cases: [string, Parameters<typeof writeSafetensors>[1][string], RegExp][] = [
      ['short16', { dtype: 'F16', shape: [3, 4], data: new Uint16Array(11) }, /tensor 'short16': 22 bytes .* F16 \[3, 4\] needs 24/],
      ['bytes-as-elems', { dtype: 'F16', shape: [12], data: new Uint8Array(12) }, /tensor 'bytes-as-elems': 12 bytes .* needs 24/],
      ['f32-from-u16', { dtype: 'F32', shape: [4], data: new Uint16Array(4) }, /tensor 'f32-from-u16': 8 bytes .* F32 \[4\] needs 16/],
      ['long', { dtype: 'BF16', shape: [2], data: new Uint8Array(5) }, /tensor 'long': 5 bytes/],
      ['values', { dtype: 'F16', shape: [5], data: new Float32Array(4) }, /tensor 'values': shape \[5\] does not match 4 values/],
      ['f64', { dtype: 'F32', shape: [2], data: new Float64Array(2) as unknown as Float32Array }, /tensor 'f64': data must be .* got Float64Array/],
      ['i8', { dtype: 'I8' as 'F32', shape: [2], data: new Uint8Array(2) }, /tensor 'i8': cannot write dtype "I8"/],
    ];
    for (const [name, t, re] of cases) {
      assert.throws(() => writeSafetensors(p, { ok: { dtype: 'F32', shape: [1], data: new Float32Array(1) }, [name]: t }),
        (e: unknown) => e instanceof SafetensorsError && re.test(e.message), name);
      assert.equal(existsSync(p), false, `${name}: no file written`);
    }
  });
});
