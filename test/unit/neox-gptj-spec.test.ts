// config.json → ModelSpec for GPT-NeoX (Pythia) with its per-head fused query_key_value, and GPT-J; the logits are
// checked against transformers + PEFT by the golden cases gpt_neox (parallel residual, a DoRA adapter on
// query_key_value), gpt_neox_seq (sequential) and gptj.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseModelSpec } from '../../shard/models/spec.js';
import { interleavedHeadRows, resolveModule } from '../../shard/models/layout.js';
import { partsOfModulePath } from '../../shard/models/layout.js';
import { UnsupportedModelError } from '../../shard/models/errors.js';

// EleutherAI/pythia-70m's config.json as published (transformers 4 names: rotary_pct, rotary_emb_base).
const PYTHIA_70M = {
  architectures: ['GPTNeoXForCausalLM'], bos_token_id: 0, classifier_dropout: 0.1, eos_token_id: 0, hidden_act: 'gelu',
  hidden_size: 512, initializer_range: 0.02, intermediate_size: 2048, layer_norm_eps: 1e-5, max_position_embeddings: 2048,
  model_type: 'gpt_neox', num_attention_heads: 8, num_hidden_layers: 6, rotary_emb_base: 10000, rotary_pct: 0.25,
  tie_word_embeddings: false, torch_dtype: 'float16', use_cache: true, use_parallel_residual: true, vocab_size: 50304,
};

test('Pythia: partial RoPE from rotary_pct, LayerNorms, a gelu MLP, the parallel block with the MLP\'s own norm', () => {
  const s = parseModelSpec(PYTHIA_70M);
  assert.equal(s.architecture, 'gpt_neox');
  assert.deepEqual([s.heads, s.kvHeads, s.headDim, s.rope!.rotaryDim], [8, 8, 64, 16]);
  assert.deepEqual([s.norm, s.mlp, s.parallelBlock, s.parallelMlpNorm, s.tieEmbeddings], ['layer', 'gelu_erf', true, true, false]);
  assert.deepEqual([s.qkvBias, s.oBias, s.mlpBias], [true, true, true]);
  assert.ok(Math.abs(s.rope!.invFreq[1]! - Math.pow(10000, -2 / 16)) < 1e-7, 'rotary_emb_base over the 16 rotary dims');
  const seq = parseModelSpec({ ...PYTHIA_70M, use_parallel_residual: false, rotary_emb_base: 500 });
  assert.deepEqual([seq.parallelBlock, seq.parallelMlpNorm], [false, false]);
  assert.ok(Math.abs(seq.rope!.invFreq[1]! - Math.pow(500, -2 / 16)) < 1e-7);
  assert.equal(parseModelSpec({ ...PYTHIA_70M, hidden_act: 'gelu_fast' }).mlp, 'gelu_tanh');
  assert.throws(() => parseModelSpec({ ...PYTHIA_70M, hidden_act: 'relu' }),
    (e: Error) => e instanceof UnsupportedModelError && /hidden_act 'relu' is not supported for gpt_neox/.test(e.message));
});

test('GPT-NeoX module paths: query_key_value is per-head q|k|v, embed_out is the lm_head', () => {
  const s = parseModelSpec(PYTHIA_70M);
  const qkv = resolveModule(s, 'gpt_neox.layers.2.attention.query_key_value');
  assert.deepEqual([qkv?.module, qkv?.roles, qkv?.headInterleaved], ['qkv', ['q', 'k', 'v'], true]);
  assert.equal(resolveModule(s, 'gpt_neox.layers.2.mlp.dense_h_to_4h')?.module, 'up');
  assert.equal(resolveModule(s, 'embed_out')?.module, 'lmHead');
  assert.equal(resolveModule(s, 'gpt_neox.embed_in')?.module, 'embed');
  assert.equal(resolveModule(s, 'model.layers.2.self_attn.q_proj'), null);
  assert.equal(partsOfModulePath('base_model.model.gpt_neox.layers.0.attention.query_key_value'), 3);
  // heads [h0, h1] of head_dim 2, 1 column: rows q0 q0 k0 k0 v0 v0 q1 q1 k1 k1 v1 v1 → k rows of both heads
  const m = Float32Array.from([0, 1, 10, 11, 20, 21, 100, 101, 110, 111, 120, 121]);
  assert.deepEqual([...interleavedHeadRows(m, 1, 1, 2, 2)], [10, 11, 110, 111]);
  assert.deepEqual([...interleavedHeadRows(m, 1, 2, 2, 2)], [20, 21, 120, 121]);
});

// EleutherAI/gpt-j-6b's config.json as published (the fields the model reads).
const GPTJ_6B = {
  activation_function: 'gelu_new', architectures: ['GPTJForCausalLM'], bos_token_id: 50256, eos_token_id: 50256,
  layer_norm_epsilon: 1e-5, model_type: 'gptj', n_embd: 4096, n_head: 16, n_inner: null, n_layer: 28, n_positions: 2048,
  rotary: true, rotary_dim: 64, tie_word_embeddings: false, vocab_size: 50400,
};

test('GPT-J-6B: one LayerNorm for the parallel block, interleaved RoPE on 64 of 256 dims, lm_head bias', () => {
  const s = parseModelSpec(GPTJ_6B);
  assert.equal(s.architecture, 'gptj');
  assert.deepEqual([s.heads, s.headDim, s.rope!.rotaryDim, s.intermediate], [16, 256, 64, 16384]);
  assert.deepEqual([s.parallelBlock, s.parallelMlpNorm, s.ropeInterleaved, s.lmHeadBias, s.mlp], [true, false, true, true, 'gelu_tanh']);
  assert.deepEqual([s.qkvBias, s.oBias, s.mlpBias], [false, false, true]);
  assert.equal(parseModelSpec({ ...GPTJ_6B, rotary_dim: null }).rope!.rotaryDim, 256);
  assert.throws(() => parseModelSpec({ ...GPTJ_6B, rotary_dim: 300 }), /rotary_dim 300 must be even and at most the head size 256/);
  assert.equal(resolveModule(s, 'transformer.h.3.attn.out_proj')?.module, 'o');
  assert.equal(resolveModule(s, 'transformer.h.3.mlp.fc_in')?.module, 'up');
  assert.equal(resolveModule(s, 'transformer.wte')?.module, 'embed');
});
