// LoRA on the token embedding (PEFT lora_embedding_A [r, vocab] / lora_embedding_B [hidden, r]): served adapters
// against the model with the adapter merged as PEFT merges it (test/helpers/lora-merge.ts) — the embedding alone,
// and an adapter shaped like a continued-pretraining recipe (q/v, embed_tokens and lm_head targeted, saved with
// PEFT's defaults, so with copies of the embedding's and lm_head's own weights) — alone, beside base and plain
// LoRA rows, and at TP=2 over real shard processes.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prng } from '../../deploy/bench/synthetic.js';
import { bytesToFloat32 } from '../../protocol/index.js';
import { LocalEngine } from '../../shard/index.js';
import { SafetensorsFile, writeSafetensors } from '../../shard/formats/index.js';
import { loadGoldenCase, maxAbsDiff, type GoldenCase } from '../helpers/golden.js';
import { writeLoraMerged } from '../helpers/lora-merge.js';
import { scoreStep, startShardCluster } from '../helpers/shard-cluster.js';

const TOL = 1e-4;
const RANK = 4, ALPHA = 8;

/** An adapter for `modelDir` on `targets` (embed_tokens, lm_head, q_proj, v_proj), with base-layer copies if asked. */
function writeAdapter(modelDir: string, dir: string, targets: string[], copies: boolean, seed: number): void {
  const model = SafetensorsFile.open(join(modelDir, 'model.safetensors'));
  const rnd = prng(seed);
  const t = (rows: number, cols: number) => ({ dtype: 'F32' as const, shape: [rows, cols], data: Float32Array.from({ length: rows * cols }, () => rnd() * 0.6) });
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  try {
    const [vocab, hidden] = model.info('model.embed_tokens.weight').shape as [number, number];
    if (targets.includes('embed_tokens')) {
      tensors['base_model.model.model.embed_tokens.lora_embedding_A'] = t(RANK, vocab);
      tensors['base_model.model.model.embed_tokens.lora_embedding_B'] = t(hidden, RANK);
      if (copies) tensors['base_model.model.model.embed_tokens.base_layer.weight'] = { dtype: 'F32', shape: [vocab, hidden], data: model.readF32('model.embed_tokens.weight') };
    }
    if (targets.includes('lm_head')) {
      tensors['base_model.model.lm_head.lora_A.weight'] = t(RANK, hidden);
      tensors['base_model.model.lm_head.lora_B.weight'] = t(vocab, RANK);
      if (copies) tensors['base_model.model.lm_head.base_layer.weight'] = { dtype: 'F32', shape: [vocab, hidden], data: model.readF32('lm_head.weight') };
    }
    for (const name of model.names()) {
      const m = /^(model\.layers\.\d+\.self_attn\.(q_proj|v_proj))\.weight$/.exec(name);
      if (!m || !targets.includes(m[2]!)) continue;
      const [out, inp] = model.info(name).shape as [number, number];
      tensors[`base_model.model.${m[1]}.lora_A.weight`] = t(RANK, inp);
      tensors[`base_model.model.${m[1]}.lora_B.weight`] = t(out, RANK);
    }
  } finally {
    model.close();
  }
  mkdirSync(dir, { recursive: true });
  writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({
    peft_type: 'LORA', task_type: 'CAUSAL_LM', r: RANK, lora_alpha: ALPHA, target_modules: targets, lora_dropout: 0,
    bias: 'none', fan_in_fan_out: false, use_rslora: false, use_dora: false, modules_to_save: null, init_lora_weights: true,
  }));
}

for (const [label, targets, copies] of [
  ['the embedding alone', ['embed_tokens'], false],
  ['q/v + embed_tokens + lm_head, saved with base-layer copies', ['q_proj', 'v_proj', 'embed_tokens', 'lm_head'], true],
] as const) {
  describe(`embedding LoRA: ${label}`, () => {
    let c: GoldenCase, root: string, served: LocalEngine, merged: LocalEngine;
    before(() => {
      c = loadGoldenCase('llama_lmhead');  // untied: lm_head is its own weight
      root = mkdtempSync(join(tmpdir(), 'weft-emb-lora-'));
      writeAdapter(c.modelDir, join(root, 'adapter'), [...targets], copies, 31);
      writeLoraMerged(c.modelDir, join(root, 'adapter'), join(root, 'merged'), ALPHA / RANK);
      served = LocalEngine.open(c.modelDir, { numBlocks: 128, blockSize: 4, adapterSlots: 2 });
      served.loadAdapter(0, join(root, 'adapter'));
      served.loadAdapter(1, c.adapters[0]!.dir);
      merged = LocalEngine.open(join(root, 'merged'), { numBlocks: 64, blockSize: 4, adapterSlots: 1 });
    });
    after(() => {
      served?.dispose();
      merged?.dispose();
      rmSync(root, { recursive: true, force: true });
    });

    test('the merged model\'s logits, alone and beside base and LoRA rows', async () => {
      const items = c.sequences.flatMap((tokens, s) => [0, -1, 1].map((adapterSlot) => ({ tokens, adapterSlot, s })));
      const out = await served.scoreBatch(items);
      for (let i = 0; i < items.length; i++) {
        const { adapterSlot, s } = items[i]!;
        const want = adapterSlot === -1 ? c.logits(`base/seq${s}`) : adapterSlot === 1 ? c.logits(`adapter/${c.adapters[0]!.name}/seq${s}`)
          : (await merged.scoreBatch([{ tokens: c.sequences[s]!, adapterSlot: -1 }]))[0]!;
        const e = maxAbsDiff(out[i]!, want);
        assert.ok(e <= TOL, `item ${i} (slot ${adapterSlot}, seq${s}): max abs error ${e}`);
        if (adapterSlot === 0) assert.ok(maxAbsDiff(out[i]!, c.logits(`base/seq${s}`)) > 1e-2, 'the adapter changes the logits');
      }
    });

    test('at TP=2 over shard processes', async () => {
      const cluster = await startShardCluster({ modelDir: c.modelDir, world: 2 });
      try {
        await cluster.group.loadAdapter('emb', 0, { dir: join(root, 'adapter') });
        const items = c.sequences.map((tokens) => ({ tokens, slot: 0 }));
        const r = await cluster.group.step(scoreStep(items));
        assert.equal(r.error, undefined);
        for (let s = 0; s < items.length; s++) {
          const [want] = await merged.scoreBatch([{ tokens: c.sequences[s]!, adapterSlot: -1 }]);
          const e = maxAbsDiff(bytesToFloat32(r.outputs[s]!.logits!), want!);
          assert.ok(e <= TOL, `seq${s}: max abs error ${e}`);
        }
      } finally {
        await cluster.stop();
      }
    });
  });
}
