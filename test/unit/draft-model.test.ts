// Speculative decoding with a draft model (--speculative-model): the drafter's greedy guesses are the model's own
// greedy continuation (checked against transformers' greedy tokens of the golden case), its cache follows a
// sequence across accepted and rejected drafts, and — through the real scheduler and step runner — the output is
// exactly the output without speculation, with every draft accepted when the draft is the model itself and some
// when it is a 4-bit quantization of it. Rank 0's drafts reach the other ranks through the collective.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GREEDY, StepRunner } from '../../shard/index.js';
import { loadModel, readModelSpec, type LoadedModel } from '../../shard/models/index.js';
import { DraftModelDrafter, type BatchDrafter } from '../../shard/engine/draft-model.js';
import { shareDrafts } from '../../shard/engine/draft-share.js';
import { PROTOCOL_VERSION, type SamplingParams } from '../../protocol/index.js';
import { Scheduler, Sequence, type SequenceInit } from '../../coordinator/scheduler/index.js';
import { loadGoldenCase } from '../helpers/golden.js';

const BLOCK = 4;
const golden = loadGoldenCase('llama');
const open = (dir: string, numBlocks = 64): LoadedModel => loadModel(dir, readModelSpec(dir), { rank: 0, world: 1, numBlocks, blockSize: BLOCK, adapterSlots: 1 });

test('the draft model guesses its greedy continuation, batched, and keeps its cache across accepted and rejected drafts', async () => {
  const model = open(golden.modelDir);
  try {
    const drafter = new DraftModelDrafter(model, model.spec.vocab);
    const greedy = golden.sequences.map((_, i) => golden.greedy[`base/seq${i}`]!);
    const first = await drafter.propose(golden.sequences.map((history, i) => ({ seqId: `s${i}`, history, max: 6 })));
    assert.deepEqual(first, greedy, 'transformers\' greedy tokens');
    // Two drafts accepted and the third corrected (the verifier's token): the drafter goes on from there.
    const accepted = golden.sequences.map((seq, i) => [...seq, ...greedy[i]!.slice(0, 3)]);
    const next = await drafter.propose(accepted.map((history, i) => ({ seqId: `s${i}`, history, max: 3 })));
    assert.deepEqual(next, greedy.map((g) => g.slice(3, 6)));
    // A history that left the drafts behind (a wrong token at their first position) is drafted from scratch.
    const other = [...golden.sequences[0]!, (greedy[0]![0]! + 1) % 512];
    const fresh = new DraftModelDrafter(model, model.spec.vocab);
    const [again] = await drafter.propose([{ seqId: 's0', history: other, max: 4 }]);
    assert.deepEqual(again, (await fresh.propose([{ seqId: 'x', history: other, max: 4 }]))[0]);
    fresh.reset();
    for (const id of ['s0', 's1', 's2']) drafter.forget(id);
    assert.equal(drafter.tracked, 0);
  } finally {
    model.native.dispose();
  }
});

test('a sequence the draft cache cannot hold gets no drafts; the others still do, and forgetting frees its blocks', async () => {
  const model = open(golden.modelDir, 5);  // 20 positions
  try {
    const drafter = new DraftModelDrafter(model, model.spec.vocab);
    const [long, short] = await drafter.propose([
      { seqId: 'long', history: golden.sequences[1]!, max: 6 },   // 12 + 5 positions: 5 blocks, all of them
      { seqId: 'short', history: golden.sequences[2]!, max: 2 },  // 3 + 1 positions: 1 more block
    ]);
    assert.deepEqual(long, golden.greedy['base/seq1']);
    assert.deepEqual(short, [], 'no block left');
    drafter.forget('long');
    const [now] = await drafter.propose([{ seqId: 'short', history: golden.sequences[2]!, max: 2 }]);
    assert.deepEqual(now, golden.greedy['base/seq2']!.slice(0, 2));
  } finally {
    model.native.dispose();
  }
});

