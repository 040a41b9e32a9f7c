// Every flag of every `weft` command, declared once: parse.ts reads values by this table, help.ts prints it.
// Environment fallbacks apply to the server commands (launch, shard); score and bench take argv only, so a
// conformance or benchmark run says everything on its command line.
import type { Command, ConfigFor } from './types.js';
import { MAX_SPECULATE } from '../../coordinator/scheduler/speculation.js';
import { DEFAULT_LOAD_FACTOR } from '../router/placement.js';

export type FlagType = 'int' | 'float' | 'string' | 'bool' | 'list';

interface FlagCommon {
  /** kebab-case, without the leading `--`. */
  readonly name: string;
  /** The config field; default: the name in camelCase. */
  readonly key?: string;
  readonly commands: readonly Command[];
  readonly help: string;
  /** Environment variables read when the flag is absent; the first one set (non-empty) wins. */
  readonly env?: readonly string[];
  readonly required?: boolean;
  /** Printed as `***` by redactedConfig. */
  readonly secret?: boolean;
  /** What help shows as the default when the value alone does not say it. */
  readonly defaultLabel?: string;
  /** Other names for the flag — vLLM's or TGI's for the same setting — so their command lines work as they are. */
  readonly aliases?: readonly string[];
}

export interface NumberFlag extends FlagCommon {
  readonly type: 'int' | 'float';
  /** Absent: null (no value). */
  readonly default?: number;
  readonly min?: number;
  readonly max?: number;
}

export interface StringFlag extends FlagCommon {
  readonly type: 'string';
  /** Absent: null (no value). */
  readonly default?: string;
  readonly choices?: readonly string[];
  /** 'http-url': http(s)://…; 'nats-url': nats|tls|ws|wss://… or host:port, comma separated; 'token': one NATS
   *  subject token ([A-Za-z0-9_-]+). */
  readonly format?: 'http-url' | 'nats-url' | 'token';
}

export interface BoolFlag extends FlagCommon {
  readonly type: 'bool';
  readonly default: boolean;
}

export interface ListFlag extends FlagCommon {
  readonly type: 'list';
  /** Item type; 'name=id' items become { name, id }. */
  readonly of: 'string' | 'int' | 'name=id';
  /** Items are also split on this inside one argv value (`--ids 1,2,3`). */
  readonly split?: string;
  /** Separator of items in the environment variable. */
  readonly envSplit?: string;
  /** Smallest item, for 'int' lists. */
  readonly min?: number;
  readonly default: readonly (string | number)[];
}

export type FlagSpec = NumberFlag | StringFlag | BoolFlag | ListFlag;

// `weft batch` starts the same server as `weft launch` (unless --url), so it takes every launch flag.
const LAUNCH = ['launch', 'batch'] as const;
// `weft router` listens like a server and logs like one.
const LISTEN = ['launch', 'batch', 'router'] as const;
const SERVER = ['launch', 'shard', 'batch'] as const;
const SHARD = ['shard'] as const;
const SCORE = ['score'] as const;
const BENCH = ['bench'] as const;
const CHECK = ['check-adapter'] as const;
const MAX_PORT = 65_535;
const GIB = 1024 ** 3;

