export { AdapterRegistry, type AdapterLoader, type AdapterSummary, type RegistryEvents } from './registry.js';
export { resolveLocalAdapter } from './local-source.js';
