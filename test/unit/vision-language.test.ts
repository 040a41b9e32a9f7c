// Vision-language checkpoints served text-only: Gemma 3 from 4B up (Gemma3ForConditionalGeneration, SigLIP tower),
// Mistral Small 3.1+ (Mistral3ForConditionalGeneration, Pixtral tower) and Qwen2-VL / Qwen2.5-VL (golden qwen2_5_vl). The golden cases gemma3_vlm / mistral3_vlm
// have the checkpoint in transformers' saved layout (language_model.model.*) and adapters in PEFT's
// (model.language_model.*, with pairs on the vision tower); here the same model and adapter in the other layouts give
// the same golden logits, a top-level tie_word_embeddings does not tie a stored lm_head, and the configs as published
// parse.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalEngine } from '../../shard/index.js';
import { SafetensorsFile, writeSafetensors } from '../../shard/formats/index.js';
import { parseModelSpec } from '../../shard/models/spec.js';
import { loadGoldenCase, maxAbsDiff } from '../helpers/golden.js';

const c = loadGoldenCase('gemma3_vlm');
const m3 = loadGoldenCase('mistral3_vlm');
const qvl = loadGoldenCase('qwen2_5_vl');

/**
 * Copies a safetensors file (and the folder's JSON files) into `outDir` with every tensor name passed through `rename`
 * (null: left out); returns how many tensors were written.
 */
function writeRenamed(dir: string, file: string, outDir: string, rename: (name: string) => string | null): number {
  const src = SafetensorsFile.open(join(dir, file));
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  try {
    for (const name of src.names()) {
      const to = rename(name);
      if (to !== null) tensors[to] = { dtype: 'F32', shape: src.info(name).shape, data: src.readF32(name) };
    }
  } finally {
    src.close();
  }
  mkdirSync(outDir, { recursive: true });
  writeSafetensors(join(outDir, file), tensors, { format: 'pt' });
  for (const f of readdirSync(dir)) if (f.endsWith('.json')) copyFileSync(join(dir, f), join(outDir, f));
  return Object.keys(tensors).length;
}

