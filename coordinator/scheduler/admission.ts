// The rules of admission, one place: which new sequences are refused outright (rejectReason); the adapter rules — a
// waiting request is skipped (never waited on) when its adapter is not resident, when it would exceed the
// distinct-adapter limit, or while another request starves for its own adapter; priority order and preemption.

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

/** Whether seq may join a batch whose sequences use the adapters in active. */
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
  // While a request starves, other adapters wait (even ones in the batch) so the batch drains
  // and the starving request's adapter can get a slot.
  if (starving !== null && starving.adapterKey !== key) return false;
  return active.has(key) || active.size < maxActiveAdapters;
}

/**
 * Priority preemption (vLLM's priority policy): the running sequences to preempt now so that the best waiting
 * request that could run fits this step, in preemption order (the end of `running`: worst priority, latest
 * admitted). Each is strictly worse than that request, so with equal priorities (fcfs) there are none. Empty
 * when it fits already, when preempting every worse one would still not make room, or when its adapter cannot
 * join the batch anyway.
 */
export function priorityVictims(
  waiting: readonly Sequence[],
  running: readonly Sequence[],
  blocks: BlockManager,
  limits: { maxBatchSize: number; maxActiveAdapters: number },
  active: ReadonlySet<string>,
  isReady: (key: string) => boolean,
): Sequence[] {
  const best = waiting.find((seq) => seq.adapterKey === null || isReady(seq.adapterKey));
  const worst = running[running.length - 1];
  if (best === undefined || worst === undefined || worst.priority <= best.priority) return [];
  const key = best.adapterKey;
  if (key !== null && !active.has(key) && active.size >= limits.maxActiveAdapters) return [];
  // This step's blocks: each decoding sequence's next slot, then the whole prompt (prefix-cache hits ignored).
  let need = blocks.blocksFor(best.length);
  for (const seq of running) if (!seq.isPrefilling) need += blocks.missingBlocks(seq.seqId, seq.length);
  let free = blocks.freeBlocks;
  let size = running.length;
  const victims: Sequence[] = [];
  for (let i = running.length - 1; i >= 0 && (size >= limits.maxBatchSize || need > free); i--) {
    const victim = running[i]!;
    if (victim.priority <= best.priority) return [];
    victims.push(victim);
    size--;
    free += blocks.releasableBlocks(victim.seqId);
    if (!victim.isPrefilling) need -= blocks.missingBlocks(victim.seqId, victim.length);
  }
  return size >= limits.maxBatchSize || need > free ? [] : victims;
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
