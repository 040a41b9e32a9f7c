// The contract between the HTTP layer and the generation engine (scheduler + shard group + tokenizer).
import type { ConstraintSource, SamplingParams, TokenChoice } from '../../protocol/index.js';
import type { ReasoningFormat } from './reasoning.js';
import type { ToolFormatName } from './tool-format-detect.js';
import type { FimFormatName } from './fim.js';
import type { ClassifierHead } from '../adapters/classifier-head.js';
import type { ChatContentPart } from '../tokenizer/index.js';
import type { ImageInput, PreparedImage } from '../vision/index.js';

export type AdapterSource = 'local' | 'hub' | 's3';

export interface AdapterRef {
  id: string;
  source: AdapterSource;
  /** Per-request access token (never logged). */
  apiToken?: string;
}

export type MergeStrategy = 'linear' | 'ties' | 'dare_linear' | 'dare_ties' | 'cat';

/** `merged_adapters` (LoRAX names): the adapters are merged per request into one, cached by the full spec. */
export interface MergeSpec {
  adapters: AdapterRef[];
  weights: number[];
  strategy: MergeStrategy;
  /** Required (0, 1] for ties / dare_*; ignored by linear and cat. */
  density: number | null;
  majoritySignMethod: 'total' | 'frequency';
}

export interface GenerateRequest {
  requestId: string;
  /** Prompt text (tokenized by the engine's tokenizer pool) … */
  inputs: string;
  /** … or the prompt's token ids (OpenAI token-id prompts): used as given, `inputs` ignored. */
  inputIds?: number[];
  /**
   * `inputs` was rendered by the chat template, which writes the special tokens it wants itself ({{ bos_token }}):
   * tokenized without the tokenizer adding any (transformers' apply_chat_template does the same), so a model whose
   * tokenizer adds BOS does not get it twice.
   */
  templated?: boolean;
  adapter: AdapterRef | null;
  /** Mutually exclusive with `adapter`. */
  merge?: MergeSpec | null;
  sampling: SamplingParams;
  maxNewTokens: number;
  /** maxNewTokens is a server default (--generation-config's max_new_tokens), not the client's: lowered to the room
   * the prompt leaves under --max-total-tokens instead of refused (vLLM's min(default, max_model_len - prompt)). */
  fitMaxNewTokens?: boolean;
  stop: string[];
  /** decoder_input_details: log-prob of every prompt token. */
  promptLogprobs: boolean;
  /** top_n_tokens: alternatives reported per generated token. */
  topN: number;
  /** ignore_eos_token: generate past EOS until max_new_tokens or a stop sequence. */
  ignoreEos?: boolean;
  /** min_tokens (vLLM) / min_new_tokens (transformers): neither EOS nor a stop sequence ends the generation
   * before this many tokens (EOS cannot be drawn until then). */
  minNewTokens?: number;
  /** stop_token_ids (vLLM): drawing one of these ends the generation as EOS does (even with ignoreEos). */
  stopTokenIds?: number[];
  /** truncate (TGI): keep only the last this many prompt tokens. */
  truncate?: number;
  /** The prompt already holds tokens this server generated for the same request (a beam search step): it is bounded
   * by --max-total-tokens only, not --max-input-length (the client's prompt was checked against that). */
  continues?: boolean;
  /** Admission order before arrival, lower first (vLLM's `priority`); only with --scheduling-policy priority. */
  priority?: number;
  /**
   * skip_special_tokens: false (vLLM): the text keeps the special tokens the model generates (chat markers, tool-call
   * tags) instead of dropping them — except the EOS / stop token that ends the generation, as vLLM leaves it out.
   */
  keepSpecialTokens?: boolean;
  /** Embeddings: the prompt's last hidden state comes with the 'admitted' event (send maxNewTokens 1: the one
   * token sampled is not used). */
  embed?: boolean;
  /** embed: the prompt's final hidden states pooled this way instead (their mean or max, or the first one's): the
   * prompt is then computed in full, never from the prefix cache. Default 'last'. */
  pooling?: 'last' | 'mean' | 'max' | 'cls';
  /** Structured output: a regular expression or grammar (coordinator/http/structured-output.ts) the generated text
   * must match. */
  constraint?: ConstraintSource;
  /** Vision-language models: the prompt's images, in the order of their placeholders (EngineInfo.vision.templateToken,
   * else imageToken, in `inputs`, one per image); loaded once per HTTP request by GenerationEngine.prepareImages. */
  images?: readonly PreparedImage[];
}

/** A chat message as the routes give it to renderChat: text, plus its content parts when it has images (the template
 * then gets every message's content as parts, transformers' convention). */
export interface RenderMessage {
  role: string;
  content: string;
  parts?: ChatContentPart[];
}

