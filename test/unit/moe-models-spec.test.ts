// config.json → ModelSpec for the mixture-of-experts architectures composed of parts weft already had: FlexOlmo, MiniMax-M2
// and Granite MoE with shared experts (their logits are checked against transformers by the golden cases flex_olmo,
// minimax_m2 and granitemoeshared).
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
