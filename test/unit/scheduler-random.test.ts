// Randomized run: many requests, a tiny KV cache, adapters loading and unloading, aborts, stops and
// failures, driven against a ReferenceShard. Every step is checked against the scheduler's invariants.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SamplingParams, Step, StepResult } from '../../protocol/index.js';
import { ReferenceShard, Scheduler, Sequence, StepFailedError } from '../../coordinator/scheduler/index.js';
import type { FinishReason, ReferenceSampler, ScheduledStep, SchedulerConfig } from '../../coordinator/scheduler/index.js';
import { uniformStream } from '../../deploy/demo-model/prng.js';

const SAMPLING: SamplingParams = { temperature: 1, topK: 0, topP: 1, typicalP: 1, repetitionPenalty: 1, doSample: false, seed: 0 };
const EOS = 0;
const ADAPTERS = ['A', 'B', 'C', 'D', 'E', 'F'];


// Depends on the whole sequence (so recompute must be exact); EOS about one time in 40.
const sampler: ReferenceSampler = (seqId, tokens) => {
  let h = seqId.length;
  for (const t of tokens) h = (Math.imul(h, 31) + t + 1) >>> 0;
  return ((h ^ (h >>> 13)) >>> 0) % 40; // token ids are non-negative
};

/** What an uninterrupted run must produce for seq, by the stopping rules. */
function expectedTokens(seq: Sequence, maxTotal: number): number[] {
  const tokens = [...seq.promptTokens];
  const out: number[] = [];
  for (;;) {
    const t = sampler(seq.seqId, tokens);
    out.push(t);
    tokens.push(t);
    if (t === EOS || out.length >= seq.maxNewTokens || tokens.length >= maxTotal) return out;
  }
}

interface RunStats {
  preemptions: number; steps: number; ahead: number; cachedTokens: number; failed: number; requeued: number;
  drafted: number; accepted: number;
  /** Priority preemptions (steps), and the sequences preempted to free a place under maxActiveAdapters. */
  priorityPreemptions: number; adapterSlotVictims: number;
  /** Preemptions (steps) for a device slot (slot-preemption.ts). */
  slotPreemptions: number;
}

/** speculate: steps allow drafts (1-4 per sequence), which the shard guesses right about 70 % of the time.
 * deviceSlots: adapters live in 1-3 device slots (DeviceSlots) instead of coming and going at random. */
