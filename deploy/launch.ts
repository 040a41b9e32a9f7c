// `weft launch`: local nats-server (unless --nats-url), N shard processes, the coordinator and its HTTP
// API; supervises the shards and drains on SIGTERM.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { availableParallelism, homedir, totalmem } from 'node:os';
import type { NatsConnection } from 'nats';
import { connectNats } from './nats-connect.js';
import type { Logger } from 'pino';
import { configSecrets, imageLimitsOf, redactedConfig, type LaunchConfig } from './config/index.js';
import type { DestinationStream } from 'pino';
import { createLogger, initTracing } from '../coordinator/telemetry/index.js';
import { Engine, NatsShardGroup, TokenizerPool } from '../coordinator/index.js';
import { readModelSpec, type ModelSpec } from '../shard/index.js';
import { ensureDemoModel } from './demo-model/index.js';
import { startLocalNats, type LocalNats } from './nats-server.js';
import { ShardSupervisor, waitForShards } from './shard-supervisor.js';
import { startHttp, type HttpHandle } from './http-wiring.js';
import { Metrics } from '../coordinator/http/index.js';
import { preloadAdapters, preloads, registryOptions } from './adapter-wiring.js';
import { createSources, type Sources } from './sources.js';
import { DiskCache, splitRevision } from '../coordinator/adapters/index.js';
import { baseClassifierHeadOf } from './classifier-wiring.js';
import { embeddingWiring } from './embedding-wiring.js';
import { httpsOptionsOf } from './tls.js';
import { chatTemplateOf } from './chat-template-flag.js';
import { assertCudaUsable, cudaInfo } from '../kernels/cuda.js';
import { planMemory } from './memory-plan.js';
import { resolveSamplingDefaults, type ResolvedSamplingDefaults } from '../coordinator/http/generation-defaults.js';


export interface Launched {
  url: string;
  engine: Engine;
  supervisor: ShardSupervisor;
  /** The private nats-server (absent with --nats-url). */
  nats?: LocalNats;
  close(): Promise<void>;
}

let tracingHandle: ReturnType<typeof initTracing> | null = null;
function tracingOnce(otlpEndpoint?: string): ReturnType<typeof initTracing> {
  tracingHandle ??= initTracing({ serviceName: 'weft-coordinator', otlpEndpoint });
  return tracingHandle;
}

/** --model-id: a local directory, `s3://bucket/prefix`, or a Hub repo `owner/name[@revision]`; none = demo model. */
async function resolveModelDir(o: LaunchConfig, log: Logger, cacheDir: string, sources: Sources): Promise<{ dir: string; id: string }> {
  if (!o.modelId) {
    const dir = await ensureDemoModel(join(cacheDir, 'demo-model'));
    log.info({ dir }, 'no --model-id given: serving the built-in demo model');
    return { dir, id: 'weft-demo' };
  }
  return { dir: await fetchModelDir(o.modelId, '--model-id', o, log, sources), id: o.modelId };
}

/** A model id (local directory, s3:// prefix or Hub repo) as a local directory, downloaded when needed. */
async function fetchModelDir(id: string, flag: string, o: LaunchConfig, log: Logger, sources: Sources): Promise<string> {
  const local = resolve(id);
  if (existsSync(join(local, 'config.json'))) return local;
  if (existsSync(local)) throw new Error(`${flag} '${id}' is a local path without config.json`);
  const t0 = Date.now();
  const dir = id.startsWith('s3://')
    ? await sources.s3.fetchModel(id, null)
    : await sources.hub.fetchModel(...splitRevision(id), o.env.hfToken ?? undefined);
  log.info({ model: id, dir, ms: Date.now() - t0 }, 'model downloaded');
  return dir;
}

/** The draft model's spec, checked against the served model's before any shard starts. */
function draftModelSpec(dir: string, target: ModelSpec): ModelSpec {
  const spec = readModelSpec(dir);
  if (spec.vocab > target.vocab) {
    throw new Error(`--speculative-model ${dir}: its vocabulary (${spec.vocab}) is larger than the served model's (${target.vocab}); ` +
      'a draft model must use the served model\'s tokenizer');
  }
  if (spec.mamba) {
    throw new Error(`--speculative-model ${dir}: ${spec.architecture} is a hybrid Mamba model, which cannot draft (its recurrent ` +
      'state cannot roll back a rejected guess); use an attention-only draft model');
  }
  return spec;
}

/** The OpenAI routes' sampling defaults in effect (--generation-config), so an operator sees why answers differ. */
function logSamplingDefaults(log: Logger, setting: string, { source, defaults }: ResolvedSamplingDefaults): void {
  if (defaults) {
    log.info({ generationConfig: setting, source, defaultSampling: defaults },
      'OpenAI routes: default sampling parameters from generation_config.json (a request\'s own values win; --generation-config vllm: none)');
  } else {
    log.info({ generationConfig: setting, source, defaultSampling: null },
      'OpenAI routes: no default sampling parameters from a generation config (the routes\' own defaults)');
  }
}

