// cpuOps.sample / cpuOps.logSoftmaxAt against the float64 references in test/helpers/reference-ops.ts:
// greedy, logprobs, the top list, repetition penalty, temperature, top-k / top-p / typical-p truncation,
// seeded reproducibility, and an empirical check of the sampled distribution.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpuOps, type SamplingOptions } from '../../kernels/index.js';
import {
  Rng, refArgmax, refCandidates, refLogSoftmax, refOrder, refProcessedScores,
} from '../helpers/reference-ops.js';

const GREEDY: SamplingOptions = {
  temperature: 1, topK: 0, topP: 1, typicalP: 1, repetitionPenalty: 1, doSample: false, seed: 0, drawIndex: 0,
};
function opts(o: Partial<SamplingOptions>): SamplingOptions {
  return { ...GREEDY, ...o };
}
const NO_PENALTY = new Int32Array(0);

function sample(logits: Float32Array, o: Partial<SamplingOptions>, penalty: Int32Array = NO_PENALTY, topN = 0) {
  return cpuOps.sample(logits, opts(o), penalty, topN);
}

function assertNear(actual: number, expected: number, what: string, tol = 1e-5): void {
  assert.ok(Math.abs(actual - expected) <= tol * Math.max(1, Math.abs(expected)), `${what}: got ${actual}, expected ${expected}`);
}

/** Frequencies of the tokens drawn at drawIndex 0 .. n-1. */
function frequencies(logits: Float32Array, o: Partial<SamplingOptions>, n: number, penalty = NO_PENALTY): number[] {
  const counts = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < n; i++) counts[sample(logits, { ...o, drawIndex: i }, penalty).token]!++;
  return counts.map((c) => c / n);
}

// ---------------------------------------------------------------------------------------------------

test('greedy is argmax, ties go to the lowest id', () => {
  const rng = new Rng(21);
  for (const vocab of [1, 2, 7, 33, 1000, 32000]) {
    for (let rep = 0; rep < 5; rep++) {
      const logits = rng.f32(vocab, -10, 10);
      assert.equal(sample(logits, {}).token, refArgmax(logits), `vocab ${vocab}`);
    }
  }
  assert.equal(sample(new Float32Array([1, 3, 3, 2]), {}).token, 1);
  assert.equal(sample(new Float32Array([5, 5, 5]), {}).token, 0);
  assert.equal(sample(new Float32Array([-Infinity, -2, -2, -Infinity]), {}).token, 1);
  assert.equal(sample(new Float32Array([0, 0, 7, 1, 7]), {}).token, 2);
  // Greedy does not depend on the seed or the draw index.
  const logits = rng.f32(50);
  for (let i = 0; i < 20; i++) assert.equal(sample(logits, { seed: i * 7919, drawIndex: i }).token, refArgmax(logits));
});

test('logprob is the log-softmax at the chosen token; logSoftmaxAt agrees', () => {
  const rng = new Rng(22);
  for (const vocab of [1, 2, 33, 1000, 50000]) {
    const logits = rng.f32(vocab, -20, 20);
    const ref = refLogSoftmax(logits);
    const r = sample(logits, {});
    assertNear(r.logprob, ref[r.token]!, `greedy logprob vocab ${vocab}`);
    for (let k = 0; k < 10; k++) {
      const t = rng.int(0, vocab - 1);
      assertNear(cpuOps.logSoftmaxAt(logits, t), ref[t]!, `logSoftmaxAt(${t}) vocab ${vocab}`);
    }
    // Sampled tokens report their log-softmax too (temperature 1, no penalty: the raw distribution).
    for (let i = 0; i < 10; i++) {
      const s = sample(logits, { doSample: true, seed: 3, drawIndex: i });
      assertNear(s.logprob, ref[s.token]!, `sampled logprob vocab ${vocab}`);
    }
  }
  assert.equal(cpuOps.logSoftmaxAt(new Float32Array([4.5]), 0), 0);
  // Large logits do not overflow.
  assertNear(cpuOps.logSoftmaxAt(new Float32Array([1e30, 1e30 - 1e24, 0]), 2), -1e30, 'huge logits', 1e-6);
  assertNear(cpuOps.logSoftmaxAt(new Float32Array([1000, 999]), 1), -Math.log1p(Math.E), 'logits near 1000', 1e-6);
});

