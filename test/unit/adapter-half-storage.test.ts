// LoRA parts planned in a 16-bit GPU model's own format (shard/models/load-adapter.ts loraStorageOf): the
// float32 -> bf16/fp16 rounding (cpuOps.encodeHalf: nearest, ties to even, as the GPU's __float2*_rn), a plan
// in that storage equal to the float32 plan rounded part by part at half the bytes, the host-RAM tier keeping
// only such a plan (no float32 tensors beside it), a merge naming such an entry reading its files again, and the
// CPU backend refusing 16-bit parts with the reason.
// The CUDA side (staging 16-bit parts as they are) runs in test/gpu/model-golden.test.ts on a GPU.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuOps } from '../../kernels/index.js';
import { writeRandomAdapters } from '../../deploy/bench/synthetic.js';
import { PRESETS } from '../../deploy/bench/shapes.js';
import { HostAdapterCache, adapterBytes, cachedBytes, dirIdentity } from '../../shard/adapters/index.js';
import { LocalEngine } from '../../shard/index.js';
import { loadGoldenCase } from '../helpers/golden.js';
import { loadAdapterDir } from '../../shard/adapters/peft-config.js';
import { loraStorageOf, parseModelSpec, partitionFor, planAdapter } from '../../shard/models/index.js';
import { Rng } from '../helpers/reference-ops.js';
import { adapter as tinyAdapter, model as tinyModel } from '../helpers/tiny-model.js';

function decode(bits: Uint16Array, bf16: boolean): Float32Array {
  const out = new Float32Array(bits.length);
  cpuOps.decodeHalf(bits, bf16, out, 0);
  return out;
}
function encode(values: Float32Array, bf16: boolean): Uint16Array {
  const out = new Uint16Array(values.length);
  cpuOps.encodeHalf(values, bf16, out);
  return out;
}

for (const bf16 of [true, false]) {
  const name = bf16 ? 'bf16' : 'fp16';
  test(`encodeHalf (${name}): every 16-bit value comes back as itself`, () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const values = decode(all, bf16);
    const again = encode(values, bf16);
    for (let i = 0; i < 65536; i++) {
      if (Number.isNaN(values[i])) assert.ok(Number.isNaN(decode(again.subarray(i, i + 1), bf16)[0]), `NaN ${i} stays NaN`);
      else assert.equal(again[i], i, `${name} 0x${i.toString(16)} (${values[i]})`);
    }
  });

  test(`encodeHalf (${name}): the nearest value, ties to the even pattern`, () => {
    const rng = new Rng(bf16 ? 11 : 12);
    const scales = bf16 ? [1e-30, 1e-3, 1, 1e5, 1e30] : [1e-7, 1e-3, 1, 100, 60000];
    const xs: number[] = [];
    for (const s of scales) for (let i = 0; i < 2000; i++) xs.push(rng.uniform(-1, 1) * s);
    // Exact midpoints between neighbours (ties), both parities.
    const some = decode(Uint16Array.from([0x3c00, 0x3c01, 0x4000, 0x4001, 0x0001, 0x0002]), bf16);
    const next = decode(Uint16Array.from([0x3c01, 0x3c02, 0x4001, 0x4002, 0x0002, 0x0003]), bf16);
    for (let i = 0; i < some.length; i++) xs.push(Math.fround((some[i]! + next[i]!) / 2), -Math.fround((some[i]! + next[i]!) / 2));
    const values = Float32Array.from(xs);
    const bits = encode(values, bf16);
    for (let i = 0; i < values.length; i++) {
      const x = values[i]!, h = bits[i]!, v = decode(Uint16Array.of(h), bf16)[0]!;
      if (!Number.isFinite(v)) {
        assert.ok(!bf16 && Math.abs(x) >= 65520, `${x} -> inf only past fp16's range`);
        continue;
      }
      for (const n of [h - 1, h + 1]) {
        if (n < 0 || n > 0xffff || (n & 0x7fff) === 0x7fff || ((n ^ h) & 0x8000) !== 0) continue;  // same sign only
        const w = decode(Uint16Array.of(n), bf16)[0]!;
        if (!Number.isFinite(w) || Number.isNaN(w)) continue;
        const dv = Math.abs(v - x), dw = Math.abs(w - x);
        assert.ok(dv < dw || (dv === dw && (h & 1) === 0), `${name}(${x}) = ${v} (0x${h.toString(16)}), but ${w} is as near or nearer`);
      }
    }
  });
}

