// A private shard group for one-shot work (`weft score --num-shard N`, tests): a nats-server of its own,
// N shard processes under a supervisor, and the coordinator-side NatsShardGroup, ready to take steps.
import { connect, type NatsConnection } from 'nats';
import type { Logger } from 'pino';
import { NatsShardGroup } from '../coordinator/index.js';
import { startLocalNats } from './nats-server.js';
import { ShardSupervisor, waitForShards } from './shard-supervisor.js';

export interface ShardClusterOptions {
  modelDir: string;
  world: number;
  kvBlocks: number;
  blockSize: number;
  adapterSlots: number;
  maxLoraRank: number;
  log: Logger;
  device?: 'cpu' | 'cuda';
  readyTimeoutMs?: number;
}

export interface ShardCluster {
  group: NatsShardGroup;
  supervisor: ShardSupervisor;
  nc: NatsConnection;
  stop(): Promise<void>;
}

export async function startShardCluster(o: ShardClusterOptions): Promise<ShardCluster> {
  const nats = await startLocalNats();
  const nc = await connect({ servers: nats.url });
  const cluster = `c${process.pid}x${Math.floor(Math.random() * 1e9)}`;
  const group = new NatsShardGroup(nc, { cluster, worldSize: o.world, stepTimeoutMs: 120_000, shardTimeoutMs: 30_000,
    onInvalid: (subject, err) => o.log.error({ subject, err: err.message }, 'invalid message') });
  let lost: string | null = null;
  const supervisor = new ShardSupervisor({ natsUrl: nats.url, cluster, modelDir: o.modelDir, worldSize: o.world,
    kvBlocks: o.kvBlocks, blockSize: o.blockSize, adapterSlots: o.adapterSlots, maxLoraRank: o.maxLoraRank,
    heartbeatMs: 500, logLevel: o.log.level, device: o.device }, o.log, (reason) => {
    lost = reason;
    group.markLost(reason);
  });
  const stop = async (): Promise<void> => {
    group.shutdown('done');
    await supervisor.stop();
    group.close();
    await nc.close();
    await nats.stop();
  };
  supervisor.start();
  try {
    await waitForShards(group, () => lost, o.readyTimeoutMs ?? 120_000);
  } catch (e) {
    await stop();
    throw e;
  }
  return { group, supervisor, nc, stop };
}
