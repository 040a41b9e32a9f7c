// Every coordinator↔shard message. Each payload carries `v` (PROTOCOL_VERSION) and `type`.
// The runtime schemas in validate.ts are type-checked against these interfaces.

export interface SamplingParams {
  temperature: number;
  topK: number; // 0 = off
  topP: number; // 1 = off
  typicalP: number; // 1 = off
  /** min-p: keep tokens at least this fraction as likely as the most likely one. Absent = 0 (off). */
  minP?: number;
  repetitionPenalty: number;
  /** OpenAI's penalties on the generated tokens: logit -= frequencyPenalty * count + presencePenalty * (count > 0).
   * Absent = 0 (off). */
  frequencyPenalty?: number;
  presencePenalty?: number;
  /** OpenAI logit_bias: added to these tokens' logits (after the penalties, before temperature). */
  logitBias?: { token: number; bias: number }[];
  doSample: boolean;
  seed: number; // integer 0..2^53-1
  /** min_tokens: `endTokens` (the end-of-generation ids) cannot be drawn until this many tokens are generated. */
  minTokens?: number;
  endTokens?: number[];
  /** vLLM's allowed_token_ids: only these tokens may be drawn (with a constraint: those it also allows). */
  allowedTokens?: number[];
  /** vLLM's bad_words as token sequences: the last token of one is never drawn right after the others (a
   * one-token word never at all). Matched against the generated tokens only. */
  badWords?: number[][];
  /** OpenAI's Predicted Outputs: the tokens the answer is expected to be. A decoding sequence drafts from them
   * (speculative decoding, verified as any draft: the output is unchanged), instead of from its own history. */
  prediction?: number[];
}

/** Greedy decoding of the model's own distribution: no temperature, top-k/p, penalties or bias. */
export const GREEDY: SamplingParams = {
  temperature: 1, topK: 0, topP: 1, typicalP: 1, repetitionPenalty: 1, doSample: false, seed: 0,
};

/** Structured output: the whole generated text must match `pattern` — a regular expression (constraint/regex.ts)
 * or, with `syntax`, a context-free grammar in that notation (constraint/gbnf.ts, constraint/lark.ts; `rules`: a
 * JSON array of regular expressions, one per rule, the first the root, where `\R{k}` calls rule k — what a
 * recursive JSON Schema compiles to). */
export interface ConstraintSource {
  pattern: string;
  syntax?: 'gbnf' | 'lark' | 'rules';
}

export interface Constraint extends ConstraintSource {
  endTokens: number[];
}

export interface NewSequence {
  seqId: string;
  adapterSlot: number; // -1 = base model only
  /** Tokens from position 0 (the prompt, or prompt+generated when recomputing after preemption): all are the
   * repetition-penalty history; those after `cached` are computed now. */
  tokens: number[];
  /** KV block ids covering tokens.length (+ room for the next token). */
  blockTable: number[];
  sampling: SamplingParams;
  /** Tokens already generated (non-empty after a preemption): repetition penalty and the RNG position. */
  generated: number[];
  /** 'all': return float32 logits for every position (used by `weft score` and tests). 'hidden': return the
   * final hidden state (after the final norm) of the prompt's last position in SeqOutput.hidden (embeddings). */
  logits: 'none' | 'all' | 'hidden';
  /** logits 'hidden' only: SeqOutput.hidden pools every prompt position's final hidden state instead of taking the
   * last one's — their mean, their element-wise max, or the first position's ('cls'). Such a sequence never starts
   * from cached tokens; its chunks' states are pooled as they come. Absent: the last position (last-token). */
  pooling?: 'mean' | 'max' | 'cls';
  /** Return the log-softmax of each prompt token given its prefix (decoder_input_details). */
  promptLogprobs: boolean;
  /** Number of top alternative tokens to report per generated token (0 = none). */
  topN: number;
  /** Chunked prefill: tokens of this sequence still to come in later steps' `chunks` (absent or 0: `tokens`
   * is the whole sequence). While tokens are pending the shard stores their K/V and samples nothing. */
  pending?: number;
  /** Prefix caching: the first `cached` tokens (a multiple of the block size, fewer than tokens.length) already
   * have their K/V in the leading blocks of blockTable, computed for another sequence with the same adapter and
   * tokens; the shard computes only the rest. Those blocks are shared: never written. */
  cached?: number;
  /** Structured output: the generated text must match `pattern` (protocol/constraint/regex.ts) as a whole; each
   * rank allows only tokens that keep it completable, and one of `endTokens` (the coordinator's end-of-generation
   * ids, one source for both sides) once it is complete. */
  constraint?: Constraint;
  /** Vision-language models: images whose features replace placeholder tokens of `tokens`. Their pixels come in
   * `image.data` messages published before this step (a rank waits a while for a key it has not got yet). */
  images?: ImageRef[];
}

