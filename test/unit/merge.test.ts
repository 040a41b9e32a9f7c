import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  loadAdapterDir, loraScaleFor, parseLoraConfig, parseLoraTensorKey, type LoadedAdapter,
} from '../../shard/adapters/index.js';
import { MergeError, mergeAdapters, mergeSpecKey, type MergeSpec } from '../../shard/adapters/merge.js';
import { magnitudePrune, randomPrune, seededUint32 } from '../../shard/adapters/merge-strategies.js';
import { writeSafetensors } from '../../shard/formats/index.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const golden = (name: string): LoadedAdapter => loadAdapterDir(join(ROOT, 'test/fixtures/golden/llama/adapters', name));
const ALL_R8 = golden('all_r8');
const QV_R4 = golden('qv_r4');
const RSLORA_R16 = golden('rslora_r16');

const spec = (over: Partial<MergeSpec>): MergeSpec =>
  ({ weights: [1, 1], strategy: 'linear', density: null, majoritySignMethod: 'total', seed: 0, ...over });

type Pair = { A: { shape: number[]; data: Float32Array }; B: { shape: number[]; data: Float32Array } };
function modules(a: LoadedAdapter): Map<string, Pair> {
  const out = new Map<string, Partial<Pair>>();
  for (const [key, t] of a.tensors) {
    const { modulePath, kind } = parseLoraTensorKey(key);
    out.set(modulePath, { ...out.get(modulePath), [kind]: t });
  }
  return out as Map<string, Pair>;
}

/** ΔW = s·B·A of one module, [out, in] in float64. */
function delta(a: LoadedAdapter, path: string): Float64Array {
  const { A, B } = modules(a).get(path)!;
  const [r, inDim] = A.shape as [number, number];
  const outDim = B.shape[0]!;
  const { scale } = loraScaleFor(a.config, path);
  const d = new Float64Array(outDim * inDim);
  for (let o = 0; o < outDim; o++) {
    for (let k = 0; k < r; k++) {
      const bv = scale * B.data[o * r + k]!;
      for (let i = 0; i < inDim; i++) d[o * inDim + i] += bv * A.data[k * inDim + i]!;
    }
  }
  return d;
}

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, rel: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let maxAbs = 0, maxErr = 0;
  for (let i = 0; i < want.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(want[i]!));
    maxErr = Math.max(maxErr, Math.abs(got[i]! - want[i]!));
  }
  assert.ok(maxAbs > 0, `${what}: reference is all zeros`);
  assert.ok(maxErr <= rel * maxAbs, `${what}: max error ${maxErr} > ${rel} × ${maxAbs}`);
}

/** Deterministic test data. */
function filler(seed: number): () => number {
  const next = seededUint32(`test ${seed}`);
  return () => next() / 2 ** 32 - 0.5;
}

/** A synthetic adapter: module path → [in, out], ranks from r (or rank_pattern). */
function synthetic(cfg: Record<string, unknown>, mods: Record<string, [number, number]>, seed: number,
  fill?: (kind: 'A' | 'B', j: number) => number): LoadedAdapter {
  const config = parseLoraConfig({ peft_type: 'LORA', target_modules: ['q_proj'], ...cfg }, 'synthetic');
  const rnd = filler(seed);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [path, [inDim, outDim]] of Object.entries(mods)) {
    const { rank } = loraScaleFor(config, path);
    const make = (kind: 'A' | 'B', n: number) => Float32Array.from({ length: n }, (_, j) => fill ? fill(kind, j) : rnd());
    tensors.set(`base_model.model.${path}.lora_A.weight`, { shape: [rank, inDim], data: make('A', rank * inDim) });
    tensors.set(`base_model.model.${path}.lora_B.weight`, { shape: [outDim, rank], data: make('B', outDim * rank) });
  }
  return { config, tensors };
}

const Q = 'model.layers.0.self_attn.q_proj';
const UP = 'model.layers.0.mlp.up_proj';

