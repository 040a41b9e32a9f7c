// A real shard group for tests (private nats-server + N shard processes over the shm collective).
import pino from 'pino';
import { startShardCluster as start, type ShardCluster } from '../../deploy/shard-cluster.js';

export type TestCluster = ShardCluster;

export function startShardCluster(o: { modelDir: string; world: number; kvBlocks?: number; blockSize?: number;
  adapterSlots?: number }): Promise<TestCluster> {
  return start({ modelDir: o.modelDir, world: o.world, kvBlocks: o.kvBlocks ?? 128, blockSize: o.blockSize ?? 4,
    adapterSlots: o.adapterSlots ?? 4, maxLoraRank: 64, log: pino({ level: 'warn' }) });
}
