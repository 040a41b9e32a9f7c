// The disk tier: downloaded adapters (and models) under <root>/<kind>/<id-digest>/<revision>/.
// A download is written into a private temp dir, verified, then renamed into place, so a reader never
// sees a partial download; concurrent requests for the same entry share one download (single flight).
// With a byte budget for adapters (disk-budget.ts) the least recently used ones that nothing reads are deleted.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DiskBudget, type DiskBudgetOptions } from './disk-budget.js';

/** The cache kinds that hold adapters (the budget's); models are 'hub-model' and 's3-model'. */
export const ADAPTER_KINDS = ['hub', 's3'] as const;

/** A temp download directory this old was left by a process that died mid-download (ms). */
export const STALE_DOWNLOAD_MS = 24 * 3600_000;

/** Deletes `<kind>/<id>/<revision>.tmp-…` directories older than STALE_DOWNLOAD_MS (a crash's leftovers). */
export function removeStaleDownloads(root: string, now: number): string[] {
  const removed: string[] = [];
  const list = (d: string) => { try { return readdirSync(d); } catch { return []; } };
  for (const kind of list(root)) {
    for (const id of list(join(root, kind))) {
      for (const name of list(join(root, kind, id))) {
        const dir = join(root, kind, id, name);
        if (!name.includes('.tmp-') || now - (statSync(dir, { throwIfNoEntry: false })?.mtimeMs ?? now) < STALE_DOWNLOAD_MS) continue;
        rmSync(dir, { recursive: true, force: true });
        removed.push(dir);
      }
    }
  }
  return removed;
}

export class DiskCache {
  private readonly inflight = new Map<string, Promise<string>>();
  /** null: no budget (every download is kept). */
  readonly budget: DiskBudget | null;

  constructor(readonly root: string, budget?: Omit<DiskBudgetOptions, 'kinds'>) {
    mkdirSync(root, { recursive: true });
    removeStaleDownloads(root, Date.now());
    this.budget = budget && budget.bytes > 0 ? new DiskBudget(root, { ...budget, kinds: ADAPTER_KINDS }) : null;
  }

  /** Where (kind, id, revision) lives once complete. The id is hashed: it may contain '/', '..', ':'. */
  dirFor(kind: string, id: string, revision: string): string {
    const digest = createHash('sha256').update(id).digest('hex').slice(0, 32);
    const rev = createHash('sha256').update(revision).digest('hex').slice(0, 32);
    return join(this.root, kind, digest, rev);
  }

  has(kind: string, id: string, revision: string): boolean {
    return existsSync(this.dirFor(kind, id, revision));
  }

  /**
   * Returns the complete directory, running `download(tmpDir)` then `verify(tmpDir)` first if it is not
   * cached. A failed download or verification leaves nothing behind and rejects every waiter.
   */
  ensure(kind: string, id: string, revision: string, download: (tmpDir: string) => Promise<void>,
    verify: (dir: string) => void = () => undefined): Promise<string> {
    const final = this.dirFor(kind, id, revision);
    const counted = this.budget !== null && (ADAPTER_KINDS as readonly string[]).includes(kind);
    if (existsSync(final)) {
      if (counted) this.budget!.touch(final);
      return Promise.resolve(final);
    }
    const pending = this.inflight.get(final);
    if (pending) return pending;
    const job = (async () => {
      const tmp = `${final}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
      mkdirSync(tmp, { recursive: true });
      try {
        await download(tmp);
        verify(tmp);
        if (existsSync(final)) {
          rmSync(tmp, { recursive: true, force: true }); // another process won the race; same content
        } else {
          renameSync(tmp, final);
          if (counted) this.budget!.added(final);
        }
        return final;
      } catch (e) {
        rmSync(tmp, { recursive: true, force: true });
        throw e;
      } finally {
        this.inflight.delete(final);
      }
    })();
    this.inflight.set(final, job);
    return job;
  }

}
