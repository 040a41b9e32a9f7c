// Llama 4 (Llama4ForConditionalGeneration's text model; Llama4ForCausalLM): its published configs read into a spec and a
// plan — NoPE layers, chunked attention on the RoPE layers, the q/k norm after RoPE, the NoPE layers' attention
// temperature, interleaved MoE layers with input-scaled experts and a shared expert. The logits are checked against
// transformers + PEFT by the golden cases llama4 and llama4_vlm.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseModelSpec } from '../../shard/models/spec.js';
import { partitionFor } from '../../shard/models/partition.js';
import { planConfig } from '../../shard/models/load-weights.js';

// meta-llama/Llama-4-Scout-17B-16E-Instruct's config.json (vision_config left out): its text_config.
const SCOUT_TEXT = {
  attention_bias: false, attention_chunk_size: 8192, attention_dropout: 0.0, attn_scale: 0.1, attn_temperature_tuning: true,
  bos_token_id: 200000, eos_token_id: [200001, 200007, 200008], floor_scale: 8192, head_dim: 128, hidden_act: 'silu',
  hidden_size: 5120, initializer_range: 0.02, interleave_moe_layer_step: 1, intermediate_size: 8192, intermediate_size_mlp: 16384,
  max_position_embeddings: 10485760, model_type: 'llama4_text', moe_layers: Array.from({ length: 48 }, (_, i) => i),
  no_rope_layers: Array.from({ length: 48 }, (_, i) => ((i + 1) % 4 !== 0 ? 1 : 0)), num_attention_heads: 40,
  num_experts_per_tok: 1, num_hidden_layers: 48, num_key_value_heads: 8, num_local_experts: 16, output_router_logits: false,
  pad_token_id: 200018, rms_norm_eps: 1e-05,
  rope_scaling: { factor: 16.0, high_freq_factor: 1.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  rope_theta: 500000.0, router_aux_loss_coef: 0.001, router_jitter_noise: 0.0, use_qk_norm: true, vocab_size: 202048,
};
const SCOUT = { architectures: ['Llama4ForConditionalGeneration'], model_type: 'llama4', text_config: SCOUT_TEXT,
  vision_config: {}, tie_word_embeddings: false, eos_token_id: [200001, 200007, 200008] };

test('Llama 4 Scout: NoPE every 4th layer, chunked attention on the others, q/k norm after RoPE, temperature on NoPE layers', () => {
  const s = parseModelSpec(SCOUT);
  assert.deepEqual([s.architecture, s.visionLanguage, s.hidden, s.layers, s.heads, s.kvHeads, s.headDim, s.intermediate],
    ['llama4', true, 5120, 48, 40, 8, 128, 16384]);
  assert.deepEqual(s.layerRope, SCOUT_TEXT.no_rope_layers.map((v) => v === 1));
  assert.deepEqual([s.attentionChunk, s.layerChunked], [8192, s.layerRope]);
  assert.deepEqual([s.qkNormAfterRope, s.ropeInterleaved, s.qkNorm], [true, true, false]);
  assert.deepEqual(s.queryScale, { beta: 0.1, period: 8192, offset: 1, nopeOnly: true });
  assert.ok(s.rope!.invFreq.every(Number.isFinite), 'llama3 RoPE with low = high frequency factor has no blend band');
  assert.deepEqual(s.moe && [s.moe.experts, s.moe.perToken, s.moe.intermediate, s.moe.sigmoid, s.moe.scaleInput,
    s.moe.sharedExpert, s.moe.renormalize, s.moe.layers], [16, 1, 8192, true, true, true, false, null]);
  assert.deepEqual(s.eosTokenIds, [200001, 200007, 200008]);
  const plan = planConfig(s, partitionFor(s, 0, 2), { rank: 0, world: 2, numBlocks: 4, blockSize: 16, adapterSlots: 1 });
  assert.deepEqual([plan.qkNormAfterRope, plan.attentionChunk, plan.qScaleOffset, plan.qScaleNopeOnly, plan.moeScaleInput,
    plan.moeSigmoid, plan.expertIntermediateLocal, plan.intermediateLocal], [true, 8192, 1, true, true, true, 4096, 8192]);
  assert.equal(plan.layerChunked!.filter(Boolean).length, 36);
});

test('Llama 4 Maverick shape: MoE every other layer (interleave_moe_layer_step 2), no q/k norm', () => {
  const { moe_layers: _m, ...text } = SCOUT_TEXT;
  const s = parseModelSpec({ ...text, architectures: ['Llama4ForCausalLM'], interleave_moe_layer_step: 2, num_local_experts: 128,
    use_qk_norm: false });
  assert.deepEqual(s.moe!.layers, Array.from({ length: 48 }, (_, l) => l % 2 === 1));
  assert.equal(s.qkNormAfterRope, false);
  assert.equal(s.visionLanguage, false);
  // no temperature tuning, no chunking
  const plain = parseModelSpec({ ...text, architectures: ['Llama4ForCausalLM'], attn_temperature_tuning: false, attention_chunk_size: null });
  assert.deepEqual([plain.queryScale, plain.layerChunked, plain.attentionChunk], [null, null, 0]);
  assert.throws(() => parseModelSpec({ ...text, architectures: ['Llama4ForCausalLM'], no_rope_layers: [1, 0] }),
    /no_rope_layers must list 0 or 1 for each of the 48 layers/);
  assert.throws(() => parseModelSpec({ ...text, architectures: ['Llama4ForCausalLM'], layer_types: ['sliding_attention'] }),
    /layer_types must give chunked_attention or full_attention/);
});
