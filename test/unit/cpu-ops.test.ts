// Every CPU op of the native addon against the naive float64 references in test/helpers/reference-ops.ts:
// seeded random inputs over odd shapes, batch invariance (bit for bit), and argument errors (a thrown Error that
// names the argument, never a crash of the process).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpuOps } from '../../kernels/index.js';
import { Rng, refGelu, refGemm, refLayerNorm, refLora, refRmsNorm, refRope, refSiluMul, erf } from '../helpers/reference-ops.js';
import { assertArgError, assertClose, assertSame, rows } from '../helpers/cpu-op-checks.js';

// ---------------------------------------------------------------------------------------------------
// gemm

const GEMM_SHAPES: [tokens: number, inDim: number, outDim: number][] = [
  [1, 1, 1], [1, 7, 5], [3, 33, 64], [2, 130, 65], [17, 8, 130], [40, 33, 7], [1, 130, 130], [5, 1, 33], [64, 16, 129],
];

test('gemm matches x W^T (+ bias) over odd shapes', () => {
  const rng = new Rng(1);
  for (const [T, inDim, outDim] of GEMM_SHAPES) {
    const x = rng.f32(T * inDim), w = rng.f32(outDim * inDim), bias = rng.f32(outDim);
    for (const b of [null, bias]) {
      const got = cpuOps.gemm(x, T, inDim, w, outDim, b);
      assert.ok(got instanceof Float32Array);
      assertClose(got, refGemm(x, T, inDim, w, outDim, b), `gemm T=${T} in=${inDim} out=${outDim} bias=${!!b}`,
        1e-5, 2e-6 * Math.sqrt(inDim));
    }
  }
});

test('gemm: a row gives the same bits alone and in any batch', () => {
  const rng = new Rng(2);
  for (const [inDim, outDim] of [[7, 5], [33, 130], [130, 65], [1, 1]] as const) {
    const T = 23;
    const x = rng.f32(T * inDim), w = rng.f32(outDim * inDim), bias = rng.f32(outDim);
    const batch = cpuOps.gemm(x, T, inDim, w, outDim, bias);
    for (const t of [0, 1, 11, 22]) {
      const alone = cpuOps.gemm(rows(x, inDim, t, 1), 1, inDim, w, outDim, bias);
      assertSame(alone, rows(batch, outDim, t, 1), `gemm row ${t} alone vs batch (in=${inDim})`);
    }
    // The same rows in another order and another batch size.
    const perm = rng.shuffle(Array.from({ length: T }, (_, i) => i)).slice(0, 9);
    const xp = new Float32Array(perm.length * inDim);
    perm.forEach((t, i) => xp.set(rows(x, inDim, t, 1), i * inDim));
    const yp = cpuOps.gemm(xp, perm.length, inDim, w, outDim, bias);
    perm.forEach((t, i) => assertSame(rows(yp, outDim, i, 1), rows(batch, outDim, t, 1), `gemm permuted row ${t}`));
  }
});

test('gemm: wrong shapes and types throw an Error naming the argument', () => {
  const x = new Float32Array(6), w = new Float32Array(12);
  assertArgError(() => cpuOps.gemm(new Float32Array(5), 2, 3, w, 4, null), /\bx\b/, 'x too short');
  assertArgError(() => cpuOps.gemm(x, 2, 3, new Float32Array(11), 4, null), /\bw\b/, 'w too short');
  assertArgError(() => cpuOps.gemm(x, 2, 3, w, 4, new Float32Array(3)), /bias/, 'bias wrong length');
  assertArgError(() => cpuOps.gemm(new Float64Array(6) as unknown as Float32Array, 2, 3, w, 4, null), /\bx\b.*Float32Array/, 'x Float64Array');
  assertArgError(() => cpuOps.gemm(x, 2, 3, Array.from(w) as unknown as Float32Array, 4, null), /\bw\b.*Float32Array/, 'w number[]');
  assertArgError(() => cpuOps.gemm(x, 2, 3, w, 4, new Int32Array(4) as unknown as Float32Array), /bias.*Float32Array/, 'bias Int32Array');
  assertArgError(() => cpuOps.gemm(x, '2' as unknown as number, 3, w, 4, null), /tokens/, 'tokens string');
  assertArgError(() => cpuOps.gemm(x, 2, 3, w, undefined as unknown as number, null), /out/, 'out missing');
});