test('top list: ordered by logprob, length topN (capped at vocab), logprobs of the processed distribution', () => {
  const rng = new Rng(23);
  const logits = rng.f32(100, -5, 5);
  const ref = refLogSoftmax(logits);
  const order = refOrder(logits);
  for (const topN of [0, 1, 5, 100, 150]) {
    const r = sample(logits, {}, NO_PENALTY, topN);
    assert.equal(r.top.length, Math.min(topN, 100), `topN ${topN}`);
    r.top.forEach(([tok, lp], i) => {
      assert.equal(tok, order[i], `topN ${topN}: entry ${i}`);
      assertNear(lp, ref[tok]!, `topN ${topN}: logprob of entry ${i}`);
      if (i > 0) assert.ok(lp <= r.top[i - 1]![1], 'descending');
    });
    if (topN > 0) assert.equal(r.top[0]![0], r.token, 'greedy token heads the list');
  }
  // Ties keep the lower id first.
  const tied = sample(new Float32Array([1, 2, 2, 0, 2]), {}, NO_PENALTY, 4);
  assert.deepEqual(tied.top.map(([t]) => t), [1, 2, 4, 0]);
  // With penalty and temperature the list reports the processed distribution, truncation aside.
  const p = new Int32Array([3, 7, 7, 50]);
  const o = { doSample: true, temperature: 0.7, repetitionPenalty: 1.3, topK: 3, seed: 1 };
  const processed = refProcessedScores(logits, { ...GREEDY, ...o }, p);
  const refP = refLogSoftmax(processed);
  const r = sample(logits, o, p, 10);
  assert.deepEqual(r.top.map(([t]) => t), refOrder(processed).slice(0, 10));
  r.top.forEach(([t, lp]) => assertNear(lp, refP[t]!, `processed logprob of ${t}`));
  assertNear(r.logprob, refP[r.token]!, 'processed logprob of the drawn token');
});

test('repetition penalty divides positive and multiplies negative logits of penalised tokens only', () => {
  // Positive: token 0 (2.0) leads token 1 (1.5); penalty 2 makes it 1.0 and token 1 wins.
  const pos = new Float32Array([2.0, 1.5, -1, 0.2]);
  assert.equal(sample(pos, {}).token, 0);
  assert.equal(sample(pos, { repetitionPenalty: 2 }, new Int32Array([0])).token, 1);
  assert.equal(sample(pos, { repetitionPenalty: 1.2 }, new Int32Array([0])).token, 0, 'a small penalty does not flip it');
  // Negative: token 0 (-0.5) leads token 1 (-0.8); penalty 2 makes it -1.0 (multiplied, not divided) and token 1 wins.
  const neg = new Float32Array([-0.5, -0.8, -3, -2]);
  assert.equal(sample(neg, { repetitionPenalty: 2 }, new Int32Array([0])).token, 1);
  // Penalising an unseen competitor instead does not change the leader.
  assert.equal(sample(neg, { repetitionPenalty: 2 }, new Int32Array([1])).token, 0);
  // A penalty below 1 boosts: token 1 (-0.8 * 0.5 = -0.4) overtakes token 0.
  assert.equal(sample(neg, { repetitionPenalty: 0.5 }, new Int32Array([1])).token, 1);
  // The logprob is that of the penalised distribution; repeated and out-of-range ids are harmless.
  const rng = new Rng(24);
  const logits = rng.f32(40, -4, 4);
  for (const pen of [new Int32Array([5]), new Int32Array([5, 5, 5, 9]), new Int32Array([-1, 40, 1 << 30, 9, 5])]) {
    const r = sample(logits, { repetitionPenalty: 1.7 }, pen, 40);
    const processed = refProcessedScores(logits, { ...GREEDY, repetitionPenalty: 1.7 }, pen);
    const lp = refLogSoftmax(processed);
    assert.equal(r.token, refArgmax(processed));
    r.top.forEach(([t, l]) => assertNear(l, lp[t]!, `penalised logprob of ${t}`));
  }
  // No penalty tokens, or penalty 1: identical to no penalty.
  assert.deepEqual(sample(logits, { repetitionPenalty: 1.7 }, NO_PENALTY, 5), sample(logits, {}, NO_PENALTY, 5));
  assert.deepEqual(sample(logits, { repetitionPenalty: 1 }, new Int32Array([1, 2, 3]), 5), sample(logits, {}, NO_PENALTY, 5));
});

