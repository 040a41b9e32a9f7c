// Prefix caching: the block manager's shared, reference-counted blocks and the scheduler's use of them
// (what is registered when, what an admission may reuse), driven against the ReferenceShard, which keeps
// the token of every KV slot and fails when a sequence reads K/V of other tokens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SamplingParams, StepResult } from '../../protocol/index.js';
import { SAMPLED_LAST_STEP } from '../../protocol/index.js';
import { BlockManager, ReferenceShard, Scheduler, Sequence, StepFailedError } from '../../coordinator/scheduler/index.js';
import type { ReferenceSampler, ScheduledStep, SchedulerConfig } from '../../coordinator/scheduler/index.js';
import { extendBlockHashes, prefixSalt } from '../../coordinator/scheduler/prefix-cache.js';

const SAMPLING: SamplingParams = { temperature: 1, topK: 0, topP: 1, typicalP: 1, repetitionPenalty: 1, doSample: false, seed: 0 };
const sampler: ReferenceSampler = (_id, tokens) => 100 + tokens.reduce((h, t) => (h * 31 + t) % 997, 7);

function config(over: Partial<SchedulerConfig> = {}): SchedulerConfig {
  return { numBlocks: 32, blockSize: 4, maxBatchSize: 16, maxBatchPrefillTokens: 256, maxTotalTokens: 256,
    maxActiveAdapters: 4, adapterCycleTimeS: 10, prefixCaching: true, ...over };
}

function seq(seqId: string, prompt: number[], o: { adapter?: string; maxNew?: number; promptLogprobs?: boolean } = {}): Sequence {
  return new Sequence({ seqId, promptTokens: prompt, adapterKey: o.adapter ?? null, sampling: SAMPLING,
    maxNewTokens: o.maxNew ?? 8, promptLogprobs: o.promptLogprobs ?? false });
}

const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

class Harness {
  readonly sched: Scheduler;
  readonly shard: ReferenceShard;
  constructor(cfg: SchedulerConfig) {
    this.sched = new Scheduler(cfg);
    this.shard = new ReferenceShard(cfg.numBlocks, cfg.blockSize, sampler);
  }
  /** schedule() + run + update; returns the step. */
  step(): ScheduledStep {
    const s = this.sched.schedule();
    assert.ok(s !== null, 'nothing scheduled');
    this.sched.update(this.shard.run(s.step));
    return s;
  }
  run(s: ScheduledStep): StepResult {
    return this.shard.run(s.step);
  }
}

test('block keys chain over the tokens before them and the adapter', () => {
  const keys = (tokens: number[], salt: string): string[] => {
    const h: string[] = [];
    extendBlockHashes(h, tokens, 4, salt, 10);
    return h;
  };
  const a = keys(range(1, 10), prefixSalt(null));
  assert.equal(a.length, 2, 'only full blocks get a key');
  assert.deepEqual(keys(range(1, 8), prefixSalt(null)), a);
  const b = keys([9, ...range(2, 9)], prefixSalt(null));
  assert.notEqual(b[1], a[1], 'a block key depends on the blocks before it');
  assert.notEqual(keys(range(1, 8), prefixSalt('x'))[0], a[0], 'and on the adapter');
  const grown: string[] = [a[0]!];
  extendBlockHashes(grown, range(1, 10), 4, prefixSalt(null), 2);
  assert.deepEqual(grown, a, 'extending keeps the keys computed before');
});

