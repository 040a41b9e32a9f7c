// The nccl collective's wiring, runnable without NCCL or a GPU: the unique-id exchange against a real nats-server
// (the collective construction injected), the addon's refusal here, and the --collective flag.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from 'nats';
import { trace } from '@opentelemetry/api';
import { pino, type Logger } from 'pino';
import { ConfigError, parseArgs } from '../../deploy/config/index.js';
import { createCollective } from '../../kernels/index.js';
import { cudaInfo, ncclUniqueId } from '../../kernels/cuda.js';
import { PROTOCOL_VERSION, collectiveSubject, decodeAs, encode } from '../../protocol/index.js';
import { CollectiveGroupError, ShardActor, joinNcclGroup, type NcclGroupOptions } from '../../shard/actor.js';
import { startNatsServer, type NatsServerHandle } from '../helpers/nats-server.js';

interface Joined {
  rank: number;
  uniqueId: Uint8Array;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A logger that keeps its warnings. */
function recordingLogger(): { logger: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const logger = { warn: (_fields: unknown, msg: string) => warnings.push(msg) } as unknown as Logger;
  return { logger, warnings };
}

describe('nccl unique-id exchange over a real nats-server', () => {
  let server: NatsServerHandle;
  const conns: NatsConnection[] = [];
  let n = 0;

  before(async () => {
    server = await startNatsServer();
  });
  after(async () => {
    for (const nc of conns) await nc.close();
    await server?.stop();
  });

  /** A connection of its own per rank, as in separate shard processes. */
  async function conn(): Promise<NatsConnection> {
    const nc = await connect({ servers: server.url });
    conns.push(nc);
    return nc;
  }

  /** Options for `rank` of a group; every call gets a cluster of its own unless one is given. */
  async function rankOf(rank: number, world: number, groupId: string, extra: Partial<NcclGroupOptions<Joined>> & {
    events?: string[]; id?: Uint8Array; cluster?: string;
  } = {}): Promise<NcclGroupOptions<Joined>> {
    return {
      nc: await conn(), cluster: extra.cluster ?? `nccl${process.pid}x${n++}`, groupId, rank, world, timeoutMs: 5_000,
      retryMs: 20,
      makeUniqueId: () => extra.id ?? randomBytes(128),
      createCollective: (uniqueId) => {
        extra.events?.push(`create ${rank}`);
        return { rank, uniqueId };
      },
      ...extra,
    };
  }

  it('gives every rank rank 0\'s 128 bytes, even when the other ranks start first', async () => {
    const cluster = `nccl${process.pid}order`;
    const id = randomBytes(128);
    const events: string[] = [];
    const ranks = [1, 2].map(async (r) => joinNcclGroup(await rankOf(r, 3, 'g1', { cluster, events })));
    await sleep(300); // ranks 1 and 2 are asking before anyone answers
    // Rank 0 builds like ncclCommInitRank: blocking its thread. Its answers must already be on their way by then.
    const rank0 = joinNcclGroup(await rankOf(0, 3, 'g1', { cluster, events, id, createCollective: (uniqueId) => {
      events.push('create 0');
      const until = Date.now() + 300;
      while (Date.now() < until) { /* blocked, as in ncclCommInitRank */ }
      return { rank: 0, uniqueId };
    } }));
    const joined = await Promise.all([rank0, ...ranks]);
    for (const [r, j] of joined.entries()) {
      assert.equal(j.rank, r);
      assert.equal(j.uniqueId.length, 128);
      assert.deepEqual(Buffer.from(j.uniqueId), Buffer.from(id), `rank ${r} got rank 0's id`);
    }
    assert.deepEqual([...events].sort(), ['create 0', 'create 1', 'create 2']);
  });

  it('a world of one builds at once, waiting for no one', async () => {
    const id = randomBytes(128);
    const j = await joinNcclGroup(await rankOf(0, 1, 'solo', { id, timeoutMs: 1 }));
    assert.equal(j.rank, 0);
    assert.deepEqual(Buffer.from(j.uniqueId), id);
  });

  it('a restarted group never joins the stale id: rank 0 answers only its own group id', async () => {
    const cluster = `nccl${process.pid}restart`;
    const stale = recordingLogger();
    // Rank 0 of the previous start is still alive and waiting for its rank 1, which died.
    const oldRank0 = joinNcclGroup(await rankOf(0, 2, '/weft-1-old', { cluster, id: Buffer.alloc(128, 1), timeoutMs: 1_500,
      logger: stale.logger }));
    const oldFailed = assert.rejects(oldRank0, (e: unknown) => {
      assert.ok(e instanceof CollectiveGroupError, String(e));
      assert.match(e.message, /^rank 0: rank\(s\) 1 of group \/weft-1-old did not ask for the NCCL unique id within 1500 ms/);
      return true;
    });
    const fresh = Buffer.alloc(128, 2);
    const [r0, r1] = await Promise.all([
      joinNcclGroup(await rankOf(0, 2, '/weft-1-new', { cluster, id: fresh })),
      joinNcclGroup(await rankOf(1, 2, '/weft-1-new', { cluster })),
    ]);
    assert.deepEqual(Buffer.from(r0.uniqueId), fresh);
    assert.deepEqual(Buffer.from(r1.uniqueId), fresh);
    await oldFailed;
    assert.ok(stale.warnings.some((w) => /another group/.test(w)), stale.warnings.join('; '));
  });

  it('a rank ignores an answer for another group id and keeps asking', async () => {
    const cluster = `nccl${process.pid}stale`;
    const responder = await conn();
    let staleAnswers = 0;
    const sub = responder.subscribe(collectiveSubject(cluster), {
      max: 3,
      callback: (_err, m) => {
        const req = decodeAs(m.data, 'shard.collective.request');
        assert.equal(req.groupId, 'g-new');
        staleAnswers++;
        m.respond(encode({ v: PROTOCOL_VERSION, type: 'shard.collective', groupId: 'g-old', uniqueId: Buffer.alloc(128, 9) }));
      },
    });
    const rank1 = joinNcclGroup(await rankOf(1, 2, 'g-new', { cluster }));
    while (!sub.isClosed()) await sleep(10);
    assert.equal(staleAnswers, 3);
    const fresh = Buffer.alloc(128, 7);
    const [r0, r1] = await Promise.all([joinNcclGroup(await rankOf(0, 2, 'g-new', { cluster, id: fresh })), rank1]);
    assert.deepEqual(Buffer.from(r1.uniqueId), fresh);
    assert.deepEqual(Buffer.from(r0.uniqueId), fresh);
  });

  it('a rank >= 1 gives up with a clear error when rank 0 never answers', async () => {
    await assert.rejects(joinNcclGroup(await rankOf(1, 2, 'g-lonely', { timeoutMs: 400 })), (e: unknown) => {
      assert.ok(e instanceof CollectiveGroupError, String(e));
      assert.match(e.message, /^rank 1: no NCCL unique id from rank 0 of group g-lonely within 400 ms \(last: .+\); is rank 0 running with --collective nccl and --cluster nccl\d+x\d+\?$/);
      return true;
    });
  });

  it('rank 0 gives up with a clear error when not every rank asks', async () => {
    const cluster = `nccl${process.pid}partial`;
    const rank0 = joinNcclGroup(await rankOf(0, 4, 'g-partial', { cluster, timeoutMs: 1_000 }));
    await joinNcclGroup(await rankOf(2, 4, 'g-partial', { cluster }));
    await assert.rejects(rank0, /^CollectiveGroupError: rank 0: rank\(s\) 1, 3 of group g-partial did not ask for the NCCL unique id within 1000 ms/);
  });
});

describe('nccl collective in this build of the addon', () => {
  it('checks its options before touching CUDA', () => {
    const base = { kind: 'nccl' as const, rank: 0, world: 1, uniqueId: new Uint8Array(128) };
    assert.throws(() => createCollective({ ...base, uniqueId: new Uint8Array(16) }), /'uniqueId' must be 128 bytes, got 16/);
    assert.throws(() => createCollective({ ...base, uniqueId: [1, 2] as unknown as Uint8Array }),
      /TypeError: 'uniqueId' must be a Uint8Array/);
    assert.throws(() => createCollective({ ...base, rank: 2, world: 2 }), /'rank' must be an integer in \[0, 1\], got 2/);
    assert.throws(() => createCollective({ ...base, world: 0 }), /'world' must be an integer in \[1, 65536\], got 0/);
    assert.throws(() => createCollective({ ...base, device: 0.5 }), /'device' must be an integer in \[0, 1024\], got 0.5/);
    assert.throws(() => createCollective({ kind: 'mpi' } as never), /kind must be 'solo', 'shm' or 'nccl', got 'mpi'/);
  });

  if (cudaInfo().available) {
    it('joins a group of one and refuses host arrays (GPU machine)', () => {
      const c = createCollective({ kind: 'nccl', rank: 0, world: 1, uniqueId: ncclUniqueId() });
      try {
        const msg = /the nccl collective works on device memory inside a forward pass/;
        assert.throws(() => c.allReduceSum(new Float32Array(4)), msg);
        assert.throws(() => c.allGather(new Float32Array(4)), msg);
      } finally {
        c.dispose();
      }
    });
  } else {
    it('refuses with the reason when there is no GPU (or no CUDA backend)', () => {
      assert.throws(() => createCollective({ kind: 'nccl', rank: 0, world: 1, uniqueId: new Uint8Array(128) }),
        /NCCL collective needs a GPU: .+|Collective kind 'nccl' needs the CUDA backend: .+use kind 'shm'/);
      assert.throws(() => ncclUniqueId(), /ncclUniqueId: NCCL/);
    });
  }
});

describe('--collective', () => {
  const SHARD_ARGS = ['--model-dir', '/m', '--rank', '0', '--world-size', '2', '--nats-url', 'nats://127.0.0.1:4222',
    '--shm-name', '/weft-1'];

  it('defaults to shm, takes nccl from the flag or WEFT_COLLECTIVE, refuses anything else', () => {
    assert.equal(parseArgs('shard', SHARD_ARGS, {}).collective, 'shm');
    assert.equal(parseArgs('launch', [], {}).collective, 'shm');
    assert.equal(parseArgs('shard', [...SHARD_ARGS, '--collective', 'nccl'], {}).collective, 'nccl');
    assert.equal(parseArgs('launch', ['--device', 'cuda'], { WEFT_COLLECTIVE: 'nccl' }).collective, 'nccl');
    assert.throws(() => parseArgs('launch', [], { WEFT_COLLECTIVE: 'nccl' }), /--collective nccl needs --device cuda/);
    assert.equal(parseArgs('launch', ['--collective', 'shm'], { WEFT_COLLECTIVE: 'nccl' }).collective, 'shm');
    assert.throws(() => parseArgs('launch', ['--collective', 'mpi'], {}), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.code, 'INVALID_VALUE');
      assert.match(e.message, /--collective/);
      return true;
    });
  });

  it('a shard refuses nccl on the CPU backend before anything else', async () => {
    const server = await startNatsServer();
    const nc = await connect({ servers: server.url });
    try {
      const actor = new ShardActor({
        nc, cluster: 'cpu-nccl', modelDir: '/nonexistent', rank: 0, worldSize: 2, shmName: '/weft-test',
        collective: 'nccl', kvBlocks: 4, blockSize: 16, adapterSlots: 1, maxLoraRank: 8, hostCacheBytes: 0,
        device: 'cpu', dtype: 'float32', heartbeatMs: 1000, logger: pino({ level: 'silent' }),
        tracer: trace.getTracer('test'), extractContext: () => undefined as never, injectContext: () => ({}),
      });
      await assert.rejects(actor.start(), /--collective nccl needs --device cuda \(NCCL works on GPU memory; --device is cpu\)/);
      await actor.stop();
    } finally {
      await nc.close().catch(() => undefined);
      await server.stop();
    }
  });
});