test('frequency / presence penalties subtract count·f + p on the generated tokens only (the last drawIndex)', () => {
  // Token 1 (2.0) leads token 2 (1.8). It was generated twice: penaltyTokens = prompt [1] + generated [1, 1].
  const logits = new Float32Array([1.0, 2.0, 1.8, 0.5]);
  const seen = new Int32Array([1, 1, 1]);
  assert.equal(sample(logits, { frequencyPenalty: 0.15, drawIndex: 1 }, seen).token, 1, 'once: 2.0 - 0.15 still leads');
  assert.equal(sample(logits, { frequencyPenalty: 0.15, drawIndex: 2 }, seen).token, 2, 'twice: 2.0 - 0.3 < 1.8');
  assert.equal(sample(logits, { presencePenalty: 0.15, drawIndex: 2 }, seen).token, 1, 'presence counts once: 1.85');
  assert.equal(sample(logits, { presencePenalty: 0.25, drawIndex: 2 }, seen).token, 2);
  assert.equal(sample(logits, { presencePenalty: 1, drawIndex: 0 }, seen).token, 1, 'prompt tokens are not penalised');
  assert.equal(sample(new Float32Array([1.0, 1.7, 1.8]), { presencePenalty: -0.2, drawIndex: 1 }, new Int32Array([1])).token, 1,
    'a negative penalty boosts');
  // With repetition penalty and temperature too: logprobs are those of the processed distribution.
  const rng = new Rng(31);
  const big = rng.f32(50, -4, 4);
  const pen = new Int32Array([3, 7, 7, 9, 3, 3, 12, -1, 60]);
  const o = { repetitionPenalty: 1.3, frequencyPenalty: 0.4, presencePenalty: -0.3, temperature: 0.7, doSample: true, seed: 5, drawIndex: 6 };
  const r = sample(big, o, pen, 50);
  const lp = refLogSoftmax(refProcessedScores(big, { ...GREEDY, ...o }, pen));
  r.top.forEach(([t, l]) => assertNear(l, lp[t]!, `processed logprob of ${t}`));
  assert.deepEqual(sample(big, { frequencyPenalty: 0, presencePenalty: 0 }, pen, 5), sample(big, {}, NO_PENALTY, 5));
});

test('logit bias adds to the chosen tokens after the penalties; -100 bans, +100 forces; out-of-range ids are ignored', () => {
  const logits = new Float32Array([1.0, 2.0, 1.8, 0.5]);
  assert.equal(sample(logits, { logitBias: [{ token: 2, bias: 0.3 }] }).token, 2);
  assert.equal(sample(logits, { logitBias: [{ token: 1, bias: -100 }] }).token, 2);
  assert.equal(sample(logits, { logitBias: [{ token: 3, bias: 100 }], doSample: true, temperature: 1.5, seed: 3 }).token, 3);
  assert.equal(sample(logits, { logitBias: [{ token: 9, bias: 100 }, { token: -1, bias: 100 }] }).token, 1);
  // With a repetition penalty on the same token, the bias comes after it: (2.0 / 2) + 0.5 = 1.5 < 1.8.
  assert.equal(sample(logits, { repetitionPenalty: 2, logitBias: [{ token: 1, bias: 0.5 }] }, new Int32Array([1])).token, 2);
  const rng = new Rng(41);
  const big = rng.f32(30, -3, 3);
  const o = { repetitionPenalty: 1.4, presencePenalty: 0.6, drawIndex: 2, temperature: 0.8, doSample: true, seed: 2,
    logitBias: [{ token: 4, bias: 2.5 }, { token: 7, bias: -1.5 }, { token: 3, bias: 0.25 }] };
  const pen = new Int32Array([4, 3, 3]);
  const r = sample(big, o, pen, 30);
  const lp = refLogSoftmax(refProcessedScores(big, { ...GREEDY, ...o }, pen));
  r.top.forEach(([t, l]) => assertNear(l, lp[t]!, `biased logprob of ${t}`));
});

