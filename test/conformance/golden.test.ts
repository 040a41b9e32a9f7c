// Conformance with transformers + PEFT: every golden case, base and every adapter, alone and in one
// heterogeneous batch; prefill-then-decode equals the full forward; greedy continuations.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { LocalEngine, GREEDY } from '../../shard/index.js';
import { PROTOCOL_VERSION, bytesToFloat32 } from '../../protocol/index.js';
import { refArgmax as argmax, refLogSoftmax } from '../helpers/reference-ops.js';
import { goldenCases, loadGoldenCase, maxAbsDiff, type GoldenCase } from '../helpers/golden.js';

const TOL = 1e-4;

for (const name of goldenCases()) {
  describe(`golden ${name}`, () => {
    let c: GoldenCase;
    let engine: LocalEngine;
    before(() => {
      c = loadGoldenCase(name);
      engine = LocalEngine.open(c.modelDir, { numBlocks: 128, blockSize: 4, adapterSlots: 4 });
      c.adapters.forEach((a, i) => engine.loadAdapter(i, a.dir));
    });
    after(() => engine.dispose());

    test('base and each adapter alone match PEFT logits', async () => {
      for (let s = 0; s < c.sequences.length; s++) {
        const [base] = await engine.scoreBatch([{ tokens: c.sequences[s], adapterSlot: -1 }]);
        const err = maxAbsDiff(base, c.logits(`base/seq${s}`));
        assert.ok(err <= TOL, `base seq${s}: max abs error ${err}`);
        for (let i = 0; i < c.adapters.length; i++) {
          const [out] = await engine.scoreBatch([{ tokens: c.sequences[s], adapterSlot: i }]);
          const e = maxAbsDiff(out, c.logits(`adapter/${c.adapters[i].name}/seq${s}`));
          assert.ok(e <= TOL, `${c.adapters[i].name} seq${s}: max abs error ${e}`);
        }
      }
    });

    test('all adapters and the base in one heterogeneous batch', async (t) => {
      const items: { tokens: number[]; adapterSlot: number; key: string }[] = [];
      // Interleave so adapter segments are not sorted: base, a0, a1, base, a1, a0 ...
      for (let s = 0; s < c.sequences.length; s++) {
        const slots = [-1, ...c.adapters.map((_, i) => i)];
        if (s % 2 === 1) slots.reverse();
        for (const slot of slots) {
          items.push({ tokens: c.sequences[s], adapterSlot: slot,
            key: slot < 0 ? `base/seq${s}` : `adapter/${c.adapters[slot].name}/seq${s}` });
        }
      }
      const outs = await engine.scoreBatch(items);
      assert.equal(outs.length, items.length);
      let worst = 0;
      items.forEach((it, k) => {
        const e = maxAbsDiff(outs[k], c.logits(it.key));
        assert.ok(e <= TOL, `${it.key} in mixed batch: max abs error ${e}`);
        worst = Math.max(worst, e);
      });
      t.diagnostic(`${name}: worst max abs logit error in the mixed batch ${worst.toExponential(2)}`);
    });

    test('prefill of k tokens then one-token decode steps equals the full forward', async () => {
      const V = c.vocab;
      const seq = c.sequences[1];
      // longrope: a prompt past the original context is rotated long as a whole, so the split must be past it too
      // (a shorter prefill's keys are rotated short: that generation is the cached-decode test below).
      const k = c.ropeLongFrom !== null && seq.length > c.ropeLongFrom ? c.ropeLongFrom + 1 : 5;
      for (const slot of [-1, ...c.adapters.map((_, i) => i)]) {
        const key = slot < 0 ? 'base/seq1' : `adapter/${c.adapters[slot].name}/seq1`;
        const golden = c.logits(key);
        const seqId = `pd-${slot}`;
        const blockTable = Array.from({ length: Math.ceil(seq.length / 4) }, (_, i) => i);
        let stepId = 1000;
        const first = await engine.runner.run({ v: PROTOCOL_VERSION, type: 'step', stepId: stepId++, running: [], finished: [],
          newSeqs: [{ seqId, adapterSlot: slot, tokens: seq.slice(0, k), blockTable, sampling: GREEDY, generated: [],
            logits: 'all', promptLogprobs: false, topN: 0 }] });
        const pre = bytesToFloat32(first[0].logits!);
        assert.ok(maxAbsDiff(pre, golden.subarray(0, k * V)) <= TOL, `${key}: prefill logits`);
        for (let p = k; p < seq.length; p++) {
          const out = await engine.runner.run({ v: PROTOCOL_VERSION, type: 'step', stepId: stepId++, newSeqs: [], finished: [],
            running: [{ seqId, token: seq[p], newBlocks: [] }] });
          // Decode returns the sampled token; compare its logprob with the golden row's log-softmax.
          const row = golden.subarray(p * V, (p + 1) * V);
          const want = argmax(row);
          assert.equal(out[0].token, want, `${key}: decode at position ${p} picks the golden argmax`);
          assert.ok(Math.abs(out[0].logprob - refLogSoftmax(row)[want]) <= TOL, `${key}: decode logprob at ${p}`);
        }
        await engine.runner.run({ v: PROTOCOL_VERSION, type: 'step', stepId: stepId++, newSeqs: [], running: [], finished: [seqId] });
      }
    });

    // Only cases that carry such logits (phi3_longrope_long: generation crossing longrope's original context).
    if (loadGoldenCase(name).cachedDecode.length > 0) test('generation with the KV cache matches transformers generating with its cache', async () => {
      const V = c.vocab;
      let compared = 0;
      for (const s of c.cachedDecode) {
        for (const slot of [-1, ...c.adapters.map((_, i) => i)]) {
          const key = slot < 0 ? `base/seq${s}` : `adapter/${c.adapters[slot].name}/seq${s}`;
          const rows = c.logits(`cached_decode/${key}`);
          const fed = c.greedy[key];
          const seqId = `cd-${s}-${slot}`;
          const total = c.sequences[s].length + fed.length;
          const blockTable = Array.from({ length: Math.ceil((total + 1) / 4) }, (_, i) => i);
          let stepId = 2000;
          await engine.runner.run({ v: PROTOCOL_VERSION, type: 'step', stepId: stepId++, running: [], finished: [],
            newSeqs: [{ seqId, adapterSlot: slot, tokens: c.sequences[s], blockTable, sampling: GREEDY, generated: [],
              logits: 'none', promptLogprobs: false, topN: 5 }] });
          for (let i = 0; i < fed.length; i++) {
            const [out] = await engine.runner.run({ v: PROTOCOL_VERSION, type: 'step', stepId: stepId++, newSeqs: [], finished: [],
              running: [{ seqId, token: fed[i], newBlocks: [] }] });
            const want = refLogSoftmax(rows.subarray(i * V, (i + 1) * V));
            assert.equal(out.token, argmax(want), `${key}: decode ${i}`);
            for (const alt of out.top) {
              assert.ok(Math.abs(alt.logprob - want[alt.token]) <= TOL,
                `${key}: decode ${i}, token ${alt.token}: logprob ${alt.logprob} vs transformers ${want[alt.token]}`);
              compared++;
            }
          }
          await engine.runner.run({ v: PROTOCOL_VERSION, type: 'step', stepId: stepId++, newSeqs: [], running: [], finished: [seqId] });
        }
      }
      assert.ok(compared > 0, 'no cached-decode log-prob was compared');
    });

    test('greedy continuations equal the golden ones where the top-2 margin exceeds 1e-3', async () => {
      let compared = 0;
      for (const [key, expected] of Object.entries(c.greedy)) {
        const m = /^(base|adapter\/(.+))\/seq(\d+)$/.exec(key);
        assert.ok(m, `unexpected greedy key ${key}`);
        const slot = m[1] === 'base' ? -1 : c.adapters.findIndex((a) => a.name === m[2]);
        const tokens = [...c.sequences[Number(m[3])]];
        for (let i = 0; i < expected.length; i++) {
          const [logits] = await engine.scoreBatch([{ tokens, adapterSlot: slot }]);
          const last = logits.subarray(logits.length - c.vocab);
          const [top1, top2] = topTwo(last);
          const next = argmax(last);
          if (top1 - top2 > 1e-3) {
            assert.equal(next, expected[i], `${key}: token ${i}`);
            compared++;
          }
          tokens.push(expected[i]); // follow the golden path so later positions stay comparable
        }
      }
      assert.ok(compared > 0, 'no greedy token was comparable');
    });
  });
}

function topTwo(a: Float32Array): [number, number] {
  let m1 = -Infinity, m2 = -Infinity;
  for (const v of a) {
    if (v > m1) [m1, m2] = [v, m1];
    else if (v > m2) m2 = v;
  }
  return [m1, m2];
}
