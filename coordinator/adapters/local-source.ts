// `adapter_source: "local"`: a PEFT directory under one of the --adapter-root directories. The check is
// on real paths, so `..` segments and symlinks that lead outside every root are refused (403).
import { createHash } from 'node:crypto';
import { existsSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { EngineError } from '../engine/types.js';

function inside(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** Returns the adapter's real directory, or throws EngineError (403 outside roots, 404 missing). */
export function resolveLocalAdapter(adapterId: string, roots: readonly string[]): string {
  if (roots.length === 0) {
    throw new EngineError('adapter_forbidden', 'local adapters are disabled: start the server with --adapter-root DIR');
  }
  if (adapterId.includes('\0')) throw new EngineError('validation', 'adapter_id contains a NUL byte');
  const realRoots = roots.filter((r) => existsSync(r)).map((r) => realpathSync(r));
  const candidates = isAbsolute(adapterId) ? [adapterId] : realRoots.map((r) => resolve(r, adapterId));
  for (const c of candidates) {
    // Lexical check first, so a path outside the roots is refused whether or not it exists.
    if (!realRoots.some((r) => inside(r, resolve(c)))) continue;
    if (!existsSync(c)) continue;
    const real = realpathSync(c);
    if (!realRoots.some((r) => inside(r, real))) {
      throw new EngineError('adapter_forbidden', `adapter '${adapterId}' resolves outside the allowed --adapter-root directories`);
    }
    if (!statSync(real).isDirectory()) throw new EngineError('adapter_not_found', `adapter '${adapterId}' is not a directory`);
    return real;
  }
  if (candidates.every((c) => !realRoots.some((r) => inside(r, resolve(c))))) {
    throw new EngineError('adapter_forbidden', `adapter '${adapterId}' is outside the allowed --adapter-root directories`);
  }
  throw new EngineError('adapter_not_found', `adapter '${adapterId}' was not found under the --adapter-root directories`);
}

/**
 * The revision of a local adapter directory: a digest of its PEFT files' names, sizes and modification times
 * (the shard's host cache keys parsed adapters the same way, shard/adapters/host-cache.ts). It is part of the
 * adapter's cache key, so an adapter retrained and saved over its old directory is a new adapter: its old
 * device slot, host copy and prefix-cache K/V are never served for it.
 */
export function localRevision(dir: string): string {
  const h = createHash('sha256');
  for (const f of ['adapter_config.json', 'adapter_model.safetensors', 'adapter_model.bin']) {
    try {
      const st = statSync(join(dir, f));
      h.update(`${f}:${st.size}:${st.mtimeMs}|`);
    } catch {
      h.update(`${f}:absent|`);
    }
  }
  return `local-${h.digest('hex').slice(0, 16)}`;
}