/** The adapter's pairs on the vision tower alone (names containing `tower`) must be refused on the golden model. */
function expectTowerOnlyRefused(g: typeof c, adapter: string, tower: string, message: RegExp): void {
  const tmp = mkdtempSync(join(tmpdir(), 'weft-vision-only-'));
  try {
    const a = g.adapters.find((x) => x.name === adapter)!;
    const kept = writeRenamed(a.dir, 'adapter_model.safetensors', tmp, (n) => (n.includes(tower) ? n : null));
    assert.ok(kept >= 2, 'the golden adapter has vision-tower pairs');
    const e = LocalEngine.open(g.modelDir, { numBlocks: 16, blockSize: 4, adapterSlots: 1 });
    try {
      assert.throws(() => e.loadAdapter(0, tmp), message);
    } finally {
      e.dispose();
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function expectGolden(modelDir: string, adapters: { name: string; dir: string }[], g = c): Promise<void> {
  const e = LocalEngine.open(modelDir, { numBlocks: 64, blockSize: 4, adapterSlots: adapters.length });
  try {
    adapters.forEach((a, slot) => e.loadAdapter(slot, a.dir));
    const items = g.sequences.flatMap((tokens) => [-1, ...adapters.map((_, slot) => slot)].map((adapterSlot) => ({ tokens, adapterSlot })));
    const out = await e.scoreBatch(items);
    items.forEach((it, i) => {
      const s = Math.floor(i / (adapters.length + 1));
      const key = it.adapterSlot === -1 ? `base/seq${s}` : `adapter/${adapters[it.adapterSlot]!.name}/seq${s}`;
      const err = maxAbsDiff(out[i]!, g.logits(key));
      assert.ok(err <= 1e-4, `${key}: max abs error ${err}`);
    });
  } finally {
    e.dispose();
  }
}

test('the checkpoint under model.language_model.* and adapters under language_model.model.* give the golden logits', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'weft-gemma3-vlm-'));
  try {
    // transformers 5's in-memory names for the checkpoint; transformers 4.50/4.51's module paths for the adapters.
    const model = join(tmp, 'model');
    writeRenamed(c.modelDir, 'model.safetensors', model, (n) => n.replace(/^language_model\.model\./, 'model.language_model.')
      .replace(/^vision_tower\./, 'model.vision_tower.').replace(/^multi_modal_projector\./, 'model.multi_modal_projector.'));
    const adapters = c.adapters.map((a) => {
      const dir = join(tmp, a.name);
      writeRenamed(a.dir, 'adapter_model.safetensors', dir, (n) => n.replace(/^base_model\.model\.model\.language_model\./,
        'base_model.model.language_model.model.').replace(/^base_model\.model\.model\.vision_tower\./, 'base_model.model.vision_tower.'));
      return { name: a.name, dir };
    });
    await expectGolden(model, adapters);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('an adapter on the vision tower only is refused, saying text requests never run it', () => {
  expectTowerOnlyRefused(c, 'qv_r8', 'vision_tower', /only targets the vision tower .* text requests never run/);
});

test("google/gemma-3-4b-it's config (a partial text_config) reads with Gemma3TextConfig's defaults", () => {
  const s = parseModelSpec({
    architectures: ['Gemma3ForConditionalGeneration'], boi_token_index: 255999, eoi_token_index: 256000,
    eos_token_id: [1, 106], image_token_index: 262144, initializer_range: 0.02, mm_tokens_per_image: 256, model_type: 'gemma3',
    text_config: {
      hidden_size: 2560, intermediate_size: 10240, model_type: 'gemma3_text', num_hidden_layers: 34,
      rope_scaling: { factor: 8.0, rope_type: 'linear' }, sliding_window: 1024,
    },
    torch_dtype: 'bfloat16', transformers_version: '4.50.0.dev0',
    vision_config: { hidden_size: 1152, image_size: 896, intermediate_size: 4304, model_type: 'siglip_vision_model',
      num_attention_heads: 16, num_hidden_layers: 27, patch_size: 14, vision_use_head: false },
  });
  assert.equal(s.architecture, 'gemma3');
  assert.ok(s.visionLanguage && s.tieEmbeddings && s.qkNorm && s.postNorms);
  assert.deepEqual([s.hidden, s.layers, s.heads, s.kvHeads, s.headDim, s.vocab, s.intermediate], [2560, 34, 8, 4, 256, 262208, 10240]);
  assert.equal(s.slidingWindow, 1024);
  assert.equal(s.layerSliding!.filter((v) => !v).length, 5, 'layers 5, 11, 17, 23, 29 are full attention');
  assert.ok(Math.abs(s.rope!.invFreq[0]! - 1 / 8) < 1e-9, 'linear scaling on the full layers');
  assert.equal(s.ropeLocal!.invFreq[0], 1);
  assert.deepEqual(s.eosTokenIds, [1, 106]);
  assert.equal(s.attnScale, 1 / 16);
});

test('Mistral3: tie_word_embeddings true (Mistral3Config\'s default) leaves a stored lm_head untied, as transformers does', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'weft-mistral3-'));
  try {
    const model = join(tmp, 'model');
    writeRenamed(m3.modelDir, 'model.safetensors', model, (n) => n);
    const cfg = JSON.parse(readFileSync(join(m3.modelDir, 'config.json'), 'utf8')) as Record<string, unknown>;
    // Tied by the config at both levels, yet the checkpoint holds its own lm_head: transformers keeps it untied.
    writeFileSync(join(model, 'config.json'), JSON.stringify({ ...cfg, tie_word_embeddings: true,
      text_config: { ...(cfg.text_config as Record<string, unknown>), tie_word_embeddings: true } }));
    const spec = parseModelSpec(JSON.parse(readFileSync(join(model, 'config.json'), 'utf8')));
    assert.ok(spec.visionLanguage && spec.architecture === 'mistral' && spec.tieEmbeddings);
    await expectGolden(model, m3.adapters, m3);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test("Mistral-Small-3.1-24B's config (a partial text_config) reads with MistralConfig's defaults", () => {
  const s = parseModelSpec({
    architectures: ['Mistral3ForConditionalGeneration'], image_token_index: 10, model_type: 'mistral3',
    multimodal_projector_bias: false, projector_hidden_act: 'gelu', spatial_merge_size: 2,
    text_config: { head_dim: 128, hidden_act: 'silu', hidden_size: 5120, intermediate_size: 32768,
      max_position_embeddings: 131072, model_type: 'mistral', num_attention_heads: 32, num_hidden_layers: 40,
      num_key_value_heads: 8, rms_norm_eps: 1e-5, rope_theta: 1e9, sliding_window: null, vocab_size: 131072 },
    torch_dtype: 'bfloat16', vision_config: { model_type: 'pixtral', hidden_size: 1024, num_hidden_layers: 24 },
    vision_feature_layer: -1,
  });
  assert.deepEqual([s.hidden, s.layers, s.heads, s.kvHeads, s.headDim, s.vocab, s.slidingWindow], [5120, 40, 32, 8, 128, 131072, 0]);
  assert.ok(s.visionLanguage && !s.tieEmbeddings);
  assert.deepEqual([s.bosTokenId, s.eosTokenIds], [1, [2]]);
});

test('Qwen2.5-VL as published (flat config, mrope rope_scaling) with adapters from transformers 4 (model.layers.*, visual.*) gives the golden logits', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'weft-qwen-vl-'));
  try {
    const model = join(tmp, 'model');
    writeRenamed(qvl.modelDir, 'model.safetensors', model, (n) => n);
    const cfg = JSON.parse(readFileSync(join(qvl.modelDir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const { text_config: text, ...top } = cfg as { text_config: Record<string, unknown> };
    const { rope_parameters: rp, ...textFields } = text as { rope_parameters: Record<string, unknown> };
    // The Hub's layout: text fields at the top level, rope_theta beside rope_scaling {type: mrope}.
    writeFileSync(join(model, 'config.json'), JSON.stringify({ ...top, ...textFields, model_type: 'qwen2_5_vl',
      rope_theta: rp.rope_theta, rope_scaling: { type: 'mrope', mrope_section: rp.mrope_section } }));
    const adapters = qvl.adapters.map((a) => {
      const dir = join(tmp, a.name);
      writeRenamed(a.dir, 'adapter_model.safetensors', dir, (n) => n.replace(/^base_model\.model\.model\.language_model\./,
        'base_model.model.model.').replace(/^base_model\.model\.model\.visual\./, 'base_model.model.visual.'));
      return { name: a.name, dir };
    });
    await expectGolden(model, adapters, qvl);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('Qwen2.5-VL: an adapter on the vision tower only (visual.*) loads — the tower is served — and leaves text alone', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'weft-vision-only-'));
  try {
    const a = qvl.adapters.find((x) => x.name === 'qv_gate_r8')!;
    assert.ok(writeRenamed(a.dir, 'adapter_model.safetensors', tmp, (n) => (n.includes('.visual.') ? n : null)) >= 2,
      'the golden adapter has vision-tower pairs');
    const e = LocalEngine.open(qvl.modelDir, { numBlocks: 64, blockSize: 4, adapterSlots: 1 });
    try {
      e.loadAdapter(0, tmp);
      const tokens = qvl.sequences[0]!;
      const [base, tower] = await e.scoreBatch([{ tokens, adapterSlot: -1 }, { tokens, adapterSlot: 0 }]);
      assert.ok(maxAbsDiff(base!, qvl.logits('base/seq0')) <= 1e-4);
      assert.deepEqual(tower, base, 'a tower-only adapter changes no text-only logit');
    } finally {
      e.dispose();
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test("Qwen2.5-VL-7B-Instruct's and Qwen2-VL-2B-Instruct's configs as published read as Qwen2 decoders", () => {
  const vision = { depth: 32, hidden_act: 'silu', hidden_size: 1280, intermediate_size: 3420, num_heads: 16, in_chans: 3,
    out_hidden_size: 3584, patch_size: 14, spatial_merge_size: 2, spatial_patch_size: 14, window_size: 112,
    fullatt_block_indexes: [7, 15, 23, 31], tokens_per_second: 2, temporal_patch_size: 2 };
  const s = parseModelSpec({
    architectures: ['Qwen2_5_VLForConditionalGeneration'], attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151645,
    vision_start_token_id: 151652, vision_end_token_id: 151653, vision_token_id: 151654, image_token_id: 151655,
    video_token_id: 151656, hidden_act: 'silu', hidden_size: 3584, initializer_range: 0.02, intermediate_size: 18944,
    max_position_embeddings: 128000, max_window_layers: 28, model_type: 'qwen2_5_vl', num_attention_heads: 28,
    num_hidden_layers: 28, num_key_value_heads: 4, rms_norm_eps: 1e-06, rope_theta: 1000000.0, sliding_window: 32768,
    tie_word_embeddings: false, torch_dtype: 'bfloat16', transformers_version: '4.41.2', use_cache: true,
    use_sliding_window: false, vision_config: vision, rope_scaling: { type: 'mrope', mrope_section: [16, 24, 24] },
    vocab_size: 152064,
  });
  assert.equal(s.architecture, 'qwen2');
  assert.ok(s.visionLanguage && !s.tieEmbeddings && s.qkvBias && !s.oBias);
  assert.deepEqual([s.hidden, s.layers, s.heads, s.kvHeads, s.headDim, s.vocab, s.intermediate, s.slidingWindow, s.maxPositions],
    [3584, 28, 28, 4, 128, 152064, 18944, 0, 128000]);
  assert.ok(Math.abs(s.rope!.invFreq[1]! - Math.pow(1e6, -2 / 128)) < 1e-6, 'rope_theta 1e6, plain RoPE for text');
  assert.deepEqual([s.bosTokenId, s.eosTokenIds], [151643, [151645]]);
  const q2 = parseModelSpec({
    architectures: ['Qwen2VLForConditionalGeneration'], bos_token_id: 151643, eos_token_id: 151645, hidden_size: 1536,
    intermediate_size: 8960, max_position_embeddings: 32768, model_type: 'qwen2_vl', num_attention_heads: 12,
    num_hidden_layers: 28, num_key_value_heads: 2, rms_norm_eps: 1e-06, rope_theta: 1000000.0, tie_word_embeddings: true,
    use_sliding_window: false, vocab_size: 151936, rope_scaling: { type: 'mrope', mrope_section: [16, 24, 24] },
    vision_config: { depth: 32, embed_dim: 1280, hidden_size: 1536, num_heads: 16 },
  });
  assert.ok(q2.visionLanguage && q2.tieEmbeddings);
  assert.deepEqual([q2.hidden, q2.layers, q2.heads, q2.kvHeads, q2.headDim, q2.vocab], [1536, 28, 12, 2, 128, 151936]);
  // use_sliding_window: Qwen2's rule (the layers from max_window_layers on).
  const sw = parseModelSpec({ architectures: ['Qwen2_5_VLForConditionalGeneration'], num_hidden_layers: 4, max_window_layers: 2,
    use_sliding_window: true, sliding_window: 1024 });
  assert.deepEqual([sw.slidingWindow, sw.layerSliding], [1024, [false, false, true, true]]);
});
