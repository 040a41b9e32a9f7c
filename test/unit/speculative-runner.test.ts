// Speculative decoding inside a shard's step runner, driven by the real scheduler (demo model, CPU): whatever
// the drafts — the true continuation with deliberate mistakes, or the n-gram lookup — every sequence generates
// exactly the tokens it generates without speculation: seeded sampling with penalties, min_tokens, structured
// output. The oracle drafter makes most drafts right, so every position of a verification row (its RNG draw,
// its penalty window, its constraint state) decides tokens that are checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDemoModel } from '../../deploy/demo-model/index.js';
import { GREEDY, LocalEngine, StepRunner } from '../../shard/index.js';
import { AutomatonCache } from '../../shard/constraints/token-constraint.js';
import { NgramIndex, proposeDrafts, type Drafter } from '../../shard/engine/speculation.js';
import { PROTOCOL_VERSION, loadTokenVocab, type SamplingParams } from '../../protocol/index.js';
import { Scheduler, Sequence, type SequenceInit } from '../../coordinator/scheduler/index.js';

interface Run { tokens: Map<string, number[]>; steps: number; drafted: number; accepted: number }

/** Runs seqs to completion through a Scheduler (speculate drafts per step) and runner, one step at a time. */
async function generate(runner: StepRunner, seqs: SequenceInit[], speculate: number): Promise<Run> {
  const sched = new Scheduler({ numBlocks: 96, blockSize: 4, maxBatchSize: 8, maxBatchPrefillTokens: 256, maxTotalTokens: 128,
    maxActiveAdapters: 0, adapterCycleTimeS: 10, speculate });
  for (const s of seqs) sched.add(new Sequence(s));
  const tokens = new Map<string, number[]>(seqs.map((s) => [s.seqId, []]));
  let steps = 0;
  for (let scheduled = sched.schedule(); scheduled !== null; scheduled = sched.schedule()) {
    steps++;
    const outputs = await runner.run(scheduled.step);
    for (const ev of sched.update({ v: PROTOCOL_VERSION, type: 'step.result', stepId: scheduled.step.stepId, rank: 0, outputs, computeMs: 0 })) {
      assert.equal(ev.error, undefined);
      tokens.get(ev.seqId)!.push(ev.token);
    }
  }
  assert.equal(sched.usedBlocks, 0);
  return { tokens, steps, ...(({ drafted, accepted }) => ({ drafted, accepted }))(sched.speculation) };
}

