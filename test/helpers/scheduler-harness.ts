// The scheduler driven against a ReferenceShard, step by step, for the scheduler's unit tests: a small default
// config, sequences with prompts 1..n, and a harness that records every event.
import assert from 'node:assert/strict';
import type { SamplingParams, Step } from '../../protocol/index.js';
import { ReferenceShard, Scheduler, Sequence } from '../../coordinator/scheduler/index.js';
import type { ReferenceSampler, ScheduledStep, SchedulerConfig, SchedulerHooks, SequenceEvent } from '../../coordinator/scheduler/index.js';

export const SAMPLING: SamplingParams = { temperature: 1, topK: 0, topP: 1, typicalP: 1, repetitionPenalty: 1, doSample: false, seed: 0 };

export function config(over: Partial<SchedulerConfig> = {}): SchedulerConfig {
  return {
    numBlocks: 64,
    blockSize: 4,
    maxBatchSize: 16,
    maxBatchPrefillTokens: 256,
    maxTotalTokens: 1024,
    maxActiveAdapters: 4,
    adapterCycleTimeS: 10,
    ...over,
  };
}

export function seq(seqId: string, promptLen: number, o: { adapter?: string; maxNew?: number; eos?: number[]; priority?: number } = {}): Sequence {
  const promptTokens = Array.from({ length: promptLen }, (_, i) => 1 + i);
  return new Sequence({ seqId, promptTokens, adapterKey: o.adapter ?? null, sampling: SAMPLING, maxNewTokens: o.maxNew ?? 4, eosTokenIds: o.eos ?? [],
    ...(o.priority !== undefined ? { priority: o.priority } : {}) });
}

// The next token depends on the whole sequence, so a recompute must feed back exactly the same tokens.
export const hashSampler: ReferenceSampler = (_seqId, tokens) => 100 + tokens.reduce((h, t) => (h * 31 + t) % 997, 7);

/** The real scheduler driven against a ReferenceShard, which checks the protocol every step. */
export class Harness {
  readonly sched: Scheduler;
  readonly shard: ReferenceShard;
  readonly events = new Map<string, SequenceEvent[]>();
  /** What the latest schedule() returned. */
  last: ScheduledStep | null = null;

  constructor(cfg: SchedulerConfig, hooks: SchedulerHooks = {}, sampler: ReferenceSampler = hashSampler) {
    this.sched = new Scheduler(cfg, hooks);
    this.shard = new ReferenceShard(cfg.numBlocks, cfg.blockSize, sampler);
  }

  add(...seqs: Sequence[]): void {
    for (const s of seqs) this.sched.add(s);
  }

  step(): Step | null {
    const scheduled = this.sched.schedule();
    this.last = scheduled;
    if (scheduled === null) return null;
    for (const ev of this.sched.update(this.shard.run(scheduled.step))) {
      this.events.set(ev.seqId, [...(this.events.get(ev.seqId) ?? []), ev]);
    }
    return scheduled.step;
  }

  runToEnd(): Step[] {
    const steps: Step[] = [];
    for (let i = 0; this.sched.hasWork(); i++) {
      assert.ok(i < 10_000, 'scheduler did not finish');
      const s = this.step();
      assert.ok(s !== null, 'schedule() returned null with work left');
      steps.push(s);
    }
    assert.equal(this.sched.usedBlocks, 0);
    assert.equal(this.shard.size, 0, 'shards still hold state');
    return steps;
  }

  tokens(seqId: string): number[] {
    return (this.events.get(seqId) ?? []).map((e) => e.token);
  }

  reason(seqId: string): string | undefined {
    return this.events.get(seqId)?.at(-1)?.finished;
  }
}

export const newIds = (s: Step | null): string[] => s?.newSeqs.map((n) => n.seqId) ?? [];
export const runIds = (s: Step | null): string[] => s?.running.map((r) => r.seqId) ?? [];
