// The adapter rules of admission, one place: a waiting request is skipped (never waited on) when its
// adapter is not resident, when it would exceed the distinct-adapter limit, or while another request
// starves for its own adapter.

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
