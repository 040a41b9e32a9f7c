export { readModelSpec, parseModelSpec, type ModelSpec, type Architecture } from './spec.js';
export { UnsupportedModelError } from './errors.js';
export { partitionFor, type Partition } from './partition.js';
export { loadModel, planConfig, type LoadedModel, type LoadOptions } from './load-weights.js';
export { finishDora, finishDoraSync, type SumOverRanks } from './dora.js';
export { planAdapter, loraStorageOf, installAdapter, installStaged, stageAdapter, AdapterLoadError, type AdapterLayout, type AdapterPlan } from './load-adapter.js';
export { computeRope, parseRopeParams, usesLongRope, type Rope, type RopeParams } from './rope.js';
