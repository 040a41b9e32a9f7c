// Where `weft router` sends a request, as pure functions of the replicas' state (health and requests in flight).
//
// An adapter's requests follow its rendezvous (highest-random-weight) order over the replicas' names, bounded by
// load — "consistent hashing with bounded loads" (Mirrokni, Thorup, Zadimoghaddam 2018): a replica takes the
// request only while its requests in flight are below ceil(c × (all requests in flight + 1) / healthy replicas).
// A quiet adapter therefore always lands on its first choice (so it stays loaded on one replica), and a hot one
// spills over to its second choice, then its third, … only while the ones before are above the bound: it stays
// on as few replicas as its load needs, and every router spills it in the same order. c ≥ 1 guarantees some
// replica is below the bound (the least loaded one is at most the average, which is below it); c near 1 evens
// load out, a large c (say 1e9) turns bounding off (pure affinity; only 429s and failures move requests).
// Base-model requests have no affinity to keep: the least busy replica.
import { createHash } from 'node:crypto';

export const DEFAULT_LOAD_FACTOR = 1.25;

/** What placement reads of a replica. */
export interface ReplicaLoad {
  readonly name: string;
  readonly up: boolean;
  readonly inFlight: number;
}

/** Why a replica was tried: an adapter's first choice, a later choice because the ones before it were above the
 * bound, the least busy replica (no affinity), or the next one after a failure, a 429 or a 404 (a stored response
 * looked for). `owner`: the replica that stored a Responses API response. */
export type PlacementReason = 'affinity' | 'spill' | 'least_busy' | 'owner' | 'retry';
export const PLACEMENT_REASONS: readonly PlacementReason[] = ['affinity', 'spill', 'least_busy', 'owner', 'retry'];

export interface Placement<B extends ReplicaLoad> {
  /** Healthy replicas in the order to try them: the placement first, then the next choices. */
  readonly candidates: B[];
  /** Why the first candidate (the others, tried after a failure, are `retry`). */
  readonly reason: PlacementReason;
  /** The load bound the placement used (Infinity: no bound applies). */
  readonly bound: number;
}

/** The rendezvous weight of (key, replica): the first 8 bytes of SHA-256 — the same on every router. */
function weight(key: string, name: string): bigint {
  return createHash('sha256').update(key).update('\0').update(name).digest().readBigUInt64BE(0);
}

/** The healthy replicas in `key`'s rendezvous order (highest weight first). */
export function rendezvousOrder<B extends ReplicaLoad>(key: string, replicas: readonly B[]): B[] {
  return replicas.filter((b) => b.up).map((b) => ({ b, w: weight(key, b.name) }))
    .sort((x, y) => (x.w < y.w ? 1 : x.w > y.w ? -1 : 0)).map((x) => x.b);
}

/** The most requests a healthy replica may have in flight and still take an adapter's request (Infinity when
 * none is healthy). Counts the healthy replicas' requests only: those still streaming from a replica marked down
 * are no load the healthy ones share. */
export function loadBound(replicas: readonly ReplicaLoad[], loadFactor: number): number {
  if (!(loadFactor >= 1)) throw new Error(`load factor must be at least 1 (got ${loadFactor})`);
  const healthy = replicas.filter((b) => b.up);
  if (healthy.length === 0) return Infinity;
  const total = healthy.reduce((n, b) => n + b.inFlight, 0);
  return Math.ceil(loadFactor * (total + 1) / healthy.length);
}

/** An adapter's request: the first replica in its rendezvous order below the bound; after it, the others below
 * the bound, then those above it, each group in rendezvous order (the next choices on a failure or a 429). */
export function placeAdapter<B extends ReplicaLoad>(key: string, replicas: readonly B[], loadFactor: number): Placement<B> {
  const bound = loadBound(replicas, loadFactor);
  const order = rendezvousOrder(key, replicas);
  const under = order.filter((b) => b.inFlight < bound);
  const candidates = [...under, ...order.filter((b) => b.inFlight >= bound)];
  return { candidates, reason: candidates[0] === order[0] ? 'affinity' : 'spill', bound };
}

/** A request with no adapter: healthy replicas, least busy first (ties in the order given). */
export function placeLeastBusy<B extends ReplicaLoad>(replicas: readonly B[]): Placement<B> {
  return { candidates: replicas.filter((b) => b.up).sort((a, b) => a.inFlight - b.inFlight), reason: 'least_busy', bound: Infinity };
}
