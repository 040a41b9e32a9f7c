// TP=2 and TP=4 over real shard processes (shm collective, NATS control) reproduce the PEFT golden
// logits for every case, base and every adapter, in one heterogeneous batch; `weft score --num-shard`
// prints the same numbers as --num-shard 1.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { bytesToFloat32 } from '../../protocol/index.js';
import { goldenCases, loadGoldenCase, maxAbsDiff } from '../helpers/golden.js';
import { scoreStep, startShardCluster } from '../helpers/shard-cluster.js';

const TOL = 1e-4;
const CLI = fileURLToPath(new URL('../../deploy/cli.js', import.meta.url));

for (const world of [2, 4]) {
  describe(`tensor parallel TP=${world}`, () => {
    for (const name of goldenCases()) {
      test(`${name}: base and all adapters in one batch match golden logits`, async () => {
        const c = loadGoldenCase(name);
        const cluster = await startShardCluster({ modelDir: c.modelDir, world });
        try {
          for (let i = 0; i < c.adapters.length; i++) await cluster.group.loadAdapter(c.adapters[i].name, i, { dir: c.adapters[i].dir });
          const items: { key: string; tokens: number[]; slot: number }[] = [];
          c.sequences.forEach((tokens, s) => {
            items.push({ key: `base/seq${s}`, tokens, slot: -1 });
            c.adapters.forEach((a, i) => items.push({ key: `adapter/${a.name}/seq${s}`, tokens, slot: i }));
          });
          const r = await cluster.group.step(scoreStep(items));
          assert.equal(r.error, undefined);
          items.forEach((it, k) => {
            const e = maxAbsDiff(bytesToFloat32(r.outputs[k].logits!), c.logits(it.key));
            assert.ok(e <= TOL, `${name} TP=${world} ${it.key}: max abs error ${e}`);
          });
        } finally {
          await cluster.stop();
        }
      });
    }
  });
}

test('weft score --num-shard 2 prints the same logits as --num-shard 1', () => {
  const c = loadGoldenCase('llama');
  const args = ['score', '--model', c.modelDir, '--adapter', c.adapters[2].dir, '--ids', c.sequences[0].join(',')];
  const one = JSON.parse(execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8' })).logits as number[][];
  const two = JSON.parse(execFileSync(process.execPath, [CLI, ...args, '--num-shard', '2'], { encoding: 'utf8' })).logits as number[][];
  assert.equal(one.length, c.sequences[0].length);
  assert.equal(one[0].length, c.vocab);
  const golden = c.logits(`adapter/${c.adapters[2].name}/seq0`);
  assert.ok(maxAbsDiff(Float32Array.from(one.flat()), golden) <= TOL);
  assert.ok(maxAbsDiff(Float32Array.from(two.flat()), Float32Array.from(one.flat())) <= TOL);
});