// The tiny preset's shape as a Llama config: the layout a shard plans for.
const shape = PRESETS.tiny;
const spec = parseModelSpec({ architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: shape.hidden,
  num_hidden_layers: shape.layers, num_attention_heads: shape.heads, num_key_value_heads: shape.kvHeads,
  intermediate_size: shape.intermediate, vocab_size: shape.vocab, rms_norm_eps: 1e-5, max_position_embeddings: 512,
  rope_theta: 10000, hidden_act: 'silu', tie_word_embeddings: false });
const root = mkdtempSync(join(tmpdir(), 'weft-half-plan-'));
test.after(() => rmSync(root, { recursive: true, force: true }));
const [dirA] = writeRandomAdapters(root, PRESETS.tiny, { names: ['a'], rank: 8, dtype: 'float32', seed: 9 });

for (const storage of ['bfloat16', 'float16'] as const) {
  for (const world of [1, 2]) {
    test(`a ${storage} plan (TP=${world}) is the float32 plan rounded part by part, at half the bytes`, () => {
      const adapter = loadAdapterDir(dirA!);
      const layout = { spec, partition: partitionFor(spec, world - 1, world) };
      const f32 = planAdapter(layout, adapter, dirA!, 64);
      const half = planAdapter({ ...layout, loraStorage: storage }, adapter, dirA!, 64);
      assert.equal(f32.storage, 'float32');
      assert.equal(half.storage, storage);
      assert.equal(half.parts.length, f32.parts.length);
      assert.equal(half.bytes * 2, f32.bytes);
      assert.equal(half.maxRank, f32.maxRank);
      for (let i = 0; i < f32.parts.length; i++) {
        const p = f32.parts[i]!, q = half.parts[i]!;
        assert.ok(q.a instanceof Uint16Array && q.b instanceof Uint16Array);
        assert.equal(q.storage, storage);
        assert.deepEqual({ ...q, a: 0, b: 0, storage: 0 }, { ...p, a: 0, b: 0, storage: 0 }, 'same layer, module, offsets, rank, scale');
        assert.deepEqual(q.a, encode(p.a as Float32Array, storage === 'bfloat16'));
        assert.deepEqual(q.b, encode(p.b as Float32Array, storage === 'bfloat16'));
      }
      // Parts that share one float32 array (q, k and v's A at TP=1 come from one lora_A each, but the gate/up
      // roles of one path do not): each distinct array is converted once, so sharing is kept.
      const sharedF32 = new Set(f32.parts.map((p) => p.a)).size, sharedHalf = new Set(half.parts.map((p) => p.a)).size;
      assert.equal(sharedHalf, sharedF32);
    });
  }
}

test('the host-RAM tier keeps only a 16-bit plan (half the float32 tensors\' bytes), and the adapter with a float32 one', () => {
  const adapter = loadAdapterDir(dirA!);
  const layout = { spec, partition: partitionFor(spec, 0, 1) };
  const f32 = planAdapter(layout, adapter, dirA!, 64);
  const half = planAdapter({ ...layout, loraStorage: 'bfloat16' }, adapter, dirA!, 64);
  const cache = new HostAdapterCache(1 << 30);
  assert.equal(cache.put('f32', adapter, f32), adapterBytes(adapter), 'TP=1 float32 parts are views of the tensors');
  assert.equal(cache.get('f32')?.adapter, adapter);
  const bytes = cache.put('half', adapter, half);
  assert.equal(bytes, half.bytes);
  assert.equal(cachedBytes(adapter, half), half.bytes);
  assert.ok(bytes * 2 <= adapterBytes(adapter) + 64, `${bytes} bytes for ${adapterBytes(adapter)} bytes of float32 tensors`);
  const hit = cache.get('half');
  assert.equal(hit?.adapter, undefined, 'no float32 tensors kept beside a 16-bit plan');
  assert.equal(hit?.plan, half);
  assert.equal(cache.usedBytes, adapterBytes(adapter) + half.bytes);
});

