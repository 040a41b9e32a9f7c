// Priority preemption for a device adapter slot (--scheduling-policy priority). A waiting request whose adapter is not
// resident waits for the registry to give it a slot (--max-adapter-slots) or room (--adapter-memory-fraction); when
// every slot or all the room is held by adapters that running sequences use, it would wait for them to finish. When
// those sequences are strictly worse than the request, the scheduler preempts (by recompute) every running sequence
// of the cheapest such adapter — or, with a byte budget, the fewest such adapters that make enough room — so the
// registry can evict it and load the request's adapter; the request starts once that load is in, as any other.
// The registry (SchedulerHooks.adapterRoom) says which adapters would do: never a pinned one, and only for the
// adapter first in its line (best waiting priority, then longest waiting), so the room goes to it.

import { sparesMore } from './admission.js';
import type { Sequence } from './sequence.js';

/** What device-slot preemption looks at. */
export interface SlotPreemptionView {
  /** In priority order. */
  waiting: readonly Sequence[];
  /** In priority order, then admission: the end is preempted first. */
  running: readonly Sequence[];
  isReady: (key: string) => boolean;
  /** SchedulerHooks.adapterRoom. */
  adapterRoom: (key: string, candidates: readonly string[]) => readonly string[] | null;
}

/** Preempt `victims` (every running sequence of `freedAdapters`, in preemption order) so that `adapter`, the
 * adapter of the waiting request `for`, is loaded into the room they leave. */
export interface SlotPreemption {
  victims: Sequence[];
  for: Sequence;
  adapter: string;
  freedAdapters: string[];
}

/**
 * The device-slot preemption to do now, or null. It is for the best waiting requests whose adapter is not resident
 * (the first in queue order, and any other of its priority for another adapter), and frees only adapters all of
 * whose running sequences are strictly worse than it — cheapest first: the one whose preemption spares the best
 * priority, then preempts the fewest sequences, then the latest admitted. None for a tie, with equal priorities
 * (fcfs), while the adapter loads already or has room, or when no choice of such adapters would make room.
 */
export function slotPreemption(view: SlotPreemptionView): SlotPreemption | null {
  const { waiting, running } = view;
  const worst = running[running.length - 1];
  // Both queues are in priority order: with no waiting request better than the worst running one (fcfs), nothing.
  if (worst === undefined || waiting.length === 0 || waiting[0]!.priority >= worst.priority) return null;
  const first = waiting.find((seq) => seq.adapterKey !== null && !view.isReady(seq.adapterKey));
  if (first === undefined || first.priority >= worst.priority) return null;
  // Each adapter's running sequences in preemption order (the last is its best); candidates are all worse than first.
  const byAdapter = new Map<string, Sequence[]>();
  for (let i = running.length - 1; i >= 0; i--) {
    const seq = running[i]!;
    if (seq.adapterKey === null) continue;
    const seqs = byAdapter.get(seq.adapterKey);
    if (seqs) seqs.push(seq);
    else byAdapter.set(seq.adapterKey, [seq]);
  }
  const candidates = [...byAdapter].filter(([, seqs]) => seqs[seqs.length - 1]!.priority > first.priority)
    .sort(([, a], [, b]) => (sparesMore(a, b, running) ? -1 : sparesMore(b, a, running) ? 1 : 0)).map(([key]) => key);
  if (candidates.length === 0) return null;
  const tried = new Set<string>();
  for (const seq of waiting) {
    if (seq.priority > first.priority) break;
    const key = seq.adapterKey;
    if (key === null || tried.has(key) || view.isReady(key)) continue;
    tried.add(key);
    const freed = (view.adapterRoom(key, candidates) ?? []).filter((k) => byAdapter.has(k) && candidates.includes(k));
    if (freed.length === 0) continue;
    const victims = running.filter((s) => s.adapterKey !== null && freed.includes(s.adapterKey)).reverse();
    return { victims, for: seq, adapter: key, freedAdapters: freed };
  }
  return null;
}
