// The adapter registry's interfaces (registry.ts): what it is configured with, what loads adapters for it, what it
// tells the engine, and a request's resolved adapter.
import type { MergeRecipe } from '../../protocol/index.js';
import type { AdapterSourceClient, SourceKind } from './sources/types.js';

export type LoadSpec = { dir: string; merge?: undefined } | { dir?: undefined; merge: MergeRecipe };

/** A load's result; the times are the slowest rank's (absent where a loader does not measure them). */
export interface AdapterLoaded {
  /** Over every rank. */
  bytes: number;
  /** The largest rank's share (what the per-shard byte budget counts); absent: bytes. */
  rankBytes?: number;
  /** Every rank took it from its host-RAM tier (no disk read). */
  fromHost?: boolean;
  maxRank: number;
  /** A DoRA adapter. */
  dora?: boolean;
  hostBytes: number;
  /** Reading (or merging) and planning, beside the steps. */
  readMs?: number;
  /** Installing into the slot, between steps. */
  installMs?: number;
}

export interface AdapterLoader {
  loadAdapter(key: string, slot: number, load: LoadSpec): Promise<AdapterLoaded>;
  evictAdapter(key: string, slot: number): void;
  /** Read it into the shards' host-RAM tier now: it waits for a slot or room, and its load will skip the read. */
  prefetchAdapter?(key: string, load: LoadSpec): void;
}

export interface RegistryEvents {
  ready(key: string, loaded?: AdapterLoaded): void;
  failed(key: string, reason: string): void;
  /** The shards were asked to read a waiting adapter into host RAM ahead of its load. */
  prefetched?(key: string): void;
}

export interface RegistryOptions {
  roots: readonly string[];
  slots: number;
  sources: { hub?: AdapterSourceClient; s3?: AdapterSourceClient };
  /** The server's Hub token, used for requests without one only when useGlobalHubToken is set. */
  globalHubToken?: string;
  useGlobalHubToken: boolean;
  /** Adapter names → their source id: --preload-adapter / LORA_ADAPTERS, and those given at run time (loadNamed).
   * Operator-defined, so local paths skip the root check (a run-time name holds the path already checked). */
  names: Map<string, NamedAdapter>;
  hostCacheBytes: number;
  /** Bytes per shard the resident adapters may take together (0 or absent: slots only). */
  budgetBytes?: number;
  /** The engine's bytes per adapter element (4 on the CPU backend, 2 for 16-bit GPU weights), for estimates. */
  elementBytes?: number;
  /** The model's vocabulary, for estimates of adapters with trainable tokens (size-estimate.ts). */
  vocab?: number;
}

/** What an adapter name stands for. */
export interface NamedAdapter {
  id: string;
  source: SourceKind;
  /** The token it was named with (run-time names): requests by the name that bring none use it. Never listed. */
  apiToken?: string;
}

export interface RegistryHooks extends RegistryEvents {
  /** True while a running sequence uses the adapter (its slot must not change). */
  inUse(key: string): boolean;
  /** The best (lowest) priority of the requests waiting for each adapter; one not in it counts as 0 (the default
   * priority: an admin load's). Absent: every adapter 0, so the line is by waiting time alone. */
  waitingPriorities?(): ReadonlyMap<string, number>;
}

/** A request's adapter, resolved and access-checked, ready to acquire. */
export interface Prepared {
  key: string;
  load: LoadSpec;
  id: string;
  source: SourceKind | 'merge';
  revision: string | null;
  /** With a byte budget: what it takes of it (estimated from its files until a load reports it). */
  needBytes?: number;
}