// ---------------------------------------------------------------------------------------------------
// Norms

const HIDDENS = [1, 7, 33, 130];

test('rmsNorm matches x / sqrt(mean(x^2) + eps) * w', () => {
  const rng = new Rng(3);
  for (const H of HIDDENS) {
    for (const T of [1, 9]) {
      for (const eps of [1e-5, 1e-6]) {
        const x = rng.f32(T * H, -3, 3), w = rng.f32(H, -2, 2);
        x.fill(0, 0, H); // a zero row: output 0, no NaN
        assertClose(cpuOps.rmsNorm(x, w, eps), refRmsNorm(x, w, eps), `rmsNorm H=${H} T=${T} eps=${eps}`, 1e-5, 1e-6);
      }
    }
  }
});

test('layerNorm matches (x - mean) / sqrt(var + eps) * w + b', () => {
  const rng = new Rng(4);
  for (const H of HIDDENS) {
    for (const T of [1, 9]) {
      for (const eps of [1e-5, 1e-12]) {
        const x = rng.f32(T * H, -3, 3), w = rng.f32(H, -2, 2), b = rng.f32(H);
        for (let i = 0; i < H; i++) x[H + i] = x[H + i]! + 100; // a row with a large mean (only used when T > 1)
        assertClose(cpuOps.layerNorm(x, w, b, eps), refLayerNorm(x, w, b, eps), `layerNorm H=${H} T=${T} eps=${eps}`,
          1e-5, 2e-6);
      }
    }
  }
});

test('norms: a row gives the same bits alone and in any batch', () => {
  const rng = new Rng(5);
  for (const H of HIDDENS) {
    const T = 12;
    const x = rng.f32(T * H, -3, 3), w = rng.f32(H), b = rng.f32(H);
    const rb = cpuOps.rmsNorm(x, w, 1e-6), lb = cpuOps.layerNorm(x, w, b, 1e-5);
    for (const t of [0, 5, 11]) {
      assertSame(cpuOps.rmsNorm(rows(x, H, t, 1), w, 1e-6), rows(rb, H, t, 1), `rmsNorm row ${t} H=${H}`);
      assertSame(cpuOps.layerNorm(rows(x, H, t, 1), w, b, 1e-5), rows(lb, H, t, 1), `layerNorm row ${t} H=${H}`);
      assertSame(cpuOps.rmsNorm(rows(x, H, t, Math.min(3, T - t)), w, 1e-6), rows(rb, H, t, Math.min(3, T - t)),
        `rmsNorm rows ${t}.. H=${H}`);
    }
  }
});

test('norms: wrong shapes and types throw an Error naming the argument', () => {
  assertArgError(() => cpuOps.rmsNorm(new Float32Array(7), new Float32Array(3), 1e-6), /\bx\b/, 'rms x not [T, H]');
  assertArgError(() => cpuOps.rmsNorm(new Float32Array(3), new Float32Array(0), 1e-6), /hidden|weight|\bx\b/, 'rms empty weight');
  assertArgError(() => cpuOps.rmsNorm(new Float32Array(3), new Int32Array(3) as unknown as Float32Array, 1e-6), /weight.*Float32Array/, 'rms weight Int32Array');
  assertArgError(() => cpuOps.rmsNorm([1, 2, 3] as unknown as Float32Array, new Float32Array(3), 1e-6), /\bx\b.*Float32Array/, 'rms x number[]');
  assertArgError(() => cpuOps.layerNorm(new Float32Array(6), new Float32Array(3), new Float32Array(2), 1e-5), /bias/, 'ln bias length');
  assertArgError(() => cpuOps.layerNorm(new Float32Array(7), new Float32Array(3), new Float32Array(3), 1e-5), /\bx\b/, 'ln x not [T, H]');
  assertArgError(() => cpuOps.layerNorm(new Float32Array(6), new Float32Array(3), null as unknown as Float32Array, 1e-5), /bias.*Float32Array/, 'ln bias null');
});

