// Prometheus metrics of one weft deployment, in one registry (GET /metrics).
//
// Who updates what (each metric has one owner, so nothing is counted twice):
//  - the HTTP layer: requestsTotal, requestDuration (once per response);
//  - the engine, through `engineObserver()` passed as the Engine's observer: stepDuration, batchSize,
//    promptTokens, generatedTokens, adapterLoads, adapterLoadSeconds, prefixCacheHitTokens, and per request
//    timeToFirstToken, interTokenLatency, requestsFinished, requestGeneratedTokens;
//  - the engine, per finished request: the per-adapter counters (adapter-metrics.ts);
//  - at scrape time, from engine.stats(): queueWaiting, runningSequences, kvBlocksUsed/Free, adapters*,
//    preemptions, speculative drafted/accepted tokens.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineStats, FinishLabel } from '../engine/types.js';
import { AdapterUsageMetrics } from './adapter-metrics.js';

export interface MetricsOptions {
  /** Source of the scrape-time gauges (buildHttpServer also sets it to its engine). */
  engine?: { stats(): EngineStats };
  /** Also export Node process metrics (CPU, memory, event loop lag). Default false. */
  processMetrics?: boolean;
  /** Distinct adapters given their own label in the per-adapter counters (--metrics-adapter-labels). Default 100. */
  adapterLabels?: number;
}

/** What a finished request is counted under per adapter (adapter-metrics.ts). */
export interface RequestUsage { adapter: string | null; promptTokens: number }

export type AdapterLoadResult = 'ok' | 'failed';

/** The engine's metric hooks (structurally the Engine's `EngineObserver`). */
export interface EngineMetricsObserver {
  step(ms: number, batchSize: number, prefillTokens: number, decodeTokens: number): void;
  tokens(prompt: number, generated: number): void;
  adapterLoad(result: AdapterLoadResult, times?: { readMs?: number; installMs?: number; fromHost?: boolean }): void;
  adapterPrefetch(): void;
  prefixCacheHits(tokens: number): void;
  firstToken(seconds: number): void;
  interToken(seconds: number): void;
  finished(reason: FinishLabel, generatedTokens: number, usage?: RequestUsage): void;
}

const REQUEST_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const STEP_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const BATCH_SIZES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];
const ADAPTER_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const TTFT_SECONDS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
const ITL_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5];
const TOKEN_COUNTS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

export class Metrics {
  readonly registry = new Registry();
  readonly requestsTotal: Counter<'route' | 'status'>;
  readonly requestDuration: Histogram<'route'>;
  readonly queueWaiting: Gauge;
  readonly runningSequences: Gauge;
  readonly kvBlocksUsed: Gauge;
  readonly kvBlocksFree: Gauge;
  readonly kvBlocksCached: Gauge;
  readonly prefixCacheHitTokens: Counter;
  readonly batchSize: Histogram;
  readonly stepDuration: Histogram;
  readonly generatedTokens: Counter;
  readonly promptTokens: Counter;
  readonly adaptersLoaded: Gauge;
  readonly adapterRefs: Gauge;
  readonly adapterMemory: Gauge<'kind'>;
  readonly adaptersActive: Gauge;
  readonly adapterLoads: Counter<'result'>;
  readonly adapterLoadsFromHost: Counter;
  readonly adapterPrefetches: Counter;
  readonly adapterLoadSeconds: Histogram<'phase'>;
  readonly timeToFirstToken: Histogram;
  readonly interTokenLatency: Histogram;
  readonly requestsFinished: Counter<'reason'>;
  readonly requestGeneratedTokens: Histogram;
  readonly preemptions: Counter;
  readonly draftTokens: Counter;
  readonly acceptedDraftTokens: Counter;
  readonly perAdapter: AdapterUsageMetrics;
  private statsSource: (() => EngineStats) | null = null;

