// The JSON shapes of TGI's responses (generate, stream events, tokenize, info), built from engine events.
// Field names and optionality follow TGI's router (`Details`, `StreamResponse`, ...) plus LoRAX's
// `prompt_tokens`.
import type {
  EngineInfo,
  FinishReason,
  GeneratedToken,
  GenerationEvent,
  PrefillToken,
} from '../engine/types.js';
import { MAX_BEST_OF, MAX_STOP_SEQUENCES } from './validate.js';
import type { SamplingDefaults } from './generation-defaults.js';
import type { EmbeddingPipeline } from './sentence-transformers.js';

export interface TokenJson {
  id: number;
  text: string;
  logprob: number;
  special: boolean;
  /** LoRAX return_k_alternatives. */
  alternative_tokens?: { id: number; text: string; logprob: number }[];
}

export interface PrefillJson {
  id: number;
  text: string;
  logprob: number | null;
}

export interface DetailsJson {
  finish_reason: FinishReason;
  prompt_tokens: number;
  generated_tokens: number;
  seed: number | null;
  prefill: PrefillJson[];
  tokens: TokenJson[];
  top_tokens?: TokenJson[][];
  /** best_of > 1: the sequences that did not win. */
  best_of_sequences?: BestOfSequenceJson[];
}

export interface BestOfSequenceJson {
  generated_text: string;
  finish_reason: FinishReason;
  generated_tokens: number;
  seed: number | null;
  prefill: PrefillJson[];
  tokens: TokenJson[];
  top_tokens?: TokenJson[][];
}

export interface GenerateResponseJson {
  generated_text: string;
  details?: DetailsJson;
}

export interface StreamDetailsJson {
  finish_reason: FinishReason;
  prompt_tokens: number;
  generated_tokens: number;
  seed: number | null;
}

export interface StreamEventJson {
  index: number;
  token: TokenJson | null;
  top_tokens?: TokenJson[];
  generated_text: string | null;
  details: StreamDetailsJson | null;
}

export type EndEvent = Extract<GenerationEvent, { type: 'end' }>;

/** A generated token as the client sees it, with the text it appends to the output. */
export interface EmittedToken {
  token: GeneratedToken;
  textDelta: string;
}

/** How the response reports what was asked: from validation, plus the seed actually used. */
export interface ResponseOptions {
  inputs: string;
  details: boolean;
  returnFullText: boolean;
  /** Seed sent to the engine when sampling (reported if the engine's end event has none). */
  samplingSeed: number | null;
  specialIds: ReadonlySet<number>;
  /** top_n_tokens: top_tokens of this many (0: none). */
  topTokens: number;
  /** LoRAX return_k_alternatives: alternative_tokens of this many on each generated token (0: none). */
  alternatives: number;
}

/**
 * Token text in TGI's sense: the streaming-safe text the token adds (so clients can concatenate the
 * non-special tokens); special tokens keep their own text (e.g. "</s>"), which clients skip.
 */
export function tokenJson({ token, textDelta }: EmittedToken, alternatives = 0): TokenJson {
  const json: TokenJson = {
    id: token.id,
    text: token.special ? token.text : textDelta,
    logprob: token.logprob,
    special: token.special,
  };
  // LoRAX: the k most likely tokens at this step, the generated one among them when it is.
  if (alternatives > 0) json.alternative_tokens = token.top.slice(0, alternatives).map((c) => ({ id: c.token, text: c.text, logprob: c.logprob }));
  return json;
}

/** Alternatives carry no `special` flag in the engine contract; EOS ids are the special ones we know. */
export function topTokensJson(token: GeneratedToken, opts: Pick<ResponseOptions, 'specialIds' | 'topTokens'>): TokenJson[] {
  return token.top.slice(0, opts.topTokens).map((c) => ({ id: c.token, text: c.text, logprob: c.logprob, special: opts.specialIds.has(c.token) }));
}

function prefillJson(prefill: PrefillToken[] | null): PrefillJson[] {
  return (prefill ?? []).map((t) => ({ id: t.id, text: t.text, logprob: t.logprob }));
}

function reportedSeed(end: EndEvent, opts: ResponseOptions): number | null {
  return end.seed ?? opts.samplingSeed;
}

function fullText(end: EndEvent, opts: ResponseOptions): string {
  return opts.returnFullText ? opts.inputs + end.generatedText : end.generatedText;
}

export interface Collected {
  promptTokens: number;
  prefill: PrefillToken[] | null;
  tokens: EmittedToken[];
  end: EndEvent;
}

/** best_of: one losing sequence, as TGI lists it in details.best_of_sequences. */
export function bestOfSequenceJson(c: Collected, opts: ResponseOptions): BestOfSequenceJson {
  const { prompt_tokens: _, ...rest } = generateResponse(c, { ...opts, details: true }).details!;
  return { generated_text: fullText(c.end, opts), ...rest };
}

