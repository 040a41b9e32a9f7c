// DeepSeek-V3-shaped models (multi-head latent attention + sigmoid-routed experts) beyond the golden conformance
// tests: served over HTTP at --num-shard 2 with latent-attention, expert and MLP adapters batched beside base rows, and
// the adapters that do not fit latent attention refused by name.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalEngine } from '../../shard/index.js';
import { writeSafetensors } from '../../shard/formats/index.js';
import { loadGoldenCase } from '../helpers/golden.js';
import { generateEverySequence, goldenKey, prefillMatchesGolden, startGoldenServer } from '../helpers/golden-server.js';

const tmp = mkdtempSync(join(tmpdir(), 'weft-deepseek-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('over HTTP at --num-shard 2: DeepSeek-V3 with latent-attention, expert and MLP adapters beside base requests', async () => {
  const g = await startGoldenServer({ numShard: 2 }, { caseName: 'deepseek_v3' });
  const { c } = g;
  try {
    for (const { r, s, a } of await generateEverySequence(g, [null, 'attn_r8', 'latent_experts_r4', 'latent_mlp_r4'])) {
      assert.equal(r.status, 200, r.text);
      prefillMatchesGolden(c, r.json, goldenKey(a, s), c.sequences[s]!);
    }
  } finally {
    await g.close();
  }
});

/** A one-pair PEFT adapter on `module` of layer 0 with the given shapes. */
function adapterOn(name: string, module: string, a: number[], b: number[]): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: a[0], lora_alpha: 8,
    target_modules: [module.split('.').pop()] }));
  const key = `base_model.model.model.layers.0.${module}`;
  writeSafetensors(join(dir, 'adapter_model.safetensors'), {
    [`${key}.lora_A.weight`]: { dtype: 'F32', shape: a, data: new Float32Array(a[0]! * a[1]!) },
    [`${key}.lora_B.weight`]: { dtype: 'F32', shape: b, data: new Float32Array(b[0]! * b[1]!) },
  });
  return dir;
}

test('adapters that do not fit latent attention are refused by name', () => {
  for (const [caseName, module, why] of [
    ['deepseek_v3', 'self_attn.k_proj', /'.*self_attn\.k_proj', which is not a supported linear module of this deepseek_v3 model/],
    ['deepseek_v3', 'self_attn.q_proj', /self_attn\.q_proj', which is not a supported linear module/],  // it has q_a / q_b
    ['deepseek_v3_noq', 'self_attn.q_b_proj', /self_attn\.q_b_proj', which is not a supported linear module/],
  ] as const) {
    const c = loadGoldenCase(caseName);
    const engine = LocalEngine.open(c.modelDir, { numBlocks: 8, blockSize: 4, adapterSlots: 1 });
    try {
      assert.throws(() => engine.loadAdapter(0, adapterOn(`${caseName}-${module}`, module, [4, 64], [64, 4])), why);
    } finally {
      engine.dispose();
    }
  }
  // kv_b_proj reads the 16-wide latent: an A made for the hidden size is a wrong shape, named with what it expects.
  const c = loadGoldenCase('deepseek_v3');
  const engine = LocalEngine.open(c.modelDir, { numBlocks: 8, blockSize: 4, adapterSlots: 1 });
  try {
    assert.throws(() => engine.loadAdapter(0, adapterOn('kvb-wide', 'self_attn.kv_b_proj', [4, 64], [112, 4])),
      /kv_b_proj' expects lora_A \[r, 16\] and lora_B \[112, r\]/);
  } finally {
    engine.dispose();
  }
});
