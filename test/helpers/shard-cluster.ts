// Starts a real shard group for tests: a private nats-server and N shard processes (shm collective),
// driven through the coordinator's NatsShardGroup.
import { connect, type NatsConnection } from 'nats';
import pino from 'pino';
import { NatsShardGroup } from '../../coordinator/index.js';
import { startLocalNats, type LocalNats } from '../../deploy/nats-server.js';
import { ShardSupervisor } from '../../deploy/shard-supervisor.js';

export interface TestCluster {
  group: NatsShardGroup;
  supervisor: ShardSupervisor;
  nc: NatsConnection;
  nats: LocalNats;
  stop(): Promise<void>;
}

export async function startShardCluster(o: { modelDir: string; world: number; kvBlocks?: number; blockSize?: number;
  adapterSlots?: number }): Promise<TestCluster> {
  const nats = await startLocalNats();
  const nc = await connect({ servers: nats.url });
  const cluster = `t${process.pid}x${Math.floor(Math.random() * 1e6)}`;
  const log = pino({ level: 'silent' });
  const group = new NatsShardGroup(nc, { cluster, worldSize: o.world, stepTimeoutMs: 60_000, shardTimeoutMs: 30_000,
    onInvalid: () => undefined });
  const supervisor = new ShardSupervisor({ natsUrl: nats.url, cluster, modelDir: o.modelDir, worldSize: o.world,
    kvBlocks: o.kvBlocks ?? 128, blockSize: o.blockSize ?? 4, adapterSlots: o.adapterSlots ?? 4, maxLoraRank: 64,
    heartbeatMs: 500, logLevel: 'warn' }, log, (reason) => group.markLost(reason));
  supervisor.start();
  await group.waitReady(60_000);
  return {
    group, supervisor, nc, nats,
    stop: async () => {
      group.shutdown('test done');
      await supervisor.stop();
      group.close();
      await nc.close();
      await nats.stop();
    },
  };
}