// ---------------------------------------------------------------------------------------------------
// rope

function invFreqFor(rotaryDim: number, base = 10000): Float32Array {
  const f = new Float32Array(rotaryDim / 2);
  for (let i = 0; i < f.length; i++) f[i] = 1 / base ** ((2 * i) / rotaryDim);
  return f;
}

test('rope rotates half of the first rotaryDim dims of every head', () => {
  const rng = new Rng(6);
  const cases: [heads: number, headDim: number, rotaryDim: number, factor: number][] = [
    [1, 2, 2, 1], [3, 6, 6, 1], [2, 13, 12, 1], [4, 10, 4, 1], [5, 20, 20, 1.25], [2, 7, 0, 1], [1, 130, 64, 0.5],
  ];
  for (const [heads, headDim, rotaryDim, factor] of cases) {
    for (const T of [1, 6]) {
      const x = rng.f32(T * heads * headDim);
      const pos = Int32Array.from({ length: T }, (_, i) => [0, 1, 17, 4095, 32767, 100_000][i % 6]! + (T === 1 ? 3 : 0));
      const inv = invFreqFor(rotaryDim);
      const got = cpuOps.rope(x, heads, headDim, rotaryDim, pos, inv, factor);
      const want = refRope(x, heads, headDim, rotaryDim, pos, inv, factor);
      assertClose(got, want, `rope heads=${heads} hd=${headDim} rd=${rotaryDim} T=${T}`, 1e-5, 1e-6);
      // Dims past rotaryDim are copied untouched, bit for bit; the input is not modified.
      for (let r = 0; r < T * heads; r++) {
        for (let d = rotaryDim; d < headDim; d++) assert.equal(got[r * headDim + d], x[r * headDim + d]);
      }
    }
  }
  // Position 0 with factor 1 is the identity on every dim.
  const x = rng.f32(2 * 3 * 8);
  assertSame(cpuOps.rope(x, 3, 8, 8, new Int32Array([0, 0]), invFreqFor(8), 1), x, 'rope at position 0');
});

test('rope: a token gives the same bits alone and in a batch', () => {
  const rng = new Rng(7);
  const heads = 3, hd = 10, rd = 8, T = 7;
  const x = rng.f32(T * heads * hd), inv = invFreqFor(rd);
  const pos = Int32Array.from({ length: T }, () => rng.int(0, 5000));
  const batch = cpuOps.rope(x, heads, hd, rd, pos, inv, 1);
  for (let t = 0; t < T; t++) {
    const alone = cpuOps.rope(rows(x, heads * hd, t, 1), heads, hd, rd, pos.slice(t, t + 1), inv, 1);
    assertSame(alone, rows(batch, heads * hd, t, 1), `rope token ${t}`);
  }
});

test('rope: wrong shapes and types throw an Error naming the argument', () => {
  const x = new Float32Array(2 * 8), pos = new Int32Array([0, 1]), inv = invFreqFor(8);
  assertArgError(() => cpuOps.rope(new Float32Array(15), 1, 8, 8, pos, inv, 1), /\bx\b/, 'x wrong length');
  assertArgError(() => cpuOps.rope(x, 1, 8, 8, pos, invFreqFor(6), 1), /invFreq/, 'invFreq wrong length');
  assertArgError(() => cpuOps.rope(x, 1, 8, 7, pos, new Float32Array(3), 1), /rotaryDim|invFreq/, 'odd rotaryDim');
  assertArgError(() => cpuOps.rope(new Float32Array(2 * 4), 1, 4, 8, pos, inv, 1), /rotaryDim|invFreq/, 'rotaryDim > headDim');
  assertArgError(() => cpuOps.rope(x, 1, 8, 8, new Float32Array([0, 1]) as unknown as Int32Array, inv, 1), /positions.*Int32Array/, 'positions Float32Array');
  assertArgError(() => cpuOps.rope(x, 1, 8, 8, [0, 1] as unknown as Int32Array, inv, 1), /positions/, 'positions number[]');
  assertArgError(() => cpuOps.rope(x, null as unknown as number, 8, 8, pos, inv, 1), /heads/, 'heads null');
});

