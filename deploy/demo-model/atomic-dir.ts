// Builds a directory once: into a temporary sibling, then renamed into place, with a marker file
// written last so a directory holding the expected marker is known to be complete.
import { mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

export interface BuiltDirSpec {
  /** Marker file name inside the directory. */
  marker: string;
  /** Exact marker contents that mean "complete and current". */
  markerContents: string;
  /** What the directory is, for error messages. */
  what: string;
  /** Writes every file except the marker into `dir`. */
  build(dir: string): Promise<void>;
}

export async function ensureBuiltDir(dir: string, spec: BuiltDirSpec): Promise<string> {
  const target = resolve(dir);
  const state = await inspect(target, spec.marker, spec.markerContents);
  if (state === 'current') return target;
  if (state === 'foreign') {
    throw new Error(
      `${target} exists and is not a ${spec.what} made by weft (no ${spec.marker}); remove it or choose another directory`,
    );
  }
  await mkdir(dirname(target), { recursive: true });
  const tmp = await mkdtemp(join(dirname(target), `.${basename(target)}.tmp-`));
  try {
    await spec.build(tmp);
    await writeFile(join(tmp, spec.marker), spec.markerContents);
    if (state !== 'absent') {
      // An outdated build of ours (or an empty dir): move it aside, then swap the new one in.
      const old = `${tmp}.old`;
      await rename(target, old).catch(() => undefined);
      await rm(old, { recursive: true, force: true });
    }
    await rename(tmp, target);
  } catch (err) {
    // Another process may have finished the same build first.
    if ((await inspect(target, spec.marker, spec.markerContents)) === 'current') return target;
    throw err;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return target;
}

type DirState = 'absent' | 'empty' | 'current' | 'outdated' | 'foreign';

async function inspect(dir: string, marker: string, contents: string): Promise<DirState> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw err;
  }
  if (entries.length === 0) return 'empty';
  if (!entries.includes(marker)) return 'foreign';
  const found = await readFile(join(dir, marker), 'utf8').catch(() => '');
  return found === contents ? 'current' : 'outdated';
}
