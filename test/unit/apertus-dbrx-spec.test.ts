// config.json → ModelSpec, checkpoint names and LoRA targets for Apertus and DBRX (their logits are checked against
// transformers + PEFT by the golden cases apertus and dbrx).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseModelSpec } from '../../shard/models/spec.js';
import { xieluParams } from '../../shard/models/apertus-spec.js';
import { partsOfModulePath, resolveModule } from '../../shard/models/layout.js';
import { partitionFor } from '../../shard/models/partition.js';
import { planConfig } from '../../shard/models/load-weights.js';

// Apertus-8B's layout, as its config.json publishes it (transformers 4.56 form: rope_theta + rope_scaling).
const APERTUS = { architectures: ['ApertusForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 1,
  eos_token_id: 68, hidden_act: 'xielu', hidden_dropout: 0.0, hidden_size: 4096, initializer_range: 0.02,
  intermediate_size: 21504, max_position_embeddings: 65536, mlp_bias: false, model_type: 'apertus', num_attention_heads: 32,
  num_hidden_layers: 32, num_key_value_heads: 8, pad_token_id: 3, post_norm: false, qk_norm: true, rms_norm_eps: 1e-05,
  rope_scaling: { factor: 8.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192,
    rope_type: 'llama3' }, rope_theta: 12000000, tie_word_embeddings: false, torch_dtype: 'bfloat16', vocab_size: 131072 };

test("Apertus-8B's config: per-head q/k norms, non-gated xIELU MLP, llama3 RoPE with theta 1.2e7", () => {
  const s = parseModelSpec(APERTUS);
  assert.equal(s.architecture, 'apertus');
  assert.deepEqual([s.mlp, s.norm, s.normEps, s.heads, s.kvHeads, s.headDim, s.intermediate], ['xielu', 'rms', 1e-5, 32, 8, 128, 21504]);
  assert.ok(s.qkNorm && !s.qkNormPostRope && !s.qkvBias && !s.oBias && !s.mlpBias && !s.tieEmbeddings && s.moe === null);
  assert.equal(s.rope!.rotaryDim, 128);
  // llama3: the highest frequency as the default's, the lowest divided by the factor 8
  const d = (i: number) => 1 / Math.pow(12e6, (2 * i) / 128);
  assert.ok(Math.abs(s.rope!.invFreq[0]! - d(0)) < 1e-7 && Math.abs(s.rope!.invFreq[63]! * 8 / d(63) - 1) < 1e-5);
  assert.deepEqual([s.bosTokenId, s.eosTokenIds], [1, [68]]);
  // without any RoPE fields: ApertusConfig's own llama3 default, the same frequencies
  const { rope_scaling: _rs, rope_theta: _rt, ...bare } = APERTUS;
  assert.deepEqual(parseModelSpec(bare).rope!.invFreq, s.rope!.invFreq);
  assert.equal(parseModelSpec({ ...APERTUS, attention_bias: true }).oBias, true);
  const part = partitionFor(s, 1, 4);
  assert.equal(planConfig(s, part, { rank: 1, world: 4, numBlocks: 1, blockSize: 16, adapterSlots: 1 }).mlp, 'xielu');
});

test('Apertus: what transformers would compute otherwise is refused by name', () => {
  assert.throws(() => parseModelSpec({ ...APERTUS, hidden_act: 'relu2' }), /hidden_act 'relu2' is not supported for apertus/);
  assert.throws(() => parseModelSpec({ ...APERTUS, qk_norm: false }), /qk_norm=false is not supported/);
  assert.throws(() => parseModelSpec({ ...APERTUS, post_norm: true }), /post_norm=true is not supported/);
  assert.throws(() => parseModelSpec({ ...APERTUS, mlp_bias: true }), /mlp_bias=true is not supported/);
  // transformers keeps its default theta 1.2e7 when a config names another without a RoPE dict
  const { rope_scaling: _rs, ...thetaOnly } = APERTUS;
  assert.throws(() => parseModelSpec({ ...thetaOnly, rope_theta: 500000 }), /rope_theta 500000 without rope_parameters/);
  assert.throws(() => parseModelSpec({ ...APERTUS, rope_scaling: { ...APERTUS.rope_scaling, rope_type: 'dynamic' } }),
    /rope type 'dynamic' is not supported/);
});

test('xIELU parameters: softplus of alpha_p, beta + softplus of alpha_n, beta and eps as stored', () => {
  const stored: Record<string, number> = { 'mlp.act_fn.alpha_p': 0.5, 'mlp.act_fn.alpha_n': -1.25, 'mlp.act_fn.beta': 0.5,
    'mlp.act_fn.eps': -1e-6 };
  const p = xieluParams((name) => Float32Array.of(stored[name]!));
  const softplus = (x: number) => Math.log1p(Math.exp(x));
  assert.ok(Math.abs(p[0]! - softplus(0.5)) < 1e-6 && Math.abs(p[1]! - (0.5 + softplus(-1.25))) < 1e-6);
  assert.deepEqual([p[2], p[3]], [0.5, Math.fround(-1e-6)]);
  assert.equal(xieluParams((name) => Float32Array.of(name.endsWith('alpha_p') ? 30 : 0))[0], 30);  // softplus's threshold 20
  assert.throws(() => xieluParams(() => new Float32Array(2)), /mlp.act_fn.beta has 2 values, expected 1/);
});

// DBRX-instruct's layout, as its config.json publishes it (transformers 4.38: attn_config.rope_theta, no
// moe_normalize_expert_weights: DbrxFFNConfig's default 1).
const DBRX = { architectures: ['DbrxForCausalLM'], attn_config: { clip_qkv: 8, kv_n_heads: 8, model_type: '', rope_theta: 500000 },
  d_model: 6144, emb_pdrop: 0.0, ffn_config: { ffn_hidden_size: 10752, model_type: '', moe_jitter_eps: 0.01, moe_loss_weight: 0.05,
    moe_num_experts: 16, moe_top_k: 4 }, initializer_range: 0.02, max_seq_len: 32768, model_type: 'dbrx', n_heads: 48,
  n_layers: 40, output_router_logits: false, resid_pdrop: 0.0, router_aux_loss_coef: 0.05, tie_word_embeddings: false,
  torch_dtype: 'bfloat16', use_cache: true, vocab_size: 100352 };

test("DBRX-instruct's config: nested attn_config / ffn_config, bias-free LayerNorms, clip_qkv, 16 experts top 4 renormalised", () => {
  const s = parseModelSpec(DBRX);
  assert.equal(s.architecture, 'dbrx');
  assert.deepEqual([s.hidden, s.heads, s.kvHeads, s.headDim, s.layers, s.vocab, s.maxPositions], [6144, 48, 8, 128, 40, 100352, 32768]);
  assert.ok(s.norm === 'layer' && !s.normBias && s.normEps === 1e-5 && s.mlp === 'gated_silu' && s.qkvClip === 8);
  assert.ok(!s.qkvBias && !s.oBias && !s.tieEmbeddings && !s.qkNorm);
  assert.deepEqual([s.moe!.experts, s.moe!.perToken, s.moe!.intermediate, s.moe!.renormalize, s.moe!.sigmoid, s.moe!.layers],
    [16, 4, 10752, true, false, null]);
  assert.ok(Math.abs(s.rope!.invFreq[1]! * Math.pow(500000, 2 / 128) - 1) < 1e-6);  // attn_config's rope_theta
  const none = parseModelSpec({ ...DBRX, ffn_config: { ...DBRX.ffn_config, moe_normalize_expert_weights: null } });
  assert.equal(none.moe!.renormalize, false);
  assert.equal(parseModelSpec({ ...DBRX, attn_config: { ...DBRX.attn_config, clip_qkv: null } }).qkvClip, 0);
  // transformers 5's form: the same theta also at the top
  const v5 = parseModelSpec({ ...DBRX, rope_parameters: { rope_type: 'default', rope_theta: 500000 } });
  assert.deepEqual(v5.rope!.invFreq, s.rope!.invFreq);
});

test('DBRX: what weft does not compute is refused by name', () => {
  const ffn = (f: object) => ({ ...DBRX, ffn_config: { ...DBRX.ffn_config, ...f } });
  assert.throws(() => parseModelSpec(ffn({ moe_normalize_expert_weights: 2 })), /moe_normalize_expert_weights 2 is not supported/);
  assert.throws(() => parseModelSpec(ffn({ ffn_act_fn: { name: 'gelu' } })), /ffn_act_fn .* is not supported for dbrx/);
  assert.throws(() => parseModelSpec(ffn({ uniform_expert_assignment: true })), /uniform_expert_assignment=true/);
  assert.throws(() => parseModelSpec(ffn({ moe_top_k: 17 })), /moe_top_k 17 is more than the 16 experts/);
  assert.throws(() => parseModelSpec({ ...DBRX, tie_word_embeddings: true }), /tie_word_embeddings=true is not supported for dbrx/);
  assert.throws(() => parseModelSpec({ ...DBRX, rope_parameters: { rope_type: 'default', rope_theta: 10000 } }),
    /attn_config.rope_theta 500000 differs from the top-level rope_theta 10000/);
  assert.throws(() => parseModelSpec({ ...DBRX, attn_config: { ...DBRX.attn_config, clip_qkv: -1 } }), /clip_qkv must be null or a positive/);
  assert.throws(() => parseModelSpec({ ...DBRX, attn_config: { ...DBRX.attn_config, kv_n_heads: 5 } }), /not a multiple of/);
});

test('DBRX LoRA targets: Wqkv (q|k|v), out_proj, lm_head and the embedding; not the router or the fused experts', () => {
  const s = parseModelSpec(DBRX);
  const qkv = resolveModule(s, 'transformer.blocks.3.norm_attn_norm.attn.Wqkv');
  assert.deepEqual([qkv?.layer, qkv?.module, qkv?.roles], [3, 'qkv', ['q', 'k', 'v']]);
  assert.equal(resolveModule(s, 'transformer.blocks.39.norm_attn_norm.attn.out_proj')?.module, 'o');
  assert.equal(resolveModule(s, 'lm_head')?.module, 'lmHead');
  assert.equal(resolveModule(s, 'transformer.wte')?.module, 'embed');
  assert.equal(resolveModule(s, 'transformer.blocks.40.norm_attn_norm.attn.Wqkv'), null);
  assert.equal(resolveModule(s, 'transformer.blocks.0.ffn.router.layer'), null);
  assert.equal(resolveModule(s, 'transformer.blocks.0.ffn.experts.mlp'), null);
  assert.equal(resolveModule(s, 'model.layers.0.self_attn.q_proj'), null);
  assert.equal(partsOfModulePath('base_model.model.transformer.blocks.0.norm_attn_norm.attn.Wqkv'), 3);
  const a = parseModelSpec(APERTUS);
  assert.deepEqual(resolveModule(a, 'model.layers.0.mlp.up_proj')?.roles, ['fc']);
  assert.equal(resolveModule(a, 'model.layers.0.mlp.gate_proj'), null);
});
