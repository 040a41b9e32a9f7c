// `adapter_source: "local"`: a PEFT directory under one of the --adapter-root directories. The check is
// on real paths, so `..` segments and symlinks that lead outside every root are refused (403).
import { existsSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
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
