// How a shard's device memory is split between weights, adapter slots, step activations and the paged KV
// cache when --kv-cache-blocks / --max-adapter-slots are left to size themselves.
//
// CPU backend: the KV cache holds 16 full-length sequences, at most 1 GiB (host RAM is shared with everything
// else on the machine, and the CPU engine is rarely KV-bound). CUDA backend: like TGI, the KV cache takes what
// is left of --cuda-memory-fraction of the GPU after the weights, the adapter slots and a reserve for one step's
// activations (but no more than --max-batch-size full-length sequences can use), so a 7 B model on an 80 GB GPU
// gets tens of GB of KV,
// and a model that does not fit fails at start with the numbers instead of out of memory mid-request.
import type { ModelSpec } from '../shard/models/index.js';
import { isGatedMlp } from '../shard/models/layout.js';
import type { LaunchConfig } from './config/index.js';

const GIB = 2 ** 30;
/** CUDA context, cuBLASLt workspace, graph pools and allocator slack, per GPU. */
const CUDA_FIXED_RESERVE = 1.5 * GIB;

export type MemoryPlanConfig = Pick<LaunchConfig, 'device' | 'dtype' | 'numShard' | 'maxTotalTokens' | 'blockSize' |
  'maxBatchPrefillTokens' | 'maxBatchSize' | 'maxLoraRank' | 'maxAdapterSlots' | 'adapterMemoryFraction' | 'cudaMemoryFraction'>;

export interface MemoryPlan {
  kvBlocks: number;
  adapterSlots: number;
  /**
   * With --adapter-memory-fraction: the bytes per shard adapters may take together (the registry evicts by bytes,
   * so small adapters share what worst-case slots would reserve); 0: slots only (--max-adapter-slots).
   */
  adapterBudgetBytes: number;
  /** Bytes per shard, for the start-up log: what each part was given. */
  bytes: { device: number; usable: number; weights: number; adapters: number; activations: number; kv: number };
}

export function dtypeBytes(o: Pick<LaunchConfig, 'device' | 'dtype'>): number {
  return o.device === 'cpu' || o.dtype === 'float32' ? 4 : 2;
}

/** Base weight elements on one shard (linear layers split over the shards; embeddings and norms counted whole). */
export function weightElements(spec: ModelSpec, numShard: number): number {
  const h = spec.hidden, q = spec.heads * spec.headDim, kv = spec.kvHeads * spec.headDim;
  const gated = isGatedMlp(spec) ? 2 : 1;
  const layer = h * (q + 2 * kv) + q * h + gated * h * spec.intermediate + spec.intermediate * h;
  const embeddings = spec.vocab * h * (spec.tieEmbeddings ? 1 : 2);
  return (spec.layers * layer) / numShard + embeddings;
}

/** One adapter slot's A/B elements on one shard at rank `rank` on every module (the worst case a slot holds). */
export function adapterSlotElements(spec: ModelSpec, rank: number, numShard: number): number {
  const h = spec.hidden, q = spec.heads * spec.headDim, kv = spec.kvHeads * spec.headDim, inter = spec.intermediate;
  // q, k, v, o, gate, up, down — A: r × in, B: out × r
  const perLayer = rank * ((h + q) + 2 * (h + kv) + (q + h) + 2 * (h + inter) + (inter + h));
  return (perLayer * spec.layers) / numShard;
}

/** Most adapter slots a byte budget gets (each costs table entries on every module, ~10 KB for Llama-2-7B). */
export const MAX_BUDGET_SLOTS = 1024;
/**
 * The rank a byte budget's slot count is planned for: rank 1 on every module, so the bytes bind before the slots
 * for nearly any adapter (up to MAX_BUDGET_SLOTS; a slot itself costs only its table entries).
 */
export const BUDGET_SLOT_RANK = 1;

/** KV bytes of one block on one shard (K and V, every layer). */
export function kvBlockBytes(spec: ModelSpec, o: Pick<LaunchConfig, 'device' | 'dtype' | 'numShard' | 'blockSize'>): number {
  const kvHeadsLocal = Math.max(1, Math.ceil(spec.kvHeads / o.numShard));
  return 2 * spec.layers * kvHeadsLocal * spec.headDim * dtypeBytes(o) * o.blockSize;
}

/** One step's activations at the largest prefill (rows × the widest per-row buffers) plus the logits rows. */
export function activationBytes(spec: ModelSpec, o: MemoryPlanConfig): number {
  const rows = Math.max(o.maxBatchPrefillTokens, o.maxBatchSize);
  const q = spec.heads * spec.headDim, kv = spec.kvHeads * spec.headDim;
  const interLocal = spec.intermediate / o.numShard;
  const perRow = 4 * spec.hidden * 2 /* fp32 residual + all-reduce copy */ +
    dtypeBytes(o) * (spec.hidden * 2 + (q + 2 * kv) / o.numShard + q / o.numShard + 3 * interLocal);
  const logitRows = o.maxBatchSize;
  // Logits rows: the dtype and fp32 copies, the processed row and the sampling sort (keys, ids, both doubled).
  return rows * perRow + logitRows * spec.vocab * 32;
}

