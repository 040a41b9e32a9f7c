// The rules of admission, one place: which new sequences are refused outright (rejectReason); the adapter rules — a
// waiting request is skipped (never waited on) when its adapter is not resident, when it would exceed the
// distinct-adapter limit, or while another request of its priority or better starves for its own adapter; priority
// order and preemption (for batch room, KV blocks and a place under the distinct-adapter limit).

import type { BlockManager } from './block-manager.js';
import type { Sequence } from './sequence.js';

/**
 * Puts seq into a list kept in priority order (lower first): after every sequence of its priority or better — or,
 * `first`, before every one of its priority or worse (a preempted sequence goes back to the front of its class).
 * With every priority equal this is push / unshift: first come, first served.
 */
export function insertByPriority(list: Sequence[], seq: Sequence, first = false): void {
  let i = list.length;
  if (first) {
    i = list.findIndex((s) => s.priority >= seq.priority);
    if (i < 0) i = list.length;
  } else {
    while (i > 0 && list[i - 1]!.priority > seq.priority) i--;
  }
  list.splice(i, 0, seq);
}

/** The first waiting request that needs an adapter not in the batch and arrived at or before cutoff (ms). */
export function findStarving(waiting: readonly Sequence[], active: ReadonlySet<string>, cutoff: number): Sequence | null {
  for (const seq of waiting) {
    if (seq.adapterKey !== null && !active.has(seq.adapterKey) && seq.arrivalTime <= cutoff) return seq;
  }
  return null;
}

/**
 * Whether seq may join a batch whose sequences use the adapters in active. While a request starves, requests of
 * other adapters wait (even ones in the batch) so the batch drains and its adapter gets a slot — except ones of a
 * strictly better priority: the starving rule orders requests within a priority, never against it (a better
 * request would preempt the starving one once admitted anyway). With every priority equal (fcfs) it holds all.
 */
export function adapterAdmissible(
  seq: Sequence,
  active: ReadonlySet<string>,
  starving: Sequence | null,
  maxActiveAdapters: number,
  isReady: (key: string) => boolean,
): boolean {
  const key = seq.adapterKey;
  if (key === null) return true;
  if (!isReady(key)) return false;
  if (starving !== null && starving.adapterKey !== key && seq.priority >= starving.priority) return false;
  return active.has(key) || active.size < maxActiveAdapters;
}

/** What priority preemption looks at: the queues, the KV blocks, the limits and the admission rules in force. */
export interface PreemptionView {
  /** In priority order. */
  waiting: readonly Sequence[];
  /** In priority order, then admission: the end is preempted first. */
  running: readonly Sequence[];
  blocks: BlockManager;
  limits: { maxBatchSize: number; maxActiveAdapters: number; maxBatchPrefillTokens: number };
  isReady: (key: string) => boolean;
  /** findStarving's request once only the adapters in `active` run (asked only when a preemption is considered). */
  starving: (active: ReadonlySet<string>) => Sequence | null;
  /** Prefix caching: seq waits a step for a block another request is computing (PendingBlocks.shouldWait). */
  waitsForCache: (seq: Sequence) => boolean;
}

/** What priority preemption does this step: preempt `victims` (in preemption order) so that `for` starts. */
export interface PriorityPreemption {
  victims: Sequence[];
  for: Sequence;
  /** The adapter whose every running sequence is among the victims to give `for` a place under maxActiveAdapters. */
  freedAdapter: string | null;
}

/**
 * Priority preemption (vLLM's priority policy): the running sequences to preempt now so that the best waiting
 * request that could run starts this step, in preemption order (the end of `running`: worst priority, latest
 * admitted). Each is strictly worse than that request, so with equal priorities (fcfs) there are none. What it may
 * lack: batch room or KV blocks (the worst running ones go, only as many as needed), and a place under
 * maxActiveAdapters when its adapter is not in the batch (every running sequence of one adapter goes: of the
 * adapters all of whose sequences are worse, the one whose preemption, with what else must go for room, spares the
 * best priority, then preempts the fewest sequences, then the latest admitted). None when it fits already, when no
 * such choice would make it start this step (the prefill budget the remaining prefills leave, a starving request
 * it must let go first, a cached block it waits for), or when its adapter is not resident.
 */
export function priorityPreemption(view: PreemptionView): PriorityPreemption | null {
  const { waiting, running, limits } = view;
  const best = waiting.find((seq) => seq.adapterKey === null || view.isReady(seq.adapterKey));
  const worst = running[running.length - 1];
  if (best === undefined || worst === undefined || worst.priority <= best.priority || view.waitsForCache(best)) return null;
  // Running is in priority order, so the strictly worse ones are a suffix of it.
  const worseFrom = running.findIndex((seq) => seq.priority > best.priority);
  const byAdapter = new Map<string, Sequence[]>();
  for (const seq of running) {
    if (seq.adapterKey === null) continue;
    const seqs = byAdapter.get(seq.adapterKey);
    if (seqs) seqs.push(seq);
    else byAdapter.set(seq.adapterKey, [seq]);
  }
  const key = best.adapterKey;
  if (key === null || byAdapter.has(key) || byAdapter.size < limits.maxActiveAdapters) {
    const victims = victimsForRoom(view, best, worseFrom, new Set());
    return victims !== null && victims.length > 0 ? { victims, for: best, freedAdapter: null } : null;
  }
  let plan: PriorityPreemption | null = null;
  for (const [freed, seqs] of byAdapter) {
    if (running.indexOf(seqs[0]!) < worseFrom) continue;  // one of its sequences is not worse than best
    const victims = victimsForRoom(view, best, worseFrom, new Set(seqs));
    if (victims !== null && (plan === null || sparesMore(victims, plan.victims, running))) plan = { victims, for: best, freedAdapter: freed };
  }
  return plan;
}

