#!/usr/bin/env node
// `weft <command> [flags]` — launch | shard | score | bench. `weft <command> --help` lists every flag.
import { readCommandLine, type LaunchConfig, type ShardConfig } from './config/index.js';
import type { LaunchOptions } from './launch.js';
import type { ShardMainOptions } from './shard-main.js';

/** Flags parsed by deploy/config that this build cannot honour yet are refused, never silently ignored. */
function refuseUnbuilt(c: LaunchConfig): void {
  const notYet = (flag: string) => new Error(`${flag} is not available in this build yet (adapters-at-scale issue); remove it`);
  if (c.adapterSource !== 'local') throw notYet(`--adapter-source ${c.adapterSource}`);
  if (c.preloadAdapters.length > 0 || c.env.loraAdapters.length > 0) throw notYet('--preload-adapter / LORA_ADAPTERS');
  if (c.adminToken) throw notYet('--admin-token (admin API)');
}

function launchOptions(c: LaunchConfig): LaunchOptions {
  refuseUnbuilt(c);
  return {
    modelId: c.modelId ?? undefined, numShard: c.numShard, device: c.device, port: c.port, hostname: c.hostname,
    natsUrl: c.natsUrl ?? undefined, cluster: c.cluster, maxConcurrentRequests: c.maxConcurrentRequests,
    maxInputLength: c.maxInputLength, maxTotalTokens: c.maxTotalTokens, maxBatchPrefillTokens: c.maxBatchPrefillTokens,
    maxBatchSize: c.maxBatchSize, kvCacheBlocks: c.kvCacheBlocks, blockSize: c.blockSize, adapterRoots: [...c.adapterRoots],
    maxAdapterSlots: c.maxAdapterSlots, maxActiveAdapters: c.maxActiveAdapters, adapterCycleTimeS: c.adapterCycleTimeS,
    maxLoraRank: c.maxLoraRank, logLevel: c.logLevel, otlpEndpoint: c.otlpEndpoint ?? undefined,
    heartbeatMs: c.shardHeartbeatMs, shardTimeoutMs: c.shardTimeoutMs, stepTimeoutMs: c.stepTimeoutMs,
  };
}

function shardOptions(c: ShardConfig): ShardMainOptions {
  if (c.device !== 'cpu') throw new Error('--device cuda: this build has no CUDA backend yet; use --device cpu');
  return { modelDir: c.modelDir, rank: c.rank, worldSize: c.worldSize, natsUrl: c.natsUrl, cluster: c.cluster, shmName: c.shmName,
    kvBlocks: c.kvCacheBlocks, blockSize: c.blockSize, adapterSlots: c.adapterSlots, maxLoraRank: c.maxLoraRank,
    heartbeatMs: c.heartbeatMs, logLevel: c.logLevel, otlpEndpoint: c.otlpEndpoint ?? undefined };
}

async function main(): Promise<void> {
  const cl = readCommandLine();
  if (cl.kind === 'help') {
    process.stdout.write(cl.text + '\n');
    return;
  }
  const config = cl.config;
  switch (config.command) {
    case 'score': {
      const { score, formatLogits } = await import('./score.js');
      const logits = await score({ model: config.model, adapter: config.adapter ?? undefined, numShard: config.numShard,
        device: config.device, ids: [...config.ids] });
      process.stdout.write(formatLogits(logits) + '\n');
      return;
    }
    case 'shard': {
      const { runShard } = await import('./shard-main.js');
      await runShard(shardOptions(config));
      return;
    }
    case 'launch': {
      const { launch } = await import('./launch.js');
      const server = await launch(launchOptions(config));
      for (const sig of ['SIGTERM', 'SIGINT'] as const) {
        process.once(sig, () => { void server.close().then(() => process.exit(0)); });
      }
      return;
    }
    case 'bench':
      throw new Error('weft bench is not in this build yet: the benchmarks come with the CUDA backend (GPU issue)');
    default: {
      const _exhaustive: never = config;
      throw new Error(`unhandled command ${String(_exhaustive)}`);
    }
  }
}

main().catch((e: Error) => {
  process.stderr.write(`weft: ${e.message}\n`);
  process.exit(1);
});