test('cat on the golden adapters: every module delta is Σ wᵢ·sᵢ·Bᵢ·Aᵢ (rsLoRA and partial modules included)', () => {
  const sources = [ALL_R8, QV_R4, RSLORA_R16];
  const weights = [0.5, -1.25, 2];
  const merged = mergeAdapters(sources, spec({ weights, strategy: 'cat' }));
  const paths = new Set(sources.flatMap((a) => [...modules(a).keys()]));
  assert.equal(paths.size, 14); // 2 layers × 7 modules
  assert.deepEqual(new Set(modules(merged).keys()), paths);
  for (const path of paths) {
    const terms = sources.map((a, i) => ({ a, w: weights[i]! })).filter(({ a }) => modules(a).has(path));
    const want = new Float64Array(delta(terms[0]!.a, path).length);
    for (const { a, w } of terms) delta(a, path).forEach((v, j) => { want[j] += w * v; });
    assertClose(delta(merged, path), want, 1e-6, path);
    const { rank, scale } = loraScaleFor(merged.config, path);
    assert.equal(scale, 1, `${path}: merged scale`);
    assert.equal(rank, terms.reduce((n, { a }) => n + modules(a).get(path)!.A.shape[0]!, 0), `${path}: merged rank`);
  }
  // gate/up/down come from all_r8 alone; q/v from all three (8 + 4 + 16); k/o from two (8 + 16).
  assert.equal(loraScaleFor(merged.config, 'model.layers.0.mlp.gate_proj').rank, 8);
  assert.equal(loraScaleFor(merged.config, Q).rank, 28);
  assert.equal(loraScaleFor(merged.config, 'model.layers.0.self_attn.k_proj').rank, 24);
  assert.equal(merged.config.useRslora, false);
});

