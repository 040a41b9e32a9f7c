// Which adapter sits in which device slot, and how a request's adapter reference becomes a loaded one:
// name → source id → access check (EVERY request, with that request's token) → files on disk → slot.
// Adapters load on demand. When a slot is needed, the least recently used adapter that no RUNNING
// sequence uses and that is not pinned is evicted — idle ones first, then ones whose requests are only
// waiting (they are reloaded when a slot frees; otherwise popular adapters with queued requests would
// hold every slot and starve the rest). Load/evict are NATS events (via the AdapterLoader).
// With a byte budget (--adapter-memory-fraction) an adapter also needs room: its size (estimated from its
// files, then what the shards report) plus the resident ones' must fit, evicting by the same order — so many
// small adapters share what a few worst-case slots would reserve (S-LoRA's unified adapter memory, by adapter).
// An adapter that has to wait is prefetched — read into the shards' host-RAM tier — when it is among the
// PREFETCH_AHEAD first in line, so that its load, once room is made, only stages and installs it.
// Waiting adapters are in line by the best priority of the requests waiting for them (--scheduling-policy priority;
// all equal with fcfs), then by how long they have waited. With priority scheduling the scheduler may preempt the
// running sequences of adapters only worse requests use so that the first in line gets their room (roomFor).
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import type { MergeRecipe } from '../../protocol/index.js';
import { EngineError, type AdapterRef, type AdapterSummaryJson, type AdapterTier, type MergeSpec } from '../engine/types.js';
import { localRevision, resolveLocalAdapter } from './local-source.js';
import { HostTierMirror } from './host-tier.js';
import { estimateAdapterBytes } from './size-estimate.js';
import { cheapestFreeing, inLine } from './waiting-line.js';

export type { AdapterLoaded, AdapterLoader, LoadSpec, NamedAdapter, Prepared, RegistryEvents, RegistryHooks, RegistryOptions } from './registry-types.js';
import type { AdapterLoader, LoadSpec, Prepared, RegistryHooks, RegistryOptions } from './registry-types.js';

type State = 'waiting_slot' | 'loading' | 'ready' | 'evicted';

interface Entry extends Prepared {
  state: State;
  slot: number;
  refs: number;
  pinned: boolean;
  lastUsed: number;
  /** When it started waiting for a slot: within a priority, slots go to the longest-waiting adapter first. */
  waitingSince: number;
  /** Asked the shards to read it into host RAM during this wait. */
  prefetched: boolean;
  bytes: number;
  /** What it takes (or will) of one shard's byte budget: estimated from its files until a load reports it. */
  needBytes: number;
  maxRank: number;
  dora: boolean;
  waiters: { resolve: () => void; reject: (e: Error) => void }[];
}

/** How many of the first adapters in line are read into host RAM ahead of their loads. */
const PREFETCH_AHEAD = 2;

/** Evicted adapters remembered for the admin listing, at most this many. */
const MAX_REMEMBERED = 10_000;

export class AdapterRegistry {
  private readonly entries = new Map<string, Entry>();
  private readonly slotOwner: (string | null)[];
  private readonly host: HostTierMirror;

  constructor(private readonly o: RegistryOptions, private readonly loader: AdapterLoader, private readonly events: RegistryHooks) {
    this.slotOwner = new Array<string | null>(o.slots).fill(null);
    this.host = new HostTierMirror(o.hostCacheBytes);
  }

  /**
   * Resolves and access-checks a request's adapter (throws EngineError 401/403/404/422/424; 424 too when a byte
   * budget is set and the adapter alone is larger).
   */
  async prepare(ref: AdapterRef): Promise<Prepared> {
    return this.checkSize(await this.resolveRef(ref));
  }