test('block manager: shared blocks are reference counted, cached ones are evicted least recently released first', () => {
  const bm = new BlockManager(6, 4);
  bm.allocate('a', 12); // blocks 0 1 2
  bm.register('a', 0, ['k0', 'k1']);
  assert.deepEqual(bm.matchPrefix(['k0', 'k1', 'k2']), [0, 1]);
  assert.deepEqual(bm.matchPrefix(['kx', 'k1']), [], 'a match starts at the first block');
  assert.deepEqual(bm.allocate('b', 10, [0, 1]), [0, 1, 3]);
  assert.equal(bm.usedBlocks, 4);
  bm.free('a');
  assert.equal(bm.usedBlocks, 3, 'b still holds 0 and 1');
  bm.free('b');
  assert.deepEqual([bm.usedBlocks, bm.freeBlocks, bm.cachedBlocks], [0, 6, 2], 'cached blocks nobody holds count as free');
  assert.ok(bm.canAllocate(24, []), 'all six, evicting the cached ones');
  assert.ok(!bm.canAllocate(28, [0]), 'an idle hit is not free for the rest too');
  assert.deepEqual(bm.allocate('c', 12), [3, 2, 4], 'free ids first (the last released first)');
  bm.allocate('d', 8); // 5, then the least recently released cached block: 1 (b released 1 before 0)
  assert.deepEqual(bm.blockTable('d'), [5, 1]);
  assert.deepEqual(bm.matchPrefix(['k0', 'k1']), [0], 'k1 was evicted; k0 is still there');
  bm.register('d', 0, ['k9']);
  assert.equal(bm.cachedBlocks, 2);
  bm.clearCache();
  assert.deepEqual([bm.cachedBlocks, bm.freeBlocks], [0, 1]);
  assert.deepEqual(bm.matchPrefix(['k0']), []);
});

test('block manager: a key already cached leaves another block with that content unregistered', () => {
  const bm = new BlockManager(4, 2);
  bm.allocate('a', 2);
  bm.allocate('b', 2);
  bm.register('a', 0, ['k']);
  bm.register('b', 0, ['k']);
  assert.equal(bm.cachedBlocks, 1);
  bm.free('b');
  assert.equal(bm.freeBlocks, 3);
  assert.throws(() => bm.allocate('c', 2, [3]), /not a cached block/);
});

test('a second request with the same prefix starts from the cached blocks once the first one has been computed', () => {
  const h = new Harness(config());
  const shared = range(1, 9);
  h.sched.add(seq('a', [...shared, 50, 51]));
  const first = h.step();
  assert.equal(first.step.newSeqs[0]!.cached, undefined);
  assert.equal(h.sched.cachedBlocks, 2, 'a computed 11 tokens: two full blocks');
  for (const s of [seq('b', [...shared, 60, 61, 62]), seq('c', [...shared, 70], { adapter: 'x' }), seq('d', [...shared, 80], { promptLogprobs: true })]) {
    h.sched.add(s);
  }
  const second = h.step();
  const byId = new Map(second.step.newSeqs.map((n) => [n.seqId, n]));
  assert.equal(byId.get('b')!.cached, 8);
  assert.deepEqual(byId.get('b')!.tokens, [...shared, 60, 61, 62], 'the shard still gets the whole history');
  assert.deepEqual(byId.get('b')!.blockTable.slice(0, 2), h.shard.blockTable('a')!.slice(0, 2));
  assert.equal(byId.get('c')!.cached, undefined, 'another adapter computed other K/V');
  assert.equal(byId.get('d')!.cached, undefined, 'prompt logprobs need every position computed');
  assert.equal(second.cachedTokens, 8);
  assert.equal(second.prefillTokens, 12 - 8 + 10 + 10);
  while (h.sched.hasWork()) h.step();
  assert.equal(h.sched.get('b'), undefined);
  assert.equal(h.sched.usedBlocks, 0);
});

test('longrope: a prompt past the original context never shares K/V with shorter prompts (rotated with other factors)', () => {
  const h = new Harness(config());
  const shared = range(1, 9);
  const mk = (id: string, prompt: number[], ropeLong: boolean): Sequence => new Sequence({ seqId: id, promptTokens: prompt,
    sampling: SAMPLING, maxNewTokens: 2, ropeLong });
  h.sched.add(mk('short', [...shared, 50], false));
  h.step();
  h.sched.add(mk('long', [...shared, 60, 61, 62, 63], true));
  h.sched.add(mk('short2', [...shared, 70], false));
  const second = h.step();
  const byId = new Map(second.step.newSeqs.map((n) => [n.seqId, n]));
  assert.equal(byId.get('long')!.cached, undefined, 'the short prompt\'s blocks were rotated with the short factors');
  assert.equal(byId.get('short2')!.cached, 8, 'short prompts still share');
  h.sched.add(mk('long2', [...shared, 80, 81, 82, 83], true));
  let long2: number | undefined;
  while (h.sched.hasWork()) {
    const admitted = h.step().step.newSeqs.find((n) => n.seqId === 'long2');
    if (admitted) long2 = admitted.cached;
  }
  assert.equal(long2, 8, 'long prompts share with each other');
  assert.notEqual(prefixSalt('x', true), prefixSalt('x'));
});