/** An image in a prompt: tokens[start, start + length) are its placeholder tokens (the model's image token id;
 * `length` = ModelInfo.vision.tokensPerImage, or what the image's size gives for a dynamic-resolution tower),
 * replaced by the vision tower's projected features of image `key`. With `ModelInfo.vision.rowBreaks` (Pixtral) the
 * range also holds the row-break / end tokens the processor writes between rows of image tokens: only the positions
 * holding imageTokenId take features (in order); the others keep their token embeddings. */
export interface ImageRef {
  key: string;
  start: number;
  length: number;
}

/** Chunked prefill: the next part of a sequence whose prefill started in an earlier step (blocks were all
 * given with its NewSequence). `pending` counts what is still to come; at 0 the shard samples its next token. */
export interface PrefillChunk {
  seqId: string;
  tokens: number[];
  pending: number;
}

/** Decode one more token: `token` was sampled last step; `newBlocks` are appended to its block table. */
export interface RunningSequence {
  seqId: string;
  /** The token to feed, or SAMPLED_LAST_STEP when the coordinator sent this step before the previous one's
   * result came back (async scheduling): every rank then feeds the token it sampled for the sequence itself. */
  token: number;
  newBlocks: number[];
  /** Speculative decoding: at most this many draft tokens may follow `token` in this step (the coordinator
   * reserved KV slots for them). The shard proposes them from the sequence's own tokens (n-gram lookup),
   * verifies them in the same forward pass and reports the accepted ones in SeqOutput.more. Absent: 0. */
  draft?: number;
}

/** RunningSequence.token: "the token you sampled for this sequence in the step before". */
export const SAMPLED_LAST_STEP = -1;

export interface Step {
  v: number;
  type: 'step';
  stepId: number;
  newSeqs: NewSequence[];
  running: RunningSequence[];
  /** Free these sequences' state (ended, cancelled or preempted). */
  finished: string[];
  /** Continued prefills (absent: none). */
  chunks?: PrefillChunk[];
}

export interface TokenChoice {
  token: number;
  logprob: number;
}

/** One generated token with its log-prob and alternatives. */
export interface GeneratedToken {
  token: number;
  logprob: number;
  top: TokenChoice[];
}

export interface SeqOutput {
  seqId: string;
  token: number;
  logprob: number;
  top: TokenChoice[];
  /** Speculative decoding: the tokens generated after `token` in this step, in order (accepted drafts and the
   * token sampled after the last of them). Absent: none. */
  more?: GeneratedToken[];
  /** Speculative decoding: draft tokens this step verified for the sequence (for the acceptance metrics). */
  drafted?: number;
  promptLogprobs?: number[];
  /** With promptLogprobs and topN > 0: the topN most likely tokens at each prompt position after the first. */
  promptTop?: TokenChoice[][];
  /** float32 little-endian, [positions, vocab]; see float32ToBytes / bytesToFloat32. */
  logits?: Uint8Array;
  /** NewSequence.logits 'hidden': float32 little-endian [hidden], with the sequence's first token (pooled as
   * NewSequence.pooling says). */
  hidden?: Uint8Array;
  /** This sequence alone failed (its structured-output automaton grew past its limit): `token` is meaningless;
   * the coordinator ends the sequence with this reason and the rest of the step stands. */
  error?: string;
}

