// LLaVA's config reading (llava-spec.ts), vision adapter paths (vision-weights.ts) and the shard's image store
// (image-store.ts): what the conformance test (conformance/llava.test.ts) does not reach.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseModelSpec } from '../../shard/models/index.js';
import { featureLayerIndices } from '../../shard/models/llava-spec.js';
import { visionLoraTarget } from '../../shard/models/vision-weights.js';
import { ImageStore } from '../../shard/engine/image-store.js';
import { float32ToBytes } from '../../protocol/index.js';

// llava-hf/llava-1.5-7b-hf's config.json as published (the text and vision configs lean on their defaults).
const LLAVA_15 = {
  architectures: ['LlavaForConditionalGeneration'], ignore_index: -100, image_token_index: 32000, model_type: 'llava',
  pad_token_id: 32001, projector_hidden_act: 'gelu',
  text_config: { _name_or_path: 'lmsys/vicuna-7b-v1.5', architectures: ['LlamaForCausalLM'], max_position_embeddings: 4096,
    model_type: 'llama', rms_norm_eps: 1e-5, torch_dtype: 'float16', vocab_size: 32064 },
  tie_word_embeddings: false, torch_dtype: 'float16', vision_config: { hidden_size: 1024, image_size: 336,
    intermediate_size: 4096, model_type: 'clip_vision_model', num_attention_heads: 16, num_hidden_layers: 24,
    patch_size: 14, projection_dim: 768, vocab_size: 32000 },
  vision_feature_layer: -2, vision_feature_select_strategy: 'default', vocab_size: 32064,
};

test('llava-1.5-7b-hf: a Llama-2-7B language model, CLIP ViT-L/14-336, 576 tokens per image', () => {
  const s = parseModelSpec(LLAVA_15);
  assert.equal(s.architecture, 'llama');
  assert.deepEqual([s.hidden, s.layers, s.heads, s.kvHeads, s.intermediate, s.vocab, s.maxPositions], [4096, 32, 32, 32, 11008, 32064, 4096]);
  assert.ok(s.visionLanguage && !s.tieEmbeddings);
  const v = s.vision!;
  assert.deepEqual([v.hidden, v.heads, v.layers, v.layersRun, v.imageSize, v.patchSize, v.act, v.normEps],
    [1024, 16, 24, 23, 336, 14, 'quick_gelu', 1e-5]);
  assert.deepEqual([v.featureLayers, v.dropCls, v.tokensPerImage, v.imageTokenId, v.projectorAct, v.projectorBias],
    [[23], true, 576, 32000, 'gelu', true]);
});

test('feature layers: negative from the end of the layers + 1 hidden states, lists kept in order; out of range refused', () => {
  assert.deepEqual(featureLayerIndices(-2, 24, 'x'), [23]);
  assert.deepEqual(featureLayerIndices([-3, -1, 0], 3, 'x'), [1, 3, 0]);
  assert.throws(() => featureLayerIndices(-5, 3, 'x'), /outside the tower's 4 hidden states/);
  assert.throws(() => featureLayerIndices(4, 3, 'x'), /outside/);
  const full = parseModelSpec({ ...LLAVA_15, vision_feature_select_strategy: 'full', vision_feature_layer: [-1, -5] });
  assert.deepEqual([full.vision!.featureLayers, full.vision!.layersRun, full.vision!.tokensPerImage], [[24, 20], 24, 577]);
});

test('a Mistral or Qwen2 text model; others, SigLIP towers and unknown strategies are refused by name', () => {
  const mistral = parseModelSpec({ ...LLAVA_15, text_config: { model_type: 'mistral', vocab_size: 32064 } });
  assert.equal(mistral.architecture, 'mistral');
  const qwen = parseModelSpec({ ...LLAVA_15, text_config: { model_type: 'qwen2', vocab_size: 152_000, hidden_size: 896,
    num_attention_heads: 14, num_key_value_heads: 2, intermediate_size: 4864, num_hidden_layers: 24 } });
  assert.ok(qwen.architecture === 'qwen2' && qwen.qkvBias);
  assert.throws(() => parseModelSpec({ ...LLAVA_15, text_config: { model_type: 'gemma' } }), /'gemma' language model is not supported/);
  assert.throws(() => parseModelSpec({ ...LLAVA_15, vision_config: { model_type: 'siglip_vision_model' } }), /siglip_vision_model/);
  assert.throws(() => parseModelSpec({ ...LLAVA_15, vision_feature_select_strategy: 'cls' }), /vision_feature_select_strategy 'cls'/);
});

test('vision adapter paths of every layout become vision plan targets; unused layers are skipped, others refused', () => {
  const v = parseModelSpec(LLAVA_15).vision!;
  for (const prefix of ['model.vision_tower.vision_model.', 'model.vision_tower.', 'vision_tower.vision_model.', 'vision_tower.']) {
    assert.equal(visionLoraTarget(v, `${prefix}encoder.layers.3.self_attn.q_proj`), 'layers.3.q');
    assert.equal(visionLoraTarget(v, `${prefix}encoder.layers.0.self_attn.out_proj`), 'layers.0.o');
    assert.equal(visionLoraTarget(v, `${prefix}encoder.layers.22.mlp.fc2`), 'layers.22.fc2');
    assert.equal(visionLoraTarget(v, `${prefix}encoder.layers.23.mlp.fc1`), 'skip');  // after hidden state 23
  }
  assert.equal(visionLoraTarget(v, 'model.multi_modal_projector.linear_1'), 'proj1');
  assert.equal(visionLoraTarget(v, 'multi_modal_projector.linear_2'), 'proj2');
  assert.equal(visionLoraTarget(v, 'vision_tower.vision_model.embeddings.patch_embedding'), null);
  assert.equal(visionLoraTarget(v, 'vision_tower.vision_model.encoder.layers.24.mlp.fc1'), null);
});

test('image store: chunks in any order, a refused size says why, waits end at the deadline, unpinned images age out', async () => {
  let now = 1000;
  const store = new ImageStore({ channels: 3, maxBytes: 3 * 2 * 2 * 4 * 2, maxAgeMs: 10_000, now: () => now });
  const px = float32ToBytes(Float32Array.from({ length: 12 }, (_, i) => i));
  const put = (key: string, chunk: number, data: Uint8Array, chunks = 2) => store.put({ key, height: 2, width: 2, chunk, chunks, data });
  const waiting = store.waitFor('a', Date.now() + 5000);
  put('a', 1, px.slice(24));
  assert.equal(store.get('a'), undefined);
  put('a', 0, px.slice(0, 24));
  assert.equal(await waiting, true);
  assert.deepEqual(Array.from(store.get('a')!.pixels), Array.from({ length: 12 }, (_, i) => i));
  put('bad', 0, px.slice(0, 20), 1);
  assert.match(store.refusal('bad')!, /hold 20 bytes, not 48/);
  assert.equal(await store.waitFor('bad', Date.now() + 5000), false);
  assert.equal(await store.waitFor('never', Date.now() + 30), false);
  // Byte budget of two images: a third drops the least recently used unpinned one; a pinned one stays.
  store.pin('a');
  put('b', 0, px, 1);
  now += 1;
  put('c', 0, px, 1);
  assert.ok(store.get('a') && store.get('c') && !store.get('b'));
  store.unpin('a');
  now += 20_000;  // older than maxAgeMs once unpinned
  store.unpin('c');
  assert.equal(store.get('a'), undefined);
  assert.equal(store.heldBytes, 0);
});