// ---------------------------------------------------------------------------------------------------
// Activations

test('siluMul matches silu(gate) * up', () => {
  const rng = new Rng(8);
  for (const n of [1, 7, 33, 130, 1000]) {
    const g = rng.f32(n, -12, 12), u = rng.f32(n, -3, 3);
    if (n > 4) g.set([0, -90, 90, 1e-4]);
    assertClose(cpuOps.siluMul(g, u), refSiluMul(g, u), `siluMul n=${n}`, 1e-5, 1e-6);
  }
});

test('erf reference is accurate (sanity of the helper)', () => {
  const known: [number, number][] = [
    [0, 0], [0.5, 0.5204998778130465], [1, 0.8427007929497149], [2, 0.9953222650189527], [2.9, 0.9999589021219005],
    [3, 0.9999779095030014], [3.5, 0.9999992569016276], [-1, -0.8427007929497149], [6.5, 1],
  ];
  for (const [x, e] of known) assert.ok(Math.abs(erf(x) - e) < 1e-13, `erf(${x}) = ${erf(x)}, want ${e}`);
});

test('gelu (tanh and erf) matches the formulas', () => {
  const rng = new Rng(9);
  for (const kind of ['tanh', 'erf'] as const) {
    for (const n of [1, 7, 33, 130, 1000]) {
      const x = rng.f32(n, -8, 8);
      if (n > 6) x.set([0, -0.001, 0.001, -20, 20, 3]);
      const got = cpuOps.gelu(x, kind);
      assertClose(got, refGelu(x, kind), `gelu ${kind} n=${n}`, 1e-5, 2e-6);
    }
  }
  // The two flavours differ measurably (the kind argument is honoured).
  const x = new Float32Array([1.5]);
  assert.ok(Math.abs(cpuOps.gelu(x, 'tanh')[0]! - cpuOps.gelu(x, 'erf')[0]!) > 1e-5);
});

test('activations: wrong shapes and types throw an Error naming the argument', () => {
  assertArgError(() => cpuOps.siluMul(new Float32Array(3), new Float32Array(4)), /gate|up/, 'siluMul length mismatch');
  assertArgError(() => cpuOps.siluMul(new Float64Array(3) as unknown as Float32Array, new Float32Array(3)), /gate.*Float32Array/, 'gate Float64Array');
  assertArgError(() => cpuOps.siluMul(new Float32Array(3), [1, 2, 3] as unknown as Float32Array), /up.*Float32Array/, 'up number[]');
  assertArgError(() => cpuOps.gelu(new Uint8Array(3) as unknown as Float32Array, 'tanh'), /\bx\b.*Float32Array/, 'gelu x Uint8Array');
});

// ---------------------------------------------------------------------------------------------------
// LoRA