/** How a chat is rendered (vLLM's chat request fields). */
export interface ChatRender {
  /** Open a new assistant turn after the messages (default true). */
  addGenerationPrompt?: boolean;
  /** Leave the final message (a prefilled assistant turn) open for the model to continue. */
  continueFinalMessage?: boolean;
  /** chat_template_kwargs: further template variables (e.g. Qwen3's enable_thinking). */
  templateKwargs?: Record<string, unknown>;
  /** chat_template (vLLM): the request's own Jinja template instead of the model's (--trust-request-chat-template). */
  template?: string;
}

export type FinishReason = 'length' | 'eos_token' | 'stop_sequence';

/** How a request ended, as the metrics label it: a finish reason, or cancelled (client gone), or error. */
export type FinishLabel = FinishReason | 'cancelled' | 'error';

export interface PrefillToken {
  id: number;
  text: string;
  /** null for the first prompt token (no prefix to condition on). */
  logprob: number | null;
  /** With top_n > 0: the most likely tokens at this position (absent for the first prompt token). */
  top?: (TokenChoice & { text: string })[];
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
  | { type: 'admitted'; promptTokens: number; cachedTokens: number; prefill: PrefillToken[] | null;
      /** GenerateRequest.embed: the prompt's last hidden state (after the final norm), or its pooling. */
      embedding?: Float32Array }
  | { type: 'token'; token: GeneratedToken; /** text to append to the output (streaming-safe, may be '') */ textDelta: string }
  | { type: 'end'; finishReason: FinishReason; generatedText: string; generatedTokens: number; seed: number | null;
      /** Generated tokens that were speculative drafts the model accepted (with a prediction: its tokens). */
      acceptedDraftTokens?: number }
  | { type: 'error'; error: EngineError };

export type EngineErrorKind =
  | 'validation'        // 422
  | 'overloaded'        // 429
  | 'adapter_not_found' // 404
  | 'adapter_unauthorized' // 401: a private adapter and no token
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
  /** Every name of the base model in the API: modelId first, then --served-model-name's others. */
  modelNames: readonly string[];
  architecture: string;
  vocabSize: number;
  /** The model's hidden size: the length of an embedding (0 when the shards did not say). */
  hiddenSize: number;
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
  /** --adapter-source: where an adapter id without adapter_source is looked up. */
  defaultAdapterSource: AdapterSource;
  device: 'cpu' | 'cuda';
  dtype: 'float32' | 'bfloat16' | 'float16';
  /** --async-scheduling: steps are published before the previous result is back. */
  asyncScheduling: boolean;
  /** --prefix-caching: KV blocks of a computed prefix are reused by later requests with the same adapter. */
  prefixCaching: boolean;
  /** --speculate: draft tokens (n-gram lookup) each decoding sequence may verify per step; 0 = off. */
  speculate: number;
  /** --scheduling-policy: whether requests' `priority` orders admission. */
  schedulingPolicy: 'fcfs' | 'priority';
  /** Structured output and tools are available: the tokenizer's pieces are text (byte-level BPE, SentencePiece). */
  structuredOutput: boolean;
  /** --trust-request-chat-template: chat requests may bring their own Jinja template (vLLM's `chat_template`). */
  trustRequestChatTemplate: boolean;
  /** --reasoning-parser: the format chat answers' thoughts are split out by (reasoning_content), or null. */
  reasoning: ReasoningFormat | null;
  /** --tool-call-parser: the format function calls take in chat answers (coordinator/http/tool-formats.ts). */
  toolFormat: ToolFormatName;
  /** The tokenizer's fill-in-the-middle tokens (completions' `suffix`), or null. */
  fimFormat?: FimFormatName | null;
  /** 'classify': the base model is a *ForSequenceClassification checkpoint — it classifies and embeds, and does
   * not generate (it has no language-model head). 'embed': it only embeds (bidirectional attention, or a base-model
   * checkpoint without a language-model head). */
  task: 'generate' | 'classify' | 'embed';
  /** A vision-language model (the shards report ModelInfo.vision): the image token as text (imageTokenId's), what a
   * chat template writes once for each image when that is another token (templateToken: Gemma 3's
   * `<start_of_image>`; absent: the image token itself), the text that stands for an image in /generate inputs (the
   * template token with the template's wrapper around it), and the tower: a fixed size and tokens per image (LLaVA,
   * Gemma 3), or the patch and merge sizes of a dynamic-resolution one (Qwen2-VL: each image its own count);
   * bidirectionalImages (Gemma 3): no prefill chunk ends inside an image; rowBreaks (Mistral 3's Pixtral): each row of
   * an image's tokens ends with a break token inside its range. Absent: text only. */
  vision?: { imageToken: string; templateToken?: string; imagePlaceholder: string; imageTokenId: number; tokensPerImage?: number;
    imageSize?: number; patchSize?: number; mergeSize?: number; bidirectionalImages?: boolean; rowBreaks?: boolean; maxImagesPerPrompt: number };
}

