export { BlockManager, BlockAllocationError } from './block-manager.js';
export type { BlockAllocationErrorCode } from './block-manager.js';
export { Sequence } from './sequence.js';
export type { FinishReason, Pooling, SequenceInit, SequenceStatus } from './sequence.js';
export { Scheduler } from './scheduler.js';
export { SchedulerError, StepFailedError } from './types.js';
export type { ScheduledStep, SchedulerConfig, SchedulerErrorCode, SchedulerHooks, SequenceEvent } from './types.js';
// A model-free shard that checks the step protocol: for tests of whatever drives the scheduler.
export { ReferenceShard } from './reference-shard.js';
export type { ReferenceSampler } from './reference-shard.js';
