// Every CPU op of the native addon against the naive float64 references in test/helpers/reference-ops.ts:
// seeded random inputs over odd shapes, batch invariance (bit for bit), and argument errors (a thrown Error that
// names the argument, never a crash of the process).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpuOps } from '../../kernels/index.js';
import {
  Rng, refGelu, refGemm, refLayerNorm, refLora, refPagedAttention, refRmsNorm, refRope, refSiluMul, erf, type RefSeq,
} from '../helpers/reference-ops.js';

// ---------------------------------------------------------------------------------------------------
// Helpers.

/** |actual - expected| <= atol + rtol * |expected| element-wise, with the first offending index in the message. */
function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, rtol = 1e-5, atol = 1e-6): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    const err = Math.abs(a - e);
    const tol = atol + rtol * Math.abs(e);
    if (!(err <= tol) && (worst < 0 || err - tol > worstExcess)) {
      worst = i;
      worstExcess = err - tol;
    }
  }
  if (worst >= 0) {
    assert.fail(`${what}: index ${worst}: got ${actual[worst]}, expected ${expected[worst]} ` +
      `(|diff| ${Math.abs(actual[worst]! - expected[worst]!)})`);
  }
}

/** Bit-identical (===) element-wise. */
function assertSame(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) assert.fail(`${what}: index ${i}: ${actual[i]} !== ${expected[i]}`);
  }
}

function rows(a: Float32Array, width: number, from: number, count: number): Float32Array {
  return a.slice(from * width, (from + count) * width);
}

/** Asserts fn throws an Error whose message matches re (the argument's name). */
function assertArgError(fn: () => unknown, re: RegExp, what: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof Error, `${what}: expected an Error, got ${String(e)}`);
    assert.match(e.message, re, `${what}: message should name the argument`);
    return true;
  }, what);
}

const kernelsUrl = new URL('../../kernels/index.js', import.meta.url).href;

/**
 * Runs `(ops) => ...` in a child node process (so a native crash cannot take the test runner down) and returns how
 * it ended: the process's exit status/signal and what the call did (returned, or threw with a message).
 */
function runIsolated(body: string): { status: number | null; signal: string | null; outcome: string; stderr: string } {
  const script = `import { cpuOps } from ${JSON.stringify(kernelsUrl)};\n` +
    `try { const r = (${body})(cpuOps); console.log('RETURNED ' + String(r && r.length)); }\n` +
    `catch (e) { console.log('THREW ' + (e instanceof Error ? 'Error: ' + e.message : String(e))); }\n`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, signal: r.signal, outcome: (r.stdout ?? '').trim(), stderr: (r.stderr ?? '').trim().slice(0, 400) };
}

function assertIsolatedArgError(body: string, re: RegExp): void {
  const r = runIsolated(body);
  assert.equal(r.signal, null, `the process crashed with ${r.signal} instead of throwing (stderr: ${r.stderr})`);
  assert.equal(r.status, 0, `exit status ${r.status} (stderr: ${r.stderr})`);
  assert.match(r.outcome, /^THREW Error: /, `expected a thrown Error, got: ${r.outcome}`);
  assert.match(r.outcome, re);
}

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
// Paged attention

interface AttnSetup {
  q: Float32Array;
  kCache: Float32Array;
  vCache: Float32Array;
  seqs: (RefSeq & { blockTable: Int32Array })[];
  totalRows: number;
}

/**
 * Builds a cache whose sequences own shuffled, non-contiguous blocks (numBlocks leaves spare blocks filled with large
 * values, so a read outside a sequence's table shows), and a q whose rows are laid out in `rowOrder` (not necessarily the
 * order of `specs`), plus `gapRows` rows that belong to no sequence.
 */
function buildAttention(rng: Rng, heads: number, kvHeads: number, headDim: number, blockSize: number,
  specs: { numTokens: number; contextLen: number }[], gapRows = 0): AttnSetup {
  const kvDim = kvHeads * headDim;
  const need = specs.map((s) => Math.ceil(s.contextLen / blockSize));
  const numBlocks = need.reduce((a, b) => a + b, 0) + 3;
  const free = rng.shuffle(Array.from({ length: numBlocks }, (_, i) => i));
  const kCache = rng.f32(numBlocks * blockSize * kvDim, -40, 40);
  const vCache = rng.f32(numBlocks * blockSize * kvDim, 50, 100);
  const seqs: AttnSetup['seqs'] = [];
  const rowOrder = rng.shuffle(specs.map((_, i) => i));
  const starts = new Array<number>(specs.length);
  let row = gapRows;
  for (const i of rowOrder) {
    starts[i] = row;
    row += specs[i]!.numTokens;
  }
  specs.forEach((s, i) => {
    const table = Int32Array.from(free.splice(0, need[i]!));
    // Real data in the slots the sequence uses: keys and values in [-1, 1].
    for (let j = 0; j < s.contextLen; j++) {
      const slot = table[Math.floor(j / blockSize)]! * blockSize + (j % blockSize);
      kCache.set(rng.f32(kvDim), slot * kvDim);
      vCache.set(rng.f32(kvDim), slot * kvDim);
    }
    seqs.push({ tokenStart: starts[i]!, numTokens: s.numTokens, contextLen: s.contextLen, blockTable: table });
  });
  return { q: rng.f32(row * heads * headDim, -2, 2), kCache, vCache, seqs, totalRows: row };
}