export interface LaunchEnvironment {
  /** Downloads, demo model. Default ~/.cache/weft. */
  cacheDir?: string;
  /** Where every log line (coordinator and shards) goes; default stdout. Used by tests to inspect logs. */
  logs?: DestinationStream;
}

export async function launch(o: LaunchConfig, env: LaunchEnvironment = {}): Promise<Launched> {
  const cacheDir = env.cacheDir ?? o.cacheDir ?? join(homedir(), '.cache', 'weft');
  const log = createLogger({ level: o.logLevel, name: 'coordinator', destination: env.logs, secrets: configSecrets(o) });
  log.info({ config: redactedConfig(o) }, 'starting');
  // One tracer provider per process: tests may launch several servers in one process.
  const tracing = tracingOnce(o.otlpEndpoint ?? undefined);
  if (o.device === 'cpu' && o.dtype !== 'float32') {
    throw new Error(`--dtype ${o.dtype} with --device cpu: the CPU backend computes in float32 (weights are converted ` +
      'on load); use --dtype float32');
  }
  // Fails here, at start, with the reason (no driver, no device, addon built without nvcc).
  if (o.device === 'cuda') assertCudaUsable();
  const taken = preloads(o).find((p) => o.servedModelNames.includes(p.name));
  if (taken) throw new Error(`--preload-adapter name '${taken.name}' is also a --served-model-name: give the adapter another name`);
  const downloads = new DiskCache(join(cacheDir, 'downloads'), { bytes: o.adapterDiskCacheBytes,
    onEvict: (dir, bytes) => log.info({ dir, bytes }, 'adapter download deleted (--adapter-disk-cache-bytes)') });
  const sources = createSources(o, downloads);
  const model = await resolveModelDir(o, log, cacheDir, sources);
  const draftDir = o.speculativeModel ? await fetchModelDir(o.speculativeModel, '--speculative-model', o, log, sources) : undefined;
  // Before any shard starts: a broken generation_config.json fails the launch at once, naming the file and field.
  const sampling = resolveSamplingDefaults(o.generationConfig, model.dir);
  const https = httpsOptionsOf(o);  // before any shard starts: a wrong key or certificate path fails at once
  const chatTemplate = chatTemplateOf(o.chatTemplate);  // and a wrong template path or one that does not parse
  logSamplingDefaults(log, o.generationConfig, sampling);
  const spec = readModelSpec(model.dir);
  if (spec.mamba && o.device === 'cuda') {
    throw new Error(`${model.dir}: ${spec.architecture} is a hybrid Mamba-2 model, which weft serves on --device cpu only ` +
      'for now (the CUDA backend has no Mamba kernels yet)');
  }
  if (spec.mamba && draftDir) log.warn('--speculative-model: a hybrid Mamba model takes no drafts (its recurrent state cannot roll back); decoding runs without them');
  const draftSpec = draftDir ? draftModelSpec(draftDir, spec) : undefined;
  const gpus = o.device === 'cuda' ? cudaInfo().devices : [];
  const memory = o.device === 'cuda'
    ? planMemory(spec, o, gpus[0]!.totalMemory, Math.ceil(o.numShard / gpus.length), draftSpec)
    : planMemory(spec, o, totalmem(), 1, draftSpec);
  const kvBlocks = memory.kvBlocks;
  log.info({ kvBlocks, adapterSlots: memory.adapterSlots, adapterBudgetBytes: memory.adapterBudgetBytes, bytes: memory.bytes },
    'memory plan (per shard)');
  let nats: LocalNats | undefined;
  if (!o.natsUrl) {
    nats = await startLocalNats('nats-server', (err) => {
      if (err) log.error({ err: err.message }, 'the private nats-server died and could not be started again; retrying');
      else log.warn('the private nats-server died and was started again');
    });
  }
  const natsUrl = o.natsUrl ?? nats!.url;
  let nc: NatsConnection;
  let group: NatsShardGroup | undefined;
  try {
    // Step results and heartbeats the shards sent while the connection was down are lost: fail what is in flight
    // now (not after --step-timeout-ms) and restart the group, whose state no longer matches the engine's.
    nc = await connectNats(natsUrl, 'weft-coordinator', log, {
      onReconnect: () => group?.markLost('the coordinator\'s NATS connection dropped; messages in flight were lost') });
  } catch (e) {
    await nats?.stop();
    throw new Error(`cannot connect to NATS at ${natsUrl}: ${(e as Error).message}`);
  }
  group = new NatsShardGroup(nc, { cluster: o.cluster, worldSize: o.numShard, stepTimeoutMs: o.stepTimeoutMs,
    shardTimeoutMs: o.shardTimeoutMs, onInvalid: (subject, err) => log.error({ subject, err: err.message }, 'invalid message') });
  let engine: Engine | undefined;
  let startFailure: string | null = null;  // a shard died before the group was first ready
  const supervisor = new ShardSupervisor({ natsUrl, cluster: o.cluster, modelDir: model.dir, worldSize: o.numShard, kvBlocks,
    blockSize: o.blockSize, adapterSlots: memory.adapterSlots, ...(draftDir ? { draftModelDir: draftDir } : {}), maxLoraRank: o.maxLoraRank, adapterHostCacheBytes: o.adapterHostCacheBytes,
    heartbeatMs: o.shardHeartbeatMs,
    logLevel: o.logLevel, otlpEndpoint: o.otlpEndpoint ?? undefined, output: env.logs, device: o.device, dtype: o.dtype,
    cpuThreads: o.cpuThreads > 0 ? o.cpuThreads : Math.max(1, Math.floor(availableParallelism() / o.numShard)),
    collective: o.collective }, log, (reason) => {
    if (!engine) startFailure ??= reason;
    group.markLost(reason);
  });
  group.watch((reason) => {
    log.error({ reason }, 'shard group lost; failing in-flight requests');
    engine?.failAll(`a model shard was lost (${reason}); the request was not completed, retry it`);
    // Lost by silence (missed heartbeats: NATS went away, a rank hangs), not by a death the supervisor saw: the
    // processes still hold state the engine has just dropped, and will not announce themselves again — restart them.
    supervisor.restartGroup(reason);
  });
  group.onReady(() => {
    if (engine && supervisor.restartCount > 0) {
      log.info({ restarts: supervisor.restartCount }, 'shard group is back');
      engine.onGroupRestarted();
    }
  });
  supervisor.start();
  const metrics = new Metrics({ adapterLabels: o.metricsAdapterLabels });
  let http: HttpHandle | undefined;
  let tokenizer: TokenizerPool | undefined;
  try {
    tokenizer = await TokenizerPool.create(model.dir, chatTemplate !== undefined ? { chatTemplate } : {});
    const tokens = tokenizer;
    const baseClassifierHead = baseClassifierHeadOf(o, model.dir, spec, (t) => tokens.tokenId(t));
    const embedding = embeddingWiring(o, model.dir, spec, log);
    await waitForShards(group, () => startFailure, 180_000);
    engine = new Engine(group, tokenizer, {
      modelId: o.servedModelNames[0] ?? model.id, modelAliases: o.servedModelNames.slice(1), maxConcurrentRequests: o.maxConcurrentRequests, maxInputLength: o.maxInputLength,
      maxTotalTokens: o.maxTotalTokens, maxBatchPrefillTokens: o.maxBatchPrefillTokens, maxBatchSize: o.maxBatchSize,
      maxActiveAdapters: o.maxActiveAdapters, adapterCycleTimeS: o.adapterCycleTimeS,
      defaultAdapterSource: o.adapterSource, adapters: registryOptions(o, sources, memory.adapterBudgetBytes), device: o.device, dtype: o.dtype,
      asyncScheduling: o.asyncScheduling, prefixCaching: o.prefixCaching, trustRequestChatTemplate: o.trustRequestChatTemplate,
      reasoningParser: o.reasoningParser, toolCallParser: o.toolCallParser, speculate: o.speculate, schedulingPolicy: o.schedulingPolicy,
      baseClassifierHead, ...embedding.engine, ...(spec.mamba ? { recurrentState: true } : {}), images: imageLimitsOf(o),
    }, log, tracing.tracer, metrics.engineObserver());
    const registry = engine.registry;
    if (downloads.budget) downloads.budget.inUse = (dir) => registry.usesDir(dir);  // never delete what a request reads
    await preloadAdapters(engine, o, log);
    http = await startHttp(engine, { port: o.port, hostname: o.hostname, logger: log, metrics, adminToken: o.adminToken ?? undefined, apiKeys: o.apiKeys,
      corsAllowOrigins: o.corsAllowOrigins, responseStoreEntries: o.responseStoreEntries, embedding: embedding.pipeline,
      samplingDefaults: sampling.defaults, https });
  } catch (e) {
    // Everything started so far, or the process would stay up on its timers (the group's watchdog, the pool).
    await supervisor.stop();
    group.close();
    await tokenizer?.close();
    await nc.close();
    await nats?.stop();
    throw e;
  }
  log.info({ url: http.url, numShard: o.numShard, kvBlocks, model: model.id, servedAs: o.servedModelNames }, 'weft is serving');
  let closing: Promise<void> | null = null;
  return {
    url: http.url, engine, supervisor, ...(nats ? { nats } : {}),
    close: () => closing ??= (async () => {
      log.info('draining: no new requests; waiting for in-flight ones');
      await http!.close();
      group.shutdown('coordinator is stopping');
      await supervisor.stop();
      group.close();
      await tokenizer.close();
      await nc.drain().catch(() => undefined);
      await nats?.stop();
    })(),
  };
}
