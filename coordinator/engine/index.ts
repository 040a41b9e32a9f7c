export { Engine, type EngineLimits, type EngineObserver, type ShardGroupLike } from './engine.js';
export * from './types.js';