const MIXED_SPECS = [
  { numTokens: 9, contextLen: 9 }, // prefill from scratch
  { numTokens: 1, contextLen: 23 }, // decode
  { numTokens: 5, contextLen: 30 }, // chunked prefill continuing a cached prefix
  { numTokens: 1, contextLen: 1 }, // decode of the first token
  { numTokens: 1, contextLen: 17 }, // decode
  { numTokens: 3, contextLen: 3 },
];

test('pagedAttention matches causal softmax attention: prefill + decode rows in one call, MHA/GQA/MQA, block sizes 1/4/16, windows', () => {
  const rng = new Rng(10);
  const headCfgs: [heads: number, kvHeads: number][] = [[4, 4], [6, 2], [5, 1], [1, 1]];
  for (const [heads, kvHeads] of headCfgs) {
    for (const headDim of [5, 12, 20]) {
      for (const blockSize of [1, 4, 16]) {
        for (const window of [0, 1, 3, 1000]) {
          const s = buildAttention(rng, heads, kvHeads, headDim, blockSize, MIXED_SPECS, 2);
          const scale = 1 / Math.sqrt(headDim);
          const got = cpuOps.pagedAttention(s.q, heads, kvHeads, headDim, s.seqs, s.kCache, s.vCache, blockSize, scale, window);
          const want = refPagedAttention(s.q, heads, kvHeads, headDim, s.seqs, s.kCache, s.vCache, blockSize, scale, window);
          assertClose(got, want,
            `attention heads=${heads} kv=${kvHeads} hd=${headDim} bs=${blockSize} window=${window}`, 1e-5, 2e-6);
          // Rows that belong to no sequence come back as zeros.
          for (let i = 0; i < 2 * heads * headDim; i++) assert.equal(got[i], 0);
        }
      }
    }
  }
});

test('pagedAttention: window 1 returns exactly the value at the query position; a window past the context changes nothing', () => {
  const rng = new Rng(11);
  const heads = 4, kvHeads = 2, hd = 6, bs = 4;
  const s = buildAttention(rng, heads, kvHeads, hd, bs, MIXED_SPECS);
  const w1 = cpuOps.pagedAttention(s.q, heads, kvHeads, hd, s.seqs, s.kCache, s.vCache, bs, 0.4, 1);
  for (const seq of s.seqs) {
    for (let i = 0; i < seq.numTokens; i++) {
      const pos = seq.contextLen - seq.numTokens + i;
      const slot = seq.blockTable[Math.floor(pos / bs)]! * bs + (pos % bs);
      for (let h = 0; h < heads; h++) {
        const kvh = Math.floor(h / (heads / kvHeads));
        const got = w1.subarray(((seq.tokenStart + i) * heads + h) * hd, ((seq.tokenStart + i) * heads + h + 1) * hd);
        assertSame(got, s.vCache.subarray(slot * kvHeads * hd + kvh * hd, slot * kvHeads * hd + (kvh + 1) * hd),
          `window 1, row ${seq.tokenStart + i} head ${h}`);
      }
    }
  }
  const maxCtx = Math.max(...s.seqs.map((q) => q.contextLen));
  const full = cpuOps.pagedAttention(s.q, heads, kvHeads, hd, s.seqs, s.kCache, s.vCache, bs, 0.4, 0);
  for (const w of [maxCtx, maxCtx + 1, 1 << 30]) {
    assertSame(cpuOps.pagedAttention(s.q, heads, kvHeads, hd, s.seqs, s.kCache, s.vCache, bs, 0.4, w), full, `window ${w}`);
  }
});