  private async resolveRef(ref: AdapterRef): Promise<Prepared> {
    const named = this.o.names.get(ref.id);
    const target = named ? { ...named, apiToken: ref.apiToken ?? named.apiToken } : ref;
    if (target.source === 'local') {
      const dir = named ? resolveLocalAdapter(resolve(named.id), [resolve(named.id)]) : resolveLocalAdapter(target.id, this.o.roots);
      const revision = localRevision(dir);
      return { key: `local:${dir}@${revision}`, load: { dir }, id: target.id, source: 'local', revision };
    }
    const client = this.o.sources[target.source];
    if (!client) {
      throw new EngineError('validation', `adapter_source '${target.source}' is not configured on this server`);
    }
    const [id, revision] = target.source === 'hub' ? splitRevision(target.id) : [target.id, null];
    const token = target.source === 'hub'
      ? target.apiToken ?? (this.o.useGlobalHubToken ? this.o.globalHubToken : undefined)
      : target.apiToken;
    const resolved = await client.checkAccess(id, revision, token);
    const key = `${target.source}:${id}@${resolved}`;
    const dir = await client.fetch(id, resolved, token);
    return { key, load: { dir }, id, source: target.source, revision: resolved };
  }

  /** Access-checks every component, then names the merge by its full spec (so it is cached as one adapter). */
  async prepareMerge(spec: MergeSpec): Promise<Prepared> {
    const parts = await Promise.all(spec.adapters.map((a) => this.resolveRef(a)));
    const canonical = JSON.stringify({ keys: parts.map((p) => p.key), weights: spec.weights, strategy: spec.strategy,
      density: spec.density, method: spec.majoritySignMethod });
    const seed = createHash('sha256').update(canonical).digest().readUInt32LE(0);
    const merge: MergeRecipe = { dirs: parts.map((p) => p.load.dir!), weights: spec.weights, strategy: spec.strategy,
      majoritySignMethod: spec.majoritySignMethod, seed, ...(spec.density !== null ? { density: spec.density } : {}) };
    return this.checkSize({ key: `merge:${canonical}`, load: { merge }, id: parts.map((p) => p.id).join('+'), source: 'merge',
      revision: null });
  }

  /** With a byte budget: refuses an adapter larger than all of it (it could never load) before it is queued. */
  private checkSize(p: Prepared): Prepared {
    if (this.budget === 0) return p;
    const known = this.entries.get(p.key);
    const need = known ? known.needBytes : this.estimate(p.load);
    if (need > this.budget) {
      throw new EngineError('adapter_load', `adapter '${p.id}' needs ${mb(need)} of adapter memory per shard, more than ` +
        `the whole budget of ${mb(this.budget)} (raise --adapter-memory-fraction)`);
    }
    return { ...p, needBytes: need };
  }

  /**
   * Whether the files under `dir` may still be read (the disk tier's budget asks before deleting a download): an
   * adapter, or a merge that reads it, that a request holds or waits for, that is loading, or that is pinned.
   */
  usesDir(dir: string): boolean {
    for (const e of this.entries.values()) {
      if (e.refs === 0 && e.state !== 'loading' && !e.pinned) continue;
      if (e.load.dir === dir || e.load.merge?.dirs.includes(dir)) return true;
    }
    return false;
  }

  /** A request will use this adapter: pin it in memory and make sure it is loading or loaded. */
  acquire(p: Prepared): void {
    const e = this.entry(p);
    e.refs++;
    e.lastUsed = Date.now();
    if (e.state === 'waiting_slot' || e.state === 'evicted') this.schedule(e);
  }

  release(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    e.refs = Math.max(0, e.refs - 1);
    e.lastUsed = Date.now();
    if (e.refs === 0 && e.state === 'waiting_slot' && !e.pinned) e.state = 'evicted';
    this.retryWaiting();
  }

  /** Slots may have become evictable (sequences finished or preempted): give them to adapters waiting for one. */
  retryWaiting(): void {
    for (const e of this.waitingInLine()) {
      this.schedule(e);
      if (e.state === 'waiting_slot') return; // no slot for the first in line: don't let the others jump it
    }
  }

  /** Adapters waiting for a slot or room, in line: best waiting priority first, then longest waiting. */
  private waitingInLine(): Entry[] {
    const waiting = [...this.entries.values()].filter((e) => e.state === 'waiting_slot');
    return inLine(waiting, waiting.length > 1 ? this.events.waitingPriorities?.() : undefined);
  }

