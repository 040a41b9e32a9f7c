// The scheduler's admission rules, step by step against a ReferenceShard: adapters (not resident, the
// distinct-adapter limit, a starving request) and priority scheduling (order, preemption for batch room, KV blocks
// and a place under the distinct-adapter limit, and how it meets the starving rule).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, config, newIds, runIds, seq } from '../helpers/scheduler-harness.js';

test('a request whose adapter is not resident is skipped, not waited on', () => {
  const ready = new Set(['B']);
  const slots = new Map([['A', 3], ['B', 7]]);
  const h = new Harness(config(), { isAdapterReady: (k) => ready.has(k), adapterSlot: (k) => slots.get(k)! });
  h.add(seq('a1', 3, { adapter: 'A' }), seq('base', 3), seq('b1', 3, { adapter: 'B' }));
  const s1 = h.step()!;
  assert.deepEqual(newIds(s1), ['base', 'b1']);
  assert.deepEqual(s1.newSeqs.map((n) => n.adapterSlot), [-1, 7]);
  assert.deepEqual(h.sched.wantedAdapters(), ['A']);
  ready.add('A');
  const s2 = h.step()!;
  assert.deepEqual(newIds(s2), ['a1']);
  assert.equal(s2.newSeqs[0]!.adapterSlot, 3);
  h.runToEnd();
});

test('the distinct-adapter limit skips a request without blocking those behind it', () => {
  const h = new Harness(config({ maxActiveAdapters: 2 }));
  h.add(
    seq('a1', 3, { adapter: 'A', maxNew: 2 }),
    seq('b1', 3, { adapter: 'B', maxNew: 6 }),
    seq('c1', 3, { adapter: 'C' }),
    seq('a2', 3, { adapter: 'A', maxNew: 2 }),
    seq('base', 3),
  );
  assert.deepEqual(newIds(h.step()), ['a1', 'b1', 'a2', 'base']);
  assert.equal(h.sched.activeAdapters, 2);
  assert.ok(h.sched.adapterInUse('A') && !h.sched.adapterInUse('C'));
  assert.deepEqual(newIds(h.step()), []);
  assert.deepEqual(newIds(h.step()), ['c1']);
  h.runToEnd();
});

test('a request older than adapterCycleTimeS stops other adapters until it gets in', () => {
  let now = 0;
  const ready = new Set(['A', 'D', 'E']);
  const h = new Harness(config({ maxActiveAdapters: 3, adapterCycleTimeS: 1 }), { isAdapterReady: (k) => ready.has(k), now: () => now });
  h.add(seq('a1', 3, { adapter: 'A', maxNew: 30 }), seq('c1', 3, { adapter: 'C', maxNew: 2 }));
  assert.deepEqual(newIds(h.step()), ['a1']);
  now = 500;
  h.add(seq('d1', 3, { adapter: 'D', maxNew: 3 }));
  assert.deepEqual(newIds(h.step()), ['d1'], 'c1 is not starving yet: others go ahead');
  now = 2000;
  h.add(seq('a2', 3, { adapter: 'A', maxNew: 2 }), seq('e1', 3, { adapter: 'E' }), seq('x', 3));
  assert.deepEqual(newIds(h.step()), ['x'], 'only the base model request passes a starving one');
  ready.add('C');
  assert.deepEqual(newIds(h.step()), ['c1', 'a2'], 'the starving request first, then the limit applies again');
  assert.deepEqual(newIds(h.step()), ['e1']);
  h.runToEnd();
});

test('priority: admitted by priority (lower first), then arrival; the lowest priority is preempted first and comes back first in its class', () => {
  const h = new Harness(config({ maxBatchSize: 1 }));
  h.add(seq('late-low', 3, { priority: 5, maxNew: 1 }), seq('a', 3, { maxNew: 1 }), seq('urgent', 3, { priority: -1, maxNew: 1 }), seq('b', 3, { maxNew: 1 }));
  const order: string[] = [];
  for (const step of h.runToEnd()) order.push(...newIds(step));
  assert.deepEqual(order, ['urgent', 'a', 'b', 'late-low']);
  // Too few blocks for all three to decode: the worst priority goes, though the best was admitted last.
  const p = new Harness(config({ numBlocks: 6, blockSize: 2 }));
  p.add(seq('low', 3, { maxNew: 6, priority: 2 }), seq('mid', 3, { maxNew: 6 }));
  assert.deepEqual(newIds(p.step()), ['mid', 'low']);
  p.add(seq('high', 3, { maxNew: 6, priority: -3 }));
  const steps = [p.step()!, ...p.runToEnd()];
  assert.deepEqual(newIds(steps[0]), ['high']);
  assert.deepEqual(steps[1]!.finished, ['low'], 'the lowest priority is preempted first, not the newest');
  for (const id of ['low', 'high', 'mid']) assert.equal(p.tokens(id).length, 6);
});

