// `weft shard`: the process entry of one shard actor (started by `weft launch`, one per rank).
import { connect } from 'nats';
import { ROOT_CONTEXT, propagation, trace } from '@opentelemetry/api';
import pino from 'pino';
import { ShardActor } from '../shard/index.js';
import type { MessageHeaders } from '../protocol/index.js';

export interface ShardMainOptions {
  modelDir: string;
  rank: number;
  worldSize: number;
  natsUrl: string;
  cluster: string;
  shmName: string;
  kvBlocks: number;
  blockSize: number;
  adapterSlots: number;
  maxLoraRank: number;
  heartbeatMs: number;
  logLevel: string;
}

export async function runShard(o: ShardMainOptions, setupTracing?: (service: string) => Promise<void>): Promise<void> {
  const logger = pino({ level: o.logLevel, base: { name: `shard-${o.rank}`, pid: process.pid } });
  await setupTracing?.(`weft-shard-${o.rank}`);
  const nc = await connect({ servers: o.natsUrl, name: `weft-shard-${o.rank}` });
  const actor = new ShardActor({
    nc, cluster: o.cluster, modelDir: o.modelDir, rank: o.rank, worldSize: o.worldSize, shmName: o.shmName,
    kvBlocks: o.kvBlocks, blockSize: o.blockSize, adapterSlots: o.adapterSlots, maxLoraRank: o.maxLoraRank,
    heartbeatMs: o.heartbeatMs, logger, tracer: trace.getTracer('weft-shard'),
    extractContext: (h: MessageHeaders) => propagation.extract(ROOT_CONTEXT, h),
    injectContext: (ctx) => {
      const h: MessageHeaders = {};
      propagation.inject(ctx, h);
      return h;
    },
  });
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => { void actor.stop().then(() => process.exit(0)); });
  }
  actor.start();
  logger.info({ rank: o.rank, worldSize: o.worldSize }, 'shard ready');
}
