// Tensor-parallel partition of one model across `world` ranks (DESIGN.md §3, Megatron layout).
// Column-parallel outputs (q/k/v heads, gate/up rows, vocab rows) and row-parallel inputs (o, down)
// are split in contiguous ranges; KV heads fewer than ranks are replicated.
import { UnsupportedModelError } from './errors.js';
import type { ModelSpec } from './spec.js';

export interface Range { start: number; end: number }

export interface Partition {
  rank: number;
  world: number;
  heads: Range;      // query heads owned by this rank
  kvHeads: Range;    // kv heads this rank holds (replicated when kvHeads < world)
  intermediate: Range;
  /** Rows of every MoE expert's intermediate this rank holds (split like a dense MLP's); empty for a dense model. */
  expertIntermediate: Range;
  /** Rows of the shared expert's intermediate (its own width: Qwen2-MoE, DeepSeek-V2), else expertIntermediate. */
  sharedIntermediate: Range;
  vocab: Range;
  vocabChunk: number;
}

export function partitionFor(spec: ModelSpec, rank: number, world: number): Partition {
  if (!Number.isInteger(world) || world < 1) throw new UnsupportedModelError(`--num-shard must be a positive integer, got ${world}`);
  if (spec.heads % world !== 0) {
    throw new UnsupportedModelError(`num_attention_heads ${spec.heads} is not divisible by --num-shard ${world}`);
  }
  const headsPer = spec.heads / world;
  const heads = { start: rank * headsPer, end: (rank + 1) * headsPer };
  const group = spec.heads / spec.kvHeads;
  let kvHeads: Range;
  if (spec.kvHeads >= world) {
    if (spec.kvHeads % world !== 0) {
      throw new UnsupportedModelError(`num_key_value_heads ${spec.kvHeads} is not divisible by --num-shard ${world}`);
    }
    const per = spec.kvHeads / world;
    kvHeads = { start: rank * per, end: (rank + 1) * per };
  } else {
    // Fewer KV heads than ranks: each rank's query heads must fall in a single KV group, whose head it replicates.
    if (group % headsPer !== 0) {
      throw new UnsupportedModelError(`cannot split ${spec.heads} query heads / ${spec.kvHeads} kv heads over ${world} shards`);
    }
    const kv = Math.floor(heads.start / group);
    kvHeads = { start: kv, end: kv + 1 };
  }
  const chunk = (n: number): Range => {
    const size = Math.ceil(n / world);
    const start = Math.min(n, rank * size);
    return { start, end: Math.min(n, start + size) };
  };
  const intermediate = chunk(spec.intermediate);
  const expertIntermediate = spec.moe ? chunk(spec.moe.intermediate) : { start: 0, end: 0 };
  const sharedIntermediate = spec.moe?.sharedIntermediate ? chunk(spec.moe.sharedIntermediate) : expertIntermediate;
  const vocab = chunk(spec.vocab);
  if (intermediate.end <= intermediate.start || vocab.end <= vocab.start || (spec.moe && (expertIntermediate.end <= expertIntermediate.start || sharedIntermediate.end <= sharedIntermediate.start))) {
    throw new UnsupportedModelError(`--num-shard ${world} leaves rank ${rank} with no intermediate or vocabulary rows`);
  }
  return { rank, world, heads, kvHeads, intermediate, expertIntermediate, sharedIntermediate, vocab, vocabChunk: Math.ceil(spec.vocab / world) };
}

export const rangeLen = (r: Range): number => r.end - r.start;
