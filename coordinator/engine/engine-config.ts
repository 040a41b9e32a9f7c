// What an Engine is built from: its shard group, its limits (the server's flags) and the hooks metrics attach to.
import type { MessageHeaders, ShardReady, Step, StepResult } from '../../protocol/index.js';
import type { AdapterLoader, RegistryOptions, SourceKind } from '../adapters/index.js';
import type { ClassifierHead } from '../adapters/classifier-head.js';
import type { ImageLimits, PreparedImage } from '../vision/index.js';
import type { FinishLabel } from './types.js';
import type { ReasoningParserChoice } from './reasoning.js';
import type { ToolFormatName } from './tool-format-detect.js';

export interface ShardGroupLike extends AdapterLoader {
  isReady(): boolean;
  waitReady(timeoutMs: number): Promise<void>;
  info(): ShardReady;
  step(step: Step, headers?: MessageHeaders): Promise<StepResult>;
  /** Vision-language models: publishes an image's pixel values (image.data chunks) for every rank; called before the
   * step whose NewSequence refers to it. */
  publishImage?(image: PreparedImage): void;
}

export interface EngineLimits {
  /** The base model's name in the API (--served-model-name's first, else the model id). */
  modelId: string;
  /** More names OpenAI `model` may use for the base model (--served-model-name's others). */
  modelAliases?: readonly string[];
  maxConcurrentRequests: number;
  maxInputLength: number;
  maxTotalTokens: number;
  maxBatchPrefillTokens: number;
  maxBatchSize: number;
  maxActiveAdapters: number;
  adapterCycleTimeS: number;
  /** Source for adapter ids given without one (OpenAI `model`, adapter_source omitted). */
  defaultAdapterSource: SourceKind;
  adapters: Omit<RegistryOptions, 'slots'>;
  /** Where the shards compute and in which weight dtype (reported by /info); default cpu / float32. */
  device?: 'cpu' | 'cuda';
  dtype?: 'float32' | 'bfloat16' | 'float16';
  /** Send each step before the previous one's result is back (default true); see Engine.loop. */
  asyncScheduling?: boolean;
  /** --trust-request-chat-template: chat requests may bring their own template (default false). */
  trustRequestChatTemplate?: boolean;
  /** --reasoning-parser: how chat answers' thoughts are told apart (default auto: from the vocabulary). */
  reasoningParser?: ReasoningParserChoice;
  /** --tool-call-parser: the format of function calls in chat answers (default auto: from the chat template). */
  toolCallParser?: ToolFormatName | 'auto';
  /** Reuse the KV blocks of computed prefixes across requests (default true); see Scheduler. */
  prefixCaching?: boolean;
  /** Speculative decoding: draft tokens per sequence and step (default 0: off); see Scheduler. */
  speculate?: number;
  /** --scheduling-policy: 'priority' admits by the requests' priority (default 'fcfs': arrival only). */
  schedulingPolicy?: 'fcfs' | 'priority';
  /** The base model's head when it is a *ForSequenceClassification checkpoint (readBaseClassifierHead); it does
   * not generate then. */
  baseClassifierHead?: ClassifierHead | null;
  /** Why the base model only embeds (bidirectional attention: EmbeddingGemma; no lm_head: a Gemma3TextModel or
   * LlamaModel checkpoint), for the generation routes' 422; absent: it generates. */
  embeddingOnly?: string;
  /** Bidirectional attention: a prompt's every position depends on every other, so each prompt is computed whole in
   * one step and never from (nor into) the prefix cache. */
  bidirectional?: boolean;
  /** A hybrid Mamba model (Granite 4.0 H): each sequence's recurrent state is rebuilt from its first token, so no
   * prefix caching (a cached prefix has no state) and no speculative drafts (a rejected one would have advanced it). */
  recurrentState?: boolean;
  /** Vision-language models (the shards report ModelInfo.vision): limits on a request's images; default
   * DEFAULT_IMAGE_LIMITS. */
  images?: ImageLimits;
}

/** Hooks for metrics; all optional. */
export interface EngineObserver {
  step?(ms: number, batchSize: number, prefillTokens: number, decodeTokens: number): void;
  tokens?(prompt: number, generated: number): void;
  /** Prompt tokens a step took from the prefix cache instead of computing them. */
  prefixCacheHits?(tokens: number): void;
  /** A load's outcome; a successful one's read and install times (the slowest rank's) where measured. */
  adapterLoad?(result: 'ok' | 'failed', times?: { readMs?: number; installMs?: number; fromHost?: boolean }): void;
  /** A waiting adapter's files are being read into the shards' host RAM ahead of its load. */
  adapterPrefetch?(): void;
  /** A request's first token, `seconds` after generate() was called (tokenizing, adapter load and queue included). */
  firstToken?(seconds: number): void;
  /** A request's next token, `seconds` after its previous one (as the coordinator applies step results). */
  interToken?(seconds: number): void;
  /** A request ended: how, with how many generated tokens; its adapter (null: the base model) and prompt tokens. */
  finished?(reason: FinishLabel, generatedTokens: number, usage?: { adapter: string | null; promptTokens: number }): void;
}
