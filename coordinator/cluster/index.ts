export { IMAGE_CHUNK_BYTES, NatsShardGroup, ShardLostError, StepTimeoutError, AdapterShardError, type ShardGroupOptions } from './shard-group.js';
