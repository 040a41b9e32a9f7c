// The host-RAM tier: parsed adapters (full, unsliced tensors) kept in an LRU bounded by bytes, so an
// adapter evicted from its device slot comes back without touching the disk.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { LoadedAdapter } from './peft-config.js';

export function adapterBytes(a: LoadedAdapter): number {
  let n = 0;
  for (const t of a.tensors.values()) n += t.data.byteLength;
  return n;
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
  private readonly entries = new Map<string, { adapter: LoadedAdapter; bytes: number }>();
  private used = 0;

  constructor(readonly budgetBytes: number) {}

  get usedBytes(): number {
    return this.used;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Returns the cached adapter (and marks it most recently used), or undefined. */
  get(key: string): LoadedAdapter | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    this.entries.delete(key);
    this.entries.set(key, e);
    return e.adapter;
  }

  /** Caches an adapter if it fits the budget at all, evicting least recently used ones. */
  put(key: string, adapter: LoadedAdapter): number {
    const bytes = adapterBytes(adapter);
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
    this.entries.set(key, { adapter, bytes });
    this.used += bytes;
    return bytes;
  }
}
