// The scheduler's batching, step by step against a ReferenceShard: prefill and decode, KV blocks, the prefill
// budget and chunked prefill, batch size, preemption by recompute, aborts, failures, misuse and async scheduling.
// Adapter admission and priority scheduling: scheduler-admission.test.ts; invariants over random runs:
// scheduler-random.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PROTOCOL_VERSION, SAMPLED_LAST_STEP } from '../../protocol/index.js';
import { ReferenceShard, Scheduler, SchedulerError, Sequence, StepFailedError } from '../../coordinator/scheduler/index.js';
import type { ReferenceSampler } from '../../coordinator/scheduler/index.js';
import { Harness, SAMPLING, config, hashSampler, newIds, runIds, seq } from '../helpers/scheduler-harness.js';

test('a request prefills once, decodes every step and frees everything at max_new_tokens', () => {
  const h = new Harness(config());
  h.add(seq('a', 5, { maxNew: 3 }));
  const s1 = h.step()!;
  assert.deepEqual(s1.newSeqs[0]!.tokens, [1, 2, 3, 4, 5]);
  assert.equal(s1.newSeqs[0]!.blockTable.length, 2);
  assert.deepEqual(s1.newSeqs[0]!.generated, []);
  assert.equal(s1.newSeqs[0]!.adapterSlot, -1);
  const s2 = h.step()!;
  assert.deepEqual(s2.running, [{ seqId: 'a', token: h.tokens('a')[0], newBlocks: [] }]);
  assert.deepEqual(newIds(s2), []);
  h.step();
  assert.equal(h.reason('a'), 'length');
  assert.equal(h.tokens('a').length, 3);
  assert.equal(h.sched.get('a'), undefined);
  assert.equal(h.sched.usedBlocks, 0);
  assert.ok(h.sched.hasWork(), 'the shards still have to be told');
  const s4 = h.step()!;
  assert.deepEqual([s4.finished, s4.running, s4.newSeqs], [['a'], [], []]);
  assert.ok(!h.sched.hasWork());
  assert.equal(h.sched.schedule(), null);
  assert.equal(h.shard.size, 0);
});

test('a running sequence gets a new block exactly when it crosses a block boundary', () => {
  const h = new Harness(config({ blockSize: 4 }));
  h.add(seq('a', 4, { maxNew: 6 }));
  assert.equal(h.step()!.newSeqs[0]!.blockTable.length, 1);
  const grown = [2, 3, 4, 5, 6].map(() => h.step()!.running[0]!.newBlocks.length);
  assert.deepEqual(grown, [1, 0, 0, 0, 1]);
  h.runToEnd();
});

test('EOS and max total tokens end a sequence with their reasons', () => {
  const eosAt7: ReferenceSampler = (_id, tokens) => (tokens.length === 7 ? 99 : 50);
  const h = new Harness(config({ maxTotalTokens: 12 }), {}, eosAt7);
  h.add(seq('eos', 5, { maxNew: 10, eos: [99, 98] }), seq('long', 10, { maxNew: 100 }));
  h.runToEnd();
  assert.deepEqual(h.tokens('eos'), [50, 50, 99]);
  assert.equal(h.reason('eos'), 'eos_token');
  assert.equal(h.tokens('long').length, 2);
  assert.equal(h.reason('long'), 'length');
});

test('max total tokens is clamped to the cache and over-long prompts are refused', () => {
  const h = new Harness(config({ numBlocks: 2, blockSize: 4 }));
  assert.throws(() => h.add(seq('big', 8)), (e) => e instanceof SchedulerError && e.code === 'INVALID_SEQUENCE');
  h.add(seq('a', 6, { maxNew: 100 }));
  h.runToEnd();
  assert.equal(h.tokens('a').length, 2);
});

test('admission respects the prefill token budget, FCFS; the prompt that does not fit is split (chunked prefill)', () => {
  const h = new Harness(config({ maxBatchPrefillTokens: 10 }));
  h.add(seq('a', 4), seq('b', 4), seq('c', 4));
  const s1 = h.step()!;
  assert.deepEqual(newIds(s1), ['a', 'b', 'c']);
  assert.deepEqual(s1.newSeqs.map((n) => [n.tokens.length, n.pending ?? 0]), [[4, 0], [4, 0], [2, 2]]);
  assert.deepEqual(h.events.get('c'), undefined, 'nothing is sampled before the prefill is complete');
  const s2 = h.step()!;
  assert.deepEqual([newIds(s2), runIds(s2)], [[], ['a', 'b']]);
  assert.deepEqual(s2.chunks, [{ seqId: 'c', tokens: [3, 4], pending: 0 }]);
  assert.equal(h.events.get('c')!.length, 1, 'the last chunk samples the first token');
  assert.deepEqual(runIds(h.step()), ['a', 'b', 'c']);
  h.runToEnd();
});

