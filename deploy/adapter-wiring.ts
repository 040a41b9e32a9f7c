// Turns the launch configuration into the adapter registry's options (sources, tokens, preload names)
// and preloads the named adapters once the engine is up.
import { existsSync, statSync } from 'node:fs';
import type { Logger } from 'pino';
import type { RegistryOptions, SourceKind } from '../coordinator/adapters/index.js';
import type { Engine } from '../coordinator/index.js';
import type { LaunchConfig, PreloadAdapter } from './config/index.js';
import { dtypeBytes } from './memory-plan.js';
import type { Sources } from './sources.js';

/** Where a preloaded id lives: s3://… → s3, an existing directory → local, anything else → the Hub. */
export function preloadSource(id: string): SourceKind {
  if (id.startsWith('s3://')) return 's3';
  if (existsSync(id) && statSync(id).isDirectory()) return 'local';
  return 'hub';
}

export function preloads(c: LaunchConfig): PreloadAdapter[] {
  return [...c.preloadAdapters, ...c.env.loraAdapters];
}

export function registryOptions(c: LaunchConfig, sources: Sources, budgetBytes = 0): Omit<RegistryOptions, 'slots'> {
  const names = new Map(preloads(c).map((p) => [p.name, { id: p.id, source: preloadSource(p.id) }]));
  return {
    roots: [...c.adapterRoots],
    sources,
    globalHubToken: c.env.hfToken ?? undefined,
    useGlobalHubToken: c.env.useGlobalHfToken,
    names,
    hostCacheBytes: c.adapterHostCacheBytes,
    budgetBytes,
    elementBytes: dtypeBytes(c),
  };
}

/** Loads every preloaded adapter; a failure is logged and the server keeps starting (requests retry). */
export async function preloadAdapters(engine: Engine, c: LaunchConfig, log: Logger): Promise<void> {
  await Promise.all(preloads(c).map(async (p) => {
    try {
      const s = await engine.adapters.load({ id: p.name, source: preloadSource(p.id) });
      log.info({ name: p.name, id: p.id, tier: s.tier, bytes: s.bytes }, 'adapter preloaded');
    } catch (e) {
      log.error({ name: p.name, id: p.id, err: (e as Error).message }, 'adapter preload failed');
    }
  }));
}
