// A draft model's drafts for one step on every rank of a group: rank 0 runs the draft model (draft-model.ts) and
// the others receive its drafts through the group's collective, so every rank verifies the same rows whatever
// floating-point differences two devices might have. A draft model that fails gives no drafts (the step still
// runs, without speculation), and rank 0 still joins the collective the other ranks are waiting in.
import type { BatchDrafter, DraftRequest } from './draft-model.js';

export interface DraftModelHook {
  /** The draft model on rank 0; null on the other ranks. */
  drafter: BatchDrafter | null;
  /** With more than one rank: sums a buffer over the ranks (the collective's all-reduce). */
  share?: (buffer: Float32Array) => void;
  /** Told when the draft model fails (the step goes on without drafts). */
  onError?: (e: Error) => void;
}

export async function shareDrafts(hook: DraftModelHook, requests: DraftRequest[]): Promise<number[][]> {
  let drafts: number[][] = requests.map(() => []);
  if (hook.drafter && requests.some((r) => r.max > 0)) {
    try {
      drafts = await hook.drafter.propose(requests);
    } catch (e) {
      hook.onError?.(e as Error);
    }
  }
  if (!hook.share) return drafts;
  // [count, tokens… (max slots)] per request, every rank the same layout (the maxes are computed alike everywhere);
  // rank 0 writes, the others add zeros. Token ids are exact in float32 below 2^24.
  const offsets: number[] = [];
  let size = 0;
  for (const r of requests) {
    offsets.push(size);
    size += 1 + r.max;
  }
  const buffer = new Float32Array(size);
  if (hook.drafter) {
    drafts.forEach((d, k) => {
      const n = Math.min(d.length, requests[k]!.max);
      buffer[offsets[k]!] = n;
      for (let i = 0; i < n; i++) buffer[offsets[k]! + 1 + i] = d[i]!;
    });
  }
  if (size > 0) hook.share(buffer);
  return requests.map((_, k) => Array.from(buffer.subarray(offsets[k]! + 1, offsets[k]! + 1 + buffer[offsets[k]!]!)));
}