test('a prompt larger than the budget is prefilled over several steps; one that needs logits runs alone instead', () => {
  const h = new Harness(config({ maxBatchPrefillTokens: 10 }));
  h.add(seq('big', 25), seq('small', 3));
  const s1 = h.step()!;
  assert.deepEqual(s1.newSeqs.map((n) => [n.seqId, n.tokens.length, n.pending]), [['big', 10, 15]]);
  const s2 = h.step()!;
  assert.deepEqual([newIds(s2), s2.chunks!.map((c) => [c.seqId, c.tokens.length, c.pending])], [[], [['big', 10, 5]]]);
  const s3 = h.step()!;
  assert.deepEqual([newIds(s3), s3.chunks!.map((c) => [c.seqId, c.tokens.length, c.pending])], [['small'], [['big', 5, 0]]]);
  assert.deepEqual(runIds(h.step()), ['big', 'small']);
  h.runToEnd();
  // prompt logprobs need every position's logits in one pass: never split, so it may exceed the budget alone
  const wants = new Sequence({ seqId: 'logprobs', promptTokens: Array.from({ length: 25 }, (_, i) => 1 + i), sampling: SAMPLING,
    maxNewTokens: 2, promptLogprobs: true });
  h.add(seq('s2', 3));
  h.add(wants);
  assert.deepEqual(newIds(h.step()), ['s2']);
  const alone = h.step()!;
  assert.deepEqual([newIds(alone), alone.newSeqs[0]!.tokens.length, alone.newSeqs[0]!.pending], [['logprobs'], 25, undefined]);
  h.runToEnd();
});

test('maxBatchSize caps sequences per step; the next one enters when a slot frees', () => {
  const h = new Harness(config({ maxBatchSize: 2 }));
  h.add(seq('a', 3, { maxNew: 2 }), seq('b', 3, { maxNew: 5 }), seq('c', 3, { maxNew: 2 }));
  assert.deepEqual(newIds(h.step()), ['a', 'b']);
  assert.deepEqual(newIds(h.step()), []);
  assert.equal(h.reason('a'), 'length');
  const s3 = h.step();
  assert.deepEqual([s3?.finished, runIds(s3), newIds(s3)], [['a'], ['b'], ['c']]);
  h.runToEnd();
});

test('a request that does not fit in free blocks waits, and so do those behind it', () => {
  const h = new Harness(config({ numBlocks: 4, blockSize: 4 }));
  h.add(seq('a', 4, { maxNew: 2 }), seq('b', 13, { maxNew: 1 }), seq('c', 2, { maxNew: 1 }));
  assert.deepEqual(newIds(h.step()), ['a'], 'c would fit but waits behind b');
  assert.deepEqual(newIds(h.step()), []);
  assert.deepEqual(newIds(h.step()), ['b']);
  assert.deepEqual(newIds(h.step()), ['c']);
  h.runToEnd();
});

test('preemption by recompute: newest running first, back at the queue front, same tokens in the end', () => {
  const cfg = config({ numBlocks: 6, blockSize: 2 });
  const h = new Harness(cfg);
  h.add(seq('a', 3, { maxNew: 6 }), seq('b', 3, { maxNew: 6 }), seq('c', 3, { maxNew: 6 }));
  const steps = h.runToEnd();
  assert.deepEqual([steps[2]!.finished, runIds(steps[2]!)], [['c'], ['a', 'b']], 'step 3: c, the newest, is preempted');
  assert.deepEqual([steps[4]!.finished, runIds(steps[4]!)], [['b'], ['a']], 'step 5: then b');
  const readmitted = steps.flatMap((s) => s.newSeqs.filter((n) => n.generated.length > 0));
  assert.deepEqual(readmitted.map((n) => n.seqId), ['b', 'c'], 'the older preempted sequence comes back first');
  for (const n of readmitted) {
    assert.deepEqual(n.tokens, [1, 2, 3, ...n.generated]);
    assert.deepEqual(n.generated, h.tokens(n.seqId).slice(0, n.generated.length));
  }
  assert.ok(h.sched.preemptions >= 2);
  const big = new Harness(config());
  big.add(seq('a', 3, { maxNew: 6 }), seq('b', 3, { maxNew: 6 }), seq('c', 3, { maxNew: 6 }));
  big.runToEnd();
  for (const id of ['a', 'b', 'c']) assert.deepEqual(h.tokens(id), big.tokens(id), `${id}: recompute changed the output`);
});