test('temperature scales the logits of the sampled distribution', () => {
  const logits = new Float32Array([2, 1, 0.5, -1, 0]);
  for (const temperature of [0.25, 0.7, 1, 1.5, 3]) {
    const lp = refLogSoftmax(Array.from(logits, (v) => v / temperature));
    for (let i = 0; i < 20; i++) {
      const r = sample(logits, { doSample: true, temperature, seed: 11, drawIndex: i }, NO_PENALTY, 5);
      assertNear(r.logprob, lp[r.token]!, `T=${temperature} logprob`);
      r.top.forEach(([t, l]) => assertNear(l, lp[t]!, `T=${temperature} top logprob`));
    }
  }
  // A very low temperature puts all the mass on the argmax.
  for (let i = 0; i < 200; i++) assert.equal(sample(logits, { doSample: true, temperature: 0.01, seed: 5, drawIndex: i }).token, 0);
  // A high temperature flattens the distribution: empirical frequencies follow softmax(logits / 2.5).
  const probs = Array.from(refLogSoftmax(Array.from(logits, (v) => v / 2.5)), Math.exp);
  const freq = frequencies(logits, { doSample: true, temperature: 2.5, seed: 99 }, 20_000);
  freq.forEach((f, t) => assert.ok(Math.abs(f - probs[t]!) < 0.02, `T=2.5 token ${t}: ${f} vs ${probs[t]}`));
  // temperature 0 with doSample is greedy.
  for (let i = 0; i < 50; i++) assert.equal(sample(logits, { doSample: true, temperature: 0, seed: 5, drawIndex: i }).token, 0);
});

test('top-k = 1 always picks the argmax (lowest id on ties)', () => {
  const rng = new Rng(25);
  for (let rep = 0; rep < 20; rep++) {
    const logits = rng.f32(rng.int(1, 300), -3, 3);
    for (let i = 0; i < 20; i++) {
      assert.equal(sample(logits, { doSample: true, topK: 1, temperature: 1.8, seed: rep, drawIndex: i }).token, refArgmax(logits));
    }
  }
  const tied = new Float32Array([0, 4, 1, 4, 4]);
  for (let i = 0; i < 50; i++) assert.equal(sample(tied, { doSample: true, topK: 1, seed: 2, drawIndex: i }).token, 1);
});

test('a tiny top-p keeps only the argmax', () => {
  const rng = new Rng(26);
  for (let rep = 0; rep < 20; rep++) {
    const logits = rng.f32(rng.int(2, 300), -2, 2);
    for (let i = 0; i < 20; i++) {
      assert.equal(sample(logits, { doSample: true, topP: 1e-6, seed: rep, drawIndex: i }).token, refArgmax(logits));
    }
  }
});