test('the merged adapter survives a round trip through adapter_config.json + safetensors', () => {
  const merged = mergeAdapters([ALL_R8, QV_R4, RSLORA_R16], spec({ weights: [1, 2, 3], strategy: 'cat' }));
  const dir = mkdtempSync(join(tmpdir(), 'weft-merge-'));
  try {
    const c = merged.config;
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({
      peft_type: 'LORA', r: c.r, lora_alpha: c.loraAlpha, use_rslora: c.useRslora, rank_pattern: c.rankPattern,
      alpha_pattern: c.alphaPattern, target_modules: c.targetModules, bias: 'none',
    }));
    writeSafetensors(join(dir, 'adapter_model.safetensors'),
      Object.fromEntries([...merged.tensors].map(([k, t]) => [k, { dtype: 'F32' as const, ...t }])));
    const back = loadAdapterDir(dir); // checks every module's rank against the config
    for (const path of modules(merged).keys()) {
      assert.deepEqual(loraScaleFor(back.config, path), loraScaleFor(merged.config, path), path);
      assert.deepEqual(delta(back, path), delta(merged, path), path);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('linear with equal ranks: A = Σ wᵢAᵢ, B = Σ wᵢsᵢBᵢ (scales folded into B), partial modules from their owner', () => {
  const a0 = synthetic({ r: 4, lora_alpha: 16 }, { [Q]: [12, 10], [UP]: [12, 20] }, 1); // s = 4
  const a1 = synthetic({ r: 4, lora_alpha: 6, use_rslora: true }, { [Q]: [12, 10] }, 2); // s = 6 / √4 = 3
  const w = [0.75, -2];
  const merged = mergeAdapters([a0, a1], spec({ weights: w, strategy: 'linear' }));
  const m = modules(merged), m0 = modules(a0), m1 = modules(a1);
  const q0 = m0.get(Q)!, q1 = m1.get(Q)!, up0 = m0.get(UP)!;
  assertClose(m.get(Q)!.A.data, q0.A.data.map((v, j) => w[0]! * v + w[1]! * q1.A.data[j]!), 1e-6, 'q A');
  assertClose(m.get(Q)!.B.data, q0.B.data.map((v, j) => w[0]! * 4 * v + w[1]! * 3 * q1.B.data[j]!), 1e-6, 'q B');
  assertClose(m.get(UP)!.A.data, up0.A.data.map((v) => w[0]! * v), 1e-6, 'up A');
  assertClose(m.get(UP)!.B.data, up0.B.data.map((v) => w[0]! * 4 * v), 1e-6, 'up B');
  assert.deepEqual(m.get(Q)!.A.shape, [4, 12]);
  assert.deepEqual(m.get(UP)!.B.shape, [20, 4]);
  assert.equal(loraScaleFor(merged.config, Q).scale, 1);
  assert.equal(loraScaleFor(merged.config, UP).scale, 1);
});

test('element-wise strategies refuse unequal ranks, naming the modules and pointing at cat', () => {
  for (const strategy of ['linear', 'ties', 'dare_linear', 'dare_ties'] as const) {
    assert.throws(() => mergeAdapters([ALL_R8, QV_R4], spec({ strategy, density: 0.5 })), (e: unknown) => {
      assert.ok(e instanceof MergeError, String(e));
      assert.match(e.message, new RegExp(`strategy ${strategy} .*same rank`));
      assert.match(e.message, /'model\.layers\.0\.self_attn\.q_proj' \(ranks 8, 4\)/);
      assert.match(e.message, /'model\.layers\.0\.self_attn\.v_proj' \(ranks 8, 4\)/);
      assert.match(e.message, /strategy cat/);
      return true;
    });
  }
  // all_r8's k/o (r 8) and rslora_r16's (r 16) also differ, and q/v across all three.
  assert.throws(() => mergeAdapters([ALL_R8, RSLORA_R16], spec({})), /k_proj' \(ranks 8, 16\)/);
});

const PAIR = [
  synthetic({ r: 4, lora_alpha: 8 }, { [Q]: [32, 48], [UP]: [32, 16] }, 11),
  synthetic({ r: 4, lora_alpha: 4 }, { [Q]: [32, 48], [UP]: [32, 16] }, 12),
];
const tensorsOf = (a: LoadedAdapter) => [...a.tensors].map(([k, t]) => [k, t.shape, [...t.data]]);

test('dare_* are reproducible with the same seed and change with another; ties does not depend on the seed', () => {
  for (const strategy of ['dare_linear', 'dare_ties', 'ties'] as const) {
    const run = (seed: number) => tensorsOf(mergeAdapters(PAIR, spec({ weights: [0.6, 0.4], strategy, density: 0.5, seed })));
    assert.deepEqual(run(7), run(7), `${strategy}: same seed`);
    if (strategy === 'ties') assert.deepEqual(run(7), run(8), 'ties prunes by magnitude, no randomness');
    else assert.notDeepEqual(run(7), run(8), `${strategy}: another seed`);
  }
});

test('density 1 prunes nothing: dare_linear equals linear exactly', () => {
  const lin = mergeAdapters(PAIR, spec({ weights: [0.6, 0.4] }));
  const dare = mergeAdapters(PAIR, spec({ weights: [0.6, 0.4], strategy: 'dare_linear', density: 1, seed: 3 }));
  assert.deepEqual(tensorsOf(dare), tensorsOf(lin));
});

test('DARE rescales kept entries by 1/density, so every entry keeps its expected value', () => {
  const n = 200_000;
  const pruned = randomPrune(new Float32Array(n).fill(2), 0.25, seededUint32('dare'));
  let kept = 0, sum = 0;
  for (const v of pruned) {
    if (v !== 0) {
      kept++;
      assert.equal(v, 8);
    }
    sum += v;
  }
  assert.ok(Math.abs(kept / n - 0.25) < 0.01, `kept fraction ${kept / n}`);
  assert.ok(Math.abs(sum / n - 2) < 0.05, `mean ${sum / n}`);

  // Through mergeAdapters: A filled with 1, weights ½ + ½ → expected merged value 1 per entry.
  const ones = [1, 2].map((s) => synthetic({ r: 4, lora_alpha: 4 }, { [Q]: [5000, 8] }, s, () => 1));
  const merged = mergeAdapters(ones, spec({ weights: [0.5, 0.5], strategy: 'dare_linear', density: 0.3, seed: 42 }));
  const a = modules(merged).get(Q)!.A.data;
  const mean = a.reduce((s, v) => s + v, 0) / a.length;
  assert.ok(Math.abs(mean - 1) < 0.03, `dare_linear mean ${mean} (LoRAX without rescale would give 0.3)`);
  const allowed = new Set([0, Math.fround(0.5 / 0.3), Math.fround(1 / 0.3)]);
  assert.ok(a.every((v) => allowed.has(v)), 'each entry is 0, ½/0.3 or 1/0.3');
});

test('ties and dare_* require a density in (0, 1]', () => {
  for (const strategy of ['ties', 'dare_linear', 'dare_ties'] as const) {
    assert.throws(() => mergeAdapters(PAIR, spec({ strategy, density: null })),
      (e: unknown) => e instanceof MergeError && e.message.startsWith(`density is required for ${strategy}`));
    for (const density of [0, 1.5, -0.1, Number.NaN, Infinity]) {
      assert.throws(() => mergeAdapters(PAIR, spec({ strategy, density })),
        (e: unknown) => e instanceof MergeError && /density is .*\(0, 1\]/.test(e.message), `${strategy} density ${density}`);
    }
    assert.doesNotThrow(() => mergeAdapters(PAIR, spec({ strategy, density: 1 })));
  }
  assert.doesNotThrow(() => mergeAdapters(PAIR, spec({ strategy: 'linear', density: null })));
  assert.doesNotThrow(() => mergeAdapters(PAIR, spec({ strategy: 'cat', density: null })));
  assert.throws(() => mergeAdapters(PAIR, spec({ strategy: 'cat', density: 0 })), MergeError);
});

test('majority sign methods on a hand-made example (elected before weighting; ties at 0 elect +)', () => {
  const rows = [[3, -1, 2, 0], [-1, -1, -5, 0], [-1, 2, 1, 0]];
  const adapters = rows.map((row, i) =>
    synthetic({ r: 1, lora_alpha: 1 }, { [Q]: [4, 1] }, i, (kind, j) => kind === 'A' ? row[j]! : 1));
  const merge = (method: 'total' | 'frequency') => mergeAdapters(adapters,
    spec({ weights: [1, 2, 1], strategy: 'ties', density: 1, majoritySignMethod: method }));
  // total: column sums 1, 0, -2, 0 → +, +, −, +.  frequency: sign sums -1, -1, 1, 0 → −, −, +, +.
  assert.deepEqual([...modules(merge('total')).get(Q)!.A.data], [3, 2, -10, 0]);
  assert.deepEqual([...modules(merge('frequency')).get(Q)!.A.data], [-1.5, -1.5, 1.5, 0]);
  assert.deepEqual([...modules(merge('total')).get(Q)!.B.data], [Math.fround(4 / 3)]); // all agree: (1+2+1)/3
});

test('magnitude pruning keeps the floor(density·n) largest, lower index first at a tie', () => {
  const t = Float32Array.from([1, -2, 2, 0.5]);
  assert.deepEqual([...magnitudePrune(t, 0.5)], [0, -2, 2, 0]);
  assert.deepEqual([...magnitudePrune(t, 0.25)], [0, -2, 0, 0]);
  assert.deepEqual([...magnitudePrune(t, 0.74)], [0, -2, 2, 0]); // floor(0.74·4 = 2.96) = 2
  // Against a sort-based reference, with many equal magnitudes.
  const rnd = filler(99);
  for (const [n, levels] of [[1000, 7], [4097, 1000], [333, 1]] as const) {
    const x = Float32Array.from({ length: n }, () => Math.round(rnd() * levels) / levels);
    for (const density of [0.01, 0.3, 0.5, 0.77, 0.999]) {
      const k = Math.floor(density * n);
      const keep = new Set([...x.keys()].sort((i, j) => Math.abs(x[j]!) - Math.abs(x[i]!) || i - j).slice(0, k));
      assert.deepEqual(magnitudePrune(x, density), x.map((v, i) => keep.has(i) ? v : 0), `n ${n} density ${density}`);
    }
  }
});

test('invalid merges are refused with MergeError', () => {
  const refused = (f: () => unknown, re: RegExp) =>
    assert.throws(f, (e: unknown) => e instanceof MergeError && re.test(e.message), String(re));
  refused(() => mergeAdapters([ALL_R8], spec({ weights: [1] })), /at least 2 adapters, got 1/);
  refused(() => mergeAdapters([], spec({ weights: [] })), /at least 2 adapters, got 0/);
  refused(() => mergeAdapters(PAIR, spec({ weights: [1] })), /weights has 1 entries for 2 adapters/);
  refused(() => mergeAdapters(PAIR, spec({ weights: [1, Number.NaN] })), /weights\[1\] is NaN/);
  refused(() => mergeAdapters(PAIR, spec({ weights: [Infinity, 1] })), /weights\[0\] is Infinity/);
  refused(() => mergeAdapters(PAIR, spec({ strategy: 'svd' as never })), /unknown merge strategy "svd"/);
  refused(() => mergeAdapters(PAIR, spec({ strategy: 'ties', density: 0.5, majoritySignMethod: 'x' as never })),
    /majority_sign_method/);
  const other = synthetic({ r: 4, lora_alpha: 8 }, { [Q]: [32, 40] }, 5);
  refused(() => mergeAdapters([PAIR[0]!, other], spec({ strategy: 'cat' })),
    /module 'model\.layers\.0\.self_attn\.q_proj' has different shapes in adapter 0 .* and adapter 1/);
});

test('mergeSpecKey: ids in order and every field that can change the tensors', () => {
  const base = spec({ weights: [0.5, 0.5], strategy: 'dare_ties', density: 0.4, seed: 9 });
  const key = mergeSpecKey(['a', 'b'], base);
  assert.equal(key, mergeSpecKey(['a', 'b'], { ...base }));
  assert.notEqual(key, mergeSpecKey(['b', 'a'], base));
  for (const over of [{ weights: [0.5, 0.25] }, { density: 0.5 }, { seed: 10 }, { majoritySignMethod: 'frequency' as const },
    { strategy: 'ties' as const }]) {
    assert.notEqual(key, mergeSpecKey(['a', 'b'], { ...base, ...over }), JSON.stringify(over));
  }
  // Fields a strategy does not use cannot change its tensors, so they do not split the cache.
  const lin = spec({ weights: [1, 2] });
  assert.equal(mergeSpecKey(['a', 'b'], lin), mergeSpecKey(['a', 'b'], { ...lin, density: 0.3, seed: 5, majoritySignMethod: 'frequency' }));
  const ties = spec({ strategy: 'ties', density: 0.3 });
  assert.equal(mergeSpecKey(['a', 'b'], ties), mergeSpecKey(['a', 'b'], { ...ties, seed: 5 }));
  assert.notEqual(mergeSpecKey(['a', 'b'], ties), mergeSpecKey(['a', 'b'], { ...ties, majoritySignMethod: 'frequency' }));
});