test('abort frees blocks at the next step, also when it lands mid-flight or while waiting', () => {
  const h = new Harness(config({ maxBatchSize: 2 }));
  h.add(seq('a', 5, { maxNew: 20 }), seq('b', 5, { maxNew: 20 }), seq('w', 3));
  h.step();
  h.step();
  assert.ok(h.sched.abort('b'));
  assert.ok(!h.sched.abort('b'), 'a second abort is a no-op');
  const s3 = h.step()!;
  assert.deepEqual([s3.finished, runIds(s3)], [['b'], ['a']]);
  assert.deepEqual(newIds(s3), ['w']);
  const scheduled = h.sched.schedule()!;
  assert.ok(h.sched.abort('a'));
  const events = h.sched.update(h.shard.run(scheduled.step));
  assert.deepEqual(events.map((e) => e.seqId), ['w'], 'no token for a sequence aborted in flight');
  assert.equal(h.sched.usedBlocks, h.sched.blockTable('a').length + h.sched.blockTable('w').length);
  assert.deepEqual(h.step()!.finished, ['a']);
  h.add(seq('late', 3));
  assert.ok(h.sched.abort('late'));
  const s = h.step();
  assert.ok(!s?.finished.includes('late') && !newIds(s).includes('late'), 'never sent, never freed on shards');
  assert.equal(h.sched.waiting, 0);
  h.runToEnd();
  assert.equal(h.reason('b'), undefined);
});

test('finish() ends a sequence with stop_sequence', () => {
  const h = new Harness(config());
  const a = seq('a', 3, { maxNew: 50 });
  h.add(a);
  h.step();
  h.step();
  assert.ok(h.sched.finish('a'));
  h.runToEnd();
  assert.equal(a.finishReason, 'stop_sequence');
  assert.equal(a.status, 'finished');
  assert.equal(h.tokens('a').length, 2);
});

test('a failed step ends its sequences with error; waiting ones go on', () => {
  const h = new Harness(config({ maxBatchSize: 2 }));
  const seqs = [seq('a', 3, { maxNew: 9 }), seq('b', 3, { maxNew: 9 }), seq('c', 3, { maxNew: 2 })];
  h.add(...seqs);
  h.step();
  const scheduled = h.sched.schedule()!;
  const result = { ...h.shard.run(scheduled.step), outputs: [], error: 'CUDA error: out of memory' };
  assert.throws(
    () => h.sched.update(result),
    (e) => e instanceof StepFailedError && e.stepId === scheduled.step.stepId && e.failed.length === 2,
  );
  assert.deepEqual(seqs.map((s) => s.finishReason), ['error', 'error', null]);
  assert.equal(seqs[0]!.errorMessage, 'CUDA error: out of memory');
  assert.equal(h.sched.usedBlocks, 0);
  const next = h.step()!;
  assert.deepEqual([next.finished, newIds(next)], [['a', 'b'], ['c']]);
  const bad = h.sched.schedule()!;
  assert.throws(() => h.sched.update({ ...h.shard.run(bad.step), outputs: [] }), StepFailedError);
  assert.equal(seqs[2]!.finishReason, 'error');
  h.runToEnd();
});

test('failAll ends every sequence, frees every block and ignores the lost step', () => {
  const h = new Harness(config({ maxBatchSize: 2 }));
  h.add(seq('a', 3, { maxNew: 9 }), seq('b', 3, { maxNew: 9 }), seq('c', 3));
  h.step();
  const scheduled = h.sched.schedule()!;
  const result = h.shard.run(scheduled.step);
  const failed = h.sched.failAll('shard 1 lost');
  assert.deepEqual(failed.map((s) => [s.seqId, s.finishReason, s.errorMessage]), [
    ['a', 'error', 'shard 1 lost'],
    ['b', 'error', 'shard 1 lost'],
    ['c', 'error', 'shard 1 lost'],
  ]);
  assert.deepEqual([h.sched.usedBlocks, h.sched.running, h.sched.waiting], [0, 0, 0]);
  assert.deepEqual(h.sched.update(result), []);
  assert.deepEqual(h.step()!.finished, ['a', 'b']);
  h.runToEnd();
});

