// Speculative decoding, the scheduler's side: how many draft tokens each decoding sequence of a step may verify
// (RunningSequence.draft), and the KV slots reserved for them. The shards propose and verify the drafts
// (shard/engine/speculation.ts); a step's output then holds 1 + (accepted drafts) tokens per sequence.
//
// Drafts never cost another request anything: their slots are taken only from free blocks, after every
// decoding sequence has its own, and never by preempting. A step built before the previous one is back
// (async scheduling) feeds a token whose position is not known yet — up to `draftSent` further than one
// step earlier — so its slots are counted from the furthest it can be.

import type { RunningSequence } from '../../protocol/index.js';
import type { BlockManager } from './block-manager.js';
import type { Sequence } from './sequence.js';

/** Highest `speculate` accepted: a verification row is 1 + speculate positions. */
export const MAX_SPECULATE = 32;
/** Drafts a sequence with a predicted output (SamplingParams.prediction) may verify per step when --speculate is
 * lower: a prediction is usually right for long stretches (a file with a few edits), and it is the request's ask. */
export const PREDICTION_SPECULATE = 8;

/** How many drafts seq may be given per step: --speculate, or at least PREDICTION_SPECULATE with a prediction. */
export const speculateFor = (seq: Sequence, speculate: number): number =>
  (seq.sampling.prediction ? Math.max(speculate, PREDICTION_SPECULATE) : speculate);

/** Tokens the sequence's KV slots must cover for the step being built, before any draft: its length, plus
 * (ahead) the most tokens the step in flight can still add — 1 + the drafts it allowed. */
export function baseSlots(seq: Sequence, ahead: 0 | 1): number {
  return seq.length + ahead * (1 + seq.draftSent);
}

/** Drafts worth verifying for seq: no more than `speculate`, nor than would be left after its length limits
 * (a step yields at most 1 + drafts tokens; with a step in flight at least one more comes first). */
export function draftAllowance(seq: Sequence, speculate: number, maxTotalTokens: number, ahead: 0 | 1): number {
  const newLeft = seq.maxNewTokens - seq.generated.length - ahead;
  const totalLeft = maxTotalTokens - seq.length - ahead;
  return Math.max(0, Math.min(speculate, newLeft - 1, totalLeft - 1));
}

/**
 * Gives each decoding sequence (running[i] is decoding[i]'s message) its draft allowance where free blocks
 * cover it, appending those blocks to the message; sets every decoding sequence's draftSent.
 */
export function reserveDrafts(blocks: BlockManager, running: RunningSequence[], decoding: readonly Sequence[],
  speculate: number, maxTotalTokens: number, ahead: 0 | 1, drafts = true): void {
  const base = decoding.map((seq) => baseSlots(seq, ahead));  // before draftSent changes below
  decoding.forEach((seq, i) => {
    const k = drafts ? speculateFor(seq, speculate) : 0;  // drafts false: a model with recurrent state
    let draft = k > 0 ? draftAllowance(seq, k, maxTotalTokens, ahead) : 0;
    while (draft > 0 && !blocks.canAppend(seq.seqId, base[i]! + draft)) draft--;
    seq.draftSent = draft;
    if (draft === 0) return;
    running[i]!.newBlocks.push(...blocks.appendSlots(seq.seqId, base[i]! + draft));
    running[i]!.draft = draft;
  });
}
