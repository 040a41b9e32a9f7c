// The registry's line of adapters waiting for a device slot or room, and the choice of which adapters' running
// sequences priority preemption stops so that the first in line gets room (AdapterRegistry.roomFor): split out of
// registry.ts, pure functions over what it passes in.

/** Waiting adapters in line: best (lowest) waiting priority first (absent: 0), then longest waiting. */
export function inLine<T extends { key: string; waitingSince: number }>(waiting: T[], priorities?: ReadonlyMap<string, number>): T[] {
  if (waiting.length < 2) return waiting;
  const priority = (e: T) => priorities?.get(e.key) ?? 0;
  return waiting.sort((a, b) => priority(a) - priority(b) || a.waitingSince - b.waitingSince);
}

/**
 * Of `usable` (cheapest first), the adapters to free so that `works`: the first that alone would do, else the fewest
 * from the front with none needless (the costliest unneeded ones dropped); null when not even all of them would.
 * `works` must be monotone (freeing more never hurts), as room is.
 */
export function cheapestFreeing(usable: readonly string[], works: (freed: ReadonlySet<string>) => boolean): string[] | null {
  const single = usable.find((k) => works(new Set([k])));
  if (single !== undefined) return [single];
  const freed = new Set<string>();
  for (const k of usable) {
    freed.add(k);
    if (!works(freed)) continue;
    for (const extra of [...freed].reverse()) {
      freed.delete(extra);
      if (!works(freed)) freed.add(extra);
    }
    return usable.filter((u) => freed.has(u));
  }
  return null;
}