test('misuse is reported with named errors', () => {
  const sched = new Scheduler(config({ maxTotalTokens: 10, maxActiveAdapters: 0 }));
  const code = (c: string) => (e: unknown) => e instanceof SchedulerError && e.code === c;
  sched.add(seq('a', 3));
  assert.throws(() => sched.add(seq('a', 3)), code('INVALID_SEQUENCE'));
  assert.throws(() => sched.add(seq('e', 0)), code('INVALID_SEQUENCE'));
  assert.throws(() => sched.add(seq('long', 10)), code('INVALID_SEQUENCE'));
  assert.throws(() => sched.add(seq('m', 3, { maxNew: 0 })), code('INVALID_SEQUENCE'));
  assert.throws(() => sched.add(seq('ad', 3, { adapter: 'A' })), code('INVALID_SEQUENCE'));
  assert.throws(() => sched.update({ v: PROTOCOL_VERSION, type: 'step.result', stepId: 1, rank: 0, outputs: [], computeMs: 0 }), code('OUT_OF_ORDER'));
  const s = sched.schedule()!;
  assert.throws(() => sched.schedule(), code('OUT_OF_ORDER'));
  assert.throws(() => sched.update({ v: PROTOCOL_VERSION, type: 'step.result', stepId: s.step.stepId + 1, rank: 0, outputs: [], computeMs: 0 }), code('OUT_OF_ORDER'));
  assert.throws(() => new Scheduler(config({ blockSize: 0 })), code('INVALID_CONFIG'));
  assert.throws(() => new Scheduler(config({ adapterCycleTimeS: Number.NaN })), code('INVALID_CONFIG'));
});

// Async scheduling: scheduleAhead() builds step N+1 while step N is in flight.
const outOfOrder = (e: unknown) => e instanceof SchedulerError && e.code === 'OUT_OF_ORDER';
test('scheduleAhead: running sequences decode again with SAMPLED_LAST_STEP; one that ends by length at N is left out', () => {
  const sched = new Scheduler(config());
  const shard = new ReferenceShard(64, 4, hashSampler);
  sched.add(seq('long', 3, { maxNew: 5 }));
  sched.add(seq('short', 3, { maxNew: 1 }));
  const n = sched.schedule()!;
  const resultN = shard.run(n.step);
  const ahead = sched.scheduleAhead()!;
  assert.deepEqual(ahead.step.running.map((r) => [r.seqId, r.token]), [['long', SAMPLED_LAST_STEP]]);
  assert.deepEqual(ahead.step.newSeqs, []);
  const resultN1 = shard.run(ahead.step); // the shard feeds the token it sampled at N
  const evN = sched.update(resultN);
  assert.deepEqual(evN.map((e) => [e.seqId, e.finished ?? null]), [['long', null], ['short', 'length']]);
  const evN1 = sched.update(resultN1);
  assert.deepEqual(evN1.map((e) => e.seqId), ['long']);
  assert.deepEqual(sched.get('long')!.generated, [resultN.outputs[0]!.token, resultN1.outputs[0]!.token]);
  assert.throws(() => sched.update(resultN1), outOfOrder);
});

test('scheduleAhead: a sequence that hits EOS at N decodes once more; that output is dropped and its blocks freed next step', () => {
  // The sampler answers EOS (7) for the first token of 'eos', anything else for the others.
  const sampler: ReferenceSampler = (id, tokens) => (id === 'eos' && tokens.length === 3 ? 7 : 100 + tokens.length);
  const sched = new Scheduler(config());
  const shard = new ReferenceShard(64, 4, sampler);
  sched.add(seq('eos', 3, { maxNew: 8, eos: [7] }));
  sched.add(seq('other', 3, { maxNew: 8, eos: [7] }));
  const n = sched.schedule()!;
  const rN = shard.run(n.step);
  const n1 = sched.scheduleAhead()!;
  assert.deepEqual(n1.step.running.map((r) => r.seqId).sort(), ['eos', 'other']);
  const rN1 = shard.run(n1.step);
  assert.equal(sched.update(rN).find((e) => e.seqId === 'eos')!.finished, 'eos_token');
  const used = sched.usedBlocks;
  const evN1 = sched.update(rN1);
  assert.deepEqual(evN1.map((e) => e.seqId), ['other'], 'the extra token of the finished sequence is not streamed');
  assert.deepEqual(sched.get('eos'), undefined);
  assert.equal(sched.usedBlocks, used);
  const n2 = sched.schedule()!;
  assert.deepEqual(n2.step.finished, ['eos'], 'the shard drops it in the step after the one that computed it');
  shard.run(n2.step);
  assert.equal(shard.has('eos'), false);
});