export interface EngineStats {
  waiting: number;
  running: number;
  usedBlocks: number;
  freeBlocks: number;
  activeAdapters: number;
  loadedAdapters: number;
  /** Bytes per shard that resident (and loading) adapters take; the byte budget (0: none, slots only). */
  adapterBytes: number;
  adapterBudgetBytes: number;
  /** Requests holding an adapter (0 when idle). */
  adapterRefs: number;
  /** KV blocks registered in the prefix cache (held by sequences or idle). */
  cachedBlocks: number;
  /** Sequences preempted (KV blocks ran out, or room for a better priority; recomputed later) since the start. */
  preemptions: number;
  /** Speculative decoding since the start: draft tokens verified, and accepted. */
  draftTokens: number;
  acceptedDraftTokens: number;
}

export interface GenerationEngine {
  readonly info: EngineInfo;
  stats(): EngineStats;
  /** Two texts as one input, joined by the tokenizer's pair template (a cross-encoder's query and document). */
  encodePair(first: string, second: string): Promise<number[]>;
  /** Tokenize with the model's tokenizer (POST /tokenize); `templated` as GenerateRequest.templated. With `images`
   * (a chat prompt: /tokenize with messages, /chat_tokenize) the ids are those generate() runs for that prompt and those
   * images — each placeholder expanded, the same 422s — and an image's tokens span its placeholder in `text`. */
  tokenize(text: string, templated?: boolean, images?: readonly PreparedImage[]): Promise<{ id: number; text: string; start: number; stop: number }[]>;
  /** Token ids to text, special tokens skipped (an echoed token-id prompt). */
  detokenize(ids: readonly number[], opts?: { keepSpecialTokens?: boolean }): string;
  /**
   * Starts a request. Validation errors and overload are thrown synchronously-ish (rejected promise with
   * EngineError) before any event; afterwards errors arrive as an 'error' event. Aborting the signal
   * (client disconnected) cancels the request and frees its KV blocks.
   */
  generate(req: GenerateRequest, signal: AbortSignal): Promise<AsyncIterable<GenerationEvent>>;
  /** True when the shards are up and the engine accepts work (GET /health). */
  healthy(): boolean;
  /** Renders chat messages with the model's chat template, generation prompt added (OpenAI chat route).
   *  Throws EngineError('validation') when the model has no chat template. */
  renderChat(messages: RenderMessage[], how?: ChatRender): string;
  /** Vision-language models: fetches, decodes and preprocesses a request's images (ImageInputError: 413 / 422). */
  prepareImages?(inputs: readonly ImageInput[], signal?: AbortSignal): Promise<PreparedImage[]>;
  /** OpenAI `model` → adapter: undefined, '' or the base model id → null (base model); a preloaded adapter
   *  name → its source ref; anything else → { id: model, source: the server's default adapter source }. */
  adapterForModel(model: string | undefined, apiToken: string | undefined): AdapterRef | null;
  /** The adapter names (--preload-adapter name=…, and those given at run time): each also works as OpenAI `model`. */
  adapterNames(): string[];
  /** The adapter admin operations (GET/POST /v1/adapters…). */
  readonly adapters: AdapterAdmin;
  /** The head /classify applies: the adapter's (a PEFT SEQ_CLS adapter), or with null the base model's (a
   * *ForSequenceClassification checkpoint). The adapter is access-checked and fetched like any; EngineError('validation')
   * when there is no head. */
  classifierHead(ref: AdapterRef | null): Promise<ClassifierHead>;
}

export type AdapterTier = 'device' | 'host' | 'disk' | 'loading';

export interface AdapterSummaryJson {
  /** Names it can be requested by: the source id, plus preload names. */
  id: string;
  names: string[];
  source: AdapterSource;
  revision: string | null;
  tier: AdapterTier;
  bytes: number;
  rank: number | null;
  /** A DoRA adapter (known once loaded; false before). */
  dora: boolean;
  lastUsed: string | null; // ISO time
  pinned: boolean;
  inFlight: number;
}

export interface AdapterAdmin {
  list(): AdapterSummaryJson[];
  /** Fetches (access-checked with ref.apiToken) and loads into a device slot; resolves when resident. */
  load(ref: AdapterRef): Promise<AdapterSummaryJson>;
  /** Evicts from the device (still cached on host/disk). EngineError('validation') if requests are using it. */
  unload(ref: AdapterRef): Promise<AdapterSummaryJson>;
  /** A pinned adapter is loaded and never evicted; unpin makes it evictable again. */
  pin(ref: AdapterRef, pinned: boolean): Promise<AdapterSummaryJson>;
  /** Loads an adapter and names it (a name like --preload-adapter's; `replace`: an existing name may be repointed).
   * EngineError('validation') when the name is taken and not replaced. */
  loadNamed(name: string, ref: AdapterRef, replace: boolean): Promise<AdapterSummaryJson>;
  /** Drops a name and unloads its adapter when idle; EngineError('adapter_not_found') for an unknown name. */
  unloadNamed(name: string): Promise<AdapterSummaryJson | null>;
}
