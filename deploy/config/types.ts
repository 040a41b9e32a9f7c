// The typed result of parsing `weft <command> [flags]` plus the environment: one interface per command.
// Field names are the flags' names in camelCase (flags.ts checks this at compile time).

export type Command = 'launch' | 'shard' | 'score' | 'bench' | 'check-adapter' | 'batch' | 'router';
export const COMMANDS: readonly Command[] = ['launch', 'shard', 'score', 'bench', 'check-adapter', 'batch', 'router'];

export type Device = 'cpu' | 'cuda';
export type Dtype = 'float32' | 'bfloat16' | 'float16';
/** How the ranks of a tensor-parallel group exchange tensors (DESIGN.md §3). */
export type CollectiveKind = 'shm' | 'nccl';
export type AdapterSource = 'hub' | 's3' | 'local';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export type BenchScenario = 'decode' | 'prefill' | 'lora-kernels' | 'baseline' | 'serve' | 'constraints';

/** An adapter to load at boot: `--preload-adapter name=SOURCE_ID`, or one `LORA_ADAPTERS` entry. */
export interface PreloadAdapter {
  /** The name requests use as `adapter_id`. */
  readonly name: string;
  /** Where it comes from: a hub id, an s3 path or a local directory (per `--adapter-source`). */
  readonly id: string;
}

/** Settings that come only from environment variables (no flag). Secrets are printed as `***`. */
export interface EnvConfig {
  /** HF_TOKEN, else HUGGING_FACE_HUB_TOKEN. Secret. */
  readonly hfToken: string | null;
  /** HF_ENDPOINT: a hub mirror. */
  readonly hfEndpoint: string | null;
  /** WEFT_USE_GLOBAL_HF_TOKEN, else LORAX_USE_GLOBAL_HF_TOKEN: use hfToken for requests without their own. */
  readonly useGlobalHfToken: boolean;
  /** S3_ENDPOINT_URL: an S3-compatible endpoint (MinIO, R2, ...). */
  readonly s3EndpointUrl: string | null;
  readonly aws: AwsEnv;
  /** LORA_ADAPTERS (TGI syntax): `id` or `name=id`, comma separated. */
  readonly loraAdapters: readonly PreloadAdapter[];
}

export interface AwsEnv {
  /** AWS_ACCESS_KEY_ID. Secret. */
  readonly accessKeyId: string | null;
  /** AWS_SECRET_ACCESS_KEY. Secret. */
  readonly secretAccessKey: string | null;
  /** AWS_SESSION_TOKEN. Secret. */
  readonly sessionToken: string | null;
  /** AWS_REGION, else AWS_DEFAULT_REGION. */
  readonly region: string | null;
  /** AWS_PROFILE. */
  readonly profile: string | null;
}

