// config.json → ModelSpec for the mixture-of-experts architectures composed of parts weft already had: FlexOlmo, MiniMax-M2,
// Granite MoE with shared experts, PhiMoE and Hunyuan MoE (their logits are checked against transformers by the golden
// cases flex_olmo, minimax_m2, granitemoeshared, phimoe and hunyuan_v1_moe).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseModelSpec } from '../../shard/models/spec.js';

test("FlexOlmo-7x7B-1T's config: OLMo 2's block with every layer's MLP 7 experts of intermediate_size, all of them per token", () => {
  const s = parseModelSpec({ architectures: ['FlexOlmoForCausalLM'], attention_bias: false, eos_token_id: 100257,
    hidden_act: 'silu', hidden_size: 4096, intermediate_size: 11008, max_position_embeddings: 4096, model_type: 'flex_olmo',
    norm_topk_prob: false, num_attention_heads: 32, num_experts: 7, num_experts_per_tok: 7, num_hidden_layers: 32,
    num_key_value_heads: 32, pad_token_id: 100277, rms_norm_eps: 1e-06, rope_theta: 500000, tie_word_embeddings: false,
    vocab_size: 100352 });
  assert.equal(s.architecture, 'flex_olmo');
  assert.ok(!s.preNorms && s.postNorms && s.qkNormFull && s.qkvClip === 0);
  assert.deepEqual([s.moe!.experts, s.moe!.perToken, s.moe!.intermediate, s.moe!.renormalize, s.moe!.sigmoid, s.moe!.layers],
    [7, 7, 11008, false, false, null]);
});

test("MiniMax-M2's config: sigmoid routing over 256 experts, full-width q/k norms, rotary_dim 64 of 128; what differs is refused", () => {
  const cfg = { architectures: ['MiniMaxM2ForCausalLM'], attn_type_list: Array(62).fill(1), head_dim: 128, hidden_act: 'silu',
    hidden_size: 3072, intermediate_size: 1536, max_position_embeddings: 196608, model_type: 'minimax_m2', num_attention_heads: 48,
    num_experts_per_tok: 8, num_hidden_layers: 62, num_key_value_heads: 8, num_local_experts: 256, qk_norm_type: 'per_layer',
    rms_norm_eps: 1e-06, rope_theta: 5000000, rotary_dim: 64, partial_rotary_factor: 0.5, scoring_func: 'sigmoid',
    shared_intermediate_size: 0, tie_word_embeddings: false, use_mtp: true, use_qk_norm: true, use_routing_bias: true,
    vocab_size: 200064, quantization_config: { activation_scheme: 'dynamic', fmt: 'float8_e4m3fn', quant_method: 'fp8',
      weight_block_size: [128, 128] } };
  const s = parseModelSpec(cfg);
  assert.equal(s.architecture, 'minimax_m2');
  assert.ok(s.preNorms && s.qkNormFull && !s.qkNorm && !s.qkvBias && !s.oBias);
  assert.deepEqual([s.rope!.rotaryDim, s.moe!.experts, s.moe!.perToken, s.moe!.intermediate], [64, 256, 8, 1536]);
  assert.ok(s.moe!.sigmoid && s.moe!.renormalize && !s.moe!.sharedExpert && s.moe!.groups === 1 && s.moe!.routedScale === 1);
  assert.throws(() => parseModelSpec({ ...cfg, partial_rotary_factor: undefined }), /rotary_dim 64 differs/);
  assert.throws(() => parseModelSpec({ ...cfg, attn_type_list: [0, ...Array(61).fill(1)] }), /lightning attention/);
  assert.throws(() => parseModelSpec({ ...cfg, scoring_func: 'softmax' }), /scoring_func 'softmax'/);
});

test("granite-3.0-1b-a400m with a shared MLP: Granite's multipliers, softmax top-8 of 32 experts, a 1,024-wide shared MLP", () => {
  const cfg = { architectures: ['GraniteMoeSharedForCausalLM'], attention_bias: false, attention_multiplier: 0.015625,
    bos_token_id: 0, embedding_multiplier: 12.0, eos_token_id: 0, hidden_act: 'silu', hidden_size: 1024, intermediate_size: 512,
    logits_scaling: 6.0, max_position_embeddings: 4096, model_type: 'granitemoeshared', num_attention_heads: 16,
    num_experts_per_tok: 8, num_hidden_layers: 24, num_key_value_heads: 8, num_local_experts: 32, residual_multiplier: 0.22,
    rms_norm_eps: 1e-06, rope_theta: 10000, shared_intermediate_size: 1024, tie_word_embeddings: true, vocab_size: 49155 };
  const s = parseModelSpec(cfg);
  assert.equal(s.architecture, 'granitemoeshared');
  assert.deepEqual([s.embedScale, s.attnScale, s.residualScale, s.logitsDivisor], [12, 0.015625, 0.22, 6]);
  assert.deepEqual([s.moe!.experts, s.moe!.perToken, s.moe!.intermediate, s.moe!.sharedIntermediate, s.moe!.sharedGate],
    [32, 8, 512, 1024, undefined]);
  assert.ok(s.moe!.sharedExpert && s.moe!.renormalize && !s.moe!.sigmoid);
  assert.ok(!parseModelSpec({ ...cfg, shared_intermediate_size: 0 }).moe!.sharedExpert);  // no shared MLP, as Granite MoE
});

