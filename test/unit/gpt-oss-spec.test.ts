// gpt-oss (GptOssForCausalLM): its published configs read into a spec and plan (attention sinks, alternating windows,
// YaRN without truncation, the router/expert biases and the clamped SwiGLU), its MXFP4 expert encoding decoded as
// transformers' mxfp4 integration decodes it, and its interleaved gate/up columns split. The logits are checked
// against transformers + PEFT by the golden cases gpt_oss and gpt_oss_mxfp4.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseModelSpec } from '../../shard/models/spec.js';
import { partitionFor } from '../../shard/models/partition.js';
import { planConfig } from '../../shard/models/load-weights.js';
import { deinterleaveGateUp, dequantizeMxfp4 } from '../../shard/models/in-out-experts.js';

// openai/gpt-oss-20b's config.json (as published, transformers 4.55).
const GPT_OSS_20B = {
  architectures: ['GptOssForCausalLM'], model_type: 'gpt_oss', attention_bias: true, attention_dropout: 0.0,
  eos_token_id: 200002, experts_per_token: 4, head_dim: 64, hidden_act: 'silu', hidden_size: 2880,
  initial_context_length: 4096, initializer_range: 0.02, intermediate_size: 2880,
  layer_types: Array.from({ length: 24 }, (_, i) => (i % 2 === 0 ? 'sliding_attention' : 'full_attention')),
  max_position_embeddings: 131072, num_attention_heads: 64, num_experts_per_tok: 4, num_hidden_layers: 24,
  num_key_value_heads: 8, num_local_experts: 32, output_router_logits: false, pad_token_id: 199999,
  quantization_config: {
    modules_to_not_convert: ['model.layers.*.self_attn', 'model.layers.*.mlp.router', 'model.embed_tokens', 'lm_head'],
    quant_method: 'mxfp4',
  },
  rms_norm_eps: 1e-05,
  rope_scaling: { beta_fast: 32.0, beta_slow: 1.0, factor: 32.0, original_max_position_embeddings: 4096, rope_type: 'yarn', truncate: false },
  rope_theta: 150000, router_aux_loss_coef: 0.9, sliding_window: 128, swiglu_limit: 7.0, tie_word_embeddings: false,
  use_cache: true, vocab_size: 201088,
};

test('gpt-oss-20b: sinks, alternating 128-token windows, YaRN x32 untruncated, biased router and experts, clamped SwiGLU', () => {
  const s = parseModelSpec(GPT_OSS_20B);
  assert.equal(s.architecture, 'gpt_oss');
  assert.deepEqual([s.hidden, s.layers, s.heads, s.kvHeads, s.headDim, s.vocab], [2880, 24, 64, 8, 64, 201088]);
  assert.deepEqual([s.attnSinks, s.mlp, s.gluLimit, s.qkvBias, s.oBias, s.tieEmbeddings], [true, 'clamped_swiglu', 7, true, true, false]);
  assert.equal(s.slidingWindow, 128);
  assert.deepEqual(s.layerSliding, GPT_OSS_20B.layer_types.map((t) => t === 'sliding_attention'));
  assert.equal(s.rope!.rotaryDim, 64);
  assert.ok(Math.abs(s.rope!.attentionFactor - (0.1 * Math.log(32) + 1)) < 1e-6, `attention factor ${s.rope!.attentionFactor}`);
  assert.equal(s.maxPositions, 131072);
  assert.deepEqual(s.moe && [s.moe.experts, s.moe.perToken, s.moe.intermediate, s.moe.renormalize, s.moe.logitBias,
    s.moe.expertBias, s.moe.gateUpInterleaved, s.moe.sharedExpert, s.moe.layers], [32, 4, 2880, true, true, true, true, false, null]);
  const plan = planConfig(s, partitionFor(s, 1, 2), { rank: 1, world: 2, numBlocks: 4, blockSize: 16, adapterSlots: 1 });
  assert.deepEqual([plan.attnSinks, plan.mlp, plan.gluLimit, plan.moeLogitBias, plan.moeExpertBias, plan.headsLocal,
    plan.expertIntermediateLocal], [true, 'clamped_swiglu', 7, true, true, 32, 1440]);
});

test('gpt-oss: the truncate flag reaches YaRN (untruncated correction range differs from the truncated one)', () => {
  const untruncated = parseModelSpec(GPT_OSS_20B).rope!.invFreq;
  const truncated = parseModelSpec({ ...GPT_OSS_20B, rope_scaling: { ...GPT_OSS_20B.rope_scaling, truncate: true } }).rope!.invFreq;
  assert.ok(untruncated.some((v, i) => Math.abs(v - truncated[i]!) > 1e-9), 'truncate: false must change the ramp');
});

test('gpt-oss: GptOssConfig defaults where the config leaves fields out, and refusals by name', () => {
  const { rope_scaling: _r, rope_theta: _t, sliding_window: _w, layer_types: _l, head_dim: _h, quantization_config: _q, ...bare } = GPT_OSS_20B;
  const s = parseModelSpec(bare);
  assert.equal(s.headDim, 64);
  assert.equal(s.slidingWindow, 128);
  assert.equal(s.layerSliding!.filter(Boolean).length, 12);  // sliding, full, …
  assert.equal(s.rope!.invFreq.length, 32);
  assert.ok(s.rope!.attentionFactor > 1, 'the default YaRN x32');
  assert.throws(() => parseModelSpec({ ...GPT_OSS_20B, quantization_config: { quant_method: 'bitsandbytes' } }),
    /quantization_config 'bitsandbytes' is not supported for gpt-oss/);
  assert.throws(() => parseModelSpec({ ...GPT_OSS_20B, swiglu_limit: -1 }), /swiglu_limit must be a positive number/);
  assert.throws(() => parseModelSpec({ ...GPT_OSS_20B, num_experts_per_tok: 40 }), /num_experts_per_tok 40 is more than the 32 experts/);
});

test('MXFP4: low nibble first, E2M1 values times 2^(scale - 127) per 32-value block; wrong sizes named', () => {
  // one row of 64 values: block 0 scale 2^0, block 1 scale 2^-3
  const blocks = new Uint8Array(32), scales = new Uint8Array([127, 124]);
  blocks[0] = 0x71;   // low 1 -> +0.5, high 7 -> +6
  blocks[1] = 0xf8;   // low 8 -> -0, high 15 -> -6
  blocks[16] = 0x2d;  // block 1: low 13 -> -3, high 2 -> +1, times 1/8
  const m = dequantizeMxfp4(blocks, scales, 1, 64);
  assert.deepEqual([m[0], m[1], m[2], m[3], m[32], m[33]], [0.5, 6, -0, -6, -3 / 8, 1 / 8]);
  assert.ok(Object.is(m[2], -0));
  assert.equal(m.filter((v) => v !== 0).length, 5);  // the rest of both blocks: code 0
  assert.throws(() => dequantizeMxfp4(blocks, scales, 2, 64), /do not make a \[2, 64\] matrix/);
});

test('gate/up interleaved columns become this rank\'s [gate rows | up rows]', () => {
  // 4 interleaved rows of 2 columns: g0 u0 g1 u1
  const m = new Float32Array([10, 11, 20, 21, 30, 31, 40, 41]);
  assert.deepEqual([...deinterleaveGateUp(m, 2, 0, 2)], [10, 11, 30, 31, 20, 21, 40, 41]);
  assert.deepEqual([...deinterleaveGateUp(m, 2, 1, 2)], [30, 31, 40, 41]);
});
