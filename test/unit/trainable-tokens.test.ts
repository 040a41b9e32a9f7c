// PEFT trainable tokens (trainable_token_indices) served as LoRA pairs (shard/adapters/trainable-tokens.ts): the
// golden cases qwen2_tokens (tied lm_head) and llama_tokens (untied; embedding and lm_head by name) check the logits
// against PEFT; here the config rules and the refusals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdapterConfigError, loadAdapterDir, parseLoraConfig } from '../../shard/adapters/index.js';
import { SafetensorsFile, writeSafetensors } from '../../shard/formats/index.js';
import { LocalEngine } from '../../shard/index.js';
import { loadGoldenCase } from '../helpers/golden.js';

const BASE = { peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] };
const g = loadGoldenCase('llama_tokens');

test('trainable_token_indices: a list (the input embedding) or module name → token ids; anything else is refused', () => {
  assert.deepEqual(parseLoraConfig({ ...BASE, trainable_token_indices: [5, 7] }, 'c').trainableTokens, [5, 7]);
  assert.deepEqual(parseLoraConfig({ ...BASE, trainable_token_indices: { embed_tokens: [1], lm_head: [2, 3] } }, 'c').trainableTokens,
    { embed_tokens: [1], lm_head: [2, 3] });
  assert.equal(parseLoraConfig(BASE, 'c').trainableTokens, null);
  for (const bad of [[], [1, 1], [-1], [1.5], 'embed_tokens', {}, { embed_tokens: [] }]) {
    assert.throws(() => parseLoraConfig({ ...BASE, trainable_token_indices: bad }, 'c'),
      (e: unknown) => e instanceof AdapterConfigError && e.field === 'trainable_token_indices', JSON.stringify(bad));
  }
});

/** The golden adapter tok_list with its config or tensors changed. */
function variant(configOver: Record<string, unknown> | null, retensor?: (name: string, t: { shape: number[]; data: Float32Array }) =>
  [string, { shape: number[]; data: Float32Array }] | null): string {
  const src = g.adapters.find((a) => a.name === 'tok_list')!.dir;
  const dir = mkdtempSync(join(tmpdir(), 'weft-tokens-'));
  copyFileSync(join(src, 'adapter_config.json'), join(dir, 'adapter_config.json'));
  if (configOver) {
    const cfg = JSON.parse(readFileSync(join(src, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...cfg, ...configOver }));
  }
  const st = SafetensorsFile.open(join(src, 'adapter_model.safetensors'));
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  try {
    for (const n of st.names()) {
      const t = { shape: st.info(n).shape, data: st.readF32(n) };
      const kept = retensor ? retensor(n, t) : [n, t] as const;
      if (kept) tensors[kept[0]] = { dtype: 'F32', shape: kept[1].shape, data: kept[1].data };
    }
  } finally {
    st.close();
  }
  writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  return dir;
}
const TOKENS = 'base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta';

test('rows without indices, indices without rows: the config does not belong to the weights', () => {
  const noIndices = variant({ trainable_token_indices: null });
  const noRows = variant(null, (n, t) => (n === TOKENS ? null : [n, t]));
  try {
    assert.throws(() => loadAdapterDir(noIndices), /holds trainable tokens but the config has no trainable_token_indices/);
    assert.throws(() => loadAdapterDir(noRows), /sets trainable_token_indices but no .*trainable_tokens_delta/);
  } finally {
    rmSync(noIndices, { recursive: true, force: true });
    rmSync(noRows, { recursive: true, force: true });
  }
});

test('loading refuses tokens outside the vocabulary, rows of the wrong shape, and tokens on another module', () => {
  const e = LocalEngine.open(g.modelDir, { numBlocks: 16, blockSize: 4, adapterSlots: 1 });
  const dirs = [
    [variant({ trainable_token_indices: [53, 9999] }), /token 9999 is outside the base model's vocabulary \(512\)/],
    [variant({ trainable_token_indices: [53, 502, 7] }), /is \[2, 64\] for 3 token\(s\).*expected \[3, 64\]/],
    [variant(null, (n, t) => [n === TOKENS ? 'base_model.model.model.layers.0.self_attn.q_proj.token_adapter.trainable_tokens_delta' : n, t]),
      /neither the token embedding nor lm_head/],
    [variant({ trainable_token_indices: { lm_head: [1, 2] } }), /has no entry in trainable_token_indices/],
  ] as const;
  try {
    for (const [dir, re] of dirs) assert.throws(() => e.loadAdapter(0, dir), re);
    // The slot is still usable: the golden adapter loads after the refusals.
    e.loadAdapter(0, g.adapters.find((a) => a.name === 'tok_list')!.dir);
  } finally {
    e.dispose();
    for (const [dir] of dirs) rmSync(dir, { recursive: true, force: true });
  }
});