test('priority: a better request that does not fit preempts the worst running ones, only as many as it needs, and runs in that step', () => {
  // Batch full: one worse request goes, the urgent one is admitted in the same step; a tie preempts nothing.
  const b = new Harness(config({ maxBatchSize: 2 }));
  b.add(seq('low', 3, { maxNew: 8, priority: 3 }), seq('mid', 3, { maxNew: 8, priority: 1 }));
  assert.deepEqual(newIds(b.step()), ['mid', 'low']);
  b.add(seq('same', 3, { maxNew: 2, priority: 3 }));
  assert.deepEqual(newIds(b.step()), [], 'equal to the worst running waits (fcfs within a class)');
  b.add(seq('urgent', 3, { maxNew: 2, priority: 0 }));
  const s = b.step()!;
  assert.deepEqual([s.finished, newIds(s), runIds(s)], [['low'], ['urgent'], ['mid']]);
  const rest = b.runToEnd();
  const order = rest.flatMap((step) => newIds(step));
  assert.deepEqual(order, ['low', 'same'], 'the preempted one back at the front of its class');
  for (const id of ['low', 'mid', 'urgent', 'same']) assert.equal(b.tokens(id).length, id === 'urgent' || id === 'same' ? 2 : 8);
  assert.equal(b.sched.preemptions, 1);
  // Blocks short: the two worst go (latest admitted first within a class), the better-than-it one stays.
  const k = new Harness(config({ numBlocks: 8, blockSize: 2 }));
  k.add(seq('p1', 3, { maxNew: 3, priority: 1 }), seq('p2a', 3, { maxNew: 3, priority: 2 }), seq('p2b', 3, { maxNew: 3, priority: 2 }));
  assert.deepEqual(newIds(k.step()), ['p1', 'p2a', 'p2b']);
  k.add(seq('big', 9, { maxNew: 1, priority: 0 })); // 5 blocks; 2 are free, each preempted one frees 2
  const t = k.step()!;
  assert.deepEqual([t.finished, newIds(t), runIds(t)], [['p2b', 'p2a'], ['big'], ['p1']]);
  k.runToEnd();
  for (const id of ['p1', 'p2a', 'p2b']) assert.equal(k.tokens(id).length, 3);
  // It would not fit even with every worse one gone: nothing is preempted for it.
  const n = new Harness(config({ numBlocks: 7, blockSize: 2 }));
  n.add(seq('keep', 5, { maxNew: 2, priority: 0 }), seq('worse', 3, { maxNew: 2, priority: 5 }));
  assert.deepEqual(newIds(n.step()), ['keep', 'worse']);
  n.add(seq('huge', 9, { maxNew: 1, priority: 1 }));
  assert.deepEqual(n.step()!.finished, [], 'preempting "worse" frees 2 blocks, "huge" needs 5 and 2 are free');
  n.runToEnd();
  assert.equal(n.sched.preemptions, 0);
});

test('priority: a better request whose adapter is not in the batch preempts every running sequence of the worst adapter for its place', () => {
  // Two adapters at most. B's sequences are all worse than A's: B goes, though A would cost one sequence less.
  const h = new Harness(config({ maxActiveAdapters: 2 }));
  h.add(seq('a1', 3, { adapter: 'A', maxNew: 8, priority: 3 }), seq('base', 3, { maxNew: 8, priority: 5 }),
    seq('b1', 3, { adapter: 'B', maxNew: 8, priority: 5 }), seq('b2', 3, { adapter: 'B', maxNew: 8, priority: 5 }));
  assert.deepEqual(newIds(h.step()), ['a1', 'base', 'b1', 'b2']);
  h.add(seq('c1', 3, { adapter: 'C', maxNew: 2, priority: 0 }));
  const s = h.step()!;
  assert.deepEqual([s.finished, newIds(s), runIds(s)], [['b2', 'b1'], ['c1'], ['a1', 'base']], 'only the adapter\'s sequences: the base one stays');
  assert.deepEqual(h.last!.priorityPreemption, { for: 'c1', freedAdapter: 'B' });
  const rest = h.runToEnd();
  assert.deepEqual(rest.flatMap((step) => newIds(step)), ['b1', 'b2'], 'back in their admission order once a place frees');
  for (const id of ['a1', 'base', 'b1', 'b2']) assert.equal(h.tokens(id).length, 8, `${id} recomputed to the same length`);
  assert.equal(h.sched.preemptions, 2);
  // Equal priorities: the adapter with fewer running sequences goes (less to recompute).
  const f = new Harness(config({ maxActiveAdapters: 2 }));
  f.add(seq('b1', 3, { adapter: 'B', maxNew: 6, priority: 4 }), seq('b2', 3, { adapter: 'B', maxNew: 6, priority: 4 }),
    seq('a1', 3, { adapter: 'A', maxNew: 6, priority: 4 }));
  f.step();
  f.add(seq('c1', 3, { adapter: 'C', maxNew: 2, priority: 1 }));
  assert.deepEqual([f.step()!.finished, f.last!.priorityPreemption], [['a1'], { for: 'c1', freedAdapter: 'A' }]);
  f.runToEnd();
});