test('the block holding the last prompt token is always computed, even when the whole prompt is cached', () => {
  const h = new Harness(config());
  h.sched.add(seq('a', range(1, 8), { maxNew: 1 }));
  h.step();
  h.sched.add(seq('b', range(1, 8)));
  const s = h.step();
  assert.equal(s.step.newSeqs[0]!.cached, 4);
  assert.equal(s.prefillTokens, 4);
});

test('decoded tokens fill blocks that are registered when the step writing their last slot comes back', () => {
  for (const ahead of [false, true]) {
    const h = new Harness(config());
    const a = seq('a', range(1, 4), { maxNew: 8 });
    h.sched.add(a);
    h.step(); // prefill: 4 tokens computed, block 0 full
    assert.equal(h.sched.cachedBlocks, 1);
    // Decode steps write positions 4, 5, 6, 7: block 1 is full once position 7 is written (a.length = 8 before).
    let inFlight = h.sched.schedule()!;
    for (let written = 4; written <= 7; written++) {
      const next = ahead && written < 7 ? h.sched.scheduleAhead() : null;
      if (next !== null) assert.equal(next.step.running[0]!.token, SAMPLED_LAST_STEP);
      const r = h.run(inFlight);
      const nextResult = next !== null ? h.run(next) : null;
      h.sched.update(r);
      assert.equal(h.sched.cachedBlocks, written === 7 ? 2 : 1, `after position ${written} (ahead ${ahead})`);
      if (nextResult !== null) {
        written++;
        h.sched.update(nextResult);
        assert.equal(h.sched.cachedBlocks, written === 7 ? 2 : 1, `after position ${written} (ahead ${ahead})`);
      }
      if (written < 7) inFlight = h.sched.schedule()!;
    }
    // A new request continuing a's text reuses both blocks.
    h.sched.add(seq('b', [...a.allTokens().slice(0, 8), 99]));
    const s = h.sched.schedule()!;
    assert.equal(s.step.newSeqs[0]!.cached, 8, `ahead ${ahead}`);
    h.sched.update(h.run(s));
  }
});

test('a step built ahead does not reuse blocks the step in flight is still computing: the request waits for them', () => {
  const h = new Harness(config());
  h.sched.add(seq('a', range(1, 9), { maxNew: 4 }));
  const first = h.sched.schedule()!;
  h.sched.add(seq('b', range(1, 9)));
  const ahead = h.sched.scheduleAhead()!;
  assert.deepEqual(ahead.step.newSeqs, [], 'b waits for the blocks a is computing');
  h.sched.update(h.run(first));
  h.sched.update(h.run(ahead));
  const next = h.sched.schedule()!;
  assert.equal(next.step.newSeqs[0]!.cached, 8);
  h.sched.update(h.run(next));
});

test('a burst of requests with one prefix computes it once: the others wait a step and start from the cache', () => {
  const prompt = (i: number) => [...range(1, 12), 100 + i];
  const computed = (caching: boolean): { prefill: number; steps: number } => {
    const h = new Harness(config({ prefixCaching: caching }));
    for (let i = 0; i < 4; i++) h.sched.add(seq(`r${i}`, prompt(i), { maxNew: 2 }));
    let prefill = 0;
    let steps = 0;
    while (h.sched.hasWork()) {
      const s = h.step();
      prefill += s.prefillTokens;
      steps++;
    }
    assert.equal(h.sched.usedBlocks, 0);
    return { prefill, steps };
  };
  const shared = computed(true), alone = computed(false);
  assert.equal(alone.prefill, 4 * 13);
  assert.equal(shared.prefill, 13 + 3 * 1, 'three blocks of 4 computed once, then one token each');
  const h = new Harness(config());
  for (let i = 0; i < 3; i++) h.sched.add(seq(`r${i}`, prompt(i)));
  assert.deepEqual(h.step().step.newSeqs.map((n) => n.seqId), ['r0']);
  assert.deepEqual(h.step().step.newSeqs.map((n) => [n.seqId, n.cached]), [['r1', 12], ['r2', 12]]);
});