test('lora adds scale * B(Ax) into y at outOffset and leaves every other column alone', () => {
  const rng = new Rng(14);
  const cases: [T: number, inDim: number, rank: number, outLen: number, left: number, right: number][] = [
    [1, 1, 1, 1, 0, 0], [3, 7, 2, 13, 5, 2], [1, 33, 8, 130, 0, 17], [9, 130, 64, 33, 33, 0], [17, 16, 3, 7, 64, 65],
    [2, 33, 64, 1, 1, 1], [5, 7, 16, 130, 130, 130],
  ];
  for (const [T, inDim, rank, outLen, left, right] of cases) {
    const stride = left + outLen + right;
    const x = rng.f32(T * inDim), a = rng.f32(rank * inDim), b = rng.f32(outLen * rank), y = rng.f32(T * stride, -5, 5);
    for (const scale of [2, 0.5, -1.5, 0]) {
      const got = cpuOps.lora(x, a, b, scale, y, stride, left, rank);
      const want = refLora(x, a, b, scale, y, stride, left, rank);
      assertClose(got, want, `lora T=${T} in=${inDim} r=${rank} out=${outLen} off=${left} scale=${scale}`, 1e-5,
        2e-6 * Math.sqrt(inDim * rank));
      for (let t = 0; t < T; t++) {
        for (let c = 0; c < stride; c++) {
          if (c >= left && c < left + outLen && scale !== 0) continue;
          assert.equal(got[t * stride + c], y[t * stride + c], `column ${c} of row ${t} must be untouched (scale ${scale})`);
        }
      }
    }
    assert.notEqual(cpuOps.lora(x, a, b, 1, y, stride, left, rank), y, 'returns a new array');
  }
});

test('lora: a row gives the same bits alone and in a batch', () => {
  const rng = new Rng(15);
  for (const [inDim, rank, outLen] of [[7, 1, 5], [33, 8, 130], [130, 64, 17]] as const) {
    const T = 11, stride = outLen + 9, off = 4;
    const x = rng.f32(T * inDim), a = rng.f32(rank * inDim), b = rng.f32(outLen * rank), y = rng.f32(T * stride);
    const batch = cpuOps.lora(x, a, b, 0.75, y, stride, off, rank);
    for (const t of [0, 4, 10]) {
      const alone = cpuOps.lora(rows(x, inDim, t, 1), a, b, 0.75, rows(y, stride, t, 1), stride, off, rank);
      assertSame(alone, rows(batch, stride, t, 1), `lora row ${t} (in=${inDim}, rank=${rank})`);
    }
  }
});

test('lora: wrong shapes and types throw an Error naming the argument', () => {
  const x = new Float32Array(2 * 4), a = new Float32Array(3 * 4), b = new Float32Array(5 * 3), y = new Float32Array(2 * 8);
  assert.doesNotThrow(() => cpuOps.lora(x, a, b, 1, y, 8, 3, 3), 'the valid baseline');
  assertArgError(() => cpuOps.lora(x, new Float32Array(13), b, 1, y, 8, 3, 3), /rank|\bA\b/, 'A not divisible by rank');
  assertArgError(() => cpuOps.lora(x, a, new Float32Array(14), 1, y, 8, 3, 3), /rank|\bB\b/, 'B not divisible by rank');
  assertArgError(() => cpuOps.lora(x, a, b, 1, y, 8, 3, 0), /rank/, 'rank 0');
  assertArgError(() => cpuOps.lora(new Float32Array(7), a, b, 1, y, 8, 3, 3), /\bx\b/, 'x not [T, in]');
  assertArgError(() => cpuOps.lora(x, a, b, 1, new Float32Array(15), 8, 3, 3), /\by\b/, 'y wrong length');
  assertArgError(() => cpuOps.lora(x, a, b, 1, y, 8, 4, 3), /outOffset/, 'outOffset + outLen past yStride');
  assertArgError(() => cpuOps.lora(x, a, b, 1, y, 8, -1, 3), /outOffset/, 'negative outOffset');
  assertArgError(() => cpuOps.lora(x, new Float64Array(12) as unknown as Float32Array, b, 1, y, 8, 3, 3), /\bA\b.*Float32Array/, 'A Float64Array');
  assertArgError(() => cpuOps.lora(x, a, b, 1, Array.from(y) as unknown as Float32Array, 8, 3, 3), /\by\b.*Float32Array/, 'y number[]');
  assertArgError(() => cpuOps.lora(x, a, b, 1, y, 8, 3, 'three' as unknown as number), /rank/, 'rank string');
});