export interface LaunchConfig {
  command: 'launch';
  /** null: the built-in demo model. */
  modelId: string | null;
  /** --classifier-from-tokens: the causal LM served as a classifier by these tokens' logits (empty: it generates). */
  classifierFromTokens: readonly string[];
  /** --served-model-name: the base model's names in the API (empty: the model id). */
  servedModelNames: readonly string[];
  /** --pooling-type: how embeddings pool the final hidden states, over the sentence-transformers config's (null: its). */
  poolingType: 'last' | 'mean' | 'cls' | 'max' | null;
  numShard: number;
  device: Device;
  dtype: Dtype;
  /** CPU backend threads per shard process; 0 = hardware threads ÷ shards. */
  cpuThreads: number;
  collective: CollectiveKind;
  port: number;
  hostname: string;
  /** --ssl-keyfile, --ssl-certfile, --ssl-ca-certs (deploy/tls.ts); null: plain HTTP. */
  sslKeyfile: string | null;
  sslCertfile: string | null;
  sslCaCerts: string | null;
  /** null: start a local nats-server. */
  natsUrl: string | null;
  cluster: string;
  maxConcurrentRequests: number;
  trustRequestChatTemplate: boolean;
  /** Vision-language models' image limits (coordinator/vision ImageLimits). */
  maxImagesPerPrompt: number;
  maxImageBytes: number;
  maxImagePixels: number;
  imageFetchTimeoutMs: number;
  /** file:// image URLs may read under this directory; null: refused. */
  allowedLocalMediaPath: string | null;
  /** http(s) image URLs only from these hosts (and subdomains); empty: any. */
  allowedMediaDomains: readonly string[];
  /** How chat answers' thoughts are split out (coordinator/engine/reasoning.ts). */
  reasoningParser: 'auto' | 'none' | 'think' | 'harmony';
  toolCallParser: 'auto' | 'weft' | 'hermes' | 'llama3_json' | 'mistral' | 'harmony' | 'pythonic' | 'qwen3_coder';
  /** OpenAI routes' sampling defaults: 'auto' (the model's generation_config.json), 'vllm' (none) or a directory
   * holding a generation_config.json (coordinator/http/generation-defaults.ts). */
  generationConfig: string;
  maxInputLength: number;
  maxTotalTokens: number;
  maxBatchPrefillTokens: number;
  maxBatchSize: number;
  /** Publish step N+1 before step N's result is back (Engine.loop). */
  asyncScheduling: boolean;
  /** Reuse computed KV blocks across requests with the same prefix and adapter (Scheduler prefixCaching). */
  prefixCaching: boolean;
  /** Admission order: arrival (fcfs), or the requests' `priority` then arrival. */
  schedulingPolicy: 'fcfs' | 'priority';
  /** Speculative decoding: draft tokens per sequence and step (Scheduler speculate); 0 = off. */
  speculate: number;
  /** --chat-template: a file or the template itself; null: the model's. */
  chatTemplate: string | null;
  /** A draft model for speculative decoding (model id, like modelId); null: drafts by n-gram lookup. */
  speculativeModel: string | null;
  /** 0: size the KV cache automatically. */
  kvCacheBlocks: number;
  /** --device cuda: the fraction of each GPU's memory weft may use (KV cache sized from what is left). */
  cudaMemoryFraction: number;
  blockSize: number;
  adapterRoots: readonly string[];
  adapterSource: AdapterSource;
  maxAdapterSlots: number;
  adapterMemoryFraction: number;
  maxActiveAdapters: number;
  adapterCycleTimeS: number;
  maxLoraRank: number;
  /** 0: downloaded adapters are never deleted (coordinator/adapters/disk-budget.ts). */
  adapterDiskCacheBytes: number;
  /** null: ~/.cache/weft. */
  cacheDir: string | null;
  adapterHostCacheBytes: number;
  preloadAdapters: readonly PreloadAdapter[];
  /** Origins (or `*`) browsers may call the API from; empty: no CORS. */
  corsAllowOrigins: readonly string[];
  /** Responses API responses kept in memory (GET /v1/responses/{id}, previous_response_id); 0: none. */
  responseStoreEntries: number;
  /** Secret. Empty: the inference API needs no key. */
  apiKeys: readonly string[];
  /** Secret. null: the admin routes are open (behind the API keys when those are set). */
  adminToken: string | null;
  /** null: tracing off. */
  otlpEndpoint: string | null;
  /** Distinct adapters with their own label in the per-adapter metrics (coordinator/http/adapter-metrics.ts). */
  metricsAdapterLabels: number;
  logLevel: LogLevel;
  shardHeartbeatMs: number;
  shardTimeoutMs: number;
  stepTimeoutMs: number;
  env: EnvConfig;
}

export interface ShardConfig {
  command: 'shard';
  modelDir: string;
  /** The draft model's directory (--speculative-model), or null. */
  draftModelDir: string | null;
  rank: number;
  worldSize: number;
  natsUrl: string;
  cluster: string;
  shmName: string;
  kvCacheBlocks: number;
  blockSize: number;
  adapterSlots: number;
  maxLoraRank: number;
  adapterHostCacheBytes: number;
  device: Device;
  dtype: Dtype;
  cpuThreads: number;
  collective: CollectiveKind;
  heartbeatMs: number;
  logLevel: LogLevel;
  otlpEndpoint: string | null;
  env: EnvConfig;
}

export interface ScoreConfig {
  command: 'score';
  model: string;
  adapter: string | null;
  numShard: number;
  device: Device;
  ids: readonly number[];
  env: EnvConfig;
}