export interface StepResult {
  v: number;
  type: 'step.result';
  stepId: number;
  rank: number;
  outputs: SeqOutput[];
  error?: string;
  /** With `error`: the rank cannot go on (its forward pass failed where the ranks' collectives may now be out of
   * step, or its CUDA context may be broken) and exits so that the group is restarted. */
  fatal?: boolean;
  computeMs: number;
}

/** A per-request merge of several adapters, built on the shard from their directories (DESIGN.md §4). */
export interface MergeRecipe {
  dirs: string[];
  weights: number[];
  strategy: 'linear' | 'ties' | 'dare_linear' | 'dare_ties' | 'cat';
  density?: number;
  majoritySignMethod: 'total' | 'frequency';
  seed: number;
}

/**
 * `dir`: local directory holding adapter_config.json + weights (unused when `merge` is set).
 * `hostKey`: identity of the files for the shard's host-RAM cache (the key without the slot).
 */
export interface AdapterLoad {
  v: number;
  type: 'adapter.load';
  key: string;
  slot: number;
  dir: string;
  merge?: MergeRecipe;
}

export interface AdapterLoaded {
  v: number;
  type: 'adapter.loaded';
  key: string;
  slot: number;
  rank: number; // shard rank
  bytes: number; // what this rank's slot holds, in the executor's dtype
  maxRank: number; // largest LoRA r over the adapter's modules
  /** A DoRA adapter (magnitude vectors: shard/models/dora.ts). */
  dora?: boolean;
  /** Served from the shard's host-RAM cache (no disk read). */
  fromHost?: boolean;
  /** Bytes the parsed adapter takes in the shard's host-RAM cache. */
  hostBytes?: number;
  /** Reading (or merging), planning and staging it (copy / GPU upload), off the shard's steps, ms. */
  readMs?: number;
  /** Installing the staged adapter into the slot, in the shard's mailbox between steps, ms. */
  installMs?: number;
}

export interface AdapterFailed {
  v: number;
  type: 'adapter.failed';
  key: string;
  slot: number;
  rank: number;
  reason: string;
}

/**
 * Read an adapter into the shards' host-RAM tier ahead of a load (it waits for a slot or for room in the
 * byte budget): the load that follows skips the read. No reply; a failure shows in the load.
 */
export interface AdapterPrefetch {
  v: number;
  type: 'adapter.prefetch';
  key: string;
  dir: string;
  merge?: MergeRecipe;
}

/**
 * One rank's share of a DoRA adapter's squared weight norms for its row-parallel modules (o, down: each rank holds
 * a slice of every weight row), sent to the other ranks while the adapter loads (shard/dora-exchange.ts). `ticket`
 * numbers the slot's load and evict messages — every rank counts the same ones — so shares of two loads of a slot
 * never mix. `data`: float32 values, little-endian, chunk `chunk` of `chunks` (NATS payloads are limited).
 * `error`: this rank could not make its share, so its peers stop waiting.
 */
export interface AdapterNorms {
  v: number;
  type: 'adapter.norms';
  key: string;
  slot: number;
  ticket: number;
  rank: number;
  chunk: number;
  chunks: number;
  data: Uint8Array;
  error?: string;
}

/**
 * One chunk of an image's pixel values for a vision-language model, published by the coordinator before the step
 * whose NewSequence refers to it by `key` (a content hash: the same image sent twice has one key). `data`: float32
 * little-endian, [3, height, width] channels first, exactly as the model's image processor gives them (resized,
 * cropped, rescaled, normalized); chunk `chunk` of `chunks` (NATS payloads are limited). A rank keeps an image while
 * a sequence that refers to it is prefilling, and a bounded number of bytes of recent ones after that.
 */