test('pagedAttention: GQA head h reads kv head h / (heads / kvHeads)', () => {
  // One key, so each output head is exactly its kv head's value row; every kv head holds distinct values.
  const heads = 6, kvHeads = 3, hd = 3, bs = 2;
  const kCache = new Float32Array(2 * bs * kvHeads * hd).fill(0.5);
  const vCache = Float32Array.from({ length: 2 * bs * kvHeads * hd }, (_, i) => i + 1);
  const q = Float32Array.from({ length: heads * hd }, (_, i) => (i % 5) - 2);
  const seqs = [{ tokenStart: 0, numTokens: 1, contextLen: 1, blockTable: new Int32Array([1]) }];
  const out = cpuOps.pagedAttention(q, heads, kvHeads, hd, seqs, kCache, vCache, bs, 1, 0);
  const slot = 1 * bs;
  for (let h = 0; h < heads; h++) {
    const kvh = Math.floor(h / 2);
    assertSame(out.subarray(h * hd, (h + 1) * hd),
      vCache.subarray(slot * kvHeads * hd + kvh * hd, slot * kvHeads * hd + (kvh + 1) * hd), `head ${h}`);
  }
});

test('pagedAttention: a row gives the same bits alone, in a batch, and as a decode step of the same position', () => {
  const rng = new Rng(12);
  for (const [heads, kvHeads, hd, bs] of [[4, 4, 5, 4], [6, 2, 12, 1], [5, 1, 20, 16]] as const) {
    for (const window of [0, 3]) {
      const s = buildAttention(rng, heads, kvHeads, hd, bs, MIXED_SPECS, 1);
      const rowW = heads * hd;
      const batch = cpuOps.pagedAttention(s.q, heads, kvHeads, hd, s.seqs, s.kCache, s.vCache, bs, 0.3, window);
      for (const seq of s.seqs) {
        // The sequence alone, its rows at tokenStart 0.
        const alone = cpuOps.pagedAttention(rows(s.q, rowW, seq.tokenStart, seq.numTokens), heads, kvHeads, hd,
          [{ ...seq, tokenStart: 0 }], s.kCache, s.vCache, bs, 0.3, window);
        assertSame(alone, rows(batch, rowW, seq.tokenStart, seq.numTokens), `seq at row ${seq.tokenStart} alone`);
        // Each of its rows as a one-token decode at the same position.
        for (let i = 0; i < seq.numTokens; i++) {
          const pos = seq.contextLen - seq.numTokens + i;
          const dec = cpuOps.pagedAttention(rows(s.q, rowW, seq.tokenStart + i, 1), heads, kvHeads, hd,
            [{ tokenStart: 0, numTokens: 1, contextLen: pos + 1, blockTable: seq.blockTable }], s.kCache, s.vCache, bs, 0.3, window);
          assertSame(dec, rows(batch, rowW, seq.tokenStart + i, 1), `row ${seq.tokenStart + i} as a decode`);
        }
      }
    }
  }
});

test('pagedAttention: long contexts (hundreds of keys) stay accurate', () => {
  const rng = new Rng(13);
  const heads = 4, kvHeads = 2, hd = 64, bs = 16;
  const s = buildAttention(rng, heads, kvHeads, hd, bs, [{ numTokens: 1, contextLen: 700 }, { numTokens: 40, contextLen: 300 }]);
  for (const window of [0, 128]) {
    const got = cpuOps.pagedAttention(s.q, heads, kvHeads, hd, s.seqs, s.kCache, s.vCache, bs, 1 / 8, window);
    const want = refPagedAttention(s.q, heads, kvHeads, hd, s.seqs, s.kCache, s.vCache, bs, 1 / 8, window);
    assertClose(got, want, `long context window=${window}`, 1e-5, 2e-6);
  }
});

