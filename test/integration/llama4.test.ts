// Llama 4 beyond the golden conformance tests: the vision-language checkpoint's text model served over HTTP at
// --num-shard 2 with attention and MLP adapters beside base requests; PEFT target_parameters adapters on its experts
// (whose lora_A PEFT lays over the experts' output width: Llama4TextExperts has no is_transposed) refused by name.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalEngine } from '../../shard/index.js';
import { writeSafetensors } from '../../shard/formats/index.js';
import { loadGoldenCase } from '../helpers/golden.js';
import { generateEverySequence, goldenKey, prefillMatchesGolden, startGoldenServer } from '../helpers/golden-server.js';

const tmp = mkdtempSync(join(tmpdir(), 'weft-llama4-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('over HTTP at --num-shard 2: Llama 4 (the vision-language checkpoint\'s text model) with adapters beside base requests', async () => {
  for (const caseName of ['llama4', 'llama4_vlm']) {
    const g = await startGoldenServer({ numShard: 2 }, { caseName });
    try {
      for (const { r, s, a } of await generateEverySequence(g, [null, ...g.c.adapters.map((x) => x.name)])) {
        assert.equal(r.status, 200, r.text);
        prefillMatchesGolden(g.c, r.json, goldenKey(a, s), g.c.sequences[s]!);
      }
    } finally {
      await g.close();
    }
  }
});

test('target_parameters adapters on Llama 4\'s experts are refused by name', () => {
  const c = loadGoldenCase('llama4');
  const engine = LocalEngine.open(c.modelDir, { numBlocks: 8, blockSize: 4, adapterSlots: 1 });
  try {
    const dir = join(tmp, 'experts-adapter');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: [],
      target_parameters: ['feed_forward.experts.down_proj'] }));
    // PEFT's pair on down_proj [8, 32, 64] as it saves it: lora_A [r·E, 64] (the output width), lora_B [32, r·E]
    const key = 'base_model.model.model.layers.1.feed_forward.experts';
    writeSafetensors(join(dir, 'adapter_model.safetensors'), {
      [`${key}.lora_A.weight`]: { dtype: 'F32', shape: [16, 64], data: new Float32Array(16 * 64) },
      [`${key}.lora_B.weight`]: { dtype: 'F32', shape: [32, 16], data: new Float32Array(32 * 16) },
    });
    assert.throws(() => engine.loadAdapter(0, dir), /feed_forward\.experts.*fits neither gate_up_proj.*nor down_proj/s);
  } finally {
    engine.dispose();
  }
});
