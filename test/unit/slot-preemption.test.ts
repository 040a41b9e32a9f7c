// Priority preemption for a device adapter slot (--scheduling-policy priority): the real Scheduler and the real
// AdapterRegistry wired together as the engine wires them, with an in-process stand-in for the shard group's adapter
// loads and a ReferenceShard for the steps. A better request whose adapter is not resident while every slot (or the
// byte budget) is held by adapters only worse running sequences use preempts the cheapest such adapter's sequences;
// the registry evicts it and loads the better request's adapter, which runs before the preempted ones come back.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdapterRegistry, type AdapterLoaded, type LoadSpec } from '../../coordinator/adapters/registry.js';
import { estimateAdapterBytes } from '../../coordinator/adapters/size-estimate.js';
import type { Sequence, SchedulerConfig } from '../../coordinator/scheduler/index.js';
import { writeSafetensors } from '../../shard/formats/index.js';
import { Harness, config, hashSampler, newIds, seq } from '../helpers/scheduler-harness.js';

const root = mkdtempSync(join(tmpdir(), 'weft-slot-preemption-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** An adapter directory whose LoRA tensors hold `elements` values: 2 × elements bytes at the 16-bit element size.
 * Written once per test (`tag`): writing it again would make it another revision, so another adapter. */
function adapterDir(tag: string, name: string, elements: number): string {
  const dir = join(root, tag, name);
  if (existsSync(dir)) return dir;
  mkdirSync(dir, { recursive: true });
  const a = elements / 2;
  writeSafetensors(join(dir, 'adapter_model.safetensors'), {
    'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': { dtype: 'F32', shape: [1, a], data: new Float32Array(a) },
    'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight': { dtype: 'F32', shape: [a, 1], data: new Float32Array(a) },
  });
  writeFileSync(join(dir, 'adapter_config.json'), '{}');
  return dir;
}

/** The shard group's side of adapter loads: each load completes when `finishLoads()` is called (or at once, `auto`). */
class Loader {
  loads: string[] = [];
  evicts: string[] = [];
  auto = true;
  private held: (() => void)[] = [];
  loadAdapter(key: string, _slot: number, load: LoadSpec): Promise<AdapterLoaded> {
    this.loads.push(key);
    const bytes = estimateAdapterBytes(load, 2);
    const loaded = { bytes, rankBytes: bytes, maxRank: 1, hostBytes: 0 };
    return this.auto ? Promise.resolve(loaded) : new Promise((r) => this.held.push(() => r(loaded)));
  }
  evictAdapter(key: string): void {
    this.evicts.push(key);
  }
  finishLoads(): void {
    for (const f of this.held.splice(0)) f();
  }
}

const settle = () => new Promise((r) => setImmediate(r));

/** A Scheduler and an AdapterRegistry wired as Engine wires them; requests acquire their adapter and release it when
 * they end; a step that finds nothing to run asks the registry to retry (the engine's loop). */
class Server {
  readonly loader = new Loader();
  readonly reg: AdapterRegistry;
  readonly h: Harness;
  /** Adapter name → registry key. */
  readonly keys = new Map<string, string>();
  readonly seqs: Sequence[] = [];
  private readonly released = new Set<string>();
  private static made = 0;
  /** This server's adapter directories (under root). */
  readonly tag = `s${Server.made++}`;
  now = 0;

  constructor(o: { slots: number; budget?: number; cfg?: Partial<SchedulerConfig> }) {
    this.reg = new AdapterRegistry({ roots: [root], slots: o.slots, sources: {}, useGlobalHubToken: false, names: new Map(), hostCacheBytes: 0,
      budgetBytes: o.budget ?? 0, elementBytes: 2 }, this.loader, { ready: () => {}, failed: () => {},
      inUse: (k) => this.h.sched.adapterInUse(k), waitingPriorities: () => this.h.sched.waitingPriorities() });
    this.h = new Harness(config(o.cfg), { isAdapterReady: (k) => this.reg.isReady(k), adapterSlot: (k) => this.reg.slotOf(k), now: () => this.now,
      adapterRoom: (k, c) => this.reg.roomFor(k, c), adaptersFreed: () => this.reg.retryWaiting() });
  }

  key(name: string): string {
    return this.keys.get(name)!;
  }

  /** Queues a request for adapter `name` (`elements`: its size, see adapterDir), as Engine.generate does. */
  async add(id: string, name: string | null, o: { priority: number; maxNew: number; elements?: number; prompt?: number }): Promise<Sequence> {
    let key: string | undefined;
    if (name !== null) {
      const p = await this.reg.prepare({ id: adapterDir(this.tag, name, o.elements ?? 1000), source: 'local' });
      this.keys.set(name, p.key);
      this.reg.acquire(p);
      key = p.key;
    }
    const s = seq(id, o.prompt ?? 3, { priority: o.priority, maxNew: o.maxNew, ...(key !== undefined ? { adapter: key } : {}) });
    this.h.add(s);
    this.seqs.push(s);
    await settle();
    return s;
  }

  async step(): Promise<string[]> {
    const step = this.h.step();
    for (const s of this.seqs) {
      if (s.isFinished && s.adapterKey !== null && !this.released.has(s.seqId)) {
        this.released.add(s.seqId);
        this.reg.release(s.adapterKey);
      }
    }
    if (step === null) this.reg.retryWaiting();
    await settle();
    return newIds(step);
  }

  /** Steps until nothing is left; the ids admitted, in order. */
  async runToEnd(): Promise<string[]> {
    const order: string[] = [];
    for (let i = 0; this.h.sched.hasWork(); i++) {
      assert.ok(i < 1000, 'no progress');
      order.push(...await this.step());
    }
    return order;
  }

  /** Each finished request produced exactly what it produces alone (a recompute after preemption is exact). */
  checkOutputs(): void {
    for (const s of this.seqs) {
      const alone = new Harness(config({ maxBatchSize: 1 }), {}, hashSampler);
      alone.add(seq(s.seqId, s.promptTokens.length, { maxNew: s.maxNewTokens }));
      alone.runToEnd();
      assert.deepEqual(this.h.tokens(s.seqId), alone.tokens(s.seqId), `${s.seqId}'s output`);
    }
  }
}

describe('priority preemption for a device adapter slot', () => {
  it('preempts the worse adapter\'s sequences, evicts it and loads the better request\'s adapter, which runs before they come back', async () => {
    const g = new Server({ slots: 1, cfg: { adapterCycleTimeS: 1 } });
    await g.add('a1', 'A', { priority: 5, maxNew: 12 });
    await g.add('a2', 'A', { priority: 5, maxNew: 12 });
    await g.add('base', null, { priority: 9, maxNew: 12 });
    assert.deepEqual(await g.step(), ['a1', 'a2', 'base']);
    await g.add('c1', 'C', { priority: 7, maxNew: 2 });  // waits for the slot first, but is worse than A's
    assert.deepEqual(await g.step(), []);
    assert.equal(g.h.last!.slotPreemption, undefined, 'nothing for a request better only than the base-model one');
    g.loader.auto = false;
    await g.add('b1', 'B', { priority: 0, maxNew: 3 });
    const before = g.h.sched.preemptions;
    assert.deepEqual(await g.step(), []);
    const s = g.h.last!;
    assert.deepEqual(s.step.finished, ['a2', 'a1'], 'every running sequence of A, worst first');
    assert.deepEqual(s.preempted, ['a2', 'a1']);
    assert.deepEqual(s.slotPreemption, { for: 'b1', adapter: g.key('B'), freedAdapters: [g.key('A')] });
    assert.equal(g.h.sched.preemptions, before + 2, 'counted as preemptions');
    assert.deepEqual(g.loader.evicts, [g.key('A')]);
    assert.equal(g.loader.loads.at(-1), g.key('B'), 'the freed slot goes to B (priority 0), not to C, which waited longer');
    // While B loads, A's sequences stay out (A is not resident any more), though they are long past the cycle time.
    g.now = 5000;
    for (let i = 0; i < 2; i++) assert.deepEqual(await g.step(), []);
    assert.equal(g.h.last!.slotPreemption, undefined, 'nothing more is preempted while B loads');
    g.loader.finishLoads();
    await settle();
    g.loader.auto = true;
    const order = await g.runToEnd();
    assert.equal(order[0], 'b1', 'the better request starts as soon as its adapter is in');
    assert.ok(order.indexOf('a1') > 0 && order.indexOf('c1') > order.indexOf('a1'), `then A (priority 5) before C (7): ${order.join(',')}`);
    assert.equal(g.h.sched.preemptions, before + 2);
    g.checkOutputs();
  });

  it('preempts nothing for a tie, for a pinned adapter, or for an adapter a better or equal running sequence uses', async () => {
    // Tie: B's request waits for A's sequences to end.
    const tie = new Server({ slots: 1 });
    await tie.add('a1', 'A', { priority: 3, maxNew: 6 });
    assert.deepEqual(await tie.step(), ['a1']);
    await tie.add('b1', 'B', { priority: 3, maxNew: 2 });
    const order = await tie.runToEnd();
    assert.deepEqual([order, tie.h.sched.preemptions, tie.loader.evicts], [['b1'], 0, [tie.key('A')]]);
    assert.equal(tie.h.tokens('a1').length, 6);
    // Pinned: A may never be evicted, so preempting its sequences could not free the slot.
    const pin = new Server({ slots: 1 });
    await pin.add('a1', 'A', { priority: 5, maxNew: 6 });
    await pin.reg.pin({ id: join(root, pin.tag, 'A'), source: 'local' }, true);
    assert.deepEqual(await pin.step(), ['a1']);
    await pin.add('b1', 'B', { priority: 0, maxNew: 2 });
    assert.deepEqual([await pin.step(), pin.h.last!.step.finished, pin.h.sched.preemptions], [[], [], 0]);
    assert.equal(pin.reg.isReady(pin.key('B')), false);
    // A running sequence as good as b1 uses A: A is not a candidate, even though another of its sequences is worse.
    const used = new Server({ slots: 1 });
    await used.add('a1', 'A', { priority: 1, maxNew: 6 });
    await used.add('a2', 'A', { priority: 9, maxNew: 6 });
    assert.deepEqual(await used.step(), ['a1', 'a2']);
    await used.add('b1', 'B', { priority: 1, maxNew: 2 });
    assert.deepEqual([await used.step(), used.h.last!.step.finished, used.h.sched.preemptions], [[], [], 0]);
    const rest = await used.runToEnd();
    assert.deepEqual([rest, used.h.sched.preemptions], [['b1'], 0], 'b1 waits for A\'s sequences to end');
  });

  it('frees the cheapest adapter: the one whose best sequence is worst, then the one with fewer sequences', async () => {
    const g = new Server({ slots: 2 });
    await g.add('a1', 'A', { priority: 4, maxNew: 8 });
    await g.add('a2', 'A', { priority: 4, maxNew: 8 });
    await g.add('c1', 'C', { priority: 4, maxNew: 8 });
    assert.deepEqual(await g.step(), ['a1', 'a2', 'c1']);
    await g.add('b1', 'B', { priority: 1, maxNew: 2 });
    await g.step();
    assert.deepEqual([g.h.last!.step.finished, g.h.last!.slotPreemption?.freedAdapters], [['c1'], [g.key('C')]], 'C: one sequence to recompute');
    await g.runToEnd();
    g.checkOutputs();
    const w = new Server({ slots: 2 });
    await w.add('a1', 'A', { priority: 6, maxNew: 8 });
    await w.add('c1', 'C', { priority: 3, maxNew: 8 });
    await w.add('c2', 'C', { priority: 8, maxNew: 8 });
    assert.deepEqual(await w.step(), ['c1', 'a1', 'c2']);
    await w.add('b1', 'B', { priority: 1, maxNew: 2 });
    await w.step();
    assert.deepEqual([w.h.last!.step.finished, w.h.last!.slotPreemption?.freedAdapters], [['a1'], [w.key('A')]], 'A: its best (6) is worse than C\'s (3)');
    await w.runToEnd();
    w.checkOutputs();
  });

  it('with a byte budget: frees the fewest adapters that make room, and nothing when even all of them would not', async () => {
    // 10 kB: A and C (3 kB each, worse), E (2 kB, better), F (1 kB, the worst): 9 kB used. D needs 7 kB: F alone, A
    // alone or C alone are not enough; F, C and A are, and F is not needed among them: A's and C's sequences go.
    const g = new Server({ slots: 8, budget: 10_000 });
    await g.add('e1', 'E', { priority: 0, maxNew: 10, elements: 1000 });
    await g.add('a1', 'A', { priority: 5, maxNew: 10, elements: 1500 });
    await g.add('c1', 'C', { priority: 6, maxNew: 10, elements: 1500 });
    await g.add('f1', 'F', { priority: 7, maxNew: 10, elements: 500 });
    assert.deepEqual(await g.step(), ['e1', 'a1', 'c1', 'f1']);
    assert.equal(g.reg.usedBytes, 9000);
    await g.add('d1', 'D', { priority: 1, maxNew: 2, elements: 3500 });
    assert.deepEqual(await g.step(), []);
    const s = g.h.last!;
    assert.deepEqual([s.step.finished, s.step.running.map((r) => r.seqId), s.slotPreemption?.freedAdapters],
      [['c1', 'a1'], ['e1', 'f1'], [g.key('C'), g.key('A')]]);
    assert.deepEqual(g.loader.evicts.sort(), [g.key('A'), g.key('C')].sort());
    assert.ok(g.reg.isReady(g.key('D')) && g.reg.isReady(g.key('F')) && g.reg.isReady(g.key('E')));
    assert.equal(g.reg.usedBytes, 10_000);
    assert.deepEqual(await g.step(), ['d1'], 'its load is in: it starts');
    assert.equal(g.h.sched.preemptions, 2);
    const order = await g.runToEnd();
    assert.deepEqual(order, ['a1', 'c1']);
    g.checkOutputs();
    // D needs 5 kB: freeing C (the only adapter all of whose sequences are worse) leaves 4 kB. Nothing is preempted.
    const n = new Server({ slots: 8, budget: 10_000 });
    await n.add('e1', 'E', { priority: 0, maxNew: 6, elements: 3000 });
    await n.add('c1', 'C', { priority: 6, maxNew: 6, elements: 1000 });
    assert.deepEqual(await n.step(), ['e1', 'c1']);
    await n.add('d1', 'D', { priority: 1, maxNew: 2, elements: 2500 });
    assert.deepEqual([await n.step(), n.h.last!.step.finished, n.h.sched.preemptions], [[], [], 0]);
    assert.deepEqual(await n.runToEnd(), ['d1']);
    assert.equal(n.h.sched.preemptions, 0);
  });

  it('a slot that frees goes to the adapter of the best waiting request, then the longest waiting (all equal: the oldest)', async () => {
    for (const [bPriority, first] of [[4, 'B'], [7, 'C']] as const) {
      const g = new Server({ slots: 1 });
      await g.add('a1', 'A', { priority: 0, maxNew: 3 });
      assert.deepEqual(await g.step(), ['a1']);
      await g.add('c1', 'C', { priority: 7, maxNew: 2 });  // waits longer
      await g.add('b1', 'B', { priority: bPriority, maxNew: 2 });
      assert.deepEqual(await g.runToEnd(), first === 'B' ? ['b1', 'c1'] : ['c1', 'b1']);
      assert.deepEqual(g.loader.loads.slice(1), [g.key(first), g.key(first === 'B' ? 'C' : 'B')]);
      assert.equal(g.h.sched.preemptions, 0);
    }
  });

  it('async scheduling: a step built ahead is not, the preemption waits for the step in flight', async () => {
    const g = new Server({ slots: 1 });
    await g.add('a1', 'A', { priority: 5, maxNew: 8 });
    const first = g.h.sched.schedule()!;
    assert.deepEqual(newIds(first.step), ['a1']);
    await g.add('b1', 'B', { priority: 0, maxNew: 2 });
    assert.equal(g.h.sched.scheduleAhead(), null, 'A\'s sequence is in the step in flight: its slot must not change');
    assert.deepEqual(g.loader.evicts, []);
    g.h.sched.update(g.h.shard.run(first.step));
    const next = g.h.sched.schedule()!;
    assert.deepEqual([next.step.finished, next.slotPreemption?.for, g.loader.evicts], [['a1'], 'b1', [g.key('A')]]);
    g.h.sched.update(g.h.shard.run(next.step));
    await settle();
    assert.deepEqual(await g.runToEnd(), ['b1', 'a1']);
    assert.equal(g.h.tokens('a1').length, 7, 'a1 recomputed (its first token was streamed from the step before)');
  });
});