test('pagedAttention: wrong shapes and types throw an Error naming the argument', () => {
  const heads = 2, kvHeads = 1, hd = 4, bs = 4;
  const q = new Float32Array(3 * heads * hd);
  const kc = new Float32Array(4 * bs * kvHeads * hd), vc = new Float32Array(kc.length);
  const seq = (o: Partial<{ tokenStart: number; numTokens: number; contextLen: number; blockTable: Int32Array }>) =>
    ({ tokenStart: 0, numTokens: 3, contextLen: 5, blockTable: new Int32Array([2, 0]), ...o });
  const call = (s: unknown[], o: Partial<{ q: Float32Array; heads: number; kvHeads: number; kc: Float32Array; vc: Float32Array }> = {}) =>
    cpuOps.pagedAttention(o.q ?? q, o.heads ?? heads, o.kvHeads ?? kvHeads, hd, s as never, o.kc ?? kc, o.vc ?? vc, bs, 0.5, 0);
  assert.doesNotThrow(() => call([seq({})]), 'the valid baseline');
  assertArgError(() => call([seq({ blockTable: new Int32Array([2, 4]) })]), /block/, 'block id past the cache');
  assertArgError(() => call([seq({ blockTable: new Int32Array([-1, 0]) })]), /block/, 'negative block id');
  assertArgError(() => call([seq({ contextLen: 9 })]), /context/, 'contextLen past the block table');
  assertArgError(() => call([seq({ contextLen: 2 })]), /context/, 'contextLen < numTokens');
  assertArgError(() => call([seq({ tokenStart: 1 })]), /rows/, 'rows past q');
  assertArgError(() => call([seq({ tokenStart: -1 })]), /rows/, 'negative tokenStart');
  assertArgError(() => call([seq({ blockTable: [2, 0] as unknown as Int32Array })]), /blockTable.*Int32Array/, 'blockTable number[]');
  assertArgError(() => call([seq({ blockTable: undefined })]), /blockTable/, 'blockTable missing');
  assertArgError(() => call([{ tokenStart: 0, numTokens: 3, blockTable: new Int32Array([2, 0]) }]), /contextLen/, 'contextLen missing');
  assertArgError(() => call([seq({ numTokens: '3' as unknown as number })]), /numTokens/, 'numTokens string');
  assertArgError(() => call([seq({})], { heads: 3, kvHeads: 2 }), /head/, 'heads not a multiple of kvHeads');
  assertArgError(() => call([seq({})], { vc: new Float32Array(kc.length - 1) }), /cache/, 'kCache/vCache length mismatch');
  assertArgError(() => call([seq({})], { q: new Float64Array(q.length) as unknown as Float32Array }), /\bq\b.*Float32Array/, 'q Float64Array');
  assertArgError(() => call([seq({})], { kc: new Int32Array(kc.length) as unknown as Float32Array }), /kCache.*Float32Array/, 'kCache Int32Array');
  assertArgError(() => call(null as unknown as unknown[]), /array/i, 'seqs null');
});

test('pagedAttention errors are also plain throws in an isolated process (harness check)', () => {
  assertIsolatedArgError(`(ops) => ops.pagedAttention(new Float32Array(8), 3, 2, 4, [], new Float32Array(16), new Float32Array(16), 1, 1, 0)`, /head/);
});

// Arguments that once crashed the whole process inside the addon instead of throwing: each runs in a
// child process, which must exit normally (the addon throws a JS error).
const CRASHERS: [what: string, body: string, re: RegExp][] = [
  ['pagedAttention kvHeads 0 (SIGFPE: integer division by kvh*hd, ops_wrap.cc:115)',
    `(ops) => ops.pagedAttention(new Float32Array(4), 1, 0, 4, [], new Float32Array(4), new Float32Array(4), 1, 1, 0)`, /kvHeads|head/],
  ['pagedAttention headDim 0 (SIGFPE, ops_wrap.cc:115)',
    `(ops) => ops.pagedAttention(new Float32Array(4), 1, 1, 0, [], new Float32Array(4), new Float32Array(4), 1, 1, 0)`, /headDim|head/],
  ['pagedAttention heads 0 (SIGFPE: q length / (heads*hd), ops_wrap.cc:119)',
    `(ops) => ops.pagedAttention(new Float32Array(4), 0, 1, 4, [], new Float32Array(4), new Float32Array(4), 1, 1, 0)`, /heads|head/],
  ['pagedAttention negative numTokens/contextLen (SIGABRT: std::length_error from scores.resize, attention.cc:27)',
    `(ops) => ops.pagedAttention(new Float32Array(4), 1, 1, 4, [{ tokenStart: 0, numTokens: -5, contextLen: -3, blockTable: new Int32Array(0) }], new Float32Array(4), new Float32Array(4), 1, 1, 0)`,
    /numTokens|contextLen|rows|context/],
  ['pagedAttention block id 2^31-1 (SIGSEGV: (b + 1) overflows int32 in the range check, ops_wrap.cc:128)',
    `(ops) => ops.pagedAttention(new Float32Array(4), 1, 1, 4, [{ tokenStart: 0, numTokens: 1, contextLen: 1, blockTable: new Int32Array([2147483647]) }], new Float32Array(4), new Float32Array(4), 1, 1, 0)`,
    /block/],
  ['gemm in 0 with tokens*out overflowing int64 (SIGSEGV: y allocated with 0 elements, ops_wrap.cc:31 and 39)',
    `(ops) => ops.gemm(new Float32Array(0), 2 ** 32, 0, new Float32Array(0), 2 ** 32, null)`, /tokens|\bin\b|out/],
];
for (const [what, body, re] of CRASHERS) {
  test(`no crash: ${what}`, () => {
    assertIsolatedArgError(body, re);
  });
}

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