test('typical-p keeps the tokens whose surprise is closest to the entropy', () => {
  // p = [0.5, 0.22, 0.18, 0.1]: entropy H = 1.2186; |-log p - H| = [0.525, 0.296, 0.496, 1.084], so the typical order
  // is 1, 2, 0, 3. typicalP 0.3 keeps {1, 2} (0.22 < 0.3 <= 0.40), typicalP 0.2 keeps {1}: never the argmax 0.
  const p = [0.5, 0.22, 0.18, 0.1];
  const logits = Float32Array.from(p, Math.log);
  assert.deepEqual(refCandidates(logits, { topK: 0, topP: 1, typicalP: 0.3 }).tokens, [1, 2], 'reference sanity');
  const f03 = frequencies(logits, { doSample: true, typicalP: 0.3, seed: 8 }, 4000);
  assert.equal(f03[0]! + f03[3]!, 0, 'typicalP 0.3 never draws 0 or 3');
  assert.ok(Math.abs(f03[1]! - 0.22 / 0.4) < 0.04 && Math.abs(f03[2]! - 0.18 / 0.4) < 0.04, `renormalised: ${f03}`);
  for (let i = 0; i < 200; i++) assert.equal(sample(logits, { doSample: true, typicalP: 0.2, seed: 8, drawIndex: i }).token, 1);
  // typicalP 0.95 keeps 1, 2, 0 and 3 (0.9 < 0.95): all four appear.
  const f95 = frequencies(logits, { doSample: true, typicalP: 0.95, seed: 8 }, 4000);
  assert.ok(f95.every((f) => f > 0), `typicalP 0.95: ${f95}`);
  // typical-p reports the untruncated logprob of what it draws.
  const r = sample(logits, { doSample: true, typicalP: 0.3, seed: 8, drawIndex: 3 });
  assertNear(r.logprob, Math.log(p[r.token]!), 'typical logprob', 1e-5);
});

test('seeded draws: same (seed, drawIndex) gives the same token; draws vary across indices and seeds', () => {
  const rng = new Rng(27);
  const logits = rng.f32(64, -1, 1);
  const o = { doSample: true, temperature: 1.3, topK: 40, topP: 0.95, seed: 123456789 };
  const first = Array.from({ length: 200 }, (_, i) => sample(logits, { ...o, drawIndex: i }).token);
  // Interleave unrelated calls: the result depends only on (seed, drawIndex).
  for (let i = 0; i < 50; i++) sample(rng.f32(10), { doSample: true, seed: i, drawIndex: i });
  const again = Array.from({ length: 200 }, (_, i) => sample(logits, { ...o, drawIndex: i }).token);
  assert.deepEqual(again, first);
  const reversed = Array.from({ length: 200 }, (_, k) => 199 - k).map((i) => sample(logits, { ...o, drawIndex: i }).token).reverse();
  assert.deepEqual(reversed, first, 'order of calls does not matter');
  assert.ok(new Set(first).size >= 20, `200 draws over ~40 candidates hit only ${new Set(first).size} distinct tokens`);
  const other = Array.from({ length: 200 }, (_, i) => sample(logits, { ...o, seed: 987654321, drawIndex: i }).token);
  assert.notDeepEqual(other, first, 'another seed gives another sequence');
  // Draws of a near-uniform 5-token distribution over 200 indices: every token appears.
  const flat = new Float32Array([0, 0.01, -0.01, 0.02, 0]);
  const seen = new Set(Array.from({ length: 200 }, (_, i) => sample(flat, { doSample: true, seed: 77, drawIndex: i }).token));
  assert.equal(seen.size, 5);
});

test('empirical distribution: 20,000 draws of a known 5-token distribution match within 0.02', () => {
  const probs = [0.1, 0.2, 0.3, 0.15, 0.25];
  const logits = Float32Array.from(probs, (q) => Math.log(q) + 3); // an offset must not matter
  for (const seed of [0, 42]) {
    const freq = frequencies(logits, { doSample: true, temperature: 1, seed }, 20_000);
    freq.forEach((f, t) => assert.ok(Math.abs(f - probs[t]!) < 0.02, `seed ${seed} token ${t}: ${f} vs ${probs[t]}`));
  }
  // After top-k 3 the kept tokens (2, 4, 1) follow the renormalised probabilities.
  const kept = refCandidates(logits, { topK: 3, topP: 1, typicalP: 1 });
  assert.deepEqual(kept.tokens, [2, 4, 1]);
  const freq = frequencies(logits, { doSample: true, topK: 3, seed: 5 }, 20_000);
  kept.tokens.forEach((t, i) => assert.ok(Math.abs(freq[t]! - kept.probs[i]!) < 0.02, `top-k token ${t}: ${freq[t]} vs ${kept.probs[i]}`));
  assert.equal(freq[0]! + freq[3]!, 0);
});