function runOnce(seed: number, asyncSched: boolean, prefixCaching = false, speculate = false, priorities = false, deviceSlots = false): RunStats {
  const rand = uniformStream(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
  const blockSize = [1, 2, 4, 16][int(0, 3)]!;
  const numBlocks = int(Math.ceil(48 / blockSize), Math.ceil(160 / blockSize));
  const cfg: SchedulerConfig = {
    numBlocks,
    blockSize,
    maxBatchSize: int(1, 8),
    maxBatchPrefillTokens: int(8, 64),
    maxTotalTokens: int(24, 80),
    maxActiveAdapters: int(0, 3),
    adapterCycleTimeS: 0.2,
    prefixCaching,
    ...(speculate ? { speculate: int(1, 4) } : {}),
  };
  const maxTotal = Math.min(cfg.maxTotalTokens, numBlocks * blockSize);
  const slots = new Map(ADAPTERS.map((k, i) => [k, 10 + i]));
  const ready = new Set<string>();
  let now = 0;
  const device = deviceSlots ? new DeviceSlots(ready, int(1, 3), rand() < 0.3 ? ADAPTERS[int(0, ADAPTERS.length - 1)]! : null, () => sched) : null;
  const sched = new Scheduler(cfg, { isAdapterReady: (k) => ready.has(k), adapterSlot: (k) => slots.get(k)!, now: () => now,
    ...(device ? { adapterRoom: (k: string, c: readonly string[]) => device.room(k, c), adaptersFreed: () => device.fill(now) } : {}) });
  const drafter = (seqId: string, tokens: readonly number[], max: number): number[] => {
    const drafts: number[] = [];
    while (drafts.length < max) drafts.push(rand() < 0.7 ? sampler(seqId, [...tokens, ...drafts]) : int(1, 39));
    return drafts;
  };
  // A sequence holds the slots of up to two steps' drafts ahead of what it stores (one in flight, one built ahead).
  const shard = new ReferenceShard(numBlocks, blockSize, sampler, speculate ? { drafter, slack: 2 * cfg.speculate! } : {});
  const ctx = `seed ${seed}${asyncSched ? ' async' : ''} ${JSON.stringify(cfg)}`;
  // With prefix caching most prompts start with one of a few shared prefixes ("system prompts").
  const prefixes = Array.from({ length: 3 }, () => Array.from({ length: int(4, Math.max(4, maxTotal - 8)) }, () => int(1, 39)));
  const randomPrompt = (): number[] => {
    const length = int(1, maxTotal - 1);
    const head = prefixCaching && rand() < 0.7 ? prefixes[int(0, prefixes.length - 1)]!.slice(0, length) : [];
    return [...head, ...Array.from({ length: length - head.length }, () => int(1, 39))];
  };
  let cachedTokens = 0;
  let failedSteps = 0;
  let requeued = 0;
  let priorityPreemptions = 0;
  let adapterSlotVictims = 0;
  let slotPreemptions = 0;

  const all: Sequence[] = [];
  const adapterOf = new Map<string, string | null>();
  const endings = new Map<string, FinishReason[]>();
  const streamed = new Map<string, number[]>();
  const ended = (id: string, r: FinishReason): void => void endings.set(id, [...(endings.get(id) ?? []), r]);
  const total = 120;
  let steps = 0;
  let aheadSteps = 0;
  // One seed in four loses a shard once and has a few failed steps; the others run clean.
  const faults = seed % 4 === 0;
  let shardLost = false;

  const flight: { result: StepResult }[] = [];
  // The reference shard runs each step as it is sent (shards run steps in publish order).
  const send = (scheduled: ScheduledStep, ahead: boolean): { result: StepResult } => {
    steps++;
    checkStep(scheduled.step, cfg, adapterOf, ready, slots, ctx);
    const pp = scheduled.priorityPreemption;
    if (pp !== undefined) {
      checkPriorityPreemption(scheduled, pp, adapterOf, all, ctx);
      priorityPreemptions++;
      if (pp.freedAdapter !== null) adapterSlotVictims += scheduled.preempted.length;
    }
    const sp = scheduled.slotPreemption;
    if (sp !== undefined) {
      checkSlotPreemption(scheduled, sp, adapterOf, all, ready, ctx);
      slotPreemptions++;
    }
    cachedTokens += scheduled.cachedTokens;
    // A failing shard drops everything it holds; a step sent behind it that continues those sequences fails too.
    const result = faults && rand() < 0.01 ? shard.failStep(scheduled.step) : shard.run(scheduled.step);
    if (!ahead && flight.length === 0 && result.error === undefined) {
      // Only one step in flight: the scheduler's tables are exactly the shard's, and only the sequences the
      // shard holds hold blocks (a chunked prefill waiting for budget holds its blocks outside the step).
      const used = new Set<number>();
      for (const id of shard.ids()) {
        assert.deepEqual(sched.blockTable(id), shard.blockTable(id), `${ctx}: ${id} tables differ`);
        for (const b of sched.blockTable(id)) used.add(b);
      }
      if (!asyncSched) assert.equal(sched.usedBlocks, used.size, `${ctx}: blocks held outside the shard's sequences`);
    }
    return { result };
  };

  while (all.length < total || sched.hasWork() || flight.length > 0) {
    assert.ok(steps < 20_000, `${ctx}: no progress`);
    now += 10;
    // Arrivals, readiness changes (an adapter in use is never unloaded), aborts and stops.
    for (let n = int(0, 2); n > 0 && all.length < total; n--) {
      const id = `r${all.length}`;
      const adapter = cfg.maxActiveAdapters > 0 && rand() < 0.7 ? ADAPTERS[int(0, ADAPTERS.length - 1)]! : null;
      const prompt = randomPrompt();
      const seq = new Sequence({ seqId: id, promptTokens: prompt, adapterKey: adapter, sampling: SAMPLING, maxNewTokens: int(1, 30), eosTokenIds: [EOS],
        ...(priorities ? { priority: int(-2, 2) } : {}) });
      sched.add(seq);
      all.push(seq);
      adapterOf.set(id, adapter);
    }
    if (device) {
      device.load(now - int(0, 30));  // loads take 10-40 ms (started at that time, in after 10)
      device.check();
    }
    for (const k of device ? [] : ADAPTERS) {
      if (!ready.has(k) && rand() < 0.15) ready.add(k);
      else if (ready.has(k) && !sched.adapterInUse(k) && rand() < 0.05) ready.delete(k);
    }
    const live = all.filter((s) => !s.isFinished);
    if (live.length > 0 && rand() < 0.04) {
      const victim = live[int(0, live.length - 1)]!;
      const reason: FinishReason = rand() < 0.5 ? 'cancelled' : 'stop_sequence';
      if (sched.abort(victim.seqId, reason)) ended(victim.seqId, reason);
    }
    if (faults && !shardLost && all.length > total / 2) {
      shardLost = true;
      for (const s of sched.failAll('shard lost')) ended(s.seqId, s.finishReason!);
      shard.loseKvMemory(); // a restarted shard: a cached prefix from before would read garbage
      // The results of the steps in flight are dropped by update().
    }

    // In flight: the step just sent, and with async scheduling possibly the one built ahead of its result.
    if (flight.length === 0) {
      let scheduled = sched.schedule();
      if (scheduled === null && sched.hasWork()) {
        if (device) {  // nothing runs: the loads under way finish, then the next ones in line load
          for (let i = 0; scheduled === null && i < 2; i++, scheduled = sched.schedule()) device.load(Infinity);
        } else {
          for (const k of sched.wantedAdapters()) ready.add(k); // the registry loads what is wanted
          scheduled = sched.schedule();
        }
        assert.ok(scheduled !== null || all.length < total || !sched.hasWork(), `${ctx}: stalled with work left ${JSON.stringify({ ready: [...ready], dev: device ? { ...device, sched: 0, loading: [...(device as any).loading] } : null, waiting: all.filter((q) => !q.isFinished).map((q) => [q.seqId, q.adapterKey, q.priority, q.status, q.arrivalTime]), now })}`);
      }
      if (scheduled === null) continue;
      flight.push(send(scheduled, false));
    }
    if (asyncSched && sched.stepsInFlight === 1 && rand() < 0.8) { // 0 after a lost shard abandoned the step
      const ahead = sched.scheduleAhead();
      if (ahead !== null) {
        aheadSteps++;
        flight.push(send(ahead, true));
      }
    }
    const { result } = flight.shift()!;
    let events;
    try {
      events = sched.update(result);
    } catch (e) {
      assert.ok(e instanceof StepFailedError && result.error !== undefined, `${ctx}: ${String(e)}`);
      failedSteps++;
      requeued += e.requeued.length;
      for (const s of e.failed) ended(s.seqId, s.finishReason!);
      continue;
    }
    for (const ev of events) {
      assert.ok(endings.get(ev.seqId) === undefined, `${ctx}: token for ${ev.seqId} after it ended`);
      streamed.set(ev.seqId, [...(streamed.get(ev.seqId) ?? []), ev.token]);
      if (ev.finished !== undefined) {
        ended(ev.seqId, ev.finished);
        assert.equal(sched.get(ev.seqId), undefined);
      }
    }
  }
  assert.equal(flight.length, 0, ctx);

  assert.equal(sched.usedBlocks, 0, ctx);
  assert.equal(sched.freeBlocks, numBlocks, ctx);
  assert.equal(shard.size, 0, `${ctx}: shards still hold state`);
  assert.deepEqual([sched.waiting, sched.running, sched.activeAdapters], [0, 0, 0], ctx);
  for (const seq of all) {
    const reasons = endings.get(seq.seqId) ?? [];
    assert.deepEqual(reasons, [seq.finishReason], `${ctx}: ${seq.seqId} must end exactly once`);
    assert.equal(seq.status, 'finished');
    assert.deepEqual(streamed.get(seq.seqId) ?? [], seq.generated, `${ctx}: ${seq.seqId} streamed != generated`);
    if (seq.finishReason === 'length' || seq.finishReason === 'eos_token') {
      assert.deepEqual(seq.generated, expectedTokens(seq, maxTotal), `${ctx}: ${seq.seqId} output changed`);
    }
  }
  assert.equal(sched.freeBlocks, numBlocks, `${ctx}: cached blocks nobody holds count as free`);
  if (!faults && !asyncSched) {  // (async: a step built ahead for a sequence that then ended is not counted)
    assert.deepEqual(sched.speculation, { drafted: shard.drafted, accepted: shard.accepted }, `${ctx}: speculation counts`);
  }
  return { preemptions: sched.preemptions, steps, ahead: aheadSteps, cachedTokens, failed: failedSteps, requeued,
    drafted: shard.drafted, accepted: shard.accepted, priorityPreemptions, adapterSlotVictims, slotPreemptions };
}

/**
 * The registry's device slots in miniature: `cap` slots, one of them perhaps held by a pinned adapter; an adapter that
 * waiting requests want is loaded in the registry's line (their best priority, then the first request's place) when a
 * slot is free or held by an adapter no running sequence uses, and is ready 10 ms later; one in use is never evicted.
 * room() answers SchedulerHooks.adapterRoom as AdapterRegistry.roomFor does (slots only).
 */
class DeviceSlots {
  private readonly loading = new Map<string, number>();

  constructor(private readonly ready: Set<string>, private readonly cap: number, private readonly pinned: string | null,
    private readonly sched: () => Scheduler) {
    if (pinned !== null && cap > 1) ready.add(pinned);
    else this.pinned = null;
  }

  /** Adapters waiting for a slot, in line. */
  private line(): string[] {
    const best = this.sched().waitingPriorities();
    const wanted = this.sched().wantedAdapters().filter((k) => !this.loading.has(k));
    return wanted.map((k, i) => ({ k, i })).sort((a, b) => best.get(a.k)! - best.get(b.k)! || a.i - b.i).map((e) => e.k);
  }

  /** A resident adapter no running sequence uses (nor the pin): one no request waits for first. */
  private evictable(): string | undefined {
    const wanted = this.sched().waitingPriorities();
    const free = [...this.ready].filter((k) => k !== this.pinned && !this.sched().adapterInUse(k));
    return free.find((k) => !wanted.has(k)) ?? free[0];
  }

  /** The line gets what slots are free or can be freed; then the loads started by `now` are in. `now` Infinity: nothing
   * runs, the loads under way are in at once — or, with none under way, the first ones in line load and are in. */
  load(now: number): void {
    if (now < Infinity || this.loading.size === 0) this.fill(now === Infinity ? 0 : now);
    for (const [k, at] of this.loading) {
      if (at <= now) {
        this.loading.delete(k);
        this.ready.add(k);
      }
    }
  }

  /** The line gets what slots are free or can be freed (AdapterRegistry.retryWaiting); loads take 10 ms. */
  fill(now: number): void {
    for (const k of this.line()) {
      if (this.ready.size + this.loading.size >= this.cap) {
        const victim = this.evictable();
        if (victim === undefined) return;  // the first in line waits; no one passes it
        this.ready.delete(victim);
      }
      this.loading.set(k, now + 10);
    }
  }

  room(key: string, candidates: readonly string[]): string[] | null {
    if (this.line()[0] !== key || this.ready.size + this.loading.size < this.cap || this.evictable() !== undefined) return null;
    const c = candidates.find((k) => this.ready.has(k) && k !== this.pinned);
    return c === undefined ? null : [c];
  }

  check(): void {
    assert.ok(this.ready.size + this.loading.size <= this.cap, 'more adapters than slots');
    assert.ok(this.pinned === null || this.ready.has(this.pinned), 'the pinned adapter left');
  }
}

/** A device-slot preemption preempts every running sequence of the adapters it frees, each strictly worse than the
 * request it is for, and they are evicted; that request's adapter is not resident yet; none of theirs is admitted. */
function checkSlotPreemption(
  scheduled: ScheduledStep,
  sp: NonNullable<ScheduledStep['slotPreemption']>,
  adapterOf: ReadonlyMap<string, string | null>,
  all: readonly Sequence[],
  ready: ReadonlySet<string>,
  ctx: string,
): void {
  const { step, preempted } = scheduled;
  const where = `${ctx}: step ${step.stepId} preempted ${preempted.join(',')} for ${sp.for}'s adapter ${sp.adapter}`;
  const priority = (id: string): number => all.find((s) => s.seqId === id)!.priority;
  assert.ok(preempted.length > 0 && sp.freedAdapters.length > 0, where);
  assert.equal(adapterOf.get(sp.for), sp.adapter, where);
  assert.ok(!ready.has(sp.adapter) && !step.newSeqs.some((n) => n.seqId === sp.for), `${where}: its adapter was resident`);
  // The others went for KV room to decode (the cache is full), as in any step.
  const victims = preempted.filter((id) => sp.freedAdapters.includes(adapterOf.get(id)!));
  for (const id of victims) assert.ok(priority(id) > priority(sp.for), `${where}: ${id} is not worse`);
  for (const k of sp.freedAdapters) {
    assert.ok(victims.some((id) => adapterOf.get(id) === k), `${where}: none of ${k}'s sequences went`);
    assert.ok(!ready.has(k), `${where}: ${k} was not evicted`);
  }
  const used = [...step.running.map((r) => r.seqId), ...step.newSeqs.map((n) => n.seqId)].map((id) => adapterOf.get(id));
  assert.ok(!used.some((k) => k != null && sp.freedAdapters.includes(k)), `${where}: a freed adapter still runs`);
}

/** A priority preemption preempts only sequences strictly worse than the request it is for, which starts in that
 * step; one that frees an adapter's place preempts every running sequence of that adapter. */
function checkPriorityPreemption(
  scheduled: ScheduledStep,
  pp: NonNullable<ScheduledStep['priorityPreemption']>,
  adapterOf: ReadonlyMap<string, string | null>,
  all: readonly Sequence[],
  ctx: string,
): void {
  const { step, preempted } = scheduled;
  const where = `${ctx}: step ${step.stepId} preempted ${preempted.join(',')} for ${pp.for}`;
  const priority = (id: string): number => all.find((s) => s.seqId === id)!.priority;
  assert.ok(preempted.length > 0, where);
  assert.ok(step.newSeqs.some((n) => n.seqId === pp.for), `${where}, which did not start`);
  for (const id of preempted) assert.ok(priority(id) > priority(pp.for), `${where}: ${id} is not worse`);
  if (pp.freedAdapter !== null) {
    const running = step.running.map((r) => adapterOf.get(r.seqId));
    assert.ok(!running.includes(pp.freedAdapter), `${where}: ${pp.freedAdapter} still runs`);
    assert.ok(preempted.some((id) => adapterOf.get(id) === pp.freedAdapter), `${where}: none of ${pp.freedAdapter}'s sequences went`);
    assert.ok(!running.includes(adapterOf.get(pp.for)), `${where}: its adapter was in the batch already`);
  }
}

function checkStep(
  step: Step,
  cfg: SchedulerConfig,
  adapterOf: ReadonlyMap<string, string | null>,
  ready: ReadonlySet<string>,
  slots: ReadonlyMap<string, number>,
  ctx: string,
): void {
  const ids = [...step.running.map((r) => r.seqId), ...step.newSeqs.map((n) => n.seqId)];
  assert.ok(ids.length <= cfg.maxBatchSize, `${ctx}: step ${step.stepId} has ${ids.length} sequences`);
  for (const r of step.running) {
    const key = adapterOf.get(r.seqId) ?? null;
    assert.ok(key === null || ready.has(key), `${ctx}: ${r.seqId} runs while its adapter ${key} is not resident`);
  }
  const adapters = new Set(ids.map((id) => adapterOf.get(id)).filter((k) => k != null));
  assert.ok(adapters.size <= cfg.maxActiveAdapters, `${ctx}: step ${step.stepId} has ${adapters.size} adapters`);
  const prefill = step.newSeqs.reduce((n, s) => n + s.tokens.length - (s.cached ?? 0), 0);
  assert.ok(prefill <= cfg.maxBatchPrefillTokens || step.newSeqs.length === 1, `${ctx}: prefill budget`);
  for (const n of step.newSeqs) {
    const key = adapterOf.get(n.seqId) ?? null;
    assert.equal(n.adapterSlot, key === null ? -1 : slots.get(key), `${ctx}: slot of ${n.seqId}`);
    assert.ok(key === null || ready.has(key), `${ctx}: ${n.seqId} admitted before its adapter was ready`);
  }
}

test('randomized run keeps every invariant and finishes every request exactly once', () => {
  let preemptions = 0;
  for (let seed = 1; seed <= 40; seed++) preemptions += runOnce(seed, false).preemptions;
  assert.ok(preemptions > 0, 'the random configurations never exercised preemption');
});

test('the same with async scheduling: steps built ahead of the result in flight give the same tokens', () => {
  let preemptions = 0;
  let ahead = 0;
  let steps = 0;
  let failed = 0;
  let requeued = 0;
  for (let seed = 1; seed <= 40; seed++) {
    const r = runOnce(seed, true);
    failed += r.failed;
    requeued += r.requeued;
    preemptions += r.preemptions;
    ahead += r.ahead;
    steps += r.steps;
  }
  assert.ok(preemptions > 0, 'the random configurations never exercised preemption');
  assert.ok(ahead > steps / 3, `only ${ahead} of ${steps} steps were built ahead`);
  assert.ok(failed > 0 && requeued > 0, `failed steps ${failed}, sequences started over ${requeued}`);
});

test('the same with priorities (--scheduling-policy priority), sync and async: admission and preemption reordered, every invariant kept', () => {
  let preemptions = 0;
  let priorityPreemptions = 0;
  let adapterSlotVictims = 0;
  for (let seed = 1; seed <= 20; seed++) {
    for (const r of [runOnce(seed, false, false, false, true), runOnce(seed, true, seed % 2 === 0, false, true)]) {
      preemptions += r.preemptions;
      priorityPreemptions += r.priorityPreemptions;
      adapterSlotVictims += r.adapterSlotVictims;
    }
  }
  assert.ok(preemptions > 0, 'the random configurations never exercised preemption');
  assert.ok(priorityPreemptions > 0, 'no better request ever preempted a worse one');
  assert.ok(adapterSlotVictims > 0, 'no better request ever preempted a worse adapter\'s sequences for its place under maxActiveAdapters');
});

test('the same with device slots (1-3, perhaps one pinned), priorities and fcfs, sync and async: a better request frees a worse adapter\'s slot', () => {
  for (const priorities of [true, false]) {
    let slotPreemptions = 0;
    let preemptions = 0;
    for (let seed = 1; seed <= 20; seed++) {
      for (const r of [runOnce(seed, false, false, false, priorities, true), runOnce(seed, true, seed % 2 === 0, false, priorities, true)]) {
        slotPreemptions += r.slotPreemptions;
        preemptions += r.preemptions;
      }
    }
    if (priorities) assert.ok(slotPreemptions > 0, 'no better request ever freed a worse adapter\'s device slot');
    else assert.equal(slotPreemptions, 0, 'with equal priorities nothing is preempted for a slot');
    assert.ok(preemptions > 0, 'the random configurations never exercised preemption');
  }
});

test('the same with prefix caching, sync and async: shared blocks hold their tokens, outputs unchanged', () => {
  for (const asyncSched of [false, true]) {
    let cached = 0;
    let preemptions = 0;
    for (let seed = 1; seed <= 40; seed++) {
      const r = runOnce(seed, asyncSched, true);
      cached += r.cachedTokens;
      preemptions += r.preemptions;
    }
    assert.ok(cached > 1000, `only ${cached} prompt tokens came from the cache`);
    assert.ok(preemptions > 0, 'the random configurations never exercised preemption');
  }
});

test('the same with speculative decoding, sync and async, with and without prefix caching: drafts change only how many tokens a step yields', () => {
  for (const asyncSched of [false, true]) {
    for (const prefixCaching of [false, true]) {
      let steps = 0, plainSteps = 0, drafted = 0, accepted = 0, preemptions = 0;
      for (let seed = 1; seed <= 40; seed++) {
        const r = runOnce(seed, asyncSched, prefixCaching, true);
        steps += r.steps;
        drafted += r.drafted;
        accepted += r.accepted;
        preemptions += r.preemptions;
        if (seed % 8 === 1) plainSteps += runOnce(seed, asyncSched, prefixCaching).steps - r.steps;
      }
      const ctx = `async ${asyncSched}, prefix caching ${prefixCaching}`;
      assert.ok(drafted > 1000 && accepted > drafted / 4 && accepted < drafted, `${ctx}: ${accepted} of ${drafted} drafts accepted`);
      assert.ok(plainSteps > 0, `${ctx}: speculation did not take fewer steps (${plainSteps})`);
      assert.ok(preemptions > 0, `${ctx}: the random configurations never exercised preemption`);
    }
  }
});
