// config.json → ModelSpec for DeepSeek-V3-shaped models (DeepseekV3ForCausalLM: DeepSeek-V3 / R1, Kimi K2). The logits
// themselves are checked against transformers by the golden cases deepseek_v3 and deepseek_v3_noq.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseModelSpec } from '../../shard/models/spec.js';
import { partitionFor } from '../../shard/models/partition.js';
import { planConfig } from '../../shard/models/load-weights.js';
import { subBlocks, rowParallelInput, resolveModule } from '../../shard/models/layout.js';
import { UnsupportedModelError } from '../../shard/models/errors.js';

// deepseek-ai/DeepSeek-V3's config.json as published, without its fp8 quantization_config (a bf16 conversion).
const DEEPSEEK_V3 = {
  architectures: ['DeepseekV3ForCausalLM'], attention_bias: false, bos_token_id: 0, eos_token_id: 1,
  first_k_dense_replace: 3, hidden_act: 'silu', hidden_size: 7168, intermediate_size: 18432, kv_lora_rank: 512,
  max_position_embeddings: 163840, model_type: 'deepseek_v3', moe_intermediate_size: 2048, moe_layer_freq: 1, n_group: 8,
  n_routed_experts: 256, n_shared_experts: 1, norm_topk_prob: true, num_attention_heads: 128, num_experts_per_tok: 8,
  num_hidden_layers: 61, num_key_value_heads: 128, num_nextn_predict_layers: 1, q_lora_rank: 1536, qk_nope_head_dim: 128,
  qk_rope_head_dim: 64, rms_norm_eps: 1e-6,
  rope_scaling: { beta_fast: 32, beta_slow: 1, factor: 40, mscale: 1.0, mscale_all_dim: 1.0, original_max_position_embeddings: 4096, type: 'yarn' },
  rope_theta: 10000, routed_scaling_factor: 2.5, scoring_func: 'sigmoid', tie_word_embeddings: false, topk_group: 4,
  topk_method: 'noaux_tc', torch_dtype: 'bfloat16', v_head_dim: 128, vocab_size: 129280,
};

test('DeepSeek-V3: latent attention shapes, YaRN on the rotary part, the softmax scale times mscale², routing defaults', () => {
  const s = parseModelSpec(DEEPSEEK_V3);
  assert.equal(s.architecture, 'deepseek_v3');
  assert.deepEqual(s.mla, { qRank: 1536, kvRank: 512, nopeDim: 128, ropeDim: 64, vDim: 128 });
  assert.deepEqual([s.heads, s.kvHeads, s.headDim], [128, 128, 192]);
  assert.equal(s.rope!.rotaryDim, 64);
  assert.ok(s.ropeInterleaved, 'rope_interleave defaults to true');
  const m = 0.1 * Math.log(40) + 1;
  assert.ok(Math.abs(s.attnScale - (m * m) / Math.sqrt(192)) < 1e-9, `attnScale ${s.attnScale}`);
  assert.ok(Math.abs(s.rope!.attentionFactor - 1) < 1e-9, 'mscale = mscale_all_dim: YaRN attention factor 1');
  assert.equal(s.maxPositions, 163840);
  const moe = s.moe!;
  assert.deepEqual([moe.experts, moe.perToken, moe.intermediate, moe.groups, moe.topkGroups, moe.routedScale],
    [256, 8, 2048, 8, 4, 2.5]);
  assert.ok(moe.sigmoid && moe.renormalize && moe.sharedExpert);
  assert.deepEqual(moe.layers!.slice(0, 4), [false, false, false, true], 'first_k_dense_replace 3: layers 0-2 dense');
});

test('DeepSeek-V3 over 8 shards: q_b / kv_b / o split by heads, the first projection whole on every rank', () => {
  const s = parseModelSpec(DEEPSEEK_V3);
  const part = partitionFor(s, 3, 8);
  const qkv = subBlocks(s, part, 'qkv');
  assert.deepEqual(qkv.map((b) => [b.role, b.fullOffset, b.fullLen, b.local.start, b.local.end, b.localOffset]), [
    ['q_a', 0, 1536, 0, 1536, 0], ['kv_a', 1536, 512, 0, 512, 1536], ['k_rope', 2048, 64, 0, 64, 2048]]);
  const [qb] = subBlocks(s, part, 'q_b'), [kvb] = subBlocks(s, part, 'kv_b');
  assert.deepEqual([qb!.local.start, qb!.local.end], [3 * 16 * 192, 4 * 16 * 192]);
  assert.deepEqual([kvb!.local.start, kvb!.local.end], [3 * 16 * 256, 4 * 16 * 256]);
  assert.deepEqual(rowParallelInput(s, part, 'o'), { start: 3 * 16 * 128, end: 4 * 16 * 128 });
  const plan = planConfig(s, part, { rank: 3, world: 8, numBlocks: 4, blockSize: 16, adapterSlots: 1 });
  assert.deepEqual([plan.headsLocal, plan.kvHeadsLocal, plan.headDim, plan.rotaryDim, plan.mlaQRank, plan.mlaKvRank,
    plan.mlaNopeDim, plan.mlaVDim], [16, 16, 192, 64, 1536, 512, 128, 128]);
  // PEFT's module names on latent attention
  assert.deepEqual(resolveModule(s, 'model.layers.5.self_attn.kv_a_proj_with_mqa')?.roles, ['kv_a', 'k_rope']);
  assert.equal(resolveModule(s, 'model.layers.5.self_attn.kv_b_proj')?.module, 'kv_b');
  assert.equal(resolveModule(s, 'model.layers.5.self_attn.k_proj'), null, 'no k_proj in latent attention');
});