  /**
   * Priority preemption of device slots: `key` waits for a slot or room and is first in line; `candidates` are
   * resident adapters that only running sequences of worse requests use, the cheapest to preempt first. Which of
   * them must stop being in use for `key` to get room at the next retryWaiting: the first that alone would do, else
   * the fewest from the front (none of them needless), never a pinned one. Null when `key` is not waiting first in
   * line, when it has room already, or when not even all the candidates would make enough.
   */
  roomFor(key: string, candidates: readonly string[]): string[] | null {
    const e = this.entries.get(key);
    if (e?.state !== 'waiting_slot' || this.waitingInLine()[0] !== e || this.roomPlan(e, new Set()) !== null) return null;
    const usable = candidates.filter((k) => { const c = this.entries.get(k); return c?.state === 'ready' && !c.pinned && k !== key; });
    return cheapestFreeing(usable, (freed) => this.roomPlan(e, freed) !== null);
  }

  /** The PREFETCH_AHEAD first adapters in line are read into host RAM, once per wait. */
  private prefetchWaiting(): void {
    if (!this.loader.prefetchAdapter) return;
    for (const e of this.waitingInLine().slice(0, PREFETCH_AHEAD)) {
      if (e.prefetched) continue;
      e.prefetched = true;
      this.loader.prefetchAdapter(e.key, e.load);
      this.events.prefetched?.(e.key);
    }
  }

  isReady(key: string): boolean {
    return this.entries.get(key)?.state === 'ready';
  }

  slotOf(key: string): number {
    const e = this.entries.get(key);
    if (!e || e.state !== 'ready') throw new Error(`adapter ${key} is not resident`);
    return e.slot;
  }

  /** After the shard group restarted: nothing is resident any more; reload what is still wanted. */
  reset(): void {
    this.slotOwner.fill(null);
    this.host.clear();
    for (const e of this.entries.values()) {
      Object.assign(e, { state: e.refs > 0 || e.pinned ? 'waiting_slot' : 'evicted', slot: -1 });
    }
    this.retryWaiting();
  }

  // --- admin -----------------------------------------------------------------------------------

  list(): AdapterSummaryJson[] {
    return [...this.entries.values()].map((e) => this.summary(e));
  }

  async load(ref: AdapterRef): Promise<AdapterSummaryJson> {
    const p = await this.prepare(ref);
    await this.loadPrepared(p);
    return this.summary(this.entries.get(p.key)!);
  }

  /** Resolves once the adapter is resident (holding a reference while it waits, so it is not dropped meanwhile). */
  private async loadPrepared(p: Prepared): Promise<void> {
    this.acquire(p);
    try {
      await this.whenReady(p.key);
    } finally {
      this.release(p.key);
    }
  }

  async unload(ref: AdapterRef): Promise<AdapterSummaryJson> {
    const p = await this.prepare(ref);
    const e = this.entries.get(p.key);
    if (!e) throw new EngineError('adapter_not_found', `adapter '${ref.id}' is not loaded`);
    if (e.refs > 0) throw new EngineError('validation', `adapter '${ref.id}' is in use by ${e.refs} request(s); retry when idle`);
    e.pinned = false;
    if (e.state === 'ready') this.evict(e);
    return this.summary(e);
  }

  /**
   * Names an adapter at run time (vLLM's load_lora_adapter): it is access-checked and loaded first (a failed load
   * names nothing); then the name works as adapter_id and OpenAI `model` like a --preload-adapter name. `replace`
   * points an existing name at the new adapter; the old one leaves the device as slots are needed.
   */
  async loadNamed(name: string, ref: AdapterRef, replace: boolean): Promise<AdapterSummaryJson> {
    const taken = () => {
      if (!replace && this.o.names.has(name)) throw new EngineError('validation', `adapter name '${name}' is already loaded; unload it first, or replace it (load_inplace)`);
    };
    taken();
    const p = await this.prepare(ref);
    await this.loadPrepared(p);
    taken();  // another load may have taken the name meanwhile
    const id = p.source === 'local' && p.load.dir ? p.load.dir : ref.id;
    this.o.names.set(name, { id, source: ref.source, ...(ref.apiToken ? { apiToken: ref.apiToken } : {}) });
    return this.summary(this.entries.get(p.key)!);
  }

