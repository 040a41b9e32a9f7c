// DoRA at TP=2 and TP=4 over real shard processes: the row-parallel modules' weight norms are exchanged over NATS
// (shard/dora-exchange.ts), and a DoRA adapter's rows give the PEFT-merged model's logits (test/helpers/dora.ts) in
// one batch with base rows and plain LoRA rows, which stay on the golden logits; the same through `weft launch` over
// HTTP. The exchange itself — chunking,
// a failed peer, a silent peer — against a real nats-server.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import { MessageBus } from '../../protocol/bus.js';
import { bytesToFloat32 } from '../../protocol/index.js';
import { LocalEngine } from '../../shard/index.js';
import { DoraNormExchange } from '../../shard/dora-exchange.js';
import { loadGoldenCase, maxAbsDiff } from '../helpers/golden.js';
import { writeDoraAdapter, writeDoraMerged } from '../helpers/dora.js';
import { startNatsServer, type NatsServerHandle } from '../helpers/nats-server.js';
import { scoreStep, startShardCluster } from '../helpers/shard-cluster.js';
import { generateEverySequence, goldenKey, prefillMatchesGolden, startGoldenServer, textOf } from '../helpers/golden-server.js';
import { refLogSoftmax } from '../helpers/reference-ops.js';

const TOL = 1e-4;

for (const world of [2, 4]) {
  for (const name of ['llama_bias', 'qwen2']) {
    test(`DoRA at TP=${world} on ${name}: beside base and LoRA rows, the merged model's logits`, async () => {
      const c = loadGoldenCase(name);
      const root = mkdtempSync(join(tmpdir(), 'weft-dora-tp-'));
      const opts = { seed: 5, rank: 4, alpha: 8, modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'up_proj', 'down_proj'] };
      writeDoraAdapter(c.modelDir, join(root, 'dora'), opts);
      writeDoraMerged(c.modelDir, join(root, 'dora'), join(root, 'merged'), opts);
      const merged = LocalEngine.open(join(root, 'merged'), { numBlocks: 64, blockSize: 4, adapterSlots: 1 });
      const cluster = await startShardCluster({ modelDir: c.modelDir, world });
      try {
        await cluster.group.loadAdapter('dora', 0, { dir: join(root, 'dora') });
        await cluster.group.loadAdapter(c.adapters[0]!.name, 1, { dir: c.adapters[0]!.dir });
        const items: { want: Float32Array; tokens: number[]; slot: number }[] = [];
        for (let s = 0; s < c.sequences.length; s++) {
          const tokens = c.sequences[s]!;
          const [dora] = await merged.scoreBatch([{ tokens, adapterSlot: -1 }]);
          items.push({ want: dora!, tokens, slot: 0 }, { want: c.logits(`base/seq${s}`), tokens, slot: -1 },
            { want: c.logits(`adapter/${c.adapters[0]!.name}/seq${s}`), tokens, slot: 1 });
        }
        const r = await cluster.group.step(scoreStep(items));
        assert.equal(r.error, undefined);
        items.forEach((it, k) => {
          const e = maxAbsDiff(bytesToFloat32(r.outputs[k]!.logits!), it.want);
          assert.ok(e <= TOL, `${name} TP=${world} item ${k} (slot ${it.slot}): max abs error ${e}`);
        });
      } finally {
        await cluster.stop();
        merged.dispose();
        rmSync(root, { recursive: true, force: true });
      }
    });
  }
}

