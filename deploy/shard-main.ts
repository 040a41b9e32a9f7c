// `weft shard`: the process entry of one shard actor (started by `weft launch`, one per rank).
import { connectNats } from './nats-connect.js';
import { createLogger, extractTraceContext, initTracing, injectTraceHeaders } from '../coordinator/telemetry/index.js';
import { ShardActor } from '../shard/index.js';
import type { MessageHeaders } from '../protocol/index.js';
import type { ShardConfig } from './config/index.js';


/** `WEFT_TEST_FAIL_FORWARD=<rank>:<n>` (tests only): the n-th forward pass of that rank fails. Also the form of
 * WEFT_TEST_DROP_RESULT (`name`): the n-th step result of that rank is never sent. */
export function injectedForwardFailure(spec: string | undefined, rank: number, name = 'WEFT_TEST_FAIL_FORWARD'): number {
  if (!spec) return 0;
  const m = /^(\d+):(\d+)$/.exec(spec.trim());
  if (!m) throw new Error(`${name} must be <rank>:<n> (e.g. 1:5), got '${spec}'`);
  return Number(m[1]) === rank ? Number(m[2]) : 0;
}

export async function runShard(o: ShardConfig): Promise<void> {
  const logger = createLogger({ level: o.logLevel, name: `shard-${o.rank}` });
  process.channel?.unref();  // the supervisor's message channel (if any) must not keep a stopping shard alive
  const tracing = initTracing({ serviceName: `weft-shard-${o.rank}`, otlpEndpoint: o.otlpEndpoint ?? undefined });
  // A shard restarted while NATS is away waits for it rather than dying (and being restarted) in a loop.
  // After a drop, steps and adapter events sent meanwhile are lost and this rank's state no longer matches the
  // coordinator's: exit, and the supervisor restarts the group (the coordinator fails what was in flight).
  const nc = await connectNats(o.natsUrl, `weft-shard-${o.rank}`, logger, { waitForServer: true, onReconnect: () => {
    logger.error('the NATS connection dropped and came back; messages may be lost: exiting so the group restarts');
    process.exit(3);
  } });
  const actor = new ShardActor({
    nc, cluster: o.cluster, modelDir: o.modelDir, draftModelDir: o.draftModelDir ?? undefined, rank: o.rank, worldSize: o.worldSize, shmName: o.shmName,
    collective: o.collective,
    kvBlocks: o.kvCacheBlocks, blockSize: o.blockSize, adapterSlots: o.adapterSlots, maxLoraRank: o.maxLoraRank, hostCacheBytes: o.adapterHostCacheBytes, device: o.device, dtype: o.dtype,
    cpuThreads: o.cpuThreads, heartbeatMs: o.heartbeatMs, logger, tracer: tracing.tracer,
    failForwardAt: injectedForwardFailure(process.env.WEFT_TEST_FAIL_FORWARD, o.rank),
    dropResultAt: injectedForwardFailure(process.env.WEFT_TEST_DROP_RESULT, o.rank, 'WEFT_TEST_DROP_RESULT'),
    extractContext: (h: MessageHeaders) => extractTraceContext(h),
    injectContext: (ctx) => injectTraceHeaders(ctx),
    beforeExit: () => tracing.shutdown(),
  });
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => { void actor.stop().then(() => tracing.shutdown()).then(() => process.exit(0)); });
  }
  try {
    await actor.start();
  } catch (e) {
    logger.error({ err: (e as Error).message }, 'shard failed to start');
    // Tell the supervisor why (it stops `weft launch` with this instead of restarting a group that cannot load).
    if (process.send) await new Promise<void>((r) => process.send!({ type: 'start_failed', message: (e as Error).message }, () => r()));
    await actor.stop().catch(() => undefined);
    throw e;
  }
  logger.info({ rank: o.rank, worldSize: o.worldSize, collective: o.collective }, 'shard ready');
}
