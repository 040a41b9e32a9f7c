// Which adapter sits in which device slot. Adapters are loaded on demand when a request needs one,
// evicted LRU when a slot is needed and they are idle; an adapter with requests in flight never is.
import { EngineError, type AdapterRef } from '../engine/types.js';
import { resolveLocalAdapter } from './local-source.js';

export interface AdapterLoader {
  loadAdapter(key: string, slot: number, dir: string): Promise<{ bytes: number; maxRank: number }>;
  evictAdapter(key: string, slot: number): void;
}

type State = 'loading' | 'ready' | 'waiting_slot';

interface Entry {
  key: string;
  dir: string;
  state: State;
  slot: number;
  refs: number;
  lastUsed: number;
  bytes: number;
  maxRank: number;
}

export interface RegistryEvents {
  ready(key: string): void;
  failed(key: string, reason: string): void;
}

export interface AdapterSummary { key: string; state: State; slot: number; refs: number; bytes: number; maxRank: number; lastUsed: number }

export class AdapterRegistry {
  private readonly entries = new Map<string, Entry>();
  private readonly slotOwner: (string | null)[];

  constructor(private readonly roots: readonly string[], slots: number, private readonly loader: AdapterLoader,
    private readonly events: RegistryEvents) {
    this.slotOwner = new Array<string | null>(slots).fill(null);
  }

  /** Resolves a request's adapter to its cache key and files; throws EngineError (403/404/422). */
  resolve(ref: AdapterRef): { key: string; dir: string } {
    if (ref.source !== 'local') {
      throw new EngineError('validation', `adapter_source '${ref.source}' is not available in this build; use 'local' with --adapter-root`);
    }
    const dir = resolveLocalAdapter(ref.id, this.roots);
    return { key: `local:${dir}`, dir };
  }

  /** A request will use this adapter: pin it and make sure it is loading or loaded. */
  acquire(key: string, dir: string): void {
    let e = this.entries.get(key);
    if (!e) {
      e = { key, dir, state: 'waiting_slot', slot: -1, refs: 0, lastUsed: Date.now(), bytes: 0, maxRank: 0 };
      this.entries.set(key, e);
    }
    e.refs++;
    e.lastUsed = Date.now();
    if (e.state === 'waiting_slot') this.tryLoad(e);
  }

  release(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    e.refs = Math.max(0, e.refs - 1);
    e.lastUsed = Date.now();
    if (e.refs === 0 && e.state === 'waiting_slot') this.entries.delete(key);
    if (e.refs === 0) this.retryWaiting();
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
    for (const e of this.entries.values()) {
      if (e.refs === 0) this.entries.delete(e.key);
      else Object.assign(e, { state: 'waiting_slot', slot: -1 });
    }
    this.retryWaiting();
  }

  summary(): AdapterSummary[] {
    return [...this.entries.values()].map(({ key, state, slot, refs, bytes, maxRank, lastUsed }) =>
      ({ key, state, slot, refs, bytes, maxRank, lastUsed }));
  }

  get loadedCount(): number {
    return [...this.entries.values()].filter((e) => e.state === 'ready').length;
  }

  get totalRefs(): number {
    return [...this.entries.values()].reduce((n, e) => n + e.refs, 0);
  }

  private retryWaiting(): void {
    for (const e of this.entries.values()) if (e.state === 'waiting_slot' && e.refs > 0) this.tryLoad(e);
  }

  private freeSlot(): number {
    const free = this.slotOwner.indexOf(null);
    if (free >= 0) return free;
    // Evict the least recently used idle adapter.
    let victim: Entry | null = null;
    for (const e of this.entries.values()) {
      if (e.state === 'ready' && e.refs === 0 && (!victim || e.lastUsed < victim.lastUsed)) victim = e;
    }
    if (!victim) return -1;
    this.loader.evictAdapter(victim.key, victim.slot);
    this.slotOwner[victim.slot] = null;
    this.entries.delete(victim.key);
    return victim.slot;
  }

  private tryLoad(e: Entry): void {
    const slot = this.freeSlot();
    if (slot < 0) return; // stays waiting_slot; retried when an adapter goes idle
    this.slotOwner[slot] = e.key;
    e.slot = slot;
    e.state = 'loading';
    this.loader.loadAdapter(e.key, slot, e.dir).then(({ bytes, maxRank }) => {
      if (this.entries.get(e.key) !== e || e.state !== 'loading') return;
      Object.assign(e, { state: 'ready', bytes, maxRank });
      this.events.ready(e.key);
    }, (err: Error) => {
      if (this.entries.get(e.key) !== e) return;
      // Forget the entry so the next request retries the load from scratch.
      this.loader.evictAdapter(e.key, slot);
      this.slotOwner[slot] = null;
      this.entries.delete(e.key);
      this.events.failed(e.key, err.message);
      this.retryWaiting();
    });
  }
}
