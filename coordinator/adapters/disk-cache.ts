// The disk tier: downloaded adapters (and models) under <root>/<kind>/<id-digest>/<revision>/.
// A download is written into a private temp dir, verified, then renamed into place, so a reader never
// sees a partial download; concurrent requests for the same entry share one download (single flight).
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

export class DiskCache {
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(readonly root: string) {
    mkdirSync(root, { recursive: true });
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
    if (existsSync(final)) return Promise.resolve(final);
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

  /** Bytes on disk (for the admin API). */
  sizeOf(dir: string): number {
    if (!existsSync(dir)) return 0;
    let n = 0;
    for (const f of readdirSync(dir)) {
      const p = join(dir, f);
      const st = statSync(p);
      n += st.isDirectory() ? this.sizeOf(p) : st.size;
    }
    return n;
  }
}
