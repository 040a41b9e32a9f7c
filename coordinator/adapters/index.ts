export { AdapterRegistry, splitRevision, type AdapterLoaded, type AdapterLoader, type LoadSpec, type Prepared, type RegistryEvents, type RegistryHooks,
  type RegistryOptions } from './registry.js';
export { resolveLocalAdapter } from './local-source.js';
export { DiskCache } from './disk-cache.js';
export type { AdapterSourceClient, SourceKind } from './sources/types.js';