/**
 * `chosen` plus the worst running sequences (from the end, down to worseFrom) that must also go for best to start
 * this step, in preemption order; null when even all of them would not do.
 */
function victimsForRoom(view: PreemptionView, best: Sequence, worseFrom: number, chosen: Set<Sequence>): Sequence[] | null {
  const { running, blocks, limits } = view;
  // This step's blocks: each decoding sequence's next slot, then the whole prompt (prefix-cache hits ignored).
  let need = blocks.blocksFor(best.length);
  let free = blocks.freeBlocks;
  let size = running.length;
  let prefill = 0;  // prompt tokens the prefills under way still have to send (they take the budget first)
  for (const seq of running) {
    if (chosen.has(seq)) {
      size--;
      free += blocks.releasableBlocks(seq.seqId);
    } else if (seq.isPrefilling) {
      prefill += seq.prefillTotal - seq.prefillSent;
    } else {
      need += blocks.missingBlocks(seq.seqId, seq.length);
    }
  }
  const victims = new Set(chosen);
  for (let i = running.length - 1; i >= worseFrom && (size >= limits.maxBatchSize || need > free); i--) {
    const victim = running[i]!;
    if (victims.has(victim)) continue;
    victims.add(victim);
    size--;
    free += blocks.releasableBlocks(victim.seqId);
    if (victim.isPrefilling) prefill -= victim.prefillTotal - victim.prefillSent;
    else need -= blocks.missingBlocks(victim.seqId, victim.length);
  }
  if (victims.size === 0) return [];  // it fits already
  if (size >= limits.maxBatchSize || need > free) return null;
  // What admission will ask of it too (admitWaiting): the prefill budget left, and the adapter rules — a victim's
  // adapter leaving the batch can make a waiting request of it starve, which may hold best back.
  const used = Math.min(prefill, limits.maxBatchPrefillTokens);
  const budgetOk = best.chunkable ? used < limits.maxBatchPrefillTokens : used === 0 || used + best.length <= limits.maxBatchPrefillTokens;
  const active = new Set<string>();
  for (const seq of running) if (seq.adapterKey !== null && !victims.has(seq)) active.add(seq.adapterKey);
  if (!budgetOk || !adapterAdmissible(best, active, view.starving(active), limits.maxActiveAdapters, view.isReady)) return null;
  return running.filter((seq) => victims.has(seq)).reverse();
}

/** Whether plan a spares better-priority sequences than plan b: its best victim is worse, then it has fewer victims,
 * then its best victim was admitted later. Both are in preemption order (their last is their best). */
export function sparesMore(a: readonly Sequence[], b: readonly Sequence[], running: readonly Sequence[]): boolean {
  const aBest = a[a.length - 1]!;
  const bBest = b[b.length - 1]!;
  if (aBest.priority !== bBest.priority) return aBest.priority > bBest.priority;
  if (a.length !== b.length) return a.length < b.length;
  return running.indexOf(aBest) > running.indexOf(bBest);
}

/** The best priority of the requests waiting for each adapter: the first of each in `waiting` (priority order). */
export function waitingPriorities(waiting: readonly Sequence[]): Map<string, number> {
  const best = new Map<string, number>();
  for (const seq of waiting) if (seq.adapterKey !== null && !best.has(seq.adapterKey)) best.set(seq.adapterKey, seq.priority);
  return best;
}

/** Adapters that waiting requests need and that are not ready, in the order of their first request. */
export function wantedAdapters(waiting: readonly Sequence[], isReady: (key: string) => boolean): string[] {
  const keys = new Set<string>();
  for (const seq of waiting) if (seq.adapterKey !== null && !isReady(seq.adapterKey)) keys.add(seq.adapterKey);
  return [...keys];
}

/** Why a new sequence could never run (null: it can): not fresh, empty, no room under maxTotalTokens, no adapters. */
export function rejectReason(seq: Sequence, maxTotalTokens: number, maxActiveAdapters: number): string | null {
  if (seq.status !== 'waiting' || seq.generated.length > 0) return 'not a fresh sequence';
  if (seq.promptTokens.length === 0) return 'empty prompt';
  if (seq.promptTokens.length >= maxTotalTokens) {
    return `prompt of ${seq.promptTokens.length} tokens leaves no room under the ${maxTotalTokens}-token limit`;
  }
  if (!Number.isSafeInteger(seq.maxNewTokens) || seq.maxNewTokens < 1) return 'maxNewTokens must be >= 1';
  if (seq.adapterKey !== null && maxActiveAdapters === 0) return 'adapters are disabled (maxActiveAdapters = 0)';
  return null;
}
