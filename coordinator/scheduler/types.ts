// Configuration, hooks, outputs and errors of the scheduler.

import type { SeqOutput, Step } from '../../protocol/index.js';
import type { FinishReason, Sequence } from './sequence.js';

export interface SchedulerConfig {
  /** KV blocks the shards allocated (each shard holds the same block ids). */
  numBlocks: number;
  /** Tokens per KV block. */
  blockSize: number;
  /** Sequences per step (running decodes plus new prefills). */
  maxBatchSize: number;
  /** Prompt tokens admitted per step; one request alone larger than this still runs, alone. */
  maxBatchPrefillTokens: number;
  /** Prompt plus generated tokens of one sequence; clamped to the cache's capacity. */
  maxTotalTokens: number;
  /** Distinct adapters among the sequences of one step (the base model does not count). */
  maxActiveAdapters: number;
  /** A request waiting longer than this gets priority over other adapters (seconds). */
  adapterCycleTimeS: number;
  /** Reuse the K/V of full blocks whose tokens (and adapter) match a computed prefix. Default false. */
  prefixCaching?: boolean;
  /** Speculative decoding: draft tokens a decoding sequence may verify per step (RunningSequence.draft), when
   * free KV blocks allow it without preempting anything. Default 0 (off). */
  speculate?: number;
  /** false: no drafts at all, not even for a request's `prediction` (a model with recurrent state: a rejected draft
   * would have advanced it). Default true. */
  drafts?: boolean;
  /** An image's tokens attend to each other both ways (ModelInfo.vision.bidirectionalImages: Gemma 3): no prefill chunk
   * ends inside a sequence's image (image-chunks.ts). Default false. */
  bidirectionalImages?: boolean;
}

export interface SchedulerHooks {
  /** True when every shard holds the adapter in a device slot. Default: always true. */
  isAdapterReady?: (key: string) => boolean;
  /** Device slot of a ready adapter, asked at admission. Default: keep Sequence.adapterSlot as set. */
  adapterSlot?: (key: string) => number;
  /** Clock in milliseconds. Default: Date.now. */
  now?: () => number;
  /** Device-slot priority preemption (slot-preemption.ts; the registry's roomFor): of `candidates` — resident adapters
   * that only running sequences worse than a request waiting for `key` use, cheapest first — the ones to stop using
   * so that `key`, not resident, gets a slot and room at the next adaptersFreed; null (or empty) when none would do,
   * when `key` has room or is loading already, or when it is not the next adapter to get room. Default: never. */
  adapterRoom?: (key: string, candidates: readonly string[]) => readonly string[] | null;
  /** Called within schedule() (no step in flight) right after the running sequences of these adapters were preempted
   * for a device slot and before anything is admitted: the registry evicts them and loads the waiting adapter. */
  adaptersFreed?: (keys: readonly string[]) => void;
}

export interface ScheduledStep {
  step: Step;
  /** Tokens computed for new sequences this step (prompts, or prompt+generated when recomputing). */
  prefillTokens: number;
  /** Running sequences decoding one token each (plus, with speculative decoding, the drafts they may verify). */
  decodeTokens: number;
  /** Prompt tokens of the admitted sequences found in the prefix cache (not computed). */
  cachedTokens: number;
  /** Sequences preempted while building this step (listed in step.finished, back at the queue's front). */
  preempted: string[];
  /** Set when `preempted` made room for a better request (priority preemption): that request, admitted in this step,
   * and the adapter whose running sequences all went to give it a place under maxActiveAdapters (null: none did). */
  priorityPreemption?: { for: string; freedAdapter: string | null };
  /** Set when `preempted` freed device adapter slots or room (slot-preemption.ts) for a waiting request whose adapter
   * is not resident: that request (not admitted yet: its adapter loads first), its adapter, and the adapters all of
   * whose running sequences went. */
  slotPreemption?: { for: string; adapter: string; freedAdapters: string[] };
}

/** One sampled token of one sequence, for the layer above to stream: the shard's output plus how it ended. */
export interface SequenceEvent extends SeqOutput {
  /** Set when this token ended the sequence; its blocks are already free. */
  finished?: FinishReason;
  /** On a sequence's first token: its prompt tokens found in the prefix cache. */
  cachedTokens?: number;
  /** Speculative decoding: this token was a draft the shards accepted (not the step's first token). */
  fromDraft?: true;
  /** With prompt logprobs and topN: the alternatives at each prompt position after the first. */
  promptTop?: SeqOutput['promptTop'];
}

export type SchedulerErrorCode = 'INVALID_CONFIG' | 'INVALID_SEQUENCE' | 'OUT_OF_ORDER' | 'BAD_RESULT' | 'STEP_FAILED';

export class SchedulerError extends Error {
  override readonly name: string = 'SchedulerError';
  readonly code: SchedulerErrorCode;

  constructor(message: string, code: SchedulerErrorCode, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** A step came back with an error (or malformed); its sequences were ended with 'error' and freed, and the
 * other sequences the shards dropped with it (`requeued`) went back to the queue to start over. */
export class StepFailedError extends SchedulerError {
  override readonly name = 'StepFailedError';
  readonly stepId: number;
  readonly failed: readonly Sequence[];
  readonly requeued: readonly Sequence[];

  constructor(message: string, stepId: number, failed: readonly Sequence[], requeued: readonly Sequence[] = [],
    options?: { cause?: unknown }) {
    super(message, 'STEP_FAILED', options);
    this.stepId = stepId;
    this.failed = failed;
    this.requeued = requeued;
  }
}

/** Throws SchedulerError('INVALID_CONFIG') naming the first bad field. */
export function checkSchedulerConfig(c: SchedulerConfig): void {
  const counts: [string, number, number][] = [
    ['numBlocks', c.numBlocks, 1],
    ['blockSize', c.blockSize, 1],
    ['maxBatchSize', c.maxBatchSize, 1],
    ['maxBatchPrefillTokens', c.maxBatchPrefillTokens, 1],
    ['maxTotalTokens', c.maxTotalTokens, 2],
    ['maxActiveAdapters', c.maxActiveAdapters, 0],
    ['speculate', c.speculate ?? 0, 0],
  ];
  for (const [name, value, min] of counts) {
    if (!Number.isSafeInteger(value) || value < min) {
      throw new SchedulerError(`${name} must be an integer >= ${min}, got ${value}`, 'INVALID_CONFIG');
    }
  }
  if (c.prefixCaching !== undefined && typeof c.prefixCaching !== 'boolean') {
    throw new SchedulerError(`prefixCaching must be a boolean, got ${String(c.prefixCaching)}`, 'INVALID_CONFIG');
  }
  if (!(c.adapterCycleTimeS >= 0)) {
    throw new SchedulerError(`adapterCycleTimeS must be >= 0, got ${c.adapterCycleTimeS}`, 'INVALID_CONFIG');
  }
}