test('a request waiting for another one\'s blocks goes ahead when that one is gone', () => {
  const h = new Harness(config());
  h.sched.add(seq('owner', range(1, 13), { maxNew: 4 }));
  const first = h.sched.schedule()!;
  h.sched.add(seq('follower', range(1, 13)));
  h.sched.abort('owner');
  const ahead = h.sched.scheduleAhead()!; // the abort lands first: nothing to wait for
  assert.deepEqual(ahead.step.newSeqs.map((n) => [n.seqId, n.cached]), [['follower', undefined]]);
  h.sched.update(h.run(first));
  h.sched.update(h.run(ahead));
});

test('a sequence aborted while its step is in flight registers nothing: its blocks may already be another one\'s', () => {
  const h = new Harness(config({ numBlocks: 3 }));
  h.sched.add(seq('a', range(1, 8), { maxNew: 4 }));
  const first = h.sched.schedule()!;
  h.sched.abort('a');
  h.sched.add(seq('b', range(200, 11)));
  const ahead = h.sched.scheduleAhead()!; // frees a, admits b into a's blocks
  assert.deepEqual(ahead.step.finished, ['a']);
  assert.deepEqual(ahead.step.newSeqs[0]!.blockTable.slice(0, 2), first.step.newSeqs[0]!.blockTable);
  h.sched.update(h.run(first));
  h.sched.update(h.run(ahead));
  assert.equal(h.sched.cachedBlocks, 2, 'only b\'s blocks');
  h.sched.add(seq('c', range(1, 8)));
  assert.equal(h.sched.schedule()!.step.newSeqs[0]!.cached, undefined);
});

test('a failed step or a lost shard empties the cache', () => {
  const h = new Harness(config());
  h.sched.add(seq('a', range(1, 9)));
  h.step();
  assert.equal(h.sched.cachedBlocks, 2);
  const s = h.sched.schedule()!;
  h.shard.run(s.step);
  assert.throws(() => h.sched.update({ v: s.step.v, type: 'step.result', stepId: s.step.stepId, rank: 0, outputs: [], computeMs: 0, error: 'boom' }),
    StepFailedError);
  assert.equal(h.sched.cachedBlocks, 0);
  h.sched.add(seq('b', range(1, 9)));
  h.step();
  assert.equal(h.sched.cachedBlocks, 2);
  h.sched.failAll('shard lost');
  assert.deepEqual([h.sched.cachedBlocks, h.sched.usedBlocks], [0, 0]);
});

test('preempted sequences come back through the cache; cached blocks give way to new ones when the cache is full', () => {
  const h = new Harness(config({ numBlocks: 6, maxBatchPrefillTokens: 64 }));
  // Two sequences that outgrow the cache: the newest is preempted and recomputed later.
  h.sched.add(seq('a', range(1, 6), { maxNew: 12 }));
  h.sched.add(seq('b', range(50, 6), { maxNew: 12 }));
  let cached = 0;
  while (h.sched.hasWork()) cached += h.step().cachedTokens;
  assert.ok(h.sched.preemptions > 0, 'the cache was never full');
  assert.ok(cached > 0, 'the recompute found nothing cached');
  assert.deepEqual([h.sched.usedBlocks, h.sched.freeBlocks], [0, 6]);
  // Fill the cache with new content: old keys are evicted, nothing breaks.
  h.sched.add(seq('c', range(300, 23), { maxNew: 1 }));
  while (h.sched.hasWork()) h.step();
  h.sched.add(seq('d', range(1, 6)));
  assert.equal(h.sched.schedule()!.step.newSeqs[0]!.cached, undefined, 'a\'s blocks were reused by c');
});