test('plans are 16-bit for a 16-bit CUDA model only', () => {
  const plan = (device: 'cpu' | 'cuda', dtype: 'float32' | 'bfloat16' | 'float16') => ({ plan: { device, dtype } }) as never;
  assert.equal(loraStorageOf(plan('cuda', 'bfloat16')), 'bfloat16');
  assert.equal(loraStorageOf(plan('cuda', 'float16')), 'float16');
  assert.equal(loraStorageOf(plan('cuda', 'float32')), 'float32');
  assert.equal(loraStorageOf(plan('cpu', 'float32')), 'float32');
  assert.equal(loraStorageOf(plan('cuda', 'bfloat16'), { WEFT_ADAPTER_PLAN_FLOAT32: '1' }), 'float32', 'the way back');
});

test('the CPU backend refuses 16-bit parts with the reason; malformed 16-bit parts are refused too', () => {
  const m = tinyModel();
  try {
    const [p] = tinyAdapter(3);
    const half = { ...p!, a: encode(p!.a as Float32Array, true), b: encode(p!.b as Float32Array, true) };
    assert.throws(() => m.stageAdapterSync([{ ...half, storage: 'bfloat16' }]), /CPU backend takes float32 parts, got bfloat16/);
    assert.throws(() => m.stageAdapterSync([half]), /16-bit parts need storage 'bfloat16' or 'float16'/);
    assert.throws(() => m.stageAdapterSync([{ ...half, b: p!.b }]), /must both be Float32Array or both Uint16Array/);
    assert.equal(m.stageAdapterSync([p!]).bytes, 4 * (p!.a.length + p!.b.length), 'float32 parts still stage');
  } finally {
    m.dispose();
  }
});

test('a merge whose parts the host tier kept only as 16-bit plans reads their files again; a cached merge needs no parts', async () => {
  const c = loadGoldenCase('llama');
  const engine = LocalEngine.open(c.modelDir, { numBlocks: 32, blockSize: 4, adapterSlots: 2 });
  try {
    const [a, b] = c.adapters;
    // What a bf16 GPU shard's tier holds after loading both (this CPU engine plans in float32 itself).
    const cache = (engine as unknown as { hostCache: HostAdapterCache }).hostCache;
    const layout = { spec: engine.model.spec, partition: engine.model.partition, loraStorage: 'bfloat16' as const };
    for (const x of [a!, b!]) {
      const parsed = loadAdapterDir(x.dir);
      cache.put(dirIdentity(x.dir), parsed, planAdapter(layout, parsed, x.dir, 64));
    }
    assert.equal(cache.get(dirIdentity(a!.dir))?.adapter, undefined, 'only the plan is kept');
    const merge = { dirs: [a!.dir, b!.dir], weights: [0.7, 0.3], strategy: 'cat' as const,
      majoritySignMethod: 'total' as const, seed: 0 };
    const first = engine.loadAdapter(0, { merge });
    assert.equal(first.fromHost, false, 'the parts were read from disk');
    assert.equal(first.storage, 'float32');
    const again = engine.loadAdapter(1, { merge });
    assert.equal(again.fromHost, true, 'the merged adapter came from the tier');
    assert.equal(cache.get(dirIdentity(a!.dir))?.plan?.storage, 'bfloat16', 'the parts\' entries are left as they were');
    const tokens = c.sequences[0]!;
    const [x, y] = await engine.scoreBatch([{ tokens, adapterSlot: 0 }, { tokens, adapterSlot: 1 }]);
    assert.deepEqual(x, y, 'both slots hold the same merge');
  } finally {
    engine.dispose();
  }
});
