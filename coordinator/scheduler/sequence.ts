// Coordinator-side state of one request's sequence. The scheduler owns the status transitions;
// the layer above creates a Sequence, hands it to Scheduler.add and reads it back from events.

import type { Constraint, ImageRef, SamplingParams } from '../../protocol/index.js';

export type SequenceStatus = 'waiting' | 'running' | 'preempted' | 'finished';

export type FinishReason = 'length' | 'eos_token' | 'stop_sequence' | 'cancelled' | 'error';

export interface SequenceInit {
  seqId: string;
  promptTokens: readonly number[];
  /** Registry cache key of the adapter; null = base model. */
  adapterKey?: string | null;
  sampling: SamplingParams;
  maxNewTokens: number;
  eosTokenIds?: readonly number[];
  logits?: 'none' | 'all' | 'hidden';
  promptLogprobs?: boolean;
  topN?: number;
  /** Structured output (NewSequence.constraint). */
  constraint?: Constraint;
  /** Admission order before arrival (lower first; --scheduling-policy priority); default 0. */
  priority?: number;
  /** longrope models: the prompt is longer than the original context, so its K/V are rotated with the long
   * factors (shard/models/rope.ts) and may be shared only with other such prompts (prefix-cache.ts). */
  ropeLong?: boolean;
  /** logits 'hidden': how the prompt's final hidden states are pooled (NewSequence.pooling); default 'last'. */
  pooling?: Pooling;
  /** A bidirectional model's prompt: computed whole in one step and never from cached blocks (a later token changes
   * the earlier positions' states, so neither a chunk nor a cached prefix would be right). */
  wholePrompt?: boolean;
  /** Vision-language models: the prompt's images (NewSequence.images); their keys are part of the prefix cache's block
   * keys from each image's first token on (prefix-cache.ts). */
  images?: readonly ImageRef[];
}

/** How an embedding pools the prompt's final hidden states: the last position's, their mean or max, the first's. */
export type Pooling = 'last' | 'mean' | 'max' | 'cls';

export class Sequence {
  readonly seqId: string;
  readonly promptTokens: readonly number[];
  readonly generated: number[] = [];
  readonly adapterKey: string | null;
  /** Device slot of the adapter, set by the scheduler when it admits the sequence; -1 = base. */
  adapterSlot = -1;
  readonly sampling: SamplingParams;
  readonly maxNewTokens: number;
  readonly eosTokenIds: ReadonlySet<number>;
  readonly logits: 'none' | 'all' | 'hidden';
  readonly promptLogprobs: boolean;
  readonly topN: number;
  readonly constraint: Constraint | undefined;
  readonly ropeLong: boolean;
  readonly priority: number;
  readonly pooling: Pooling;
  readonly wholePrompt: boolean;
  readonly images: readonly ImageRef[];
  /** Milliseconds on the scheduler's clock, stamped by Scheduler.add. */
  arrivalTime = 0;

  status: SequenceStatus = 'waiting';
  finishReason: FinishReason | null = null;
  /** Why the sequence ended with 'error'. */
  errorMessage: string | null = null;
  /** Times this sequence was preempted (and later recomputed). */
  preemptions = 0;
  /** Chunked prefill, since the last admission: tokens to compute before the first decode (allTokens() then),
   * and how many of them have been sent to the shards. */
  prefillTotal = 0;
  prefillSent = 0;
  /** Prefix caching, since the last admission: leading tokens whose K/V were found cached (the shards skip
   * them; prefillSent starts here), and leading blocks registered in the cache (or found there). */
  prefillCached = 0;
  registeredBlocks = 0;
  /** Prompt tokens found in the prefix cache at the first admission (what the client is told). */
  cachedTokens = 0;
  /** Speculative decoding: the drafts the latest step sent allows it (its output may hold that many more
   * tokens, which a step built before it comes back must leave room for). */
  draftSent = 0;
  /** Content keys of the full blocks of allTokens() computed so far (prefix-cache.ts). */
  readonly blockHashes: string[] = [];

  constructor(init: SequenceInit) {
    this.seqId = init.seqId;
    this.promptTokens = [...init.promptTokens];
    this.adapterKey = init.adapterKey ?? null;
    this.sampling = { ...init.sampling };
    this.maxNewTokens = init.maxNewTokens;
    this.eosTokenIds = new Set(init.eosTokenIds ?? []);
    this.logits = init.logits ?? 'none';
    this.promptLogprobs = init.promptLogprobs ?? false;
    this.topN = init.topN ?? 0;
    this.constraint = init.constraint;
    this.ropeLong = init.ropeLong === true;
    this.priority = init.priority ?? 0;
    this.pooling = init.pooling ?? 'last';
    this.wholePrompt = init.wholePrompt === true;
    this.images = (init.images ?? []).map((r) => ({ ...r }));
  }

  /** Prompt plus generated tokens. */
  get length(): number {
    return this.promptTokens.length + this.generated.length;
  }

  /** The newest token: the one whose K/V the next decode step writes. */
  get lastToken(): number {
    const last = this.generated.length > 0 ? this.generated.at(-1) : this.promptTokens.at(-1);
    return last!;
  }

  /** Admitted and part of its prefill not yet sent: it gets chunks, not decode steps. */
  get isPrefilling(): boolean {
    return this.status === 'running' && this.prefillSent < this.prefillTotal;
  }

  /** Whether its prompt may be split over several steps (not when every position's logits are wanted). */
  get chunkable(): boolean {
    return this.logits !== 'all' && !this.promptLogprobs && !this.wholePrompt;
  }

  /** Whether it may start from cached blocks: not when every position's output is needed — logits, or a pooled
   * embedding, whose cached positions would be missing from the pool. */
  get usesPrefixCache(): boolean {
    return this.chunkable && this.pooling === 'last';
  }

  get isFinished(): boolean {
    return this.status === 'finished';
  }

  /** Prompt followed by generated tokens: what a (re)computation feeds the model. */
  allTokens(): number[] {
    return [...this.promptTokens, ...this.generated];
  }
}