  /** Drops a name (run-time or preloaded) and unloads its adapter unless a request is using it (it then leaves
   * the device as slots are needed). Returns the adapter's summary, or null when it was never loaded. */
  async unloadNamed(name: string): Promise<AdapterSummaryJson | null> {
    if (!this.o.names.has(name)) throw new EngineError('adapter_not_found', `adapter name '${name}' is not loaded`);
    const p = await this.resolveRef({ id: name, source: this.o.names.get(name)!.source });
    this.o.names.delete(name);
    const e = this.entries.get(p.key);
    if (!e) return null;
    if (e.refs === 0) {
      e.pinned = false;
      if (e.state === 'ready') this.evict(e);
    }
    return this.summary(e);
  }

  async pin(ref: AdapterRef, pinned: boolean): Promise<AdapterSummaryJson> {
    const p = await this.prepare(ref);
    const e = this.entry(p);
    e.pinned = pinned;
    if (pinned && e.state !== 'ready') await this.loadPrepared(p);
    return this.summary(e);
  }

  get loadedCount(): number {
    return [...this.entries.values()].filter((e) => e.state === 'ready').length;
  }

  get totalRefs(): number {
    return [...this.entries.values()].reduce((n, e) => n + e.refs, 0);
  }

  // --- internals -------------------------------------------------------------------------------

  private entry(p: Prepared): Entry {
    let e = this.entries.get(p.key);
    if (!e) {
      e = { ...p, state: 'evicted', slot: -1, refs: 0, pinned: false, lastUsed: Date.now(), waitingSince: Date.now(), bytes: 0,
        needBytes: p.needBytes ?? 0, maxRank: 0, dora: false, waiters: [], prefetched: false };
      this.entries.set(p.key, e);
      this.forgetOld();
    }
    return e;
  }

  private whenReady(key: string): Promise<void> {
    const e = this.entries.get(key);
    if (e?.state === 'ready') return Promise.resolve();
    if (!e) return Promise.reject(new EngineError('adapter_load', 'adapter was dropped before it loaded'));
    return new Promise((resolve, reject) => e.waiters.push({ resolve, reject }));
  }

  private summary(e: Entry): AdapterSummaryJson {
    const names = [...this.o.names].filter(([, t]) => e.source !== 'merge' && t.id === e.id).map(([n]) => n);
    const tier: AdapterTier = e.state === 'ready' ? 'device' : e.state === 'loading' ? 'loading'
      : this.host.has(e.key) ? 'host' : 'disk';
    return { id: e.id, names, source: e.source === 'merge' ? 'local' : e.source, revision: e.revision, tier, bytes: e.bytes,
      rank: e.maxRank || null, dora: e.dora, lastUsed: new Date(e.lastUsed).toISOString(), pinned: e.pinned, inFlight: e.refs };
  }

  private evict(e: Entry): void {
    this.loader.evictAdapter(e.key, e.slot);
    this.slotOwner[e.slot] = null;
    Object.assign(e, { state: e.refs > 0 ? 'waiting_slot' : 'evicted', slot: -1, waitingSince: Date.now(), prefetched: false });
  }

  private get budget(): number {
    return this.o.budgetBytes ?? 0;
  }

  /** Estimated bytes of an adapter's files; 0 when they cannot be read (the load then fails with the reason). */
  private estimate(load: LoadSpec): number {
    try {
      return estimateAdapterBytes(load, this.o.elementBytes ?? 4, this.o.vocab ?? 0);
    } catch {
      return 0;
    }
  }