test('speculative decoding generates exactly the tokens plain decoding does, however good the drafts', async () => {
  const dir = await ensureDemoModel(join(mkdtempSync(join(tmpdir(), 'weft-spec-runner-')), 'demo'));
  const engine = LocalEngine.open(dir, { numBlocks: 96, blockSize: 4, adapterSlots: 1 });
  try {
    const vocab = loadTokenVocab(dir, engine.model.spec.vocab);
    const eos = engine.model.spec.eosTokenIds;
    const sampled = (seed: number, over: Partial<SamplingParams> = {}): SamplingParams =>
      ({ ...GREEDY, doSample: true, temperature: 0.9, topK: 40, seed, ...over });
    const seqs: SequenceInit[] = [
      { seqId: 'greedy', promptTokens: [5, 6, 7, 8, 5, 6, 7], sampling: GREEDY, maxNewTokens: 30 },
      { seqId: 'sampled', promptTokens: [9, 10, 11], sampling: sampled(11), maxNewTokens: 30 },
      { seqId: 'penalties', promptTokens: [12, 13, 14, 15], sampling: sampled(12, { repetitionPenalty: 1.4, frequencyPenalty: 0.5, presencePenalty: 0.4 }), maxNewTokens: 30 },
      // EOS made likely, so it comes as soon as min_tokens allows it: at a draft position of some row.
      { seqId: 'min-tokens', promptTokens: [16, 17], sampling: sampled(13, { minTokens: 18, endTokens: eos, topK: 0, topP: 0.9,
        logitBias: eos.map((token) => ({ token, bias: 12 })) }), maxNewTokens: 30, eosTokenIds: eos },
      { seqId: 'constrained', promptTokens: [18, 19, 20], sampling: sampled(14), maxNewTokens: 24, eosTokenIds: eos,
        constraint: { pattern: '[a-z ]{0,60}', endTokens: eos } },
    ];
    const runner = (drafter?: Drafter) => new StepRunner(engine.model, 0, new AutomatonCache(() => vocab, 5000), drafter);
    const plain = await generate(runner(), seqs, 0);  // (no drafts asked: the lookup never runs)
    for (const [id, t] of plain.tokens) assert.ok(t.length >= 10, `${id}: ${t.length} tokens`);
    assert.equal(plain.tokens.get('min-tokens')!.length, 19, 'EOS right after min_tokens');

    // The true continuation, with every fifth guess wrong.
    const promptLen = new Map(seqs.map((s) => [s.seqId, s.promptTokens.length]));
    const oracle: Drafter = (seqId, history, max) => {
      const done = history.length - promptLen.get(seqId)!;
      return plain.tokens.get(seqId)!.slice(done, done + max).map((t, i) => ((done + i) % 5 === 3 ? (t + 1) % 100 : t));
    };
    const guessed = await generate(runner(oracle), seqs, 4);
    assert.deepEqual(guessed.tokens, plain.tokens);
    assert.ok(guessed.accepted > guessed.drafted / 3 && guessed.accepted < guessed.drafted, `${guessed.accepted} of ${guessed.drafted} accepted`);
    assert.ok(guessed.steps < plain.steps * 0.6, `steps: ${guessed.steps} with speculation, ${plain.steps} without`);

    // The n-gram lookup itself (what a server runs: no drafter given).
    const lookup = await generate(runner(), seqs, 4);
    assert.deepEqual(lookup.tokens, plain.tokens);
    assert.ok(lookup.drafted > 0, 'the lookup proposed nothing');
  } finally {
    engine.dispose();
  }
});

test('the n-gram lookup continues the most recent earlier occurrence of the longest matching tail', () => {
  // Tail [1, 2, 3] occurred at 0 and 4: the later one (followed by 9, 1, 2, 3) wins.
  assert.deepEqual(proposeDrafts([1, 2, 3, 7, 1, 2, 3, 9, 1, 2, 3], 3), [9, 1, 2]);
  // Only as many tokens as follow the match (here the match ends right before the tail).
  assert.deepEqual(proposeDrafts([4, 5, 6, 4, 5], 4), [6, 4, 5]);
  // No 3- or 2-gram match: a 1-gram one ([8] at 1, followed by 2).
  assert.deepEqual(proposeDrafts([1, 8, 2, 3, 8], 2), [2, 3]);
  // A run of one token predicts more of it (the match may overlap the tail).
  assert.deepEqual(proposeDrafts([5, 5, 5], 4), [5]);
  assert.deepEqual(proposeDrafts([1, 2, 3], 4), []);
  assert.deepEqual(proposeDrafts([1, 2, 1], 0), []);
  assert.deepEqual(proposeDrafts([7], 3), []);
});

test('the incremental n-gram index proposes exactly what the scan does, step by step as a history grows', () => {
  let state = 7;
  const rand = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32);
  let hits = 0;
  for (let run = 0; run < 40; run++) {
    const vocab = 2 + Math.floor(rand() * 40);  // small vocabularies: many repeats
    const history = Array.from({ length: 1 + Math.floor(rand() * 5) }, () => Math.floor(rand() * vocab));
    const window = run % 2 === 0 ? 8192 : 8 + Math.floor(rand() * 24);  // short windows: starts fall out of them
    const index = new NgramIndex(window);
    for (let step = 0; step < 120; step++) {
      const max = Math.floor(rand() * 6);
      index.update(history);
      const got = index.propose(history, max);
      assert.deepEqual(got, proposeDrafts(history, max, window), `run ${run} step ${step} window ${window}: ${history.join(',')}`);
      if (got.length > 0) hits++;
      // Grow by one token, or several (a step that accepted drafts).
      for (let k = 1 + Math.floor(rand() * 3); k > 0; k--) history.push(Math.floor(rand() * vocab));
    }
  }
  assert.ok(hits > 1000, `only ${hits} lookups found a match`);
});