test('rank 0\'s drafts reach every rank through the all-reduce; a failing draft model gives no drafts but still joins it', async () => {
  const requests = [{ seqId: 'a', history: [1, 2], max: 3 }, { seqId: 'b', history: [3], max: 0 }, { seqId: 'c', history: [4], max: 2 }];
  const fixed: BatchDrafter = { propose: async () => [[7, 8], [], [9, 10]], forget: () => undefined, reset: () => undefined };
  let sent: Float32Array | undefined;
  const rank0 = await shareDrafts({ drafter: fixed, share: (b) => { sent = b.slice(); } }, requests);
  // Rank 1 adds its zeros to what rank 0 sent: the sum every rank ends with.
  const rank1 = await shareDrafts({ drafter: null, share: (b) => b.set(b.map((v, i) => v + sent![i]!)) }, requests);
  assert.deepEqual(rank0, [[7, 8], [], [9, 10]]);
  assert.deepEqual(rank1, rank0);
  const errors: string[] = [];
  let joined = false;
  const failing: BatchDrafter = { ...fixed, propose: async () => { throw new Error('device lost'); } };
  const none = await shareDrafts({ drafter: failing, share: () => { joined = true; }, onError: (e) => errors.push(e.message) }, requests);
  assert.deepEqual(none, [[], [], []]);
  assert.ok(joined, 'rank 0 must reach the collective the others wait in');
  assert.deepEqual(errors, ['device lost']);
});

/** Runs seqs to completion through a Scheduler and runner, one step at a time. */
async function generate(runner: StepRunner, seqs: SequenceInit[], speculate: number) {
  const sched = new Scheduler({ numBlocks: 96, blockSize: BLOCK, maxBatchSize: 8, maxBatchPrefillTokens: 256, maxTotalTokens: 128,
    maxActiveAdapters: 0, adapterCycleTimeS: 10, speculate });
  for (const s of seqs) sched.add(new Sequence(s));
  const tokens = new Map<string, number[]>(seqs.map((s) => [s.seqId, []]));
  for (let scheduled = sched.schedule(); scheduled !== null; scheduled = sched.schedule()) {
    const outputs = await runner.run(scheduled.step);
    for (const ev of sched.update({ v: PROTOCOL_VERSION, type: 'step.result', stepId: scheduled.step.stepId, rank: 0, outputs, computeMs: 0 })) {
      assert.equal(ev.error, undefined);
      tokens.get(ev.seqId)!.push(ev.token);
    }
  }
  return { tokens, ...sched.speculation };
}

test('through the scheduler and step runner a draft model changes how many steps, never which tokens', async () => {
  const target = open(golden.modelDir, 96);
  const selfDraft = open(golden.modelDir, 96);
  const quantized = open(golden.modelDir.replace(/llama\/model$/, 'llama_awq/model'), 96);
  try {
    const sampled = (seed: number): SamplingParams => ({ ...GREEDY, doSample: true, temperature: 0.8, topK: 20, seed });
    const greedy: SequenceInit[] = golden.sequences.map((promptTokens, i) => ({ seqId: `g${i}`, promptTokens, sampling: GREEDY, maxNewTokens: 24 }));
    const withDraft = (draft: LoadedModel) => new StepRunner(target, 0, undefined, undefined, { drafter: new DraftModelDrafter(draft, target.spec.vocab) });
    // Greedy: the model drafting for itself guesses every token right.
    const plain = await generate(new StepRunner(target, 0), greedy, 0);
    const self = await generate(withDraft(selfDraft), greedy, 4);
    assert.deepEqual(self.tokens, plain.tokens);
    assert.ok(self.drafted >= 40 && self.accepted === self.drafted, `the model drafting for itself: ${self.accepted} of ${self.drafted}`);
    // With a seeded sampled sequence in the batch too, and the 4-bit quantization of the model as the draft.
    const mixed = [...greedy, { seqId: 'sampled', promptTokens: golden.sequences[0]!, sampling: sampled(5), maxNewTokens: 24 }];
    const plainMixed = await generate(new StepRunner(target, 0), mixed, 0);
    for (const draft of [selfDraft, quantized]) {
      const run = await generate(withDraft(draft), mixed, 4);
      assert.deepEqual(run.tokens, plainMixed.tokens);
      assert.ok(run.accepted > 0 && run.accepted < run.drafted, `${run.accepted} of ${run.drafted} accepted`);
    }
  } finally {
    for (const m of [target, selfDraft, quantized]) m.native.dispose();
  }
});
