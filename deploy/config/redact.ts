// Printable copies of a config: secrets as `***`, passwords inside URLs masked. For the boot log line.
import { ENV_SECRET_PATHS } from './env.js';
import { FLAGS, flagKey } from './flags.js';
import type { Config } from './types.js';

export const REDACTED = '***';

/** Config paths of every secret a config of this command can hold. */
function secretPaths(config: Config): (readonly string[])[] {
  const flags = FLAGS.filter((f) => 'secret' in f && f.secret && (f.commands as readonly string[]).includes(config.command));
  return [...flags.map((f) => [flagKey(f)]), ...ENV_SECRET_PATHS];
}

function get(obj: unknown, path: readonly string[]): unknown {
  let v = obj;
  for (const k of path) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
  return v;
}

/** The secret values set in `config` (to hand to the logger and to redactSecrets). */
export function configSecrets(config: Config): string[] {
  const out = new Set<string>();
  for (const path of secretPaths(config)) {
    const v = get(config, path);
    for (const item of Array.isArray(v) ? v : [v]) if (typeof item === 'string' && item !== '') out.add(item);
  }
  for (const s of urlPasswords(config)) out.add(s);
  return [...out];
}

/** A copy of `config` safe to log: set secrets become '***' (unset ones stay null), URL passwords '***'. */
export function redactedConfig(config: Config): Record<string, unknown> {
  const copy = maskUrls(structuredClone(config)) as Record<string, unknown>;
  for (const path of secretPaths(config)) {
    const parent = get(copy, path.slice(0, -1)) as Record<string, unknown> | undefined;
    const key = path[path.length - 1];
    if (parent === undefined || parent[key] === null || parent[key] === undefined) continue;
    // A list of secrets keeps its length (how many keys are set is not a secret), never its items.
    parent[key] = Array.isArray(parent[key]) ? (parent[key] as unknown[]).map(() => REDACTED) : REDACTED;
  }
  return copy;
}

const URL_WITH_USERINFO = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i;

function maskUrl(s: string): string {
  return s.split(',').map((part) => {
    if (!URL_WITH_USERINFO.test(part.trim()) || !URL.canParse(part.trim())) return part;
    const u = new URL(part.trim());
    if (u.password !== '') u.password = REDACTED;
    else if (u.username !== '') u.username = REDACTED; // a bare user part is a token (nats://TOKEN@host)
    return u.toString();
  }).join(',');
}

function maskUrls(v: unknown): unknown {
  if (typeof v === 'string') return maskUrl(v);
  if (Array.isArray(v)) return v.map(maskUrls);
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) o[k] = maskUrls(o[k]);
  }
  return v;
}

/** Credentials embedded in URL-valued settings (nats://user:pass@host, nats://token@host). */
function urlPasswords(v: unknown, out: string[] = []): string[] {
  if (typeof v === 'string') {
    for (const part of v.split(',').map((p) => p.trim())) {
      if (!URL_WITH_USERINFO.test(part) || !URL.canParse(part)) continue;
      const u = new URL(part);
      const secret = u.password !== '' ? u.password : u.username;
      if (secret !== '') out.push(decodeURIComponent(secret));
    }
  } else if (v !== null && typeof v === 'object') {
    for (const x of Object.values(v)) urlPasswords(x, out);
  }
  return out;
}