  /** Bytes of the budget that loading and resident adapters take. */
  get usedBytes(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.state === 'loading' || e.state === 'ready') n += e.needBytes;
    return n;
  }

  /**
   * A slot for `e`, with room in the byte budget: evicts what it must (idle adapters first, then least recently
   * used; never pinned ones or ones a running sequence uses), or nothing when that would not be enough (-1).
   */
  private makeRoom(e: Entry): number {
    const victims = this.roomPlan(e, new Set());
    if (victims === null) return -1;
    for (const v of victims) this.evict(v);
    return this.slotOwner.indexOf(null);
  }

  /** What makeRoom would evict for `e` were the adapters in `freed` not in use (null: it would not be enough). */
  private roomPlan(e: Entry, freed: ReadonlySet<string>): Entry[] | null {
    const candidates = [...this.entries.values()]
      .filter((c) => c.key !== e.key && c.state === 'ready' && !c.pinned && (freed.has(c.key) || !this.events.inUse(c.key)))
      .sort((a, b) => ((a.refs === 0) !== (b.refs === 0) ? (a.refs === 0 ? -1 : 1) : a.lastUsed - b.lastUsed));
    let freeSlots = this.slotOwner.filter((k) => k === null).length;
    let used = this.usedBytes;
    const fits = () => freeSlots > 0 && (this.budget === 0 || used + e.needBytes <= this.budget);
    const victims: Entry[] = [];
    for (const c of candidates) {
      if (fits()) break;
      victims.push(c);
      freeSlots++;
      used -= c.needBytes;
    }
    return fits() ? victims : null;
  }

  private schedule(e: Entry): void {
    if (e.state !== 'waiting_slot') Object.assign(e, { waitingSince: Date.now(), prefetched: false });
    e.state = 'waiting_slot';
    const slot = this.makeRoom(e);
    if (slot < 0) { // retried when a sequence finishes; meanwhile its files may be read ahead
      this.prefetchWaiting();
      return;
    }
    this.slotOwner[slot] = e.key;
    Object.assign(e, { slot, state: 'loading' });
    this.loader.loadAdapter(e.key, slot, e.load).then((loaded) => {
      if (this.entries.get(e.key) !== e || e.state !== 'loading' || e.slot !== slot) return;
      Object.assign(e, { state: 'ready', bytes: loaded.bytes, needBytes: loaded.rankBytes ?? loaded.bytes, maxRank: loaded.maxRank,
        dora: loaded.dora === true });
      this.host.touch(e.key, loaded.hostBytes);
      for (const w of e.waiters.splice(0)) w.resolve();
      this.events.ready(e.key, loaded);
    }, (err: Error) => {
      if (this.entries.get(e.key) !== e || e.slot !== slot) return;
      this.drop(e, slot, err.message);
    });
  }

  /** A load that cannot be: frees its slot (if it had one) and fails its waiters; the next request starts afresh. */
  private drop(e: Entry, slot: number, reason: string): void {
    if (slot >= 0) {
      this.loader.evictAdapter(e.key, slot);
      this.slotOwner[slot] = null;
    }
    this.entries.delete(e.key);
    for (const w of e.waiters.splice(0)) w.reject(new EngineError('adapter_load', `adapter '${e.id}' failed to load: ${reason}`));
    this.events.failed(e.key, reason);
    this.retryWaiting();
  }

  private forgetOld(): void {
    if (this.entries.size <= MAX_REMEMBERED) return;
    for (const [k, e] of this.entries) {
      if (e.state === 'evicted' && e.refs === 0 && !e.pinned) {
        this.entries.delete(k);
        if (this.entries.size <= MAX_REMEMBERED) return;
      }
    }
  }
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/** `owner/name@revision` → [id, revision]; no `@` → default branch. */
export function splitRevision(id: string): [string, string | null] {
  const at = id.lastIndexOf('@');
  if (at <= 0) return [id, null];
  const rev = id.slice(at + 1);
  if (!rev) throw new EngineError('validation', `adapter id '${id}' has an empty revision after '@'`);
  return [id.slice(0, at), rev];
}