  constructor(opts: MetricsOptions = {}) {
    const registers = [this.registry];
    const fromStats = (pick: (s: EngineStats) => number) => {
      const read = (): number | null => this.readStats(pick);
      return function (this: Gauge): void {
        const v = read();
        if (v !== null) this.set(v);
      };
    };
    this.requestsTotal = new Counter({
      name: 'weft_requests_total',
      help: 'HTTP requests answered, by route and status code',
      labelNames: ['route', 'status'] as const,
      registers,
    });
    this.requestDuration = new Histogram({
      name: 'weft_request_duration_seconds',
      help: 'Time from receiving an HTTP request to its last byte, by route',
      labelNames: ['route'] as const,
      buckets: REQUEST_SECONDS,
      registers,
    });
    this.queueWaiting = new Gauge({
      name: 'weft_queue_waiting',
      help: 'Requests admitted by the engine and waiting to be scheduled',
      registers,
      collect: fromStats((s) => s.waiting),
    });
    this.runningSequences = new Gauge({
      name: 'weft_running_sequences',
      help: 'Sequences in the running batch',
      registers,
      collect: fromStats((s) => s.running),
    });
    this.kvBlocksUsed = new Gauge({
      name: 'weft_kv_blocks_used',
      help: 'KV cache blocks held by sequences',
      registers,
      collect: fromStats((s) => s.usedBlocks),
    });
    this.kvBlocksFree = new Gauge({
      name: 'weft_kv_blocks_free',
      help: 'KV cache blocks free',
      registers,
      collect: fromStats((s) => s.freeBlocks),
    });
    this.kvBlocksCached = new Gauge({
      name: 'weft_kv_blocks_cached',
      help: 'KV cache blocks registered in the prefix cache (held by sequences or idle and evictable)',
      registers,
      collect: fromStats((s) => s.cachedBlocks),
    });
    this.prefixCacheHitTokens = new Counter({
      name: 'weft_prefix_cache_hit_tokens_total',
      help: 'Prompt tokens whose KV came from the prefix cache instead of being computed (hit rate: divide by weft_prompt_tokens_total)',
      registers,
    });
    this.adapterRefs = new Gauge({
      name: 'weft_adapter_refs',
      help: 'Requests currently holding an adapter (0 when idle)',
      registers,
      collect: fromStats((s) => s.adapterRefs),
    });
    this.adaptersLoaded = new Gauge({
      name: 'weft_adapters_loaded',
      help: 'Adapters resident in device slots',
      registers,
      collect: fromStats((s) => s.loadedAdapters),
    });
    this.adapterMemory = new Gauge({
      name: 'weft_adapter_memory_bytes',
      help: 'Adapter memory per shard: what resident and loading adapters take (kind="used", as the shards reported ' +
        'it) and the byte budget of --adapter-memory-fraction (kind="budget", 0: slots only)',
      labelNames: ['kind'] as const,
      registers,
      collect: (() => {
        const used = (): number | null => this.readStats((st) => st.adapterBytes);
        const budget = (): number | null => this.readStats((st) => st.adapterBudgetBytes);
        return function (this: Gauge<'kind'>): void {
          const u = used(), b = budget();
          if (u !== null) this.set({ kind: 'used' }, u);
          if (b !== null) this.set({ kind: 'budget' }, b);
        };
      })(),
    });
    this.adaptersActive = new Gauge({
      name: 'weft_adapters_active',
      help: 'Adapters used by at least one running sequence',
      registers,
      collect: fromStats((s) => s.activeAdapters),
    });
    this.batchSize = new Histogram({
      name: 'weft_batch_size',
      help: 'Sequences per engine step',
      buckets: BATCH_SIZES,
      registers,
    });
    this.stepDuration = new Histogram({
      name: 'weft_step_duration_seconds',
      help: 'Wall time of one engine step (all shards)',
      buckets: STEP_SECONDS,
      registers,
    });
    this.generatedTokens = new Counter({
      name: 'weft_generated_tokens_total',
      help: 'Tokens generated (including those of requests cancelled later)',
      registers,
    });
    this.promptTokens = new Counter({
      name: 'weft_prompt_tokens_total',
      help: 'Prompt tokens of admitted requests',
      registers,
    });
    this.adapterLoads = new Counter({
      name: 'weft_adapter_loads_total',
      help: 'Adapter load attempts, by result',
      labelNames: ['result'] as const,
      registers,
    });
    this.adapterPrefetches = new Counter({
      name: 'weft_adapter_prefetches_total',
      help: 'Waiting adapters (no slot or no room yet) whose files the shards were asked to read into host RAM ahead ' +
        'of their loads',
      registers,
    });
    this.adapterLoadsFromHost = new Counter({
      name: 'weft_adapter_loads_from_host_total',
      help: 'Successful adapter loads every shard took from its host-RAM tier (no disk read: cached, or prefetched ' +
        'while the adapter waited for room); the rest of weft_adapter_loads_total{result="ok"} read the disk',
      registers,
    });
    this.adapterLoadSeconds = new Histogram({
      name: 'weft_adapter_load_seconds',
      help: 'Adapter loads by phase: read (files read or merged and planned on shard worker threads, then staged: ' +
        'copied, or uploaded to the GPU, beside the steps) and install (the slot pointed at the staged adapter, in ' +
        'the shard between steps: time no step runs); the slowest rank',
      labelNames: ['phase'] as const,
      buckets: ADAPTER_SECONDS,
      registers,
    });
    this.timeToFirstToken = new Histogram({
      name: 'weft_time_to_first_token_seconds',
      help: 'Per request: from the engine receiving it (tokenizing, adapter load and queue wait included) to its first ' +
        'generated token',
      buckets: TTFT_SECONDS,
      registers,
    });
    this.interTokenLatency = new Histogram({
      name: 'weft_time_per_output_token_seconds',
      help: 'Per generated token after a request\'s first: the time since that request\'s previous token, as the ' +
        'coordinator applied the step results (inter-token latency)',
      buckets: ITL_SECONDS,
      registers,
    });
    this.requestsFinished = new Counter({
      name: 'weft_requests_finished_total',
      help: 'Engine requests ended, by reason: length, eos_token, stop_sequence, cancelled (client gone) or error',
      labelNames: ['reason'] as const,
      registers,
    });
    this.requestGeneratedTokens = new Histogram({
      name: 'weft_request_generated_tokens',
      help: 'Tokens generated per ended request',
      buckets: TOKEN_COUNTS,
      registers,
    });
    // A counter following one of the scheduler's cumulative counts (a restarted scheduler starts again from 0).
    const cumulative = (pick: (s: EngineStats) => number) => {
      let seen = 0;
      const read = (): number | null => this.readStats(pick);
      return function (this: Counter): void {
        const v = read();
        if (v !== null && v > seen) this.inc(v - seen);
        if (v !== null) seen = v;
      };
    };
    this.preemptions = new Counter({
      name: 'weft_preemptions_total',
      help: 'Running sequences preempted (KV blocks ran out, or a better-priority request needed room; they are recomputed later)',
      registers,
      collect: cumulative((st) => st.preemptions),
    });
    this.draftTokens = new Counter({
      name: 'weft_spec_draft_tokens_total',
      help: 'Speculative decoding (--speculate): draft tokens the shards verified',
      registers,
      collect: cumulative((st) => st.draftTokens),
    });
    this.acceptedDraftTokens = new Counter({
      name: 'weft_spec_accepted_tokens_total',
      help: 'Speculative decoding (--speculate): draft tokens accepted (tokens generated beyond one per sequence and step)',
      registers,
      collect: cumulative((st) => st.acceptedDraftTokens),
    });
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'weft_process_' });
    this.perAdapter = new AdapterUsageMetrics(this.registry, opts.adapterLabels ?? 100);
    if (opts.engine) this.observeEngine(opts.engine);
  }

  /** Hooks for the engine to call per step, per token and per adapter load. */
  engineObserver(): EngineMetricsObserver {
    return {
      step: (ms, batchSize) => {
        this.stepDuration.observe(ms / 1000);
        this.batchSize.observe(batchSize);
      },
      tokens: (prompt, generated) => {
        if (prompt > 0) this.promptTokens.inc(prompt);
        if (generated > 0) this.generatedTokens.inc(generated);
      },
      adapterLoad: (result, times) => {
        this.adapterLoads.inc({ result });
        if (result === 'ok' && times?.fromHost) this.adapterLoadsFromHost.inc();
        if (times?.readMs !== undefined) this.adapterLoadSeconds.observe({ phase: 'read' }, times.readMs / 1000);
        if (times?.installMs !== undefined) this.adapterLoadSeconds.observe({ phase: 'install' }, times.installMs / 1000);
      },
      adapterPrefetch: () => this.adapterPrefetches.inc(),
      prefixCacheHits: (tokens) => this.prefixCacheHitTokens.inc(tokens),
      firstToken: (seconds) => this.timeToFirstToken.observe(seconds),
      interToken: (seconds) => this.interTokenLatency.observe(seconds),
      finished: (reason, generatedTokens, usage) => {
        this.requestsFinished.inc({ reason });
        this.requestGeneratedTokens.observe(generatedTokens);
        if (usage) this.perAdapter.record(usage.adapter, usage.promptTokens, generatedTokens);
      },
    };
  }

  /** Makes the stats gauges read `source.stats()` at each scrape. */
  observeEngine(source: { stats(): EngineStats }): void {
    this.statsSource = () => source.stats();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition of every metric. */
  expose(): Promise<string> {
    return this.registry.metrics();
  }

  private readStats(pick: (s: EngineStats) => number): number | null {
    if (!this.statsSource) return null;
    try {
      return pick(this.statsSource());
    } catch {
      // A scrape must not fail because the engine is shutting down; the gauge keeps its last value.
      return null;
    }
  }
}