test('scheduleAhead: returns null and changes nothing when the next blocks do not fit; needs exactly one step in flight', () => {
  const sched = new Scheduler(config({ numBlocks: 2, blockSize: 4 }));
  assert.throws(() => sched.scheduleAhead(), outOfOrder);
  sched.add(seq('a', 4, { maxNew: 8 }));
  sched.add(seq('b', 4, { maxNew: 8 }));
  const shard = new ReferenceShard(2, 4, hashSampler);
  const n = sched.schedule()!; // both prompts fill their block exactly: decoding needs a block each, none is free
  assert.equal(sched.freeBlocks, 0);
  assert.equal(sched.scheduleAhead(), null);
  assert.equal(sched.stepsInFlight, 1);
  assert.equal(sched.freeBlocks, 0);
  sched.update(shard.run(n.step));
  const next = sched.schedule()!; // with the result known, the scheduler preempts to make room
  assert.deepEqual(next.preempted, ['b']);
});

test('a failed step ends the chunked prefills it carried too (the shard dropped their state)', () => {
  const sched = new Scheduler(config({ maxBatchPrefillTokens: 6 }));
  sched.add(seq('long', 20, { maxNew: 3 }));
  const s1 = sched.schedule()!;
  assert.equal(s1.step.newSeqs[0]!.pending, 14);
  try {
    sched.update({ v: PROTOCOL_VERSION, type: 'step.result', stepId: s1.step.stepId, rank: 0, outputs: [], error: 'boom', computeMs: 0 });
    assert.fail('a failed step must throw');
  } catch (e) {
    assert.ok(e instanceof StepFailedError);
    assert.deepEqual(e.failed.map((s) => [s.seqId, s.finishReason]), [['long', 'error']]);
  }
  assert.equal(sched.usedBlocks, 0);
  const s2 = sched.schedule()!;
  assert.deepEqual([s2.step.finished, s2.step.chunks], [['long'], undefined], 'no chunk is sent for it again');
  assert.equal(sched.hasWork(), false);
});

test('async: a request admitted by the step built behind a failed one starts over instead of failing', () => {
  const run = (withFailure: boolean): { x: Sequence; a: Sequence; h: Harness } => {
    const h = new Harness(config());
    const a = seq('a', 3, { maxNew: 9 });
    const x = seq('x', 5, { maxNew: 4 });
    h.add(a);
    h.step();
    const s2 = h.sched.schedule()!; // a decodes
    h.add(x);
    const s3 = h.sched.scheduleAhead()!; // a decodes again (SAMPLED_LAST_STEP) and x is admitted
    assert.deepEqual(newIds(s3.step), ['x']);
    const r2 = withFailure ? h.shard.failStep(s2.step, 'CUDA error: an illegal memory access') : h.shard.run(s2.step);
    const r3 = h.shard.run(s3.step); // a is unknown to a shard that failed s2: s3 fails there too
    if (!withFailure) {
      h.sched.update(r2);
      h.sched.update(r3);
      h.runToEnd();
      return { x, a, h };
    }
    assert.ok(r3.error?.includes("'a'"), r3.error);
    // x is running but not in s2: the shards drop it with the rest, so it goes back to the queue.
    assert.throws(() => h.sched.update(r2), (e) => e instanceof StepFailedError &&
      e.failed.map((s) => s.seqId).join() === 'a' && e.requeued.map((s) => s.seqId).join() === 'x');
    assert.equal(x.status, 'waiting');
    assert.equal(h.sched.scheduleAhead(), null, 'nothing is built ahead of a step sent before the failure was known');
    assert.throws(() => h.sched.update(r3), (e) => e instanceof StepFailedError && e.failed.length === 0 && e.requeued.length === 0);
    assert.equal(h.sched.preemptions, 0, 'not a preemption');
    h.runToEnd();
    return { x, a, h };
  };
  const clean = run(false);
  const failed = run(true);
  assert.equal(failed.a.finishReason, 'error');
  assert.equal(failed.x.finishReason, 'length');
  assert.deepEqual(failed.x.generated, clean.x.generated);
  assert.equal(failed.h.sched.usedBlocks, 0);
  assert.equal(failed.h.shard.size, 0);
});
