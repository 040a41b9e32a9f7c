// cpuOps.pagedAttention against the naive float64 reference (test/helpers/reference-ops.ts): prefill and decode rows
// over shuffled paged blocks, MHA/GQA/MQA, windows, batch invariance bit for bit, long contexts, and argument errors
// (split from cpu-ops.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpuOps } from '../../kernels/index.js';
import { Rng, refPagedAttention, type RefSeq } from '../helpers/reference-ops.js';
import { assertArgError, assertClose, assertIsolatedArgError, assertSame, rows } from '../helpers/cpu-op-checks.js';

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

