// The disk tier's byte budget (--adapter-disk-cache-bytes): downloaded adapters beyond it are deleted, least recently
// used first, so a server that meets thousands of adapters over its life does not fill its disk. Only adapter
// downloads count (models are never evicted); an adapter is deleted only when nothing may still read its files — no
// request holds or waits for it, it is not loading, and it was not used in the last GRACE_MS (a request between its
// download and its queueing). A deleted adapter is downloaded again when asked for (same path: its digest and
// revision name it). One server per cache directory: another process's reads are not seen.
import { readdirSync, rmSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';

/** Entries used this recently are never deleted (ms). */
export const GRACE_MS = 60_000;

interface Held { bytes: number; lastUsed: number }

export interface DiskBudgetOptions {
  bytes: number;
  /** The cache kinds (subfolders) that count: adapters'. */
  kinds: readonly string[];
  /** Whether something may still read the files under this directory (the adapter registry's answer). */
  inUse?: (dir: string) => boolean;
  /** An entry was deleted to make room. */
  onEvict?: (dir: string, bytes: number) => void;
  now?: () => number;
}

export class DiskBudget {
  private readonly held = new Map<string, Held>();
  private total = 0;
  inUse: (dir: string) => boolean;

  constructor(private readonly root: string, private readonly o: DiskBudgetOptions) {
    this.inUse = o.inUse ?? (() => false);
    this.scan();
  }

  get usedBytes(): number {
    return this.total;
  }

  /** `dir` (a complete entry of a counted kind) was used now: it becomes the most recently used. */
  touch(dir: string): void {
    const h = this.held.get(dir);
    if (h) this.stamp(dir, h);
  }

  /** A new complete entry of a counted kind: counted, then older ones deleted while over the budget. */
  added(dir: string): void {
    const h = { bytes: sizeOf(dir), lastUsed: 0 };
    this.held.set(dir, h);
    this.stamp(dir, h);
    this.total += h.bytes;
    this.evict();
  }

  /** Used now, in memory and as the directory's modification time (the order survives a restart: scan reads it). */
  private stamp(dir: string, h: Held): void {
    h.lastUsed = this.now();
    try {
      const t = new Date(h.lastUsed);
      utimesSync(dir, t, t);
    } catch { /* deleted meanwhile: forgotten at the next eviction */ }
  }

  /** Deletes least recently used entries nothing reads until the total fits (or nothing more may go). */
  evict(): void {
    if (this.total <= this.o.bytes) return;
    const now = this.now();
    const order = [...this.held].sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    for (const [dir, h] of order) {
      if (this.total <= this.o.bytes) break;
      if (now - h.lastUsed < GRACE_MS || this.inUse(dir)) continue;
      rmSync(dir, { recursive: true, force: true });
      this.held.delete(dir);
      this.total -= h.bytes;
      this.o.onEvict?.(dir, h.bytes);
    }
  }

  /** The entries already on disk (a restart), ordered by their modification time. */
  private scan(): void {
    for (const kind of this.o.kinds) {
      for (const id of list(join(this.root, kind))) {
        for (const rev of list(join(this.root, kind, id))) {
          if (rev.includes('.tmp-')) continue;  // a download that did not finish
          const dir = join(this.root, kind, id, rev);
          const bytes = sizeOf(dir);
          this.held.set(dir, { bytes, lastUsed: statSync(dir).mtimeMs });
          this.total += bytes;
        }
      }
    }
  }

  private now(): number {
    return this.o.now?.() ?? Date.now();
  }
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Bytes of the files under `dir`. */
export function sizeOf(dir: string): number {
  let n = 0;
  for (const f of list(dir)) {
    const p = join(dir, f);
    const st = statSync(p, { throwIfNoEntry: false });
    if (st) n += st.isDirectory() ? sizeOf(p) : st.size;
  }
  return n;
}
