// `weft score --num-shard N` (N > 1): runs the real distributed path — a private nats-server, N shard
// processes over the shm collective, one step with every position's logits.
import { connect } from 'nats';
import pino from 'pino';
import { NatsShardGroup } from '../coordinator/index.js';
import { PROTOCOL_VERSION, bytesToFloat32 } from '../protocol/index.js';
import { GREEDY, readModelSpec } from '../shard/index.js';
import { startLocalNats } from './nats-server.js';
import { ShardSupervisor } from './shard-supervisor.js';
import { rows, type ScoreOptions } from './score.js';

export async function runScoreGroup(o: ScoreOptions): Promise<number[][]> {
  const log = pino({ level: 'warn', base: { name: 'score' } }, pino.destination(2));
  const spec = readModelSpec(o.model);
  for (const id of o.ids) {
    if (!Number.isInteger(id) || id < 0 || id >= spec.vocab) throw new Error(`token id ${id} is outside the vocabulary [0, ${spec.vocab})`);
  }
  const blockSize = 16;
  const numBlocks = Math.ceil(o.ids.length / blockSize) + 1;
  const nats = await startLocalNats();
  const nc = await connect({ servers: nats.url });
  const cluster = `score${process.pid}`;
  const group = new NatsShardGroup(nc, { cluster, worldSize: o.numShard, stepTimeoutMs: 120_000, shardTimeoutMs: 30_000,
    onInvalid: (subject, err) => log.error({ subject, err: err.message }, 'invalid message') });
  let lost: string | null = null;
  const supervisor = new ShardSupervisor({ natsUrl: nats.url, cluster, modelDir: o.model, worldSize: o.numShard, kvBlocks: numBlocks,
    blockSize, adapterSlots: 1, maxLoraRank: 1024, heartbeatMs: 1000, logLevel: 'warn' }, log, (reason) => {
    lost = reason;
    group.markLost(reason);
  });
  try {
    supervisor.start();
    const deadline = Date.now() + 120_000;
    while (!group.isReady()) {
      if (lost) throw new Error(`a shard failed to start: ${lost}`);
      if (Date.now() > deadline) throw new Error('shards did not become ready within 120 s');
      await new Promise((r) => setTimeout(r, 50));
    }
    if (o.adapter) await group.loadAdapter('score', 0, o.adapter);
    const result = await group.step({ v: PROTOCOL_VERSION, type: 'step', stepId: 1, running: [], finished: [], newSeqs: [{
      seqId: 'score', adapterSlot: o.adapter ? 0 : -1, tokens: o.ids,
      blockTable: Array.from({ length: Math.ceil(o.ids.length / blockSize) }, (_, i) => i),
      sampling: GREEDY, generated: [], logits: 'all', promptLogprobs: false, topN: 0 }] });
    if (result.error) throw new Error(result.error);
    return rows(bytesToFloat32(result.outputs[0].logits!), spec.vocab);
  } finally {
    group.shutdown('score done');
    await supervisor.stop();
    group.close();
    await nc.close();
    await nats.stop();
  }
}
