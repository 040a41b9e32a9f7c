export { Engine } from './engine.js';
export type { EngineLimits, EngineObserver, ShardGroupLike } from './engine-config.js';
export * from './types.js';