test('top-k / top-p / typical-p never yield a token outside the kept set', () => {
  const rng = new Rng(28);
  const configs: Partial<SamplingOptions>[] = [
    { topK: 1 }, { topK: 2 }, { topK: 5 }, { topK: 17 }, { topP: 0.3 }, { topP: 0.5 }, { topP: 0.9 },
    { topK: 10, topP: 0.6 }, { typicalP: 0.5 }, { typicalP: 0.9, topK: 20 }, { topK: 8, topP: 0.8, typicalP: 0.7 },
    { topP: 0.7, temperature: 0.5 }, { topK: 4, temperature: 2 }, { topP: 0.9, typicalP: 0.4 },
  ];
  for (const cfg of configs) {
    for (let rep = 0; rep < 8; rep++) {
      const vocab = rng.int(3, 120);
      let logits: Float32Array;
      let kept: Set<number>;
      // Retry inputs whose cut lands within 1e-4 of a threshold (float32 vs float64 rounding could go either way).
      for (;;) {
        logits = rng.f32(vocab, -4, 4);
        const base = { ...GREEDY, ...cfg, doSample: true };
        // typical-p after a top-p cut is checked exactly in its own test below; here only the top-k/top-p set.
        if (base.topP < 1 && base.typicalP < 1) base.typicalP = 1;
        const s = refProcessedScores(logits, base, NO_PENALTY);
        const c = refCandidates(s, base);
        const lo = refCandidates(s, { ...base, topP: base.topP < 1 ? base.topP - 1e-4 : 1, typicalP: base.typicalP < 1 ? base.typicalP - 1e-4 : 1 });
        const hi = refCandidates(s, { ...base, topP: base.topP < 1 ? base.topP + 1e-4 : 1, typicalP: base.typicalP < 1 ? base.typicalP + 1e-4 : 1 });
        if (lo.tokens.join() === c.tokens.join() && hi.tokens.join() === c.tokens.join()) {
          kept = new Set(c.tokens);
          break;
        }
      }
      if (cfg.topK) assert.ok(kept.size <= cfg.topK);
      const drawn = new Set<number>();
      for (let i = 0; i < 300; i++) {
        const t = sample(logits, { ...cfg, doSample: true, seed: rep * 1000 + 1, drawIndex: i }).token;
        assert.ok(kept.has(t), `${JSON.stringify(cfg)} vocab ${vocab}: drew ${t}, kept ${[...kept]}`);
        drawn.add(t);
      }
      if (kept.size > 1) assert.ok(drawn.size > 1, `${JSON.stringify(cfg)}: 300 draws from ${kept.size} kept tokens all equal`);
    }
  }
});

test('typical-p after top-p works on the renormalised top-p survivors (transformers/TGI semantics)', () => {
  // p = [0.4, 0.3, 0.2, 0.1], topP 0.9 keeps {0, 1, 2}, renormalised [4/9, 3/9, 2/9]: entropy 1.0609, surprises
  // [0.811, 1.099, 1.504], so the typical order is 1, 0, 2 and typicalP 0.3 keeps {1} (3/9 >= 0.3): always token 1.
  // With the un-renormalised [0.4, 0.3, 0.2] the entropy is 1.0497 and the order 0, 1, 2, so the op always draws 0.
  const logits = Float32Array.from([0.4, 0.3, 0.2, 0.1], Math.log);
  assert.deepEqual(refCandidates(logits, { topK: 0, topP: 0.9, typicalP: 0.3 }).tokens, [1], 'reference sanity');
  for (let i = 0; i < 50; i++) {
    assert.equal(sample(logits, { doSample: true, topP: 0.9, typicalP: 0.3, seed: 1, drawIndex: i }).token, 1);
  }
  // Random cases: draws stay inside the reference set.
  const rng = new Rng(29);
  for (let rep = 0; rep < 20; rep++) {
    const l = rng.f32(rng.int(3, 60), -4, 4);
    const kept = new Set(refCandidates(l, { topK: 0, topP: 0.8, typicalP: 0.6 }).tokens);
    for (let i = 0; i < 100; i++) {
      const t = sample(l, { doSample: true, topP: 0.8, typicalP: 0.6, seed: rep, drawIndex: i }).token;
      assert.ok(kept.has(t), `drew ${t}, kept ${[...kept]}`);
    }
  }
});

