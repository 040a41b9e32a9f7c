export { NatsShardGroup, ShardLostError, StepTimeoutError, AdapterShardError, type ShardGroupOptions } from './shard-group.js';
