// Speculative decoding with a draft model on the GPU (--device cuda): the draft (the 4-bit AWQ quantization of the
// served golden llama, dequantized at load) is a second CUDA model in shard 0's process, beside the served one.
// Greedy and seeded requests give exactly the tokens of the same server without a draft model, at TP 1 and 2, and
// some drafts are accepted. Skipped with the reason without a GPU (written 2026-11-25 on a machine without one).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { cudaInfo } from '../../kernels/cuda.js';
import { GOLDEN_ROOT } from '../helpers/golden.js';
import { startGoldenServer, textOf, type GoldenServer } from '../helpers/golden-server.js';

const info = cudaInfo();
const noGpu = info.available ? false : `no usable GPU: ${info.reason}`;
const DRAFT = join(GOLDEN_ROOT, 'llama_awq', 'model');
const counter = (metrics: string, name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN);

for (const numShard of [1, 2]) {
  describe(`--speculative-model on --device cuda --dtype float32, TP=${numShard}`, { skip: noGpu }, () => {
    let plain: GoldenServer;
    let draft: GoldenServer;
    const flags = ['--device', 'cuda', '--dtype', 'float32'];
    before(async () => {
      plain = await startGoldenServer({ numShard, blockSize: 4 }, { flags });
      draft = await startGoldenServer({ numShard, blockSize: 4 }, { flags: [...flags, '--speculative-model', DRAFT] });
    });
    after(async () => { await plain?.close(); await draft?.close(); });

    test('the same tokens as without the draft; drafts accepted', async () => {
      const reqs = Array.from({ length: 8 }, (_, k) => {
        const parameters: Record<string, unknown> = { max_new_tokens: 16 + k, details: true, ignore_eos_token: true };
        if (k % 2 === 1) Object.assign(parameters, { do_sample: true, seed: 40 + k, temperature: 0.7, top_k: 20 });
        if (k % 4 === 3) Object.assign(parameters, { adapter_id: 'all_r8', adapter_source: 'local' });
        return { inputs: textOf(plain.c.sequences[k % 3]!), parameters };
      });
      const [one, two] = await Promise.all([plain, draft].map((g) => Promise.all(reqs.map((r) => g.post('/generate', r)))));
      one.forEach((r, k) => {
        assert.equal(r.status, 200, r.text);
        assert.equal(two[k]!.status, 200, two[k]!.text);
        assert.deepEqual(two[k]!.json.details.tokens.map((t: { id: number }) => t.id), r.json.details.tokens.map((t: { id: number }) => t.id), `request ${k}`);
      });
      const m = await (await fetch(`${draft.url}/metrics`)).text();
      const drafted = counter(m, 'weft_spec_draft_tokens_total'), accepted = counter(m, 'weft_spec_accepted_tokens_total');
      console.log(`TP=${numShard}: ${accepted} of ${drafted} drafts accepted`);
      assert.ok(drafted > 0 && accepted > 0, `${accepted} of ${drafted}`);
    });
  });
}
