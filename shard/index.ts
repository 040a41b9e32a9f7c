export { LocalEngine, GREEDY, type LocalEngineOptions } from './local-engine.js';
export { StepRunner, StepError } from './engine/step-runner.js';
export * from './models/index.js';
export { ShardActor, type ShardActorOptions } from './actor.js';