test('sample / logSoftmaxAt: bad arguments throw an Error naming the argument', () => {
  const logits = new Float32Array([1, 2, 3]);
  const err = (fn: () => unknown, re: RegExp, what: string) => assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof Error, what);
    assert.match(e.message, re, what);
    return true;
  }, what);
  err(() => cpuOps.sample(new Float32Array(0), GREEDY, NO_PENALTY, 1), /logits/, 'empty logits');
  err(() => cpuOps.sample(new Float64Array(3) as unknown as Float32Array, GREEDY, NO_PENALTY, 1), /logits.*Float32Array/, 'logits Float64Array');
  err(() => cpuOps.sample(logits, null as unknown as SamplingOptions, NO_PENALTY, 1), /params/, 'params null');
  err(() => cpuOps.sample(logits, 3 as unknown as SamplingOptions, NO_PENALTY, 1), /params/, 'params number');
  err(() => cpuOps.sample(logits, GREEDY, [0] as unknown as Int32Array, 1), /penaltyTokens.*Int32Array/, 'penaltyTokens number[]');
  err(() => cpuOps.sample(logits, GREEDY, new Float32Array(1) as unknown as Int32Array, 1), /penaltyTokens/, 'penaltyTokens Float32Array');
  err(() => cpuOps.sample(logits, GREEDY, NO_PENALTY, '1' as unknown as number), /topN/, 'topN string');
  err(() => cpuOps.sample(logits, opts({ temperature: 'hot' as unknown as number }), NO_PENALTY, 1), /temperature/, 'temperature string');
  err(() => cpuOps.sample(logits, opts({ topK: '5' as unknown as number }), NO_PENALTY, 1), /topK/, 'topK string');
  err(() => cpuOps.logSoftmaxAt(logits, 3), /token/, 'token past vocab');
  err(() => cpuOps.logSoftmaxAt(logits, -1), /token/, 'negative token');
  err(() => cpuOps.logSoftmaxAt(new Int32Array(3) as unknown as Float32Array, 0), /logits.*Float32Array/, 'logits Int32Array');
  err(() => cpuOps.logSoftmaxAt(logits, undefined as unknown as number), /token/, 'token missing');
});

test('NaN logits never crash the sort: greedy and sampled draws pick a number, NaN ranks last in the top list', () => {
  const V = 20_000;
  const logits = new Float32Array(V).map((_, i) => (i % 7 === 0 ? NaN : Math.sin(i) * 4));
  logits[12_345] = 30; // the clear maximum
  const greedy = cpuOps.sample(logits, GREEDY, NO_PENALTY, 5);
  assert.equal(greedy.token, 12_345);
  assert.equal(greedy.top[0][0], 12_345);
  assert.ok(greedy.top.every(([t]) => !Number.isNaN(logits[t])), 'no NaN token among the top 5');
  for (let d = 0; d < 50; d++) {
    const s = cpuOps.sample(logits, { ...GREEDY, doSample: true, temperature: 3, seed: 9, drawIndex: d }, NO_PENALTY, 0);
    assert.ok(s.token >= 0 && s.token < V && !Number.isNaN(logits[s.token]), `draw ${d} picked NaN token ${s.token}`);
  }
  const all = cpuOps.sample(new Float32Array(8).fill(NaN), { ...GREEDY, doSample: true, seed: 1 }, NO_PENALTY, 3);
  assert.ok(all.token >= 0 && all.token < 8, 'an all-NaN row still yields a token id');
});