/** The CPU rule (host RAM): 16 full-length sequences, at most 1 GiB, never below one sequence. */
export function autoKvBlocks(spec: ModelSpec, o: Pick<LaunchConfig, 'maxTotalTokens' | 'blockSize' | 'numShard'>): number {
  const bytesPerBlock = kvBlockBytes(spec, { ...o, device: 'cpu', dtype: 'float32' });
  const want = Math.ceil((o.maxTotalTokens * 16) / o.blockSize);
  const cap = Math.floor(GIB / bytesPerBlock);
  return Math.max(Math.ceil(o.maxTotalTokens / o.blockSize) + 1, Math.min(want, cap));
}

/**
 * Sizes the adapter slots (when --adapter-memory-fraction is set) and the KV cache (when --kv-cache-blocks is 0)
 * for one shard with `deviceBytes` of memory (the GPU's total on cuda, host RAM on cpu). With a draft model
 * (--speculative-model) the plan is shard 0's, which holds it whole: its weights and step activations come off
 * the top, and each KV block also pays for the draft's block (it has as many as the model).
 */
export function planMemory(spec: ModelSpec, o: MemoryPlanConfig & { kvCacheBlocks: number }, deviceBytes: number,
  shardsPerDevice = 1, draft?: ModelSpec): MemoryPlan {
  const elem = dtypeBytes(o);
  const slotBytes = adapterSlotElements(spec, o.maxLoraRank, o.numShard) * elem;
  // A byte budget: as many slots as rank-1 adapters on every module fill (capped), the registry keeping the
  // adapters' bytes within the budget.
  const adapterBudgetBytes = o.adapterMemoryFraction > 0 ? Math.floor(o.adapterMemoryFraction * deviceBytes) : 0;
  const smallBytes = adapterSlotElements(spec, BUDGET_SLOT_RANK, o.numShard) * elem;
  const adapterSlots = adapterBudgetBytes > 0
    ? Math.max(1, Math.min(MAX_BUDGET_SLOTS, Math.floor(adapterBudgetBytes / smallBytes)))
    : o.maxAdapterSlots;
  const weights = (weightElements(spec, o.numShard) + (draft ? weightElements(draft, 1) : 0)) * elem;
  const adapters = adapterBudgetBytes > 0 ? adapterBudgetBytes : adapterSlots * slotBytes;
  const blockBytes = kvBlockBytes(spec, o) + (draft ? kvBlockBytes(draft, { ...o, numShard: 1 }) : 0);
  const minBlocks = Math.ceil(o.maxTotalTokens / o.blockSize) + 1;
  if (o.device === 'cpu') {
    const kvBlocks = o.kvCacheBlocks > 0 ? o.kvCacheBlocks : autoKvBlocks(spec, o);
    return { kvBlocks, adapterSlots, adapterBudgetBytes,
      bytes: { device: deviceBytes, usable: deviceBytes, weights, adapters, activations: 0, kv: kvBlocks * blockBytes } };
  }
  // Shards sharing one GPU (tensor parallelism over shm on a single device) split it evenly.
  const usable = (o.cudaMemoryFraction * deviceBytes) / shardsPerDevice - CUDA_FIXED_RESERVE;
  const activations = activationBytes(spec, o) + (draft ? activationBytes(draft, { ...o, numShard: 1 }) : 0);
  const left = usable - weights - adapters - activations;
  const gb = (n: number) => `${(n / 1e9).toFixed(1)} GB`;
  const share = shardsPerDevice > 1 ? `, shared by ${shardsPerDevice} shards` : '';
  const breakdown = `${gb(usable)} usable (--cuda-memory-fraction ${o.cudaMemoryFraction} of ${gb(deviceBytes)}${share}, less ` +
    `${gb(CUDA_FIXED_RESERVE)} for the CUDA context): weights ${gb(weights)}${draft ? ' (with the draft model)' : ''}, ${adapterSlots} adapter slots ${gb(adapters)}` +
    `${adapterBudgetBytes > 0 ? ' (a byte budget)' : ''}, ` +
    `step activations ${gb(activations)}`;
  let kvBlocks = o.kvCacheBlocks;
  if (kvBlocks === 0) {
    // No more than --max-batch-size full-length sequences can hold blocks at once.
    const useful = (minBlocks - 1) * o.maxBatchSize + 1;
    kvBlocks = Math.min(useful, Math.floor(left / blockBytes));
    if (kvBlocks < minBlocks) {
      throw new Error(`the model does not fit on this GPU with room for one ${o.maxTotalTokens}-token sequence: ${breakdown}, ` +
        `leaving ${gb(Math.max(0, left))} for the KV cache, which needs ${gb(minBlocks * blockBytes)}. Use more shards ` +
        '(--num-shard), fewer adapter slots, a smaller --max-batch-prefill-tokens or --max-total-tokens, or a larger --cuda-memory-fraction');
    }
  } else if (kvBlocks * blockBytes > left) {
    throw new Error(`--kv-cache-blocks ${kvBlocks} needs ${gb(kvBlocks * blockBytes)} and ${gb(Math.max(0, left))} is left: ${breakdown}. ` +
      'Use fewer blocks (0 sizes them automatically)');
  }
  return { kvBlocks, adapterSlots, adapterBudgetBytes, bytes: { device: deviceBytes, usable, weights, adapters, activations, kv: kvBlocks * blockBytes } };
}