export function generateResponse(c: Collected, opts: ResponseOptions): GenerateResponseJson {
  const out: GenerateResponseJson = { generated_text: fullText(c.end, opts) };
  if (!opts.details) return out;
  const details: DetailsJson = {
    finish_reason: c.end.finishReason,
    prompt_tokens: c.promptTokens,
    generated_tokens: c.end.generatedTokens,
    seed: reportedSeed(c.end, opts),
    prefill: prefillJson(c.prefill),
    tokens: c.tokens.map((t) => tokenJson(t, opts.alternatives)),
  };
  if (opts.topTokens > 0 && c.tokens.some((t) => t.token.top.length > 0)) {
    details.top_tokens = c.tokens.map((t) => topTokensJson(t.token, opts));
  }
  out.details = details;
  return out;
}

/** An intermediate stream event (TGI: every token but the last). */
export function streamTokenEvent(index: number, t: EmittedToken, opts: ResponseOptions): StreamEventJson {
  const ev: StreamEventJson = { index, token: tokenJson(t, opts.alternatives), generated_text: null, details: null };
  return withTopTokens(ev, t, opts);
}

/** The last stream event: the last token, the whole text, and (when asked) the details. */
export function streamEndEvent(
  index: number,
  last: EmittedToken | null,
  end: EndEvent,
  promptTokens: number,
  opts: ResponseOptions,
): StreamEventJson {
  const ev: StreamEventJson = {
    index,
    token: last ? tokenJson(last, opts.alternatives) : null,
    generated_text: fullText(end, opts),
    details: opts.details
      ? {
          finish_reason: end.finishReason,
          prompt_tokens: promptTokens,
          generated_tokens: end.generatedTokens,
          seed: reportedSeed(end, opts),
        }
      : null,
  };
  return last ? withTopTokens(ev, last, opts) : ev;
}

function withTopTokens(ev: StreamEventJson, t: EmittedToken, opts: ResponseOptions): StreamEventJson {
  if (opts.topTokens === 0 || t.token.top.length === 0) return ev;
  // Keep TGI's key order: index, token, top_tokens, generated_text, details.
  return {
    index: ev.index,
    token: ev.token,
    top_tokens: topTokensJson(t.token, opts),
    generated_text: ev.generated_text,
    details: ev.details,
  };
}

/** One server-sent event carrying a JSON object. */
export function sseFrame(payload: unknown): string {
  return `data: ${JSON.stringify(payload)}\n\n`;
}

/** GET /info: TGI's field names, plus weft's own. `defaultSampling`: --generation-config's defaults for the OpenAI
 * routes (null: none); `embedding`: the embedding pipeline (sentence-transformers.ts; absent: the last token's state). */
export function infoJson(info: EngineInfo, defaultSampling: SamplingDefaults | null = null,
  embedding?: EmbeddingPipeline): Record<string, unknown> {
  return {
    model_id: info.modelId,
    served_model_names: info.modelNames,
    model_sha: null,
    model_dtype: info.dtype,
    model_device_type: info.device,
    model_pipeline_tag: info.task === 'classify' ? 'text-classification' : info.task === 'embed' ? 'feature-extraction' : 'text-generation',
    max_concurrent_requests: info.maxConcurrentRequests,
    max_best_of: MAX_BEST_OF,
    max_stop_sequences: MAX_STOP_SEQUENCES,
    max_input_length: info.maxInputLength,
    max_input_tokens: info.maxInputLength,
    max_total_tokens: info.maxTotalTokens,
    max_batch_prefill_tokens: info.maxBatchPrefillTokens,
    max_batch_total_tokens: info.kvBlocks * info.blockSize,
    version: info.version,
    sha: null,
    docker_label: null,
    router: 'weft',
    architecture: info.architecture,
    num_shard: info.numShard,
    vocab_size: info.vocabSize,
    block_size: info.blockSize,
    kv_blocks: info.kvBlocks,
    adapter_slots: info.adapterSlots,
    eos_token_ids: info.eosTokenIds,
    async_scheduling: info.asyncScheduling,
    scheduling_policy: info.schedulingPolicy,
    prefix_caching: info.prefixCaching,
    speculate: info.speculate,
    structured_output: info.structuredOutput,
    reasoning_parser: info.reasoning ?? 'none',
    tool_call_parser: info.toolFormat,
    fim_format: info.fimFormat ?? null,
    default_sampling: defaultSampling,
    // An embedding's length and pooling (null when the model's sentence-transformers config is refused).
    embedding_dimension: embedding?.dimension ?? info.hiddenSize,
    pooling: embedding?.refusal ? null : embedding?.pooling ?? 'last',
  };
}