export interface BenchConfig {
  command: 'bench';
  /** serve: keys for --url (the first is sent as `Authorization: Bearer`). Secret. */
  apiKeys: readonly string[];
  scenario: BenchScenario;
  /** null: print the JSON report to stdout only. */
  output: string | null;
  /** null: the built-in demo model. */
  model: string | null;
  device: Device;
  batch: readonly number[];
  adapters: readonly number[];
  rank: readonly number[];
  context: readonly number[];
  /** serve scenario: the running server to load; null: start one. */
  url: string | null;
  requests: number;
  /** serve scenario: requests per second; 0: all at once. */
  rate: number;
  /** serve scenario: words every prompt starts with (a shared system prompt); 0: none. */
  sharedPrefixWords: number;
  /** serve scenario: --prefix-caching of the server the bench starts. */
  prefixCaching: boolean;
  /** serve scenario: --speculate of the server the bench starts. */
  speculate: number;
  /** serve scenario: --speculative-model of the server the bench starts (null: none). */
  speculativeModel: string | null;
  /** decode / prefill: per-op breakdown after each case's timed steps. */
  opProfile: boolean;
  /** decode / prefill: the adapters are DoRA adapters. */
  dora: boolean;
  env: EnvConfig;
}

/** `weft check-adapter`: will this adapter load on this model, and what will it take? */
export interface CheckAdapterConfig {
  command: 'check-adapter';
  model: string;
  adapter: string;
  numShard: number;
  maxLoraRank: number;
  dtype: Dtype;
  env: EnvConfig;
}

/** `weft batch`: an OpenAI batch file (JSONL requests) through a server started for it (launch's flags) or --url. */
export interface BatchConfig extends Omit<LaunchConfig, 'command'> {
  command: 'batch';
  /** The requests, one JSON object per line: {custom_id, method: "POST", url, body}. */
  input: string;
  /** The results, one line per request in input order; null: stdout. */
  output: string | null;
  /** A running server to send them to; null: start one with the launch flags. */
  url: string | null;
  /** Requests in flight at once. */
  concurrency: number;
  /** Keep the results already in `output` and send only the lines after them. */
  resume: boolean;
}

/** `weft router`: one endpoint in front of several weft replicas, routing each adapter's requests to one of them. */
export interface RouterConfig {
  command: 'router';
  /** [NAME=]URL of each replica. */
  backends: readonly string[];
  healthIntervalMs: number;
  /** c of the bounded-load placement: a replica with ceil(c × (in flight + 1) / healthy) requests in flight is skipped. */
  loadFactor: number;
  port: number;
  hostname: string;
  /** --ssl-keyfile, --ssl-certfile, --ssl-ca-certs (deploy/tls.ts); null: plain HTTP. */
  sslKeyfile: string | null;
  sslCertfile: string | null;
  sslCaCerts: string | null;
  logLevel: LogLevel;
  env: EnvConfig;
}

export type Config = LaunchConfig | ShardConfig | ScoreConfig | BenchConfig | CheckAdapterConfig | BatchConfig | RouterConfig;
export type ConfigFor<C extends Command> = Extract<Config, { command: C }>;

export type ConfigErrorCode =
  | 'UNKNOWN_COMMAND'
  | 'UNKNOWN_FLAG'
  | 'UNEXPECTED_ARGUMENT' // a positional argument; no command takes one
  | 'MISSING_VALUE'
  | 'DUPLICATE_FLAG' // a single-valued flag given twice
  | 'INVALID_VALUE' // wrong type, out of range, not one of the choices
  | 'MISSING_REQUIRED'
  | 'CONFLICT'; // two values that cannot hold together (e.g. --rank >= --world-size)

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code: ConfigErrorCode;
  /** The flag (`--port`) or environment variable (`PORT`) at fault, when there is one. */
  readonly source: string | undefined;
  /** For UNKNOWN_FLAG / UNKNOWN_COMMAND: the closest known name, when one is close. */
  readonly suggestion: string | undefined;

  constructor(message: string, code: ConfigErrorCode, options?: { source?: string; suggestion?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.source = options?.source;
    this.suggestion = options?.suggestion;
  }
}