export interface ImageData {
  v: number;
  type: 'image.data';
  key: string;
  height: number;
  width: number;
  chunk: number;
  chunks: number;
  data: Uint8Array;
}

export interface AdapterEvict {
  v: number;
  type: 'adapter.evict';
  key: string;
  slot: number;
}

export interface ModelInfo {
  architecture: string;
  vocabSize: number;
  numLayers: number;
  maxPositions: number;
  eosTokenIds: number[];
  /** longrope models: prompts longer than this are rotated with the long factors (their K/V are cached apart). */
  ropeLongFrom?: number;
  /** The hidden size: an embedding's length (NewSequence.logits 'hidden'). */
  hiddenSize?: number;
  /** Vision-language models: the placeholder token id an image's features replace, how many of them one image
   * takes, and the square pixel size the vision tower wants. */
  vision?: VisionInfo;
}

export interface VisionInfo {
  imageTokenId: number;
  /** A tower with one input size (LLaVA's CLIP): every image is imageSize × imageSize pixels and takes
   * tokensPerImage placeholder tokens. Absent for a dynamic-resolution tower (Qwen2-VL), whose images have any size
   * that is a multiple of patchSize·mergeSize on both sides and take (height/patchSize/mergeSize)·(width/…) tokens. */
  tokensPerImage?: number;
  imageSize?: number;
  /** Dynamic-resolution towers: the patch side in pixels and how many patches a side of one token merges. */
  patchSize?: number;
  mergeSize?: number;
  /** Gemma 3: an image's tokens attend to each other both ways (the rest stays causal), so the coordinator never
   * ends a prefill chunk inside an image (its earlier tokens need its later ones). */
  bidirectionalImages?: boolean;
  /** Pixtral (Mistral 3): each row of an image's tokens ends with a break token (the last row with an end token),
   * inside its ImageRef range: an image of h × w token rows and columns spans h·(w + 1) positions, h·w of them features. */
  rowBreaks?: boolean;
}

export interface ShardReady {
  v: number;
  type: 'shard.ready';
  rank: number;
  worldSize: number;
  pid: number;
  model: ModelInfo;
  kvBlocks: number;
  blockSize: number;
  adapterSlots: number;
}

export interface ShardHeartbeat {
  v: number;
  type: 'shard.heartbeat';
  rank: number;
  ts: number;
  stepId: number;
}

/**
 * Rank r >= 1 of an NCCL group asks rank 0 for the group's unique id: a NATS request on
 * weft.<cluster>.shard.collective, answered with a ShardCollective. `groupId` names one start of the group
 * (the supervisor makes a fresh one per start), so a rank never joins the id of an earlier start.
 */
export interface ShardCollectiveRequest {
  v: number;
  type: 'shard.collective.request';
  groupId: string;
  rank: number;
}

/** Rank 0's answer to a ShardCollectiveRequest: the NCCL unique id (COLLECTIVE_ID_BYTES) of group `groupId`. */
export interface ShardCollective {
  v: number;
  type: 'shard.collective';
  groupId: string;
  uniqueId: Uint8Array;
}

export interface Shutdown {
  v: number;
  type: 'shutdown';
  reason: string;
}

export type Message =
  | Step
  | StepResult
  | AdapterLoad
  | AdapterLoaded
  | AdapterFailed
  | AdapterEvict
  | AdapterPrefetch
  | AdapterNorms
  | ImageData
  | ShardReady
  | ShardHeartbeat
  | ShardCollectiveRequest
  | ShardCollective
  | Shutdown;

export type MessageType = Message['type'];

/** The message interface whose `type` is T, e.g. MessageOf<'step'> = Step. */
export type MessageOf<T extends MessageType> = Extract<Message, { type: T }>;
