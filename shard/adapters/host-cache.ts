// The host-RAM tier: parsed adapters (full, unsliced tensors) kept in an LRU bounded by bytes, so an
// adapter evicted from its device slot comes back without touching the disk — with the shard's plan for it
// when one was made (its tensor-parallel slices), so it also comes back without being planned again. A plan in a
// 16-bit GPU model's format is all a load needs, so such an entry keeps only the plan: half the bytes of the
// float32 tensors (a merge that names it reads the files again).
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { AdapterPlan } from '../models/load-adapter.js';
import type { LoadedAdapter } from './peft-config.js';

export function adapterBytes(a: LoadedAdapter): number {
  let n = 0;
  for (const t of a.tensors.values()) n += t.data.byteLength;
  return n;
}

/** Whether a cache entry keeps the adapter's float32 tensors beside `plan`: not when the plan is 16-bit. */
export function keepsTensors(plan?: AdapterPlan): boolean {
  return !plan || plan.storage === 'float32';
}

/** Bytes an entry holds: the adapter's tensors (when kept), plus the plan's arrays that are not views of them. */
export function cachedBytes(a: LoadedAdapter | undefined, plan?: AdapterPlan): number {
  const kept = keepsTensors(plan) ? a : undefined;
  const own = new Set<ArrayBufferLike>([...(kept?.tensors.values() ?? [])].map((t) => t.data.buffer));
  let n = kept ? adapterBytes(kept) : 0;
  for (const p of plan?.parts ?? []) {
    for (const m of [p.a, p.b, ...(p.magnitude ? [p.magnitude] : [])]) {
      if (!own.has(m.buffer)) {
        own.add(m.buffer);
        n += m.buffer.byteLength;
      }
    }
  }
  return n;
}

/** A host-cache entry: the parsed adapter and, when made, this shard's plan for it — at least one of them. */
export interface HostEntry {
  /** Absent when the plan is 16-bit (keepsTensors). */
  adapter?: LoadedAdapter;
  plan?: AdapterPlan;
}

/** Identity of an adapter directory's contents: path plus the files' sizes and mtimes (a rewrite is a new entry). */
export function dirIdentity(dir: string): string {
  const parts = [dir];
  for (const f of ['adapter_config.json', 'adapter_model.safetensors', 'adapter_model.bin']) {
    try {
      const st = statSync(join(dir, f));
      parts.push(`${f}:${st.size}:${st.mtimeMs}`);
    } catch {
      // absent file: part of the identity too
    }
  }
  return parts.join('|');
}

export class HostAdapterCache {
  private readonly entries = new Map<string, HostEntry & { bytes: number }>();
  private used = 0;

  constructor(readonly budgetBytes: number) {}

  get usedBytes(): number {
    return this.used;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Returns the cached entry (and marks it most recently used), or undefined. */
  get(key: string): (HostEntry & { bytes: number }) | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    this.entries.delete(key);
    this.entries.set(key, e);
    return e;
  }

  /**
   * Caches an adapter and its plan — only the plan when that is 16-bit — if it fits the budget at all, evicting
   * least recently used ones; the entry's bytes.
   */
  put(key: string, adapter: LoadedAdapter, plan?: AdapterPlan): number {
    const bytes = cachedBytes(adapter, plan);
    const old = this.entries.get(key);
    if (old) {
      this.entries.delete(key);
      this.used -= old.bytes;
    }
    if (bytes > this.budgetBytes) return bytes;
    for (const [k, e] of this.entries) {
      if (this.used + bytes <= this.budgetBytes) break;
      this.entries.delete(k);
      this.used -= e.bytes;
    }
    this.entries.set(key, { ...(keepsTensors(plan) ? { adapter } : {}), ...(plan ? { plan } : {}), bytes });
    this.used += bytes;
    return bytes;
  }
}