test('Kimi K2 (model_type kimi_k2, one expert group) reads as DeepSeek-V3; no q rank gives q_proj', () => {
  const k2 = parseModelSpec({ ...DEEPSEEK_V3, model_type: 'kimi_k2', n_group: 1, topk_group: 1, n_routed_experts: 384,
    num_attention_heads: 64, num_key_value_heads: 64, routed_scaling_factor: 2.827, first_k_dense_replace: 1 });
  assert.deepEqual([k2.moe!.experts, k2.moe!.groups, k2.moe!.topkGroups, k2.heads], [384, 1, 1, 64]);
  const noq = parseModelSpec({ ...DEEPSEEK_V3, q_lora_rank: null, rope_scaling: null });
  assert.equal(noq.mla!.qRank, 0);
  assert.ok(Math.abs(noq.attnScale - 1 / Math.sqrt(192)) < 1e-12, 'no RoPE scaling: 1/sqrt(qk_head_dim)');
  assert.equal(subBlocks(noq, partitionFor(noq, 1, 2), 'qkv')[0]!.role, 'q');
});

test('DeepSeek-V3 configs weft does not serve exactly are refused by name', () => {
  const refused = (patch: Record<string, unknown>, what: RegExp): void => {
    assert.throws(() => parseModelSpec({ ...DEEPSEEK_V3, ...patch }), (e: Error) => e instanceof UnsupportedModelError && what.test(e.message));
  };
  refused({ quantization_config: { quant_method: 'hqq' } }, /quant_method 'hqq' is not supported/);
  refused({ attention_bias: true }, /attention_bias/);
  refused({ v_head_dim: 256 }, /v_head_dim 256/);
  refused({ n_shared_experts: 1.5 }, /n_shared_experts must be a non-negative integer/);
  refused({ hidden_act: 'gelu' }, /hidden_act 'gelu'/);
  refused({ architectures: ['DeepseekV2ForCausalLM'], topk_method: 'noaux_tc_v2' }, /topk_method 'noaux_tc_v2' is not supported/);
});

// deepseek-ai/DeepSeek-V2-Lite's config.json as published.
const DEEPSEEK_V2_LITE = {
  architectures: ['DeepseekV2ForCausalLM'], attention_bias: false, aux_loss_alpha: 0.001, bos_token_id: 100000,
  eos_token_id: 100001, first_k_dense_replace: 1, hidden_act: 'silu', hidden_size: 2048, intermediate_size: 10944,
  kv_lora_rank: 512, max_position_embeddings: 163840, model_type: 'deepseek_v2', moe_intermediate_size: 1408,
  moe_layer_freq: 1, n_group: 1, n_routed_experts: 64, n_shared_experts: 2, norm_topk_prob: false, num_attention_heads: 16,
  num_experts_per_tok: 6, num_hidden_layers: 27, num_key_value_heads: 16, q_lora_rank: null, qk_nope_head_dim: 128,
  qk_rope_head_dim: 64, rms_norm_eps: 1e-6,
  rope_scaling: { beta_fast: 32, beta_slow: 1, factor: 40, mscale: 0.707, mscale_all_dim: 0.707, original_max_position_embeddings: 4096, type: 'yarn' },
  rope_theta: 10000, routed_scaling_factor: 1.0, scoring_func: 'softmax', seq_aux: true, tie_word_embeddings: false,
  topk_group: 1, topk_method: 'greedy', torch_dtype: 'bfloat16', v_head_dim: 128, vocab_size: 102400,
};

test('DeepSeek-V2-Lite: q_proj, softmax routing without groups, two shared experts as one MLP twice as wide', () => {
  const s = parseModelSpec(DEEPSEEK_V2_LITE);
  assert.equal(s.architecture, 'deepseek_v2');
  assert.deepEqual(s.mla, { qRank: 0, kvRank: 512, nopeDim: 128, ropeDim: 64, vDim: 128 });
  assert.ok(s.ropeInterleaved, 'V2 rotates pairs (its complex product)');
  const m = 0.1 * 0.707 * Math.log(40) + 1;
  assert.ok(Math.abs(s.attnScale - (m * m) / Math.sqrt(192)) < 1e-9);
  const moe = s.moe!;
  assert.deepEqual([moe.sigmoid, moe.renormalize, moe.groups, moe.routedScale, moe.sharedExpert, moe.sharedIntermediate],
    [false, false, 1, 1, true, 2816]);
  assert.deepEqual(moe.layers!.slice(0, 2), [false, true]);
  const part = partitionFor(s, 1, 2);
  assert.deepEqual([part.expertIntermediate, part.sharedIntermediate], [{ start: 704, end: 1408 }, { start: 1408, end: 2816 }]);
  const plan = planConfig(s, part, { rank: 1, world: 2, numBlocks: 4, blockSize: 16, adapterSlots: 1 });
  assert.deepEqual([plan.expertIntermediateLocal, plan.moeSharedIntermediateLocal, plan.moeGroupMax], [704, 1408, false]);
  // DeepSeek-V2 (236B): group_limited_greedy over 8 groups, the best 3 by their largest probability
  const big = parseModelSpec({ ...DEEPSEEK_V2_LITE, topk_method: 'group_limited_greedy', n_group: 8, topk_group: 3,
    n_routed_experts: 160, routed_scaling_factor: 16.0 });
  assert.deepEqual([big.moe!.groups, big.moe!.topkGroups, big.moe!.groupMax, big.moe!.routedScale], [8, 3, true, 16]);
});
