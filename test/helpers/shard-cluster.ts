// A real shard group for tests (private nats-server + N shard processes over the shm collective).
import pino from 'pino';
import { startShardCluster as start, type ShardCluster } from '../../deploy/shard-cluster.js';
import { PROTOCOL_VERSION, type Step } from '../../protocol/index.js';
import { GREEDY } from '../../shard/index.js';

export type TestCluster = ShardCluster;

export function startShardCluster(o: { modelDir: string; world: number; kvBlocks?: number; blockSize?: number;
  adapterSlots?: number }): Promise<TestCluster> {
  return start({ modelDir: o.modelDir, world: o.world, kvBlocks: o.kvBlocks ?? 128, blockSize: o.blockSize ?? 4,
    adapterSlots: o.adapterSlots ?? 4, maxLoraRank: 64, log: pino({ level: 'warn' }) });
}

/**
 * One step that prefills every item (its own blocks of `blockSize`, from block 0 on) and returns all its rows'
 * logits: output k belongs to items[k].
 */
export function scoreStep(items: { tokens: number[]; slot: number }[], blockSize = 4): Step {
  let next = 0;
  const newSeqs = items.map((it, k) => {
    const n = Math.ceil(it.tokens.length / blockSize);
    const blockTable = Array.from({ length: n }, (_, j) => next + j);
    next += n;
    return { seqId: `s${k}`, adapterSlot: it.slot, tokens: it.tokens, blockTable, sampling: GREEDY, generated: [],
      logits: 'all' as const, promptLogprobs: false, topN: 0 };
  });
  return { v: PROTOCOL_VERSION, type: 'step', stepId: 1, newSeqs, running: [], finished: [] };
}
