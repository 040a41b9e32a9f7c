// The coordinator actor's public surface (imported by deploy/).
export * from './engine/index.js';
export * from './cluster/index.js';
export * from './adapters/index.js';
export { Scheduler, Sequence, BlockManager } from './scheduler/index.js';
export { TokenizerPool, StreamingDetokenizer, renderChat } from './tokenizer/index.js';
