// `weft score --num-shard N` (N > 1): runs the real distributed path — a private nats-server, N shard
// processes over the shm collective, one step with every position's logits.
import pino from 'pino';
import { PROTOCOL_VERSION, bytesToFloat32 } from '../protocol/index.js';
import { GREEDY, readModelSpec } from '../shard/index.js';
import { startShardCluster } from './shard-cluster.js';
import { rows, type ScoreOptions } from './score.js';

export async function runScoreGroup(o: ScoreOptions): Promise<number[][]> {
  const blockSize = 16;
  const blocks = Math.ceil(o.ids.length / blockSize);
  const cluster = await startShardCluster({ modelDir: o.model, world: o.numShard, kvBlocks: blocks + 1, blockSize,
    adapterSlots: 1, maxLoraRank: 1024, device: o.device, log: pino({ level: 'warn', base: { name: 'score' } }, pino.destination(2)) });
  try {
    if (o.adapter) await cluster.group.loadAdapter('score', 0, { dir: o.adapter });
    const result = await cluster.group.step({ v: PROTOCOL_VERSION, type: 'step', stepId: 1, running: [], finished: [], newSeqs: [{
      seqId: 'score', adapterSlot: o.adapter ? 0 : -1, tokens: [...o.ids],
      blockTable: Array.from({ length: blocks }, (_, i) => i),
      sampling: GREEDY, generated: [], logits: 'all', promptLogprobs: false, topN: 0 }] });
    if (result.error) throw new Error(result.error);
    return rows(bytesToFloat32(result.outputs[0].logits!), readModelSpec(o.model).vocab);
  } finally {
    await cluster.stop();
  }
}
