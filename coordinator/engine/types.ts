// The contract between the HTTP layer and the generation engine (scheduler + shard group + tokenizer).
import type { SamplingParams, TokenChoice } from '../../protocol/index.js';

export type AdapterSource = 'local' | 'hub' | 's3';

export interface AdapterRef {
  id: string;
  source: AdapterSource;
  /** Per-request access token (never logged). */
  apiToken?: string;
}

export interface GenerateRequest {
  requestId: string;
  /** Prompt text (tokenized by the engine's tokenizer pool) … */
  inputs: string;
  adapter: AdapterRef | null;
  sampling: SamplingParams;
  maxNewTokens: number;
  stop: string[];
  /** decoder_input_details: log-prob of every prompt token. */
  promptLogprobs: boolean;
  /** top_n_tokens: alternatives reported per generated token. */
  topN: number;
}

export type FinishReason = 'length' | 'eos_token' | 'stop_sequence';

export interface PrefillToken {
  id: number;
  text: string;
  /** null for the first prompt token (no prefix to condition on). */
  logprob: number | null;
}

export interface GeneratedToken {
  id: number;
  text: string;
  logprob: number;
  special: boolean;
  top: (TokenChoice & { text: string })[];
}

/** Events for one request, in order: admitted, then tokens, then exactly one of end / error. */
export type GenerationEvent =
  | { type: 'admitted'; promptTokens: number; prefill: PrefillToken[] | null }
  | { type: 'token'; token: GeneratedToken; /** text to append to the output (streaming-safe, may be '') */ textDelta: string }
  | { type: 'end'; finishReason: FinishReason; generatedText: string; generatedTokens: number; seed: number | null }
  | { type: 'error'; error: EngineError };

export type EngineErrorKind =
  | 'validation'        // 422
  | 'overloaded'        // 429
  | 'adapter_not_found' // 404
  | 'adapter_forbidden' // 403
  | 'adapter_load'      // 424
  | 'generation'        // 424
  | 'shard_lost'        // 500
  | 'internal';         // 500

export class EngineError extends Error {
  override name = 'EngineError';
  constructor(readonly kind: EngineErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export interface EngineInfo {
  modelId: string;
  architecture: string;
  vocabSize: number;
  maxInputLength: number;
  maxTotalTokens: number;
  maxBatchPrefillTokens: number;
  maxConcurrentRequests: number;
  numShard: number;
  blockSize: number;
  kvBlocks: number;
  adapterSlots: number;
  eosTokenIds: number[];
  version: string;
}

export interface EngineStats {
  waiting: number;
  running: number;
  usedBlocks: number;
  freeBlocks: number;
  activeAdapters: number;
  loadedAdapters: number;
}

export interface GenerationEngine {
  readonly info: EngineInfo;
  stats(): EngineStats;
  /** Tokenize with the model's tokenizer (POST /tokenize). */
  tokenize(text: string): Promise<{ id: number; text: string; start: number; stop: number }[]>;
  /**
   * Starts a request. Validation errors and overload are thrown synchronously-ish (rejected promise with
   * EngineError) before any event; afterwards errors arrive as an 'error' event. Aborting the signal
   * (client disconnected) cancels the request and frees its KV blocks.
   */
  generate(req: GenerateRequest, signal: AbortSignal): Promise<AsyncIterable<GenerationEvent>>;
  /** True when the shards are up and the engine accepts work (GET /health). */
  healthy(): boolean;
}