test('over HTTP at TP=2: a DoRA adapter by adapter_id, beside base and LoRA requests, gives the merged model\'s log-probs', async () => {
  const c = loadGoldenCase('llama');
  const root = mkdtempSync(join(tmpdir(), 'weft-dora-http-'));
  const opts = { seed: 9, rank: 2, alpha: 4, modules: ['q_proj', 'v_proj', 'o_proj', 'down_proj'] };
  writeDoraAdapter(c.modelDir, join(root, 'dora_r2'), opts);
  writeDoraMerged(c.modelDir, join(root, 'dora_r2'), join(root, 'merged'), opts);
  const merged = LocalEngine.open(join(root, 'merged'), { numBlocks: 64, blockSize: 4, adapterSlots: 1 });
  const g = await startGoldenServer({ numShard: 2 }, { flags: ['--adapter-root', root] });
  try {
    for (const { r, s, a } of await generateEverySequence(g, [null, 'dora_r2', 'all_r8'], 1)) {
      assert.equal(r.status, 200, r.text);
      if (a !== 'dora_r2') {
        prefillMatchesGolden(c, r.json, goldenKey(a, s), c.sequences[s]!);
        continue;
      }
      const [want] = await merged.scoreBatch([{ tokens: c.sequences[s]!, adapterSlot: -1 }]);
      const prefill = r.json.details.prefill as { id: number; logprob: number | null }[];
      for (let i = 1; i < prefill.length; i++) {
        const ref = refLogSoftmax(want!.subarray((i - 1) * c.vocab, i * c.vocab))[c.sequences[s]![i]!]!;
        assert.ok(Math.abs(prefill[i]!.logprob! - ref) <= TOL, `seq${s} position ${i}: ${prefill[i]!.logprob} vs merged ${ref}`);
      }
    }
    // A DoRA adapter the server cannot serve (DoRA on lm_head): 424 naming why, and the server goes on.
    writeDoraAdapter(c.modelDir, join(root, 'dora_head'), { seed: 3, rank: 2, alpha: 4, modules: ['lm_head'] });
    const refused = await g.post('/generate', { inputs: textOf(c.sequences[0]!), parameters: { max_new_tokens: 2,
      adapter_id: 'dora_head', adapter_source: 'local' } });
    assert.equal(refused.status, 424, refused.text);
    assert.match(refused.json.error, /DoRA module on lm_head, which is not supported/);
    const after = await g.post('/generate', { inputs: textOf(c.sequences[0]!), parameters: { max_new_tokens: 2,
      adapter_id: 'dora_r2', adapter_source: 'local' } });
    assert.equal(after.status, 200, after.text);
    // The admin list says which adapter is a DoRA adapter.
    const listed = await (await fetch(`${g.url}/v1/adapters`)).json() as { adapters: { id: string; dora: boolean; rank: number }[] };
    const byId = new Map(listed.adapters.map((a) => [a.id, a]));
    assert.equal(byId.get('dora_r2')?.dora, true);
    assert.equal(byId.get('dora_r2')?.rank, 2);
    assert.equal(byId.get('all_r8')?.dora, false);
  } finally {
    await g.close();
    merged.dispose();
    rmSync(root, { recursive: true, force: true });
  }
});

describe('DoraNormExchange over NATS', () => {
  let nats: NatsServerHandle;
  const conns: NatsConnection[] = [];
  before(async () => { nats = await startNatsServer(); });
  after(async () => {
    for (const nc of conns) await nc.close();
    await nats.stop();
  });

  async function group(world: number, timeoutMs = 5_000): Promise<DoraNormExchange[]> {
    const out: DoraNormExchange[] = [];
    for (let rank = 0; rank < world; rank++) {
      const nc = await connect({ servers: nats.url });
      conns.push(nc);
      const bus = new MessageBus(nc, { onInvalid: (_s, err) => { throw err; } });
      const ex = new DoraNormExchange({ bus, cluster: `dx${world}${timeoutMs}`, rank, world, timeoutMs,
        publish: (subject, msg) => bus.publish(subject, msg) });
      ex.start();
      out.push(ex);
      await nc.flush();
    }
    return out;
  }

  test('every rank gets the same sums, added in rank order, across several chunks', async () => {
    const ranks = await group(3);
    // 300,000 values per rank: three 128 Ki-float chunks; values whose float sum depends on the order.
    const shares = ranks.map((_, r) => [Float32Array.from({ length: 300_000 }, (_, i) => (i % 7 === 0 ? 1e8 : 1) * (r + 1) * (i % 2 ? 1 : -1) + r * 1e-3),
      Float32Array.from([r + 0.5, 2 * r])]);
    const got = await Promise.all(ranks.map((ex, r) => ex.sum('a', 1, 1, shares[r]!)));
    for (const part of [0, 1]) {
      const want = new Float32Array(shares[0]![part]!.length);
      for (let r = 0; r < 3; r++) for (let i = 0; i < want.length; i++) want[i] = want[i]! + shares[r]![part]![i]!;
      for (let r = 0; r < 3; r++) assert.deepEqual(got[r]![part], want, `rank ${r} part ${part}`);
    }
    ranks.forEach((ex) => ex.stop());
  });

  test('a rank that failed its load makes the waiting ranks fail at once, naming it', async () => {
    const [r0, r1] = await group(2);
    const waiting = r0!.sum('b', 0, 4, [Float32Array.from([1, 2])]);
    r1!.fail('b', 0, 4, 'adapter_model.safetensors is corrupt');
    await assert.rejects(waiting, /DoRA: rank 1 could not load the adapter: adapter_model\.safetensors is corrupt/);
    r0!.stop(); r1!.stop();
  });

  test('a silent rank makes the wait end at the timeout, naming it; shares of another load do not count', async () => {
    const [r0, r1] = await group(2, 300);
    const waiting = assert.rejects(r0!.sum('c', 2, 7, [Float32Array.from([1])]), /DoRA: ranks 1 sent no weight norms within 0\.3 s/);
    await r1!.sum('c', 2, 6, [Float32Array.from([1])]).catch(() => undefined);  // an earlier load of the slot
    await waiting;
    r0!.stop(); r1!.stop();
  });
});
