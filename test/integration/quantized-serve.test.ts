// Quantized checkpoints served as a user runs them: `weft launch --model-id <an AWQ / bitsandbytes / FP8 / NVFP4 directory>`
// over real shard processes at --num-shard 2, the base model and an adapter in concurrent requests; the prompt
// log-probs are transformers + PEFT's on the same dequantized weights (the golden cases make_quantized.py writes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { prefillMatchesGolden, startGoldenServer, textOf } from '../helpers/golden-server.js';

for (const caseName of ['llama_awq', 'llama_bnb_nf4', 'qwen2_fp8', 'llama_ct_nvfp4']) {
  test(`${caseName}: served at --num-shard 2, base and adapter prompt log-probs match the reference`, async () => {
    const g = await startGoldenServer({ numShard: 2 }, { caseName });
    try {
      const adapter = g.c.adapters[0]!.name;
      const jobs = g.c.sequences.flatMap((seq, s) => [null, adapter].map(async (a) => {
        const r = await g.post('/generate', { inputs: textOf(seq), parameters: { max_new_tokens: 2, details: true, decoder_input_details: true,
          ...(a ? { adapter_id: a, adapter_source: 'local' } : {}) } });
        assert.equal(r.status, 200, r.text);
        return prefillMatchesGolden(g.c, r.json, a ? `adapter/${a}/seq${s}` : `base/seq${s}`, seq);
      }));
      const worst = Math.max(...await Promise.all(jobs));
      console.log(`${caseName}: worst prompt log-prob error ${worst.toExponential(2)}`);
    } finally {
      await g.close();
    }
  });
}
