// Structured output inside a shard's step runner (demo model, real token bytes): a constraint whose automaton
// outgrows its state limit fails its own sequence (SeqOutput.error) while the other sequences of the same
// steps go on exactly as they would alone; the scheduler ends just that sequence with the reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDemoModel } from '../../deploy/demo-model/index.js';
import { GREEDY, LocalEngine, StepRunner } from '../../shard/index.js';
import { AutomatonCache } from '../../shard/constraints/token-constraint.js';
import { PROTOCOL_VERSION, loadTokenVocab, type Constraint, type NewSequence, type SeqOutput, type Step } from '../../protocol/index.js';
import { Scheduler, Sequence } from '../../coordinator/scheduler/index.js';

const step = (stepId: number, parts: Partial<Step>): Step =>
  ({ v: PROTOCOL_VERSION, type: 'step', stepId, newSeqs: [], running: [], finished: [], ...parts });
const newSeq = (seqId: string, tokens: number[], blocks: number[], constraint?: Constraint): NewSequence => ({
  seqId, adapterSlot: -1, tokens, blockTable: blocks, sampling: GREEDY, generated: [], logits: 'none', promptLogprobs: false,
  topN: 0, ...(constraint ? { constraint } : {}) });

test('a constraint that outgrows its automaton limit fails only its sequence; the batch goes on', async () => {
  const dir = await ensureDemoModel(join(mkdtempSync(join(tmpdir(), 'weft-so-runner-')), 'demo'));
  const engine = LocalEngine.open(dir, { numBlocks: 64, blockSize: 16, adapterSlots: 1 });
  try {
    const vocab = loadTokenVocab(dir, engine.model.spec.vocab);
    const runner = (maxStates: number) => new StepRunner(engine.model, 0, new AutomatonCache(() => vocab, maxStates));
    // Each count of the repeat is a DFA state; a mask looks as deep as the longest token (~10 bytes) ahead, so
    // 20 states are used up after a few generated tokens (a limit of 12 fails at once, 40 outlasts the run).
    const pattern = { pattern: '[a-z ]{0,400}', endTokens: engine.model.spec.eosTokenIds };
    const prompt = [5, 6, 7, 8];
    const plain = async (r: StepRunner, withConstrained: boolean): Promise<{ plain: number[]; constrained: SeqOutput[] }> => {
      const got = { plain: [] as number[], constrained: [] as SeqOutput[] };
      let outs = await r.run(step(1, { newSeqs: [newSeq('p', prompt, [0, 1]), ...(withConstrained ? [newSeq('c', prompt, [2, 3], pattern)] : [])] }));
      for (let s = 2; s <= 12; s++) {
        for (const o of outs) (o.seqId === 'p' ? got.plain.push(o.token) : got.constrained.push(o));
        const running = outs.filter((o) => o.seqId === 'p' || o.error === undefined).map((o) => ({ seqId: o.seqId, token: o.token, newBlocks: [] }));
        const finished = outs.filter((o) => o.error !== undefined).map((o) => o.seqId);
        outs = await r.run(step(s, { running, finished }));
      }
      return got;
    };
    const alone = await plain(runner(20), false);
    const mixed = await plain(runner(20), true);
    assert.deepEqual(mixed.plain, alone.plain, 'the unconstrained sequence is unaffected');
    const failure = mixed.constrained.find((o) => o.error !== undefined);
    assert.ok(failure, 'the constrained sequence failed');
    assert.match(failure!.error!, /^structured output: the constraint needs more than 20 automaton states/);
    assert.equal(mixed.constrained.at(-1), failure, 'nothing after the failure');
    const ok = mixed.constrained.filter((o) => o.error === undefined).map((o) => o.token);
    assert.ok(ok.length > 0, 'it generated before the limit was reached');
    // With room, the same constrained sequence runs all the steps.
    const roomy = await plain(runner(5000), true);
    assert.ok(roomy.constrained.every((o) => o.error === undefined) && roomy.constrained.length === 11);
    assert.deepEqual(roomy.constrained.slice(0, ok.length).map((o) => o.token), ok);
  } finally {
    engine.dispose();
  }
});

test('the scheduler ends a sequence whose output carries an error with that reason, and frees its blocks', () => {
  const s = new Scheduler({ numBlocks: 16, blockSize: 4, maxBatchSize: 8, maxBatchPrefillTokens: 64, maxTotalTokens: 64,
    maxActiveAdapters: 4, adapterCycleTimeS: 10 });
  s.add(new Sequence({ seqId: 'a', promptTokens: [1, 2, 3], sampling: GREEDY, maxNewTokens: 8 }));
  s.add(new Sequence({ seqId: 'b', promptTokens: [4, 5], sampling: GREEDY, maxNewTokens: 8 }));
  const first = s.schedule()!;
  const events = s.update({ v: PROTOCOL_VERSION, type: 'step.result', stepId: first.step.stepId, rank: 0, computeMs: 1,
    outputs: [{ seqId: 'a', token: 9, logprob: 0, top: [], error: 'structured output: too big' }, { seqId: 'b', token: 7, logprob: 0, top: [] }] });
  assert.deepEqual(events.map((e) => [e.seqId, e.finished ?? null, e.error ?? null]), [['a', 'error', 'structured output: too big'], ['b', null, null]]);
  const next = s.schedule()!;
  assert.deepEqual(next.step.finished, ['a']);
  assert.deepEqual(next.step.running.map((r) => r.seqId), ['b']);
  assert.equal(s.usedBlocks, 1);
});