export const FLAGS = [
  // launch: model and placement
  { name: 'model-id', type: 'string', commands: LAUNCH, env: ['MODEL_ID'], defaultLabel: 'the built-in demo model',
    help: 'Base model: a local directory, a Hugging Face hub id (owner/name[@revision]) or s3://bucket/prefix.' },
  { name: 'classifier-from-tokens', key: 'classifierFromTokens', type: 'list', of: 'string', commands: LAUNCH, env: ['CLASSIFIER_FROM_TOKENS'],
    envSplit: ',', default: [], defaultLabel: 'none (a causal LM generates)',
    help: 'Serve a causal LM as a classifier scored by its own next-token logits (vLLM\'s classifier_from_token): two tokens no,yes give P(yes) of the two, one token the sigmoid of its logit — yes/no rerankers (Qwen3-Reranker, mxbai-rerank-v2) on /score, /rerank and /classify. The model then does not generate.' },
  { name: 'served-model-name', key: 'servedModelNames', type: 'list', of: 'string', commands: LAUNCH, env: ['SERVED_MODEL_NAME'],
    envSplit: ',', default: [], defaultLabel: 'the --model-id',
    help: 'The base model\'s name in the API (vLLM\'s flag; repeatable): the first is the one /v1/models, /info and responses report, and each is accepted as OpenAI `model` for the base model — the --model-id itself then is not.' },
  { name: 'pooling-type', type: 'string', commands: LAUNCH, env: ['POOLING_TYPE'], choices: ['last', 'mean', 'cls', 'max'],
    defaultLabel: 'the sentence-transformers config\'s (1_Pooling), else last',
    help: 'How /v1/embeddings, /embed, /score and /rerank pool the prompt\'s final hidden states, over what the model\'s sentence-transformers config says: last (the last token\'s: decoder embedders), mean (of every position\'s), cls (the first\'s), max (element-wise). The config\'s Dense and Normalize modules still apply.' },
  { name: 'num-shard', aliases: ['tensor-parallel-size'], type: 'int', commands: LAUNCH, env: ['NUM_SHARD'], default: 1, min: 1,
    help: 'Tensor-parallel shards (one process per rank).' },
  { name: 'device', type: 'string', commands: SERVER, env: ['WEFT_DEVICE'], default: 'cpu', choices: ['cpu', 'cuda'],
    help: 'Compute backend.' },
  { name: 'cpu-threads', type: 'int', commands: SERVER, env: ['WEFT_CPU_THREADS'], default: 0, min: 0,
    defaultLabel: '0 (hardware threads ÷ --num-shard)', help: 'With --device cpu: threads per shard process.' },
  { name: 'dtype', type: 'string', commands: SERVER, env: ['DTYPE'], choices: ['float32', 'bfloat16', 'float16'],
    defaultLabel: 'float32 on cpu, bfloat16 on cuda', help: 'Weight dtype.' },
  { name: 'collective', type: 'string', commands: SERVER, env: ['WEFT_COLLECTIVE'], default: 'shm', choices: ['shm', 'nccl'],
    help: 'How the shards exchange tensors: shm (ranks on one host; GPU tensors staged through host memory) or nccl ' +
      '(GPU memory, needs --device cuda; rank 0 sends the NCCL unique id over NATS).' },
  // launch: HTTP and NATS
  { name: 'port', type: 'int', commands: LISTEN, env: ['PORT'], default: 3000, min: 0, max: MAX_PORT,
    help: 'HTTP port (0: any free port).' },
  { name: 'hostname', aliases: ['host'], type: 'string', commands: LISTEN, env: ['WEFT_HOSTNAME'], default: '0.0.0.0',
    help: 'HTTP listen address. (Not HOSTNAME: shells set that to the machine name.)' },
  { name: 'ssl-keyfile', type: 'string', commands: LISTEN, env: ['SSL_KEYFILE'], defaultLabel: 'none (plain HTTP)',
    help: 'Serve HTTPS: the private key, a PEM file (with --ssl-certfile).' },
  { name: 'ssl-certfile', type: 'string', commands: LISTEN, env: ['SSL_CERTFILE'], defaultLabel: 'none (plain HTTP)',
    help: 'Serve HTTPS: the certificate chain, a PEM file (with --ssl-keyfile).' },
  { name: 'ssl-ca-certs', type: 'string', commands: LISTEN, env: ['SSL_CA_CERTS'], defaultLabel: 'none (any client)',
    help: 'Mutual TLS: CA certificates (PEM); clients must present a certificate one of them signed.' },
  { name: 'nats-url', type: 'string', commands: LAUNCH, env: ['NATS_URL'], format: 'nats-url',
    defaultLabel: 'start a local nats-server', help: 'NATS server to use.' },
  { name: 'cluster', type: 'string', commands: SERVER, env: ['WEFT_CLUSTER'], default: 'weft', format: 'token',
    help: 'Cluster name: the second token of every NATS subject (weft.<cluster>.…).' },
  // launch: limits and scheduling
  { name: 'max-concurrent-requests', type: 'int', commands: LAUNCH, env: ['MAX_CONCURRENT_REQUESTS'], default: 128,
    min: 1, help: 'Requests in flight before new ones get 429.' },
  { name: 'chat-template', type: 'string', commands: LAUNCH, env: ['CHAT_TEMPLATE'], defaultLabel: 'the model\'s',
    help: 'A Jinja chat template for the chat routes instead of the model\'s (chat_template.jinja / tokenizer_config.json): a file, or the template itself (text with {{ or {%). For a base model whose adapters were fine-tuned on a chat format, or a model published without one. Parsed at start.' },
  { name: 'trust-request-chat-template', type: 'bool', commands: LAUNCH, env: ['TRUST_REQUEST_CHAT_TEMPLATE'], default: false,
    help: 'Let chat requests bring their own Jinja chat template (vLLM\'s `chat_template` field). Off by default, as in vLLM: a template is code the server runs, and one request\'s template can loop long enough to stall the coordinator.' },
  // launch: images (vision-language models)
  { name: 'max-images-per-prompt', type: 'int', commands: LAUNCH, env: ['MAX_IMAGES_PER_PROMPT'], default: 4, min: 0,
    help: 'Images one request may carry (vision-language models; vLLM\'s --limit-mm-per-prompt image=N); more is a 422. Each image takes the model\'s tokens per image (576 for LLaVA-1.5) of the context.' },
  { name: 'max-image-bytes', type: 'int', commands: LAUNCH, env: ['MAX_IMAGE_BYTES'], default: 20 * 1024 * 1024, min: 1,
    help: 'Largest image file (downloaded, read, or a data: URL decoded); larger is a 413. A data: URL also counts against the request body limit.' },
  { name: 'max-image-pixels', type: 'int', commands: LAUNCH, env: ['MAX_IMAGE_PIXELS'], default: 40_000_000, min: 1,
    help: 'Largest decoded image, width x height, checked from its header before decoding (a small file can declare a huge image); larger is a 413.' },
  { name: 'image-fetch-timeout-ms', type: 'int', commands: LAUNCH, env: ['IMAGE_FETCH_TIMEOUT_MS'], default: 10_000, min: 1,
    help: 'Time an http(s) image URL has to answer in full (redirects included); past it the request is a 422 naming the image.' },
  { name: 'allowed-local-media-path', type: 'string', commands: LAUNCH, env: ['ALLOWED_LOCAL_MEDIA_PATH'], defaultLabel: 'none (file:// refused)',
    help: 'A directory file:// image URLs may read from (vLLM\'s flag; symlinks resolved, nothing outside it). Unset, file:// URLs are refused: they would let any client read the server\'s files.' },
  { name: 'allowed-media-domains', type: 'list', of: 'string', split: ',', commands: LAUNCH, env: ['ALLOWED_MEDIA_DOMAINS'], envSplit: ',', default: [],
    defaultLabel: 'any host', help: 'Hosts http(s) image URLs may come from, each with its subdomains (vLLM\'s flag; repeatable or comma-separated); redirects are checked too. Empty: any host — set it where the server can reach internal addresses a client should not.' },
  { name: 'reasoning-parser', type: 'string', commands: LAUNCH, env: ['REASONING_PARSER'], default: 'auto',
    choices: ['auto', 'none', 'think', 'harmony'],
    help: 'How chat answers\' thoughts come back apart, as `reasoning_content`: think (<think>…</think>: DeepSeek-R1, Qwen3, GLM-4.5), harmony (gpt-oss\'s analysis channel), auto (whichever markers the tokenizer has as tokens), none (the raw text as content).' },
  { name: 'tool-call-parser', type: 'string', commands: LAUNCH, env: ['TOOL_CALL_PARSER'], default: 'auto',
    choices: ['auto', 'weft', 'hermes', 'llama3_json', 'mistral', 'harmony', 'pythonic', 'qwen3_coder'],
    help: 'How chat answers carry function calls (`tools`): hermes (<tool_call> tags: Qwen 2.5/3, Hermes), llama3_json (Llama 3.1-3.3\'s JSON calls), mistral ([TOOL_CALLS]: Mistral 7B v0.3, Nemo, Small, Mixtral 8x22B), harmony (gpt-oss: messages to=functions.NAME; tool_choice auto only), pythonic (a Python list of calls [f(a=1), …]: Llama 3.2 / 4), qwen3_coder (<tool_call><function=NAME><parameter=P>… XML: Qwen3-Coder) — the model\'s own format, rendered by its chat template; weft (weft\'s JSON call format described in a system message: any model); auto (the format the chat template renders tools in, else weft).' },
  { name: 'generation-config', type: 'string', commands: LAUNCH, env: ['GENERATION_CONFIG'], default: 'auto',
    help: 'Defaults for the sampling fields OpenAI requests leave out (temperature, top_p, top_k, min_p, repetition_penalty, max_tokens), as vLLM\'s flag: auto (the model\'s generation_config.json, if it has one), vllm (none: the routes\' own defaults), or a directory holding a generation_config.json. A request\'s own values always win; the TGI routes never use them.' },
  { name: 'max-input-length', aliases: ['max-input-tokens'], type: 'int', commands: LAUNCH, env: ['MAX_INPUT_LENGTH'], default: 1024, min: 1,
    help: 'Prompt tokens per request.' },
  { name: 'max-total-tokens', aliases: ['max-model-len'], type: 'int', commands: LAUNCH, env: ['MAX_TOTAL_TOKENS'], default: 2048, min: 2,
    help: 'Prompt plus generated tokens per request.' },
  { name: 'max-batch-prefill-tokens', aliases: ['max-num-batched-tokens'], type: 'int', commands: LAUNCH, env: ['MAX_BATCH_PREFILL_TOKENS'],
    default: 4096, min: 1, help: 'Prompt tokens admitted per step.' },
  { name: 'max-batch-size', aliases: ['max-num-seqs'], type: 'int', commands: LAUNCH, env: ['MAX_BATCH_SIZE'], default: 64, min: 1,
    help: 'Sequences per step.' },
  { name: 'async-scheduling', type: 'bool', commands: LAUNCH, env: ['ASYNC_SCHEDULING'], default: true,
    help: 'Publish each step before the previous one\'s result is back, so the shards never wait for the coordinator (--async-scheduling=false: strictly one step at a time).' },
  { name: 'scheduling-policy', type: 'string', commands: LAUNCH, env: ['SCHEDULING_POLICY'], default: 'fcfs', choices: ['fcfs', 'priority'],
    help: 'fcfs: requests are admitted in arrival order; priority: by their `priority` field (lower first; vLLM\'s rule), then arrival — preemption takes the lowest-priority request first.' },
  { name: 'prefix-caching', aliases: ['enable-prefix-caching'], type: 'bool', commands: LAUNCH, env: ['PREFIX_CACHING'], default: true,
    help: 'Reuse the KV cache of full blocks whose tokens and adapter match an earlier request\'s (shared system prompts, multi-turn chat): those prompt tokens are not computed again. Idle cached blocks are evicted when blocks run out.' },
  { name: 'speculate', type: 'int', commands: LAUNCH, env: ['SPECULATE'], default: 0, min: 0, max: MAX_SPECULATE,
    help: 'Speculative decoding: up to this many draft tokens per sequence and step, guessed from the sequence\'s own earlier tokens (n-gram lookup) and checked in the same forward pass. The output is the same as without; a step yields 1 + accepted drafts tokens. Pays off where text repeats its context (code edits, extraction, RAG answers, JSON) at small batches; 0 = off.' },
  { name: 'speculative-model', type: 'string', commands: LAUNCH, env: ['SPECULATIVE_MODEL'], defaultLabel: 'none (n-gram lookup)',
    help: 'Speculative decoding with this draft model (a local directory, hub id or s3:// prefix, like --model-id; it must use the served model\'s tokenizer): it guesses --speculate tokens per sequence and step (4 when --speculate is not set), greedily, and the served model checks them in its own step — the output is the same as without. The draft runs whole on shard 0 with as many KV blocks as the model, without adapters.' },
  { name: 'draft-model-dir', type: 'string', commands: SHARD, help: 'Local directory of the draft model (--speculative-model).' },
  { name: 'kv-cache-blocks', type: 'int', commands: SERVER, env: ['KV_CACHE_BLOCKS'], default: 0, min: 0,
    defaultLabel: '0 (size automatically)', help: 'KV cache blocks per shard.' },
  { name: 'cuda-memory-fraction', aliases: ['gpu-memory-utilization'], type: 'float', commands: LAUNCH, env: ['CUDA_MEMORY_FRACTION'], default: 0.9, min: 0.05,
    max: 1, help: 'With --device cuda: fraction of each GPU weft uses; the KV cache gets what weights, adapter slots and activations leave.' },
  { name: 'block-size', type: 'int', commands: SERVER, env: ['BLOCK_SIZE'], default: 16, min: 1,
    help: 'Tokens per KV cache block.' },
  // launch: adapters
  { name: 'adapter-root', key: 'adapterRoots', type: 'list', of: 'string', commands: LAUNCH, env: ['ADAPTER_ROOTS'],
    envSplit: ':', default: [], help: 'Directory local adapters may be loaded from.' },
  { name: 'adapter-source', type: 'string', commands: LAUNCH, env: ['ADAPTER_SOURCE'], default: 'local',
    choices: ['hub', 's3', 'local'], help: 'Source of an adapter_id whose request names none.' },
  { name: 'max-adapter-slots', aliases: ['max-loras'], type: 'int', commands: LAUNCH, env: ['MAX_ADAPTER_SLOTS'], default: 8, min: 0,
    help: 'Adapters held on the device at once.' },
  { name: 'adapter-memory-fraction', type: 'float', commands: LAUNCH, env: ['ADAPTER_MEMORY_FRACTION'], default: 0, min: 0,
    max: 1, help: 'Size the adapter slots from this fraction of device memory (0 = use --max-adapter-slots).' },
  { name: 'max-active-adapters', type: 'int', commands: LAUNCH, env: ['MAX_ACTIVE_ADAPTERS'], default: 8, min: 0,
    help: 'Distinct adapters in one step.' },
  { name: 'adapter-cycle-time-s', type: 'float', commands: LAUNCH, env: ['ADAPTER_CYCLE_TIME_S'], default: 2, min: 0,
    help: 'Seconds a request may wait for its adapter before it gets priority.' },
  { name: 'max-lora-rank', type: 'int', commands: SERVER, env: ['MAX_LORA_RANK'], default: 64, min: 1,
    help: 'Largest adapter rank a slot holds.' },
  { name: 'adapter-disk-cache-bytes', type: 'int', commands: LAUNCH, env: ['ADAPTER_DISK_CACHE_BYTES'], default: 0, min: 0,
    defaultLabel: '0 (no limit)', help: 'Disk for downloaded adapters (Hub, S3) under --cache-dir: past it the least recently used ones no request holds are deleted (downloaded again when asked for).' },
  { name: 'cache-dir', type: 'string', commands: LAUNCH, env: ['WEFT_CACHE_DIR'], defaultLabel: '~/.cache/weft',
    help: 'Where downloads (models, adapters) and the demo model are kept.' },
  { name: 'adapter-host-cache-bytes', type: 'int', commands: SERVER, env: ['ADAPTER_HOST_CACHE_BYTES'],
    default: 2 * GIB, min: 0, defaultLabel: '2147483648 (2 GiB)', help: 'Host RAM for parsed adapters (LRU).' },
  { name: 'preload-adapter', aliases: ['lora-modules'], key: 'preloadAdapters', type: 'list', of: 'name=id', commands: LAUNCH, default: [],
    help: 'Load an adapter at boot, as name=SOURCE_ID (repeatable).' },
  // launch: operations
  { name: 'api-key', key: 'apiKeys', type: 'list', of: 'string', commands: ['launch', 'bench', 'batch'], env: ['WEFT_API_KEYS', 'API_KEY'],
    envSplit: ',', secret: true, default: [], defaultLabel: 'none (the API is open)',
    help: 'launch: require this key (Authorization: Bearer or X-Api-Key) on every route but /health and /metrics (repeatable: rotation); bench serve, batch: the key sent to --url (batch without --url: to its own server).' },
  { name: 'response-store-entries', type: 'int', commands: LAUNCH, env: ['RESPONSE_STORE_ENTRIES'], default: 1024, min: 0,
    help: 'Responses API: how many responses (store: true, the default) the server keeps in memory for GET /v1/responses/{id} and previous_response_id, least recently used dropped first; each is visible only to the credentials that created it. 0: nothing is stored.' },
  { name: 'cors-allow-origin', key: 'corsAllowOrigins', type: 'list', of: 'string', commands: LAUNCH, env: ['CORS_ALLOW_ORIGIN'],
    envSplit: ',', default: [], defaultLabel: 'none (no cross-origin browser access)',
    help: 'An origin browsers may call the API from, e.g. https://app.example.com, or * (repeatable).' },
  { name: 'admin-token', type: 'string', commands: LAUNCH, env: ['WEFT_ADMIN_TOKEN'], secret: true,
    defaultLabel: 'none (admin routes open, or behind --api-key)', help: 'Bearer token for /v1/adapters admin routes.' },
  { name: 'otlp-endpoint', type: 'string', commands: SERVER, env: ['OTEL_EXPORTER_OTLP_ENDPOINT'], format: 'http-url',
    defaultLabel: 'none (tracing off)', help: 'OTLP/HTTP collector base URL; spans go to <url>/v1/traces.' },
  { name: 'metrics-adapter-labels', type: 'int', commands: LAUNCH, env: ['METRICS_ADAPTER_LABELS'], default: 100, min: 0,
    help: 'Distinct adapters counted under their own label in /metrics\' per-adapter counters; the rest count as "_other".' },
  { name: 'log-level', type: 'string', commands: [...SERVER, 'router'], env: ['LOG_LEVEL'], default: 'info',
    choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], help: 'Log level (logs are JSON lines).' },
  { name: 'shard-heartbeat-ms', type: 'int', commands: LAUNCH, default: 1000, min: 1,
    help: 'Interval of shard heartbeats.' },
  { name: 'shard-timeout-ms', type: 'int', commands: LAUNCH, default: 10_000, min: 1,
    help: 'A shard silent this long is lost: its requests fail and it is restarted.' },
  { name: 'step-timeout-ms', type: 'int', commands: LAUNCH, default: 120_000, min: 1,
    help: 'A step with no result after this long fails.' },

  // shard (started by launch, one process per rank)
  { name: 'model-dir', type: 'string', commands: SHARD, required: true, help: 'Local model directory.' },
  { name: 'rank', type: 'int', commands: SHARD, required: true, min: 0, help: 'This shard\'s rank.' },
  { name: 'world-size', type: 'int', commands: SHARD, required: true, min: 1, help: 'Number of shards.' },
  { name: 'nats-url', type: 'string', commands: SHARD, required: true, format: 'nats-url', help: 'NATS server.' },
  { name: 'shm-name', type: 'string', commands: SHARD, required: true,
    help: 'Name of the shared-memory segment of the shm collective; with nccl, the group id (fresh per group start).' },
  { name: 'adapter-slots', type: 'int', commands: SHARD, default: 8, min: 0, help: 'Device adapter slots.' },
  { name: 'heartbeat-ms', type: 'int', commands: SHARD, default: 1000, min: 1, help: 'Heartbeat interval.' },

  // score (the conformance entry point)
  { name: 'model', type: 'string', commands: SCORE, required: true, help: 'Local model directory.' },
  { name: 'adapter', type: 'string', commands: SCORE, defaultLabel: 'none (base model)',
    help: 'Local adapter directory.' },
  { name: 'num-shard', type: 'int', commands: SCORE, default: 1, min: 1, help: 'Tensor-parallel shards.' },
  { name: 'device', type: 'string', commands: ['score', 'bench'], default: 'cpu', choices: ['cpu', 'cuda'],
    help: 'Compute backend.' },
  { name: 'ids', type: 'list', of: 'int', split: ',', min: 0, commands: SCORE, required: true, default: [],
    help: 'Input token ids, comma separated.' },

  // check-adapter
  { name: 'model', type: 'string', commands: CHECK, required: true,
    help: 'Local model directory (its config; its lm_head weight when the adapter saved a copy of it).' },
  { name: 'adapter', type: 'string', commands: CHECK, required: true, help: 'Local PEFT adapter directory.' },
  { name: 'num-shard', type: 'int', commands: CHECK, default: 1, min: 1, help: 'Tensor-parallel shards to plan it for.' },
  { name: 'max-lora-rank', type: 'int', commands: CHECK, default: 64, min: 1, help: 'The server\'s --max-lora-rank.' },
  { name: 'dtype', type: 'string', commands: CHECK, default: 'float32', choices: ['float32', 'bfloat16', 'float16'],
    help: 'The shards\' dtype (bfloat16/float16: a GPU server), which sets the bytes a slot holds.' },

  // bench
  { name: 'scenario', type: 'string', commands: BENCH, required: true,
    choices: ['decode', 'prefill', 'lora-kernels', 'baseline', 'serve', 'constraints'], help: 'What to measure.' },
  { name: 'output', type: 'string', commands: ['bench', 'batch'], defaultLabel: 'stdout only',
    help: 'bench: write the JSON report here; batch: write the result lines (JSONL, input order) here.' },
  { name: 'model', type: 'string', commands: BENCH, defaultLabel: 'the built-in demo model',
    help: 'Local model directory.' },
  { name: 'batch', type: 'list', of: 'int', split: ',', min: 1, commands: BENCH, default: [1, 8, 32],
    help: 'Batch sizes to sweep (comma separated or repeated).' },
  { name: 'adapters', type: 'list', of: 'int', split: ',', min: 0, commands: BENCH, default: [1, 8, 32],
    help: 'Distinct adapters per batch to sweep.' },
  { name: 'rank', type: 'list', of: 'int', split: ',', min: 1, commands: BENCH, default: [16],
    help: 'LoRA ranks to sweep.' },
  { name: 'context', type: 'list', of: 'int', split: ',', min: 1, commands: BENCH, default: [512],
    help: 'Context lengths (tokens already in the KV cache) to sweep.' },
  { name: 'url', type: 'string', commands: ['bench', 'batch'], format: 'http-url', defaultLabel: 'start a server',
    help: 'bench serve: the running weft server to load; batch: send the requests to this running server instead of starting one.' },
  { name: 'requests', type: 'int', commands: BENCH, default: 256, min: 1, help: 'serve: requests to send.' },
  { name: 'rate', type: 'float', commands: BENCH, default: 0, min: 0,
    defaultLabel: '0 (all at once)', help: 'serve: requests per second.' },
  { name: 'prefix-caching', type: 'bool', commands: BENCH, default: true,
    help: 'serve: --prefix-caching of the server the bench starts (ignored with --url).' },
  { name: 'speculate', type: 'int', commands: BENCH, default: 0, min: 0, max: MAX_SPECULATE,
    help: 'serve: --speculate of the server the bench starts (ignored with --url); the table reports the share of drafts accepted.' },
  { name: 'speculative-model', type: 'string', commands: BENCH,
    help: 'serve: --speculative-model of the server the bench starts (a draft model: directory, hub id or s3:// prefix; ignored with --url).' },
  { name: 'dora', type: 'bool', commands: BENCH, default: false,
    help: 'decode, prefill: the adapters are DoRA adapters (PEFT use_dora: a magnitude vector on every module), to measure the channel scale\'s cost against plain LoRA.' },
  { name: 'op-profile', type: 'bool', commands: BENCH, default: false,
    help: 'decode, prefill: after each case\'s timed steps, 3 decode steps (1 prefill) more with the executor\'s op profile on, and a table of where a step\'s time goes, op by op (GPU: CUDA events between ops, steps without decode graphs; the timed steps are unaffected).' },
  { name: 'shared-prefix-words', type: 'int', commands: BENCH, default: 0, min: 0,
    help: 'serve: every prompt starts with the same this many words (a shared system prompt), before its own words.' },

  // batch
  { name: 'input', type: 'string', commands: ['batch'], required: true,
    help: 'The OpenAI batch file: one JSON object per line, {custom_id, method: "POST", url: /v1/chat/completions | /v1/completions | /v1/embeddings | /v1/responses, body}.' },
  { name: 'concurrency', type: 'int', commands: ['batch'], default: 64, min: 1, max: 4096,
    help: 'Requests in flight at once (the server batches them; more than --max-concurrent-requests only queues).' },
  // router
  { name: 'backend', key: 'backends', type: 'list', of: 'string', split: ',', envSplit: ',', commands: ['router'], env: ['WEFT_BACKENDS'], default: [],
    help: 'A weft replica to route to, as [NAME=]http://host:port (repeatable; at least one). Adapters are placed by NAME (default: the URL), so keep names stable when a replica moves.' },
  { name: 'health-interval-ms', type: 'int', commands: ['router'], default: 2000, min: 100,
    help: 'How often the router checks each replica\'s /health (a replica that fails a forwarded request is marked down at once).' },
  { name: 'load-factor', type: 'float', commands: ['router'], env: ['WEFT_LOAD_FACTOR'], default: DEFAULT_LOAD_FACTOR, min: 1,
    help: 'Bounded-load placement: an adapter\'s request skips a replica (for its next rendezvous choice) while that replica has ceil(load-factor × (requests in flight + 1) / healthy replicas) or more in flight. Near 1: load evens out, hot adapters spread; large (e.g. 1e9): bounding off, every adapter on its first choice.' },
  { name: 'resume', type: 'bool', commands: ['batch'], default: false,
    help: 'Continue an interrupted run: the lines already in --output (a prefix of the input, results being written in input order) are kept, the rest are sent and appended.' },
] as const satisfies readonly FlagSpec[];

/** The flags `command` accepts, in table order. */
export function flagsFor(command: Command, table: readonly FlagSpec[] = FLAGS): FlagSpec[] {
  return table.filter((f) => f.commands.includes(command));
}

/** The config field a flag fills. */
export function flagKey(f: FlagSpec): string {
  return f.key ?? f.name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

// Compile-time check: for each command, the table's fields are exactly its config interface's fields
// ("Type 'true' is not assignable to type 'false'" below means types.ts and this table disagree).
type Camel<S extends string> = S extends `${infer H}-${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;
type KeyOf<F> = F extends { key: infer K extends string } ? K : F extends { name: infer N extends string } ? Camel<N> : never;
type TableKeys<C extends Command> = (typeof FLAGS)[number] extends infer F
  ? F extends { commands: readonly (infer A)[] } ? (C extends A ? KeyOf<F> : never) : never
  : never;
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Fields<C extends Command> = Exclude<keyof ConfigFor<C>, 'command' | 'env'>;
const tableMatchesTypes: { [C in Command]: Same<TableKeys<C>, Fields<C>> } = {
  launch: true, shard: true, score: true, bench: true, 'check-adapter': true, batch: true, router: true,
};
void tableMatchesTypes;