test('priority: no adapter place is freed for a tie, from an adapter with a sequence not worse, or when the request still would not start', () => {
  // A holds one sequence as good as c1's; B's are all equal to it: nothing goes, c1 waits for a place to free.
  const h = new Harness(config({ maxActiveAdapters: 2 }));
  h.add(seq('a1', 3, { adapter: 'A', maxNew: 6, priority: 1 }), seq('a2', 3, { adapter: 'A', maxNew: 6, priority: 5 }),
    seq('b1', 3, { adapter: 'B', maxNew: 3, priority: 1 }));
  assert.deepEqual(newIds(h.step()), ['a1', 'b1', 'a2']);
  h.add(seq('c1', 3, { adapter: 'C', maxNew: 2, priority: 1 }));
  const steps = [h.step()!, ...h.runToEnd()];
  assert.equal(h.sched.preemptions, 0);
  const start = steps.findIndex((s) => newIds(s).includes('c1'));
  assert.equal(start, steps.findIndex((s) => s.finished.includes('b1')), 'c1 starts in the step that frees b1');
  // Freeing B's place would not make room in the KV cache for c1's prompt: nothing is preempted for it.
  const k = new Harness(config({ maxActiveAdapters: 1, numBlocks: 8, blockSize: 2 }));
  k.add(seq('b1', 3, { adapter: 'B', maxNew: 2, priority: 5 }), seq('keep', 5, { maxNew: 2, priority: 0 }));
  assert.deepEqual(newIds(k.step()), ['keep', 'b1']);
  k.add(seq('c1', 11, { adapter: 'C', maxNew: 1, priority: 1 })); // 6 blocks, keep's next token 1: b1's 2 and 3 free are 5
  assert.deepEqual(k.step()!.finished, []);
  k.runToEnd();
  assert.equal(k.sched.preemptions, 0);
});

test('priority: no preemption while the prefills under way take the whole prefill budget the request would need', () => {
  const h = new Harness(config({ maxBatchSize: 2, maxBatchPrefillTokens: 8 }));
  h.add(seq('x', 3, { maxNew: 20, priority: 5 }));
  h.step();
  h.add(seq('long', 30, { maxNew: 2, priority: 0 }));  // prefilled 8 tokens a step
  assert.deepEqual(newIds(h.step()), ['long']);
  h.add(seq('urgent', 3, { maxNew: 2, priority: 1 }));
  for (let i = 0; i < 2; i++) {
    const s = h.step()!;
    assert.deepEqual([s.finished, newIds(s)], [[], []], 'preempting x would free a batch place that urgent could not use yet');
  }
  const s = h.step()!;  // long's last 6 tokens leave 2 of the budget: urgent starts, chunked
  assert.deepEqual([s.finished, newIds(s), h.last!.priorityPreemption], [['x'], ['urgent'], { for: 'urgent', freedAdapter: null }]);
  h.runToEnd();
  assert.equal(h.tokens('x').length, 20);
});

test('priority and the starving rule: a starving request holds back its priority and worse, never a better one, and nothing is preempted for a request it holds', () => {
  let now = 0;
  const ready = new Set(['A', 'D', 'E']);
  const h = new Harness(config({ maxActiveAdapters: 1, adapterCycleTimeS: 1 }), { isAdapterReady: (k) => ready.has(k), now: () => now });
  h.add(seq('a1', 3, { adapter: 'A', maxNew: 30, priority: 5 }), seq('c1', 3, { adapter: 'C', maxNew: 2, priority: 2 }));
  assert.deepEqual(newIds(h.step()), ['a1']);
  now = 2000;  // c1 (its adapter still loading) starves
  h.add(seq('d1', 3, { adapter: 'D', maxNew: 2, priority: 2 }));
  const held = h.step()!;
  assert.deepEqual([held.finished, newIds(held)], [[], []], 'd1 is held by c1 (same priority): a1 is not preempted for it');
  h.add(seq('e1', 3, { adapter: 'E', maxNew: 2, priority: 1 }));
  const better = h.step()!;
  assert.deepEqual([better.finished, newIds(better), h.last!.priorityPreemption], [['a1'], ['e1'], { for: 'e1', freedAdapter: 'A' }]);
  ready.add('C');
  const order = h.runToEnd().flatMap((s) => newIds(s));
  assert.deepEqual(order, ['c1', 'd1', 'a1'], 'then the starving one, then its priority, then the preempted one');
});
