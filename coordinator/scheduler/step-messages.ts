// What the scheduler writes into a Step for a sequence it admits, and the check of a StepResult's outputs
// against the step that was sent: the message side of scheduler.ts, kept apart so that file stays about
// deciding what runs.
import type { NewSequence, PrefillChunk, SeqOutput } from '../../protocol/index.js';
import { chunkLength } from './image-chunks.js';
import type { Sequence } from './sequence.js';
import type { SchedulerConfig } from './types.js';

/** A newly admitted (or re-admitted, after preemption) sequence as the shards receive it. */
export function newSequenceMessage(seq: Sequence, blockTable: readonly number[]): NewSequence {
  const recompute = seq.generated.length > 0;
  const pending = seq.prefillTotal - seq.prefillSent;
  return {
    seqId: seq.seqId,
    adapterSlot: seq.adapterKey === null ? -1 : seq.adapterSlot,
    tokens: seq.allTokens().slice(0, seq.prefillSent),
    blockTable: [...blockTable],
    sampling: { ...seq.sampling },
    generated: [...seq.generated],
    logits: seq.logits,
    ...(seq.pooling !== 'last' ? { pooling: seq.pooling } : {}),
    // Prompt logprobs were already reported by the first computation.
    promptLogprobs: seq.promptLogprobs && !recompute,
    topN: seq.topN,
    ...(pending > 0 ? { pending } : {}),
    ...(seq.prefillCached > 0 ? { cached: seq.prefillCached } : {}),
    ...(seq.constraint !== undefined ? { constraint: seq.constraint } : {}),
    ...(seq.images.length > 0 ? { images: seq.images.map((r) => ({ ...r })) } : {}),
  };
}

/** Why a step's outputs do not match what it was sent (a missing or an unexpected sequence), or null. */
export function outputProblem(
  sent: readonly Sequence[],
  expected: readonly Sequence[],
  outputs: ReadonlyMap<string, SeqOutput>,
): string | null {
  for (const seq of expected) if (!outputs.has(seq.seqId)) return `no output for sequence ${seq.seqId}`;
  const sentIds = new Set(sent.map((seq) => seq.seqId));
  for (const seqId of outputs.keys()) if (!sentIds.has(seqId)) return `output for sequence ${seqId}, which was not in the step`;
  return null;
}

/** The next chunk of every sequence in `running` whose prefill is under way, oldest first, while the step's budget
 * lasts (taking it from budget.left and advancing each one's prefillSent). With bidirectional images a chunk does not
 * end inside an image (image-chunks.ts): a sequence whose next image does not fit what is left gets none this step. */
export function continuePrefills(running: readonly Sequence[], budget: { left: number },
  config: Pick<SchedulerConfig, 'maxBatchPrefillTokens' | 'bidirectionalImages'>): { seq: Sequence; chunk: PrefillChunk }[] {
  const chunks: { seq: Sequence; chunk: PrefillChunk }[] = [];
  for (const seq of running) {
    if (!seq.isPrefilling || budget.left <= 0) continue;
    const n = chunkLength(seq.prefillSent, seq.prefillTotal - seq.prefillSent, budget.left, seq.images, config.bidirectionalImages === true,
      budget.left === config.maxBatchPrefillTokens);
    if (n === 0) continue;
    const tokens = seq.allTokens().slice(seq.prefillSent, seq.prefillSent + n);
    seq.prefillSent += n;
    budget.left -= n;
    chunks.push({ seq, chunk: { seqId: seq.seqId, tokens, pending: seq.prefillTotal - seq.prefillSent } });
  }
  return chunks;
}