test('min-p keeps the tokens at least min_p times as likely as the top one, after top-k / top-p (transformers order)', () => {
  // p ∝ [8, 4, 2, 1, 1]: min_p 0.24 keeps {0, 1, 2} (2/8 = 0.25), 0.3 keeps {0, 1}, 1 keeps {0}.
  const logits = Float32Array.from([8, 4, 2, 1, 1].map(Math.log));
  const drawn = (o: Partial<SamplingOptions>): Set<number> => {
    const seen = new Set<number>();
    for (let i = 0; i < 400; i++) seen.add(sample(logits, { doSample: true, seed: 5, drawIndex: i, ...o }).token);
    return seen;
  };
  assert.deepEqual([...drawn({ minP: 0.24 })].sort(), [0, 1, 2]);
  assert.deepEqual([...drawn({ minP: 0.3 })].sort(), [0, 1]);
  assert.deepEqual([...drawn({ minP: 1 })], [0]);
  assert.deepEqual([...drawn({ minP: 0 })].sort(), [0, 1, 2, 3, 4]);
  // Relative to the top token, so a top-p cut first changes nothing it keeps; with top-k 2 only {0, 1} are left.
  assert.deepEqual([...drawn({ minP: 0.24, topP: 0.99 })].sort(), [0, 1, 2]);
  assert.deepEqual([...drawn({ minP: 0.1, topK: 2 })].sort(), [0, 1]);
  // Temperature first: at T = 2, p ∝ [√8, 2, √2, 1, 1], so min_p 0.4 keeps {0, 1, 2} (√2/√8 = 0.5).
  assert.deepEqual([...drawn({ minP: 0.4, temperature: 2 })].sort(), [0, 1, 2]);
  // The sampled distribution is the survivors renormalised: 8 : 4 : 2.
  const counts = [0, 0, 0];
  for (let i = 0; i < 14_000; i++) counts[sample(logits, { doSample: true, seed: 9, drawIndex: i, minP: 0.24 }).token]!++;
  counts.forEach((c, t) => assertNear(c / 14_000, [8, 4, 2][t]! / 14, `token ${t}`, 0.03));
});

test('sampling without top-k draws by selection: always the token of the sorted walk (top_k = vocab takes that walk), typical-p and min-p included', () => {
  let seed = 11;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  let compared = 0;
  for (const V of [7, 300, 5000]) {
    for (let round = 0; round < 12; round++) {
      // Quantized values give many ties (ordered by id), a few -inf (weight 0) and a wide range (weights 0).
      const logits = Float32Array.from({ length: V }, () => {
        const r = rand();
        return r < 0.03 ? -Infinity : Math.round((rand() * 2 - 1) * (round % 3 === 0 ? 60 : 8) * 4) / 4;
      });
      for (const topP of [1, 0.95, 0.6, 0.05, 0]) {  // 0: only the top token (the walk keeps at least one)
        for (const [temperature, typicalP, minP] of [[0.5, 1, 0], [1, 1, 0], [1.7, 1, 0.05], [1, 0.9, 0], [0.5, 0.4, 0.2], [1.7, 0.2, 0.01]] as const) {
          for (let draw = 0; draw < 6; draw++) {
            const o = { doSample: true, temperature, topP, typicalP, minP, seed: 1000 + round, drawIndex: draw };
            const fast = sample(logits, { ...o, topK: 0 }, NO_PENALTY, 3);
            const sorted = sample(logits, { ...o, topK: V }, NO_PENALTY, 3);
            assert.equal(fast.token, sorted.token, `V ${V} round ${round} top_p ${topP} T ${temperature} typical_p ${typicalP} draw ${draw}`);
            assert.equal(fast.logprob, sorted.logprob);
            assert.deepEqual(fast.top, sorted.top);
            compared++;
          }
        }
      }
    }
  }
  assert.equal(compared, 3 * 12 * 5 * 6 * 6);
});

test('top_k past int32 (or NaN) is "keep every token", the same draws as top_k 0', () => {
  const logits = new Rng(77).f32(64, -3, 3);
  for (const topK of [2 ** 31, 2 ** 40, 1e21, Number.NaN]) {
    for (let i = 0; i < 20; i++) {
      const o = { doSample: true, seed: 9, drawIndex: i };
      assert.equal(sample(logits, { ...o, topK }).token, sample(logits, { ...o, topK: 0 }).token, `top_k ${topK}, draw ${i}`);
    }
  }
});