test("Phi-3.5-MoE-instruct's config (PhiMoEForCausalLM): LayerNorms, biases, longrope scaled by its mscale, sparsemixer over 16 experts", () => {
  const factors = Array.from({ length: 64 }, (_, i) => 1 + i / 64);
  const cfg = { architectures: ['PhiMoEForCausalLM'], attention_bias: true, bos_token_id: 1, eos_token_id: 32000, hidden_act: 'silu',
    hidden_size: 4096, input_jitter_noise: 0.01, intermediate_size: 6400, lm_head_bias: true, max_position_embeddings: 131072,
    model_type: 'phimoe', num_attention_heads: 32, num_experts_per_tok: 2, num_hidden_layers: 32, num_key_value_heads: 8,
    num_local_experts: 16, original_max_position_embeddings: 4096, rms_norm_eps: 1e-05, rope_theta: 10000.0,
    rope_scaling: { long_factor: factors, long_mscale: 1.243163121016122, original_max_position_embeddings: 4096,
      short_factor: factors, short_mscale: 1.243163121016122, type: 'longrope' },
    router_aux_loss_coef: 0.0, router_jitter_noise: 0.01, sliding_window: 131072, tie_word_embeddings: false, vocab_size: 32064 };
  const s = parseModelSpec(cfg);
  assert.equal(s.architecture, 'phimoe');
  assert.ok(s.norm === 'layer' && s.normBias && s.qkvBias && s.oBias && s.lmHeadBias && !s.mlpBias && !s.tieEmbeddings);
  assert.deepEqual([s.rope!.attentionFactor, s.rope!.long!.from, s.slidingWindow], [1.243163121016122, 4096, 131072]);
  assert.deepEqual([s.moe!.experts, s.moe!.perToken, s.moe!.intermediate, s.moe!.mixerThreshold, s.moe!.renormalize],
    [16, 2, 6400, Math.fround(0.02), false]);
  assert.equal(parseModelSpec({ ...cfg, architectures: ['PhimoeForCausalLM'] }).architecture, 'phimoe');  // transformers' name
  assert.throws(() => parseModelSpec({ ...cfg, num_experts_per_tok: 4 }), /num_experts_per_tok 4 is not supported for phimoe/);
  assert.throws(() => parseModelSpec({ ...cfg, rope_scaling: { ...cfg.rope_scaling, long_mscale: 1.3 } }), /differs from long_mscale/);
  assert.throws(() => parseModelSpec({ ...cfg, rope_scaling: { ...cfg.rope_scaling, short_mscale: undefined } }), /short_mscale and long_mscale/);
  assert.throws(() => parseModelSpec({ ...cfg, rope_scaling: { type: 'linear', factor: 2 } }), /rope type 'linear' is not supported for phimoe/);
  assert.throws(() => parseModelSpec({ ...cfg, router_jitter_noise: -1 }), /router_jitter_noise/);
});

test("Hunyuan-A13B's config: Hunyuan dense's attention, 64 experts top 8 and a shared MLP; per-layer lists that differ refused", () => {
  const cfg = { architectures: ['HunYuanMoEV1ForCausalLM'], attention_bias: false, attention_head_dim: 128, bos_token_id: 1,
    eos_token_id: 127960, hidden_act: 'silu', hidden_size: 4096, intermediate_size: 3072, max_position_embeddings: 32768,
    mlp_bias: false, model_type: 'hunyuan_v1_moe', moe_intermediate_size: Array(32).fill(3072), moe_layer_num_skipped: 0,
    moe_topk: Array(32).fill(8), num_attention_heads: 32, num_experts: 64, num_hidden_layers: 32, num_key_value_heads: 8,
    num_shared_expert: Array(32).fill(1), rms_norm_eps: 1e-05, rope_theta: 10000.0,
    rope_scaling: { alpha: 1000.0, beta_fast: 32, beta_slow: 1, factor: 1.0, mscale: 1.0, mscale_all_dim: 1.0, type: 'dynamic' },
    tie_word_embeddings: true, use_cla: false, use_mixed_mlp_moe: true, use_qk_norm: true, vocab_size: 128167 };
  const s = parseModelSpec(cfg);
  assert.equal(s.architecture, 'hunyuan_v1_moe');
  assert.ok(s.qkNorm && s.qkNormPostRope && !s.qkvBias && s.tieEmbeddings && s.headDim === 128);
  assert.deepEqual([s.moe!.experts, s.moe!.perToken, s.moe!.intermediate, s.moe!.sharedIntermediate, s.moe!.layers],
    [64, 8, 3072, undefined, null]);
  assert.ok(s.moe!.sharedExpert && s.moe!.renormalize && !s.moe!.sigmoid && s.moe!.mixerThreshold === undefined);
  assert.throws(() => parseModelSpec({ ...cfg, moe_topk: [...Array(31).fill(8), 4] }), /moe_topk .* differs between layers/);
  assert.throws(() => parseModelSpec({ ...cfg, num_shared_expert: Array(32).fill(2) }), /num_shared_expert/);
  assert.throws(() => parseModelSpec({ ...cfg, moe_intermediate_size: Array(32).fill(1536) }), /moe_intermediate_size 1536 differs/);
  assert.throws(() => parseModelSpec({ ...cfg, use_mixed_mlp_moe: false }), /use_mixed_mlp_moe=false/);
  assert.throws(() => parseModelSpec({ ...cfg, use_qk_norm: false }), /use_qk_norm=false/);
  assert.throws(() => parseModelSpec({ ...cfg, use_cla: true }), /use_cla=true/);
  assert.throws(() => parseModelSpec({ ...cfg, attention_head_dim: 64 }), /attention_head_dim 64/);
  assert.throws(() => parseModelSpec({ ...cfg, num_experts: Array(32).fill(64) }), /num_experts as a per-layer list/);
});
