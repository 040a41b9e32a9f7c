// config.json → ModelSpec for the architectures whose reading has more than one form: Qwen3 and Gemma 3 (the logits
// themselves are checked against transformers by the golden cases qwen3 and gemma3).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseModelSpec } from '../../shard/models/spec.js';
import { roundToDtype } from '../../shard/models/load-weights.js';
import { UnsupportedModelError } from '../../shard/models/errors.js';
import { usesLongRope } from '../../shard/models/rope.js';

// google/gemma-3-1b-it's config.json as published (transformers 4.50 field names: rope_theta, rope_local_base_freq,
// sliding_window_pattern; no layer_types).
const GEMMA3_1B = {
  architectures: ['Gemma3ForCausalLM'], attention_bias: false, attention_dropout: 0.0, attn_logit_softcapping: null,
  bos_token_id: 2, cache_implementation: 'hybrid', eos_token_id: [1, 106], final_logit_softcapping: null, head_dim: 256,
  hidden_activation: 'gelu_pytorch_tanh', hidden_size: 1152, initializer_range: 0.02, intermediate_size: 6912,
  max_position_embeddings: 32768, model_type: 'gemma3_text', num_attention_heads: 4, num_hidden_layers: 26,
  num_key_value_heads: 1, pad_token_id: 0, query_pre_attn_scalar: 256, rms_norm_eps: 1e-6, rope_local_base_freq: 10000,
  rope_scaling: null, rope_theta: 1000000, sliding_window: 512, sliding_window_pattern: 6, torch_dtype: 'bfloat16',
  use_cache: true, vocab_size: 262144,
};

test('gemma-3-1b: every sixth layer full attention, the others a 512-token window with the local RoPE base', () => {
  const s = parseModelSpec(GEMMA3_1B);
  assert.equal(s.architecture, 'gemma3');
  assert.equal(s.layerSliding!.length, 26);
  assert.deepEqual(s.layerSliding!.map((v, i) => (v ? -1 : i)).filter((i) => i >= 0), [5, 11, 17, 23]);
  assert.equal(s.slidingWindow, 512);
  // theta 1e6 (full) vs 1e4 (sliding): the second frequency is 1e6^(-2/256) vs 1e4^(-2/256).
  assert.ok(Math.abs(s.rope!.invFreq[1]! - Math.pow(1e6, -2 / 256)) < 1e-6);
  assert.ok(Math.abs(s.ropeLocal!.invFreq[1]! - Math.pow(1e4, -2 / 256)) < 1e-6);
  assert.equal(s.mlp, 'gated_gelu_tanh');
  assert.ok(s.qkNorm && s.postNorms && s.normPlusOne && s.tieEmbeddings);
  assert.equal(s.embedScale, Math.sqrt(1152));
  assert.equal(s.attnScale, 1 / 16);
  assert.equal(s.headDim, 256);
  assert.deepEqual(s.eosTokenIds, [1, 106]);
});

test('gemma3: transformers 5 rope_parameters per layer type, with linear scaling on the full layers only', () => {
  const cfg = {
    ...GEMMA3_1B, num_hidden_layers: 3, layer_types: ['sliding_attention', 'full_attention', 'sliding_attention'],
    rope_parameters: { full_attention: { rope_type: 'linear', factor: 8, rope_theta: 1e6 }, sliding_attention: { rope_type: 'default', rope_theta: 1e4 } },
    query_pre_attn_scalar: 24,
  };
  const s = parseModelSpec(cfg);
  assert.deepEqual(s.layerSliding, [true, false, true]);
  assert.ok(Math.abs(s.rope!.invFreq[0]! - 1 / 8) < 1e-9, 'full layers: inv_freq / factor');
  assert.equal(s.ropeLocal!.invFreq[0], 1);
  assert.equal(s.attnScale, Math.pow(24, -0.5));
  // The legacy form: rope_scaling applies to the full layers.
  const legacy = parseModelSpec({ ...GEMMA3_1B, rope_scaling: { rope_type: 'linear', factor: 8 } });
  assert.ok(Math.abs(legacy.rope!.invFreq[0]! - 1 / 8) < 1e-9);
  assert.equal(legacy.ropeLocal!.invFreq[0], 1);
});

test('gemma3: what weft does not compute is refused by name', () => {
  const refuse = (patch: Record<string, unknown>, re: RegExp): void =>
    assert.throws(() => parseModelSpec({ ...GEMMA3_1B, ...patch }), (e: unknown) => e instanceof UnsupportedModelError && re.test(e.message));
  refuse({ final_logit_softcapping: -1 }, /final_logit_softcapping must be a positive number or null/);
  // use_bidirectional_attention (EmbeddingGemma) is served, for embeddings only: embedding-model-spec.test.ts.
  assert.equal(parseModelSpec({ ...GEMMA3_1B, use_bidirectional_attention: true }).bidirectional, true);
  refuse({ hidden_activation: 'relu' }, /hidden_activation 'relu'/);
  refuse({ layer_types: ['sliding_attention'] }, /layer_types has 1 entries for 26 layers/);
  refuse({ num_hidden_layers: 1, layer_types: ['chunked_attention'] }, /layer type 'chunked_attention'/);
  // Gemma 3's attention ignores attn_logit_softcapping (transformers does not pass it on), so weft does too; a final
  // logit cap is applied as transformers applies it.
  const capped = parseModelSpec({ ...GEMMA3_1B, attn_logit_softcapping: 50, final_logit_softcapping: 30 });
  assert.deepEqual([capped.attnSoftcap, capped.finalSoftcap], [0, 30]);
});

test('qwen3: per-head q/k norms; attention_bias on all four attention projections', () => {
  const base = {
    architectures: ['Qwen3ForCausalLM'], hidden_size: 1024, num_attention_heads: 16, num_key_value_heads: 8, head_dim: 128,
    intermediate_size: 3072, num_hidden_layers: 28, vocab_size: 151936, max_position_embeddings: 40960, rms_norm_eps: 1e-6,
    rope_theta: 1000000, tie_word_embeddings: true, use_sliding_window: false, sliding_window: null, hidden_act: 'silu',
    attention_bias: false,
  };
  const s = parseModelSpec(base);
  assert.ok(s.qkNorm && !s.qkvBias && !s.oBias && !s.postNorms && s.embedScale === 1 && s.layerSliding === null);
  assert.equal(s.headDim, 128);
  const b = parseModelSpec({ ...base, attention_bias: true });
  assert.ok(b.qkvBias && b.oBias && !b.mlpBias);
  // use_sliding_window: the window in the layers from max_window_layers on (transformers' default layer_types), or
  // in those layer_types marks; a window in every layer is one window; a bad layer_types is refused.
  const sw = parseModelSpec({ ...base, use_sliding_window: true, sliding_window: 4096, max_window_layers: 20 });
  assert.equal(sw.slidingWindow, 4096);
  assert.deepEqual(sw.layerSliding!.map((v, i) => (v ? i : -1)).filter((i) => i >= 0), [20, 21, 22, 23, 24, 25, 26, 27]);
  const all = parseModelSpec({ ...base, use_sliding_window: true, sliding_window: 4096, max_window_layers: 0 });
  assert.deepEqual([all.slidingWindow, all.layerSliding], [4096, null]);
  const none = parseModelSpec({ ...base, use_sliding_window: true, sliding_window: 4096, max_window_layers: 28 });
  assert.deepEqual([none.slidingWindow, none.layerSliding], [0, null]);
  assert.equal(parseModelSpec({ ...base, use_sliding_window: false, sliding_window: 4096, max_window_layers: 0 }).slidingWindow, 0);
  assert.throws(() => parseModelSpec({ ...base, use_sliding_window: true, sliding_window: 4096, layer_types: ['full_attention'] }),
    /layer_types .* for each of the 28 layers/);
  // Llama's attention has no window: a sliding_window field is ignored, as transformers ignores it.
  assert.equal(parseModelSpec({ ...base, architectures: ['LlamaForCausalLM'], sliding_window: 4096 }).slidingWindow, 0);
  // Qwen2 keeps its own rule: q/k/v biases always, none on o, no q/k norms.
  const q2 = parseModelSpec({ ...base, architectures: ['Qwen2ForCausalLM'] });
  assert.ok(q2.qkvBias && !q2.oBias && !q2.qkNorm);
});

test('the embedding scale is rounded to the weights dtype, as transformers multiplies in it', () => {
  const s = Math.sqrt(1152);  // 33.941…
  assert.equal(roundToDtype(s, 'float32'), Math.fround(s));
  assert.equal(roundToDtype(s, 'bfloat16'), 34);  // 8 significant bits
  assert.equal(roundToDtype(s, 'float16'), 33.9375);  // 11 significant bits: steps of 1/32 in [32, 64)
  assert.equal(roundToDtype(48, 'bfloat16'), 48);
  assert.equal(roundToDtype(Math.sqrt(2560), 'bfloat16'), 50.5);  // 50.596… → 50.5 (steps of 0.25 in [32, 64))
});

test('longrope (Phi-3.5-mini, Phi-4-mini): short and long factors, the attention factor, the whole context', () => {
  const half = 48;  // head_dim 96
  const phi35 = {
    architectures: ['Phi3ForCausalLM'], hidden_size: 3072, num_attention_heads: 32, num_key_value_heads: 32,
    intermediate_size: 8192, num_hidden_layers: 32, vocab_size: 32064, max_position_embeddings: 131072,
    original_max_position_embeddings: 4096, rms_norm_eps: 1e-5, rope_theta: 10000, hidden_act: 'silu',
    rope_scaling: { type: 'longrope', short_factor: Array.from({ length: half }, (_, i) => 1 + i / 100),
      long_factor: Array.from({ length: half }, (_, i) => 1 + i) },
  };
  const s = parseModelSpec(phi35);
  assert.equal(s.maxPositions, 131072, 'past 4,096 positions the long factors take over');
  assert.ok(Math.abs(s.rope!.attentionFactor - Math.sqrt(1 + Math.log(32) / Math.log(4096))) < 1e-12);
  assert.ok(Math.abs(s.rope!.invFreq[10]! - 1 / (1.1 * Math.pow(10000, 20 / 96))) < 1e-6);
  assert.ok(Math.abs(s.rope!.long!.invFreq[10]! - 1 / (11 * Math.pow(10000, 20 / 96))) < 1e-7);
  assert.equal(s.rope!.long!.from, 4096);
  // Which tokens are rotated long: all of a prompt past 4,096 tokens; of a shorter one, only what is generated past it.
  assert.equal(usesLongRope(s.rope!, 5000, 0), true);
  assert.equal(usesLongRope(s.rope!, 4096, 4095), false);
  assert.equal(usesLongRope(s.rope!, 4096, 4096), true);
  assert.equal(usesLongRope(s.rope!, 100, 4200), true);
  assert.equal(usesLongRope(parseModelSpec({ ...phi35, rope_scaling: undefined }).rope!, 9999, 9999), false);
  assert.throws(() => parseModelSpec({ ...phi35, rope_scaling: { ...phi35.rope_scaling, long_factor: undefined } }),
    /longrope needs long_factor/);
  // "su" is an older name of the same; an explicit attention_factor wins.
  const su = parseModelSpec({ ...phi35, rope_scaling: { ...phi35.rope_scaling, type: 'su', attention_factor: 1.5 } });
  assert.equal(su.rope!.attentionFactor, 1.5);
  assert.throws(() => parseModelSpec({ ...phi35, rope_scaling: { ...phi35.rope_scaling, short_factor: [1, 2] } }),
    /short_factor has 2 entries; the rotary dimension 96 needs 48/);
  // YaRN proper (not Phi-3's old name for longrope) needs its original context.
  assert.throws(() => parseModelSpec({ ...phi35, architectures: ['LlamaForCausalLM'], rope_scaling: { type: 'yarn', factor: 4 } }),
    /original_max_position_embeddings/);
});

test('YaRN (Qwen2.5 / Qwen3 past 32K, DeepSeek): blended frequencies, the attention factor, the scaled context', () => {
  // Qwen2.5-7B-Instruct with the rope_scaling its model card adds for 128K.
  const qwen = {
    architectures: ['Qwen2ForCausalLM'], hidden_size: 3584, num_attention_heads: 28, num_key_value_heads: 4,
    intermediate_size: 18944, num_hidden_layers: 28, vocab_size: 152064, max_position_embeddings: 32768,
    rms_norm_eps: 1e-6, rope_theta: 1e6, hidden_act: 'silu', use_sliding_window: false,
    rope_scaling: { factor: 4.0, original_max_position_embeddings: 32768, type: 'yarn' },
  };
  const s = parseModelSpec(qwen);
  assert.equal(s.maxPositions, 131072, 'original 32,768 x 4');
  assert.ok(Math.abs(s.rope!.attentionFactor - (0.1 * Math.log(4) + 1)) < 1e-12);
  const base = (i: number): number => 1 / Math.pow(1e6, (2 * i) / 128);
  // Fast-turning frequencies are kept (extrapolated), slow ones divided by the factor (interpolated).
  assert.ok(Math.abs(s.rope!.invFreq[0]! - 1) < 1e-7);
  assert.ok(Math.abs(s.rope!.invFreq[63]! / (base(63) / 4) - 1) < 1e-5);
  const mid = s.rope!.invFreq.findIndex((f, i) => Math.abs(f / base(i) - 1) > 1e-4);
  assert.ok(mid > 0 && s.rope!.invFreq[mid]! > base(mid) / 4, 'a ramp between the two');
  // DeepSeek's mscale / mscale_all_dim ratio; an explicit attention_factor wins; a missing factor is max / original.
  const ds = parseModelSpec({ ...qwen, rope_scaling: { type: 'yarn', factor: 40, original_max_position_embeddings: 4096,
    mscale: 1.0, mscale_all_dim: 1.0 } });
  assert.equal(ds.rope!.attentionFactor, 1);
  const explicit = parseModelSpec({ ...qwen, rope_scaling: { ...qwen.rope_scaling, attention_factor: 1.5 } });
  assert.equal(explicit.rope!.attentionFactor, 1.5);
  const implied = parseModelSpec({ ...qwen, max_position_embeddings: 65536, rope_scaling: { type: 'yarn', original_max_position_embeddings: 32768 } });
  assert.ok(Math.abs(implied.rope!.attentionFactor - (0.1 * Math.log(2) + 1)) < 1e-12);
  // Dynamic NTK changes the frequencies with the sequence length: refused, not approximated.
  assert.throws(() => parseModelSpec({ ...qwen, rope_scaling: { type: 'dynamic', factor: 2 } }), /rope type 'dynamic' is not supported/);
});

test('gemma-2-9b: alternating sliding/full layers, both softcaps, query_pre_attn_scalar; defaults for what is left out', () => {
  const s = parseModelSpec({
    architectures: ['Gemma2ForCausalLM'], attention_bias: false, attention_dropout: 0.0, attn_logit_softcapping: 50.0,
    bos_token_id: 2, cache_implementation: 'hybrid', eos_token_id: 1, final_logit_softcapping: 30.0, head_dim: 256,
    hidden_act: 'gelu_pytorch_tanh', hidden_activation: 'gelu_pytorch_tanh', hidden_size: 3584, initializer_range: 0.02,
    intermediate_size: 14336, max_position_embeddings: 8192, model_type: 'gemma2', num_attention_heads: 16,
    num_hidden_layers: 42, num_key_value_heads: 8, pad_token_id: 0, query_pre_attn_scalar: 256, rms_norm_eps: 1e-6,
    rope_theta: 10000.0, sliding_window: 4096, torch_dtype: 'float32', use_cache: true, vocab_size: 256000,
  });
  assert.equal(s.architecture, 'gemma2');
  assert.deepEqual([s.attnSoftcap, s.finalSoftcap], [50, 30]);
  assert.deepEqual(s.layerSliding!.slice(0, 4), [true, false, true, false]);
  assert.equal(s.layerSliding!.length, 42);
  assert.equal(s.ropeLocal, null, 'one RoPE for every layer');
  assert.ok(!s.qkNorm && s.postNorms && s.normPlusOne && s.tieEmbeddings && s.mlp === 'gated_gelu_tanh');
  assert.equal(s.embedScale, Math.sqrt(3584));
  assert.equal(s.attnScale, 1 / 16);
  // Gemma2Config's defaults fill what a config leaves out (here everything but the architecture).
  const d = parseModelSpec({ architectures: ['Gemma2ForCausalLM'] });
  assert.deepEqual([d.hidden, d.layers, d.vocab, d.attnSoftcap, d.finalSoftcap, d.maxPositions], [2304, 26, 256000, 50, 30, 8192]);
});

test('gemma-7b as published: hidden_act "gelu" read as the tanh GELU, 16 heads of 256 over hidden 3072, tied; other activations refused', () => {
  const published = {
    architectures: ['GemmaForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 2, eos_token_id: 1,
    head_dim: 256, hidden_act: 'gelu', hidden_size: 3072, initializer_range: 0.02, intermediate_size: 24576,
    max_position_embeddings: 8192, model_type: 'gemma', num_attention_heads: 16, num_hidden_layers: 28, num_key_value_heads: 16,
    pad_token_id: 0, rms_norm_eps: 1e-6, rope_scaling: null, rope_theta: 10000.0, torch_dtype: 'bfloat16', use_cache: true, vocab_size: 256000,
  };
  const s = parseModelSpec(published);
  assert.equal(s.architecture, 'gemma');
  assert.deepEqual([s.hidden, s.heads, s.kvHeads, s.headDim, s.layers], [3072, 16, 16, 256, 28]);
  assert.ok(s.normPlusOne && s.tieEmbeddings && s.mlp === 'gated_gelu_tanh' && !s.postNorms && !s.qkNorm && s.slidingWindow === 0);
  assert.equal(s.embedScale, Math.sqrt(3072));
  assert.equal(s.attnScale, 1 / 16);
  // gemma-2b: one KV head; gemma-1.1 adds hidden_activation, which wins.
  assert.equal(parseModelSpec({ ...published, num_key_value_heads: 1, hidden_activation: 'gelu_pytorch_tanh' }).kvHeads, 1);
  assert.throws(() => parseModelSpec({ ...published, hidden_activation: 'silu' }), /hidden_activation 'silu' is not supported for gemma/);
  assert.throws(() => parseModelSpec({ ...published, use_bidirectional_attention: true }), /use_bidirectional_attention=true is not supported for gemma/);
});

test('granite-3.1-8b: its four multipliers; refused when not positive', () => {
  const cfg = {
    architectures: ['GraniteForCausalLM'], attention_bias: false, attention_dropout: 0.0, attention_multiplier: 0.0078125,
    bos_token_id: 0, embedding_multiplier: 12.0, eos_token_id: 0, hidden_act: 'silu', hidden_size: 4096,
    intermediate_size: 12800, logits_scaling: 16.0, max_position_embeddings: 131072, mlp_bias: false, model_type: 'granite',
    num_attention_heads: 32, num_hidden_layers: 40, num_key_value_heads: 8, pad_token_id: 0, residual_multiplier: 0.22,
    rms_norm_eps: 1e-5, rope_scaling: null, rope_theta: 10000000.0, tie_word_embeddings: true, vocab_size: 49155,
  };
  const s = parseModelSpec(cfg);
  assert.equal(s.architecture, 'granite');
  assert.deepEqual([s.embedScale, s.attnScale, s.residualScale, s.logitsDivisor], [12, 0.0078125, 0.22, 16]);
  assert.ok(s.tieEmbeddings && !s.normPlusOne && !s.postNorms && s.mlp === 'gated_silu');
  assert.throws(() => parseModelSpec({ ...cfg, logits_scaling: 0 }), /logits_scaling must be a positive number/);
  // A Llama config never picks up Granite's fields.
  const llama = parseModelSpec({ ...cfg, architectures: ['LlamaForCausalLM'] });
  assert.deepEqual([llama.embedScale, llama.residualScale, llama.logitsDivisor], [1, 1, 1]);
  assert.equal(llama.attnScale, 1 / Math.sqrt(128));
});

test('starcoder2-3b: LayerNorms and biases, a non-gated GELU MLP, one sliding window', () => {
  const s = parseModelSpec({
    architectures: ['Starcoder2ForCausalLM'], attention_dropout: 0.1, bos_token_id: 0, embedding_dropout: 0.1,
    eos_token_id: 0, hidden_act: 'gelu_pytorch_tanh', hidden_size: 3072, initializer_range: 0.018042, intermediate_size: 12288,
    max_position_embeddings: 16384, mlp_type: 'default', model_type: 'starcoder2', norm_epsilon: 1e-5, norm_type: 'layer_norm',
    num_attention_heads: 24, num_hidden_layers: 30, num_key_value_heads: 2, residual_dropout: 0.1, rope_theta: 999999.4420358813,
    sliding_window: 4096, use_bias: true, use_cache: true, vocab_size: 49152,
  });
  assert.equal(s.architecture, 'starcoder2');
  assert.deepEqual([s.norm, s.mlp, s.slidingWindow, s.headDim, s.kvHeads], ['layer', 'gelu_tanh', 4096, 128, 2]);
  assert.ok(s.qkvBias && s.oBias && s.mlpBias && s.tieEmbeddings && !s.learnedPositions);
  assert.throws(() => parseModelSpec({ architectures: ['Starcoder2ForCausalLM'], hidden_size: 64, num_attention_heads: 4,
    hidden_act: 'relu', intermediate_size: 8, num_hidden_layers: 1, vocab_size: 8, max_position_embeddings: 8 }), /hidden_act 'relu'/);
});

test("SmolLM3-3B's config: a Llama decoder whose every fourth layer has no RoPE (NoPE); explicit lists and bad ones", () => {
  const smol = {
    architectures: ['SmolLM3ForCausalLM'], attention_bias: false, bos_token_id: null, eos_token_id: 128012,
    hidden_act: 'silu', hidden_size: 2048, intermediate_size: 11008, max_position_embeddings: 65536, mlp_bias: false,
    model_type: 'smollm3', num_attention_heads: 16, num_hidden_layers: 36, num_key_value_heads: 4, pad_token_id: 128004,
    rms_norm_eps: 1e-6, rope_scaling: null, rope_theta: 5000000.0, sliding_window: null, use_sliding_window: false,
    tie_word_embeddings: true, vocab_size: 128256, no_rope_layer_interval: 4,
  };
  const s = parseModelSpec(smol);
  assert.equal(s.architecture, 'smollm3');
  assert.deepEqual(s.layerRope!.map((r, l) => (r ? -1 : l)).filter((l) => l >= 0), [3, 7, 11, 15, 19, 23, 27, 31, 35]);
  assert.deepEqual([s.headDim, s.kvHeads, s.slidingWindow, s.tieEmbeddings], [128, 4, 0, true]);
  const listed = parseModelSpec({ ...smol, num_hidden_layers: 3, no_rope_layers: [1, 0, 0] });
  assert.deepEqual(listed.layerRope, [true, false, false]);
  assert.throws(() => parseModelSpec({ ...smol, num_hidden_layers: 3, no_rope_layers: [1, 0] }), /no_rope_layers must list 0 or 1 for each of the 3 layers/);
  assert.throws(() => parseModelSpec({ ...smol, use_sliding_window: true, sliding_window: 4096 }), /use_sliding_window=true/);
  assert.equal(parseModelSpec({ ...smol, architectures: ['LlamaForCausalLM'] }).layerRope, null, 'other models rotate in every layer');
});

test("GLM-4-9B-0414's config: interleaved partial RoPE, sandwich norms, q/k/v biases", () => {
  const s = parseModelSpec({
    architectures: ['Glm4ForCausalLM'], attention_bias: true, attention_dropout: 0.0, eos_token_id: [151329, 151336, 151338],
    head_dim: 128, hidden_act: 'silu', hidden_size: 4096, initializer_range: 0.02, intermediate_size: 13696,
    max_position_embeddings: 32768, model_type: 'glm4', num_attention_heads: 32, num_hidden_layers: 40,
    num_key_value_heads: 2, pad_token_id: 151329, partial_rotary_factor: 0.5, rms_norm_eps: 1e-05, rope_theta: 10000.0,
    tie_word_embeddings: false, torch_dtype: 'bfloat16', vocab_size: 151552,
  });
  assert.equal(s.architecture, 'glm4');
  assert.ok(s.ropeInterleaved && s.postNorms && !s.normPlusOne && s.qkvBias && !s.oBias && !s.mlpBias);
  assert.deepEqual([s.headDim, s.kvHeads, s.rope!.rotaryDim, s.slidingWindow], [128, 2, 64, 0]);
  assert.deepEqual(s.eosTokenIds, [151329, 151336, 151338]);
  assert.equal(parseModelSpec({ architectures: ['LlamaForCausalLM'], hidden_size: 64, num_attention_heads: 4,
    num_hidden_layers: 1, intermediate_size: 8, vocab_size: 8, max_position_embeddings: 8 }).ropeInterleaved, false);
});

test("OLMo-2-1124-7B's config: no pre-norms, post norms, full-width q/k norms; other archs keep pre-norms", () => {
  const s = parseModelSpec({
    architectures: ['Olmo2ForCausalLM'], attention_bias: false, attention_dropout: 0.0, eos_token_id: 100257,
    hidden_act: 'silu', hidden_size: 4096, initializer_range: 0.02, intermediate_size: 11008, max_position_embeddings: 4096,
    model_type: 'olmo2', num_attention_heads: 32, num_hidden_layers: 32, num_key_value_heads: 32, pad_token_id: 100277,
    rms_norm_eps: 1e-06, rope_scaling: null, rope_theta: 500000, tie_word_embeddings: false, torch_dtype: 'float32',
    vocab_size: 100352,
  });
  assert.equal(s.architecture, 'olmo2');
  assert.ok(!s.preNorms && s.postNorms && s.qkNormFull && !s.qkNorm && !s.qkvBias && !s.oBias);
  assert.deepEqual([s.headDim, s.kvHeads, s.normEps, s.maxPositions], [128, 32, 1e-6, 4096]);
  const llama = parseModelSpec({ architectures: ['LlamaForCausalLM'], hidden_size: 64, num_attention_heads: 4,
    num_hidden_layers: 1, intermediate_size: 8, vocab_size: 8, max_position_embeddings: 8 });
  assert.ok(llama.preNorms && !llama.qkNormFull);
});

test("Command R7B (Cohere2) and Phi-2 configs: parallel blocks, Cohere's NoPE full layers, Phi's biases", () => {
  const r7b = parseModelSpec({
    architectures: ['Cohere2ForCausalLM'], attention_bias: false, bos_token_id: 5, eos_token_id: 255001, hidden_act: 'silu',
    hidden_size: 4096, intermediate_size: 14336, layer_norm_eps: 1e-05, logit_scale: 0.25, max_position_embeddings: 8192,
    model_type: 'cohere2', num_attention_heads: 32, num_hidden_layers: 32, num_key_value_heads: 8, rope_theta: 50000,
    sliding_window: 4096, sliding_window_pattern: 4, tie_word_embeddings: true, vocab_size: 256000,
  });
  assert.equal(r7b.architecture, 'cohere2');
  assert.ok(r7b.parallelBlock && !r7b.normBias && r7b.ropeInterleaved && r7b.tieEmbeddings && r7b.norm === 'layer');
  assert.deepEqual([r7b.headDim, r7b.slidingWindow, r7b.logitsDivisor], [128, 4096, 4]);
  assert.deepEqual(r7b.layerSliding!.slice(0, 8), [true, true, true, false, true, true, true, false]);
  assert.deepEqual(r7b.layerRope, r7b.layerSliding);  // only the sliding layers rotate
  // Command R+: use_qk_norm gives per-head LayerNorms of q and k (golden case cohere_qknorm)
  const plus = parseModelSpec({ architectures: ['CohereForCausalLM'], hidden_size: 64, num_attention_heads: 4,
    num_hidden_layers: 1, intermediate_size: 8, vocab_size: 8, max_position_embeddings: 8, use_qk_norm: true });
  assert.deepEqual([plus.qkLayerNorm, plus.qkNorm, r7b.qkLayerNorm], [true, false, false]);
  const phi2 = parseModelSpec({
    architectures: ['PhiForCausalLM'], attention_dropout: 0.0, bos_token_id: 50256, embd_pdrop: 0.0, eos_token_id: 50256,
    hidden_act: 'gelu_new', hidden_size: 2560, intermediate_size: 10240, layer_norm_eps: 1e-05, max_position_embeddings: 2048,
    model_type: 'phi', num_attention_heads: 32, num_hidden_layers: 32, num_key_value_heads: 32, partial_rotary_factor: 0.4,
    qk_layernorm: false, resid_pdrop: 0.1, rope_theta: 10000.0, tie_word_embeddings: false, vocab_size: 51200,
  });
  assert.equal(phi2.architecture, 'phi');
  assert.ok(phi2.parallelBlock && phi2.normBias && phi2.lmHeadBias && phi2.qkvBias && phi2.oBias && phi2.mlpBias);
  assert.deepEqual([phi2.headDim, phi2.rope!.rotaryDim, phi2.mlp], [80, 32, 'gelu_tanh']);
});

test("OLMo-3-7B's config: OLMo 2's norms, 3 sliding layers in 4, YaRN on the full-attention layers only", () => {
  const s = parseModelSpec({
    architectures: ['Olmo3ForCausalLM'], attention_bias: false, eos_token_id: 100257, hidden_act: 'silu', hidden_size: 4096,
    intermediate_size: 11008, max_position_embeddings: 65536, model_type: 'olmo3', num_attention_heads: 32,
    num_hidden_layers: 32, num_key_value_heads: 32, pad_token_id: 100277, rms_norm_eps: 1e-06, rope_theta: 500000,
    rope_scaling: { attention_factor: 1.2079441541679836, beta_fast: 32, beta_slow: 1, factor: 8.0,
      original_max_position_embeddings: 8192, rope_type: 'yarn' },
    sliding_window: 4096, tie_word_embeddings: false, vocab_size: 100278,
    layer_types: Array.from({ length: 32 }, (_, i) => ((i + 1) % 4 ? 'sliding_attention' : 'full_attention')),
  });
  assert.equal(s.architecture, 'olmo3');
  assert.ok(!s.preNorms && s.postNorms && s.qkNormFull);
  assert.deepEqual(s.layerSliding!.slice(0, 4), [true, true, true, false]);
  assert.equal(s.slidingWindow, 4096);
  assert.equal(s.maxPositions, 65536);
  assert.ok(Math.abs(s.rope!.attentionFactor - 1.2079441541679836) < 1e-12);
  assert.equal(s.ropeLocal!.attentionFactor, 1);  // the sliding layers rotate plainly
  assert.notDeepEqual([...s.rope!.invFreq], [...s.ropeLocal!.invFreq]);
});

test("EXAONE-4.0-32B's config: an LLLG window pattern, RoPE only in the local layers; no window means RoPE everywhere", () => {
  const base = { architectures: ['Exaone4ForCausalLM'], hidden_size: 5120, intermediate_size: 27392, num_attention_heads: 40,
    num_key_value_heads: 8, head_dim: 128, num_hidden_layers: 8, vocab_size: 102400, max_position_embeddings: 131072,
    rms_norm_eps: 1e-05, rope_theta: 1000000 };
  const s = parseModelSpec({ ...base, sliding_window: 4096, sliding_window_pattern: 'LLLG' });
  assert.equal(s.architecture, 'exaone4');
  assert.ok(!s.preNorms && s.postNorms && s.qkNorm && !s.qkNormFull);
  assert.deepEqual(s.layerSliding, [true, true, true, false, true, true, true, false]);
  assert.deepEqual(s.layerRope, s.layerSliding);
  assert.equal(s.slidingWindow, 4096);
  const none = parseModelSpec({ ...base, sliding_window: null });
  assert.deepEqual([none.slidingWindow, none.layerSliding, none.layerRope], [0, null, null]);
  assert.throws(() => parseModelSpec({ ...base, sliding_window: 4096, sliding_window_pattern: 'LXG' }), /sliding_window_pattern must be/);
});

test("Minitron-8B's config: LayerNorm1P (w + 1, with bias), relu² up/down MLP, half the head rotated, q wider than hidden", () => {
  const cfg = { architectures: ['NemotronForCausalLM'], bos_token_id: 2, eos_token_id: 3, head_dim: 128, hidden_act: 'relu2',
    hidden_size: 4096, initializer_range: 0.0134, intermediate_size: 16384, max_position_embeddings: 4096, model_type: 'nemotron',
    norm_eps: 1e-05, num_attention_heads: 48, num_hidden_layers: 32, num_key_value_heads: 8, partial_rotary_factor: 0.5,
    rope_theta: 10000, tie_word_embeddings: false, torch_dtype: 'bfloat16', vocab_size: 256000 };
  const s = parseModelSpec(cfg);
  assert.equal(s.architecture, 'nemotron');
  assert.ok(s.norm === 'layer' && s.normBias && s.normPlusOne && !s.tieEmbeddings && !s.qkvBias && !s.mlpBias);
  assert.deepEqual([s.mlp, s.heads, s.kvHeads, s.headDim, s.rope!.rotaryDim, s.normEps], ['relu2', 48, 8, 128, 64, 1e-5]);
  assert.equal(parseModelSpec({ ...cfg, partial_rotary_factor: undefined }).rope!.rotaryDim, 64);  // NemotronConfig's 0.5
  assert.throws(() => parseModelSpec({ ...cfg, hidden_act: 'silu' }), /hidden_act 'silu' is not supported for nemotron/);
});

test("Helium-1-2B's config: Llama with interleaved RoPE and rms_norm_eps 1e-8; o_proj must be hidden_size wide", () => {
  const cfg = { architectures: ['HeliumForCausalLM'], attention_bias: false, bos_token_id: 1, eos_token_id: 2, head_dim: 128,
    hidden_act: 'silu', hidden_size: 2048, intermediate_size: 8192, max_position_embeddings: 4096, mlp_bias: false,
    model_type: 'helium', num_attention_heads: 16, num_hidden_layers: 28, num_key_value_heads: 8, pad_token_id: 3,
    rms_norm_eps: 1e-08, rope_theta: 100000.0, tie_word_embeddings: false, vocab_size: 64000 };
  const s = parseModelSpec(cfg);
  assert.equal(s.architecture, 'helium');
  assert.ok(s.ropeInterleaved && s.norm === 'rms' && s.mlp === 'gated_silu' && !s.qkvBias && !s.oBias);
  assert.deepEqual([s.normEps, s.rope!.rotaryDim, s.kvHeads], [1e-8, 128, 8]);
  assert.ok(parseModelSpec({ ...cfg, attention_bias: true }).qkvBias && !parseModelSpec({ ...cfg, attention_bias: true }).oBias);
  assert.throws(() => parseModelSpec({ ...cfg, head_dim: 160 }), /must equal hidden_size 2048/);
  assert.throws(() => parseModelSpec({ ...cfg, partial_rotary_factor: 0.5 }), /partial_rotary_factor 0.5 is not supported for helium/);
});

test("CWM's config: a window of 8,192 in 3 of every 4 layers (the full ones from layer 0), llama3 RoPE ×16 by default", () => {
  const cfg = { architectures: ['CwmForCausalLM'], bos_token_id: 128000, eos_token_id: [128001, 128008, 128009], head_dim: 128,
    hidden_act: 'silu', hidden_size: 6144, intermediate_size: 21504, max_position_embeddings: 131072, model_type: 'cwm',
    num_attention_heads: 48, num_hidden_layers: 64, num_key_value_heads: 8, rms_norm_eps: 1e-05, rope_theta: 1000000.0,
    rope_scaling: { factor: 16.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
    sliding_window: 8192, tie_word_embeddings: false, vocab_size: 128256 };
  const s = parseModelSpec(cfg);
  assert.equal(s.architecture, 'cwm');
  assert.deepEqual(s.layerSliding!.slice(0, 8), [false, true, true, true, false, true, true, true]);
  assert.equal(s.slidingWindow, 8192);
  assert.ok(!s.qkvBias && !s.oBias && s.maxPositions === 131072);
  assert.deepEqual(s.eosTokenIds, [128001, 128008, 128009]);
  // CwmConfig's RoPE when the config names none is this same llama3 ×16 over 8,192 with theta 1e6
  assert.deepEqual([...parseModelSpec({ ...cfg, rope_scaling: undefined, rope_theta: undefined }).rope!.invFreq], [...s.rope!.invFreq]);
  assert.ok(s.rope!.invFreq[63]! < Math.pow(1e6, -126 / 128) / 15);  // the low frequencies divided by 16
  assert.throws(() => parseModelSpec({ ...cfg, sliding_window: null }), /sliding_window must be a positive integer/);
});

test("VaultGemma-1B's config: Gemma 2 without block-output norms", () => {
  const s = parseModelSpec({ architectures: ['VaultGemmaForCausalLM'], attention_bias: false, attn_logit_softcapping: null,
    bos_token_id: 2, eos_token_id: 1, final_logit_softcapping: null, head_dim: 256, hidden_activation: 'gelu_pytorch_tanh',
    hidden_size: 1152, intermediate_size: 6912, max_position_embeddings: 1024, model_type: 'vaultgemma', num_attention_heads: 4,
    num_hidden_layers: 26, num_key_value_heads: 4, pad_token_id: 0, query_pre_attn_scalar: 256, rms_norm_eps: 1e-06,
    rope_theta: 10000.0, sliding_window: 512, vocab_size: 256000 });
  assert.equal(s.architecture, 'vaultgemma');
  assert.ok(!s.postNorms && s.normPlusOne && s.tieEmbeddings && s.mlp === 'gated_gelu_tanh');
  assert.deepEqual([s.attnSoftcap, s.finalSoftcap, s.attnScale, s.embedScale], [0, 0, 1 / 16, Math.sqrt(1152)]);
  assert.deepEqual(s.layerSliding!.slice(0, 4), [true, false, true, false]);
});

test("Hunyuan-7B's config: per-head q/k norms after RoPE, RoPE 'dynamic' with NTK alpha 1000; use_cla refused", () => {
  const cfg = { architectures: ['HunYuanDenseV1ForCausalLM'], attention_bias: false, bos_token_id: 1, eos_token_id: 127960,
    head_dim: 128, hidden_act: 'silu', hidden_size: 4096, intermediate_size: 14336, max_position_embeddings: 32768,
    mlp_bias: false, model_type: 'hunyuan_v1_dense', num_attention_heads: 32, num_hidden_layers: 32, num_key_value_heads: 8,
    rms_norm_eps: 1e-05, rope_theta: 10000.0, tie_word_embeddings: false, use_cla: false, use_qk_norm: true, vocab_size: 128167,
    rope_scaling: { alpha: 1000.0, beta_fast: 32, beta_slow: 1, factor: 1.0, mscale: 1.0, mscale_all_dim: 1.0, type: 'dynamic' } };
  const s = parseModelSpec(cfg);
  assert.equal(s.architecture, 'hunyuan_v1_dense');
  assert.ok(s.qkNorm && s.qkNormPostRope && !s.qkvBias && !s.mlpBias);
  const base = 10000 * Math.pow(1000, 128 / 126);
  assert.ok(Math.abs(s.rope!.invFreq[1]! / Math.pow(base, -2 / 128) - 1) < 1e-6);
  assert.throws(() => parseModelSpec({ ...cfg, use_cla: true }), /use_cla=true/);
  assert.throws(() => parseModelSpec({ ...cfg, rope_scaling: { type: 'dynamic', factor: 2.0 } }), /without a positive alpha/);
});

test("Jais-2-8B's config: LayerNorms, biases everywhere by default, a relu² up/down MLP", () => {
  const cfg = { architectures: ['Jais2ForCausalLM'], bos_token_id: 0, eos_token_id: 150024, head_dim: 128, hidden_act: 'relu2',
    hidden_size: 3328, intermediate_size: 26624, layer_norm_eps: 1e-05, max_position_embeddings: 8192, model_type: 'jais2',
    num_attention_heads: 26, num_hidden_layers: 32, num_key_value_heads: 26, rope_theta: 500000.0, tie_word_embeddings: false,
    vocab_size: 150272 };
  const s = parseModelSpec(cfg);
  assert.equal(s.architecture, 'jais2');
  assert.ok(s.norm === 'layer' && s.normBias && !s.normPlusOne && s.qkvBias && s.oBias && s.mlpBias && s.mlp === 'relu2');
  assert.deepEqual([s.headDim, s.rope!.rotaryDim], [128, 128]);
  assert.ok(!parseModelSpec({ ...cfg, attention_bias: false, mlp_bias: false }).mlpBias);
  assert.throws(() => parseModelSpec({ ...cfg, partial_rotary_factor: 0.5 }), /partial_rotary_factor 0.5 is not supported for jais2/);
});

test("StableLM-2 1.6B and 12B configs: q/k/v biases; per-head q/k LayerNorms with the parallel block (12B)", () => {
  const small = { architectures: ['StableLmForCausalLM'], bos_token_id: 100257, eos_token_id: 100257, hidden_act: 'silu',
    hidden_size: 2048, intermediate_size: 5632, layer_norm_eps: 1e-05, max_position_embeddings: 4096, model_type: 'stablelm',
    num_attention_heads: 32, num_hidden_layers: 24, num_key_value_heads: 32, partial_rotary_factor: 0.25, qk_layernorm: false,
    rope_theta: 10000, tie_word_embeddings: false, use_parallel_residual: false, use_qkv_bias: true, vocab_size: 100352 };
  const s = parseModelSpec(small);
  assert.equal(s.architecture, 'stablelm');
  assert.ok(s.norm === 'layer' && s.normBias && s.qkvBias && !s.oBias && !s.mlpBias && !s.qkLayerNorm && !s.parallelBlock);
  assert.deepEqual([s.headDim, s.rope!.rotaryDim, s.mlp], [64, 16, 'gated_silu']);
  const big = parseModelSpec({ ...small, hidden_size: 5120, intermediate_size: 13824, num_hidden_layers: 40, num_key_value_heads: 8,
    qk_layernorm: true, use_parallel_residual: true, use_qkv_bias: false });
  assert.ok(big.qkLayerNorm && big.parallelBlock && !big.parallelMlpNorm && !big.qkvBias);
  assert.deepEqual([big.headDim, big.rope!.rotaryDim, big.kvHeads], [160, 40, 8]);
  assert.throws(() => parseModelSpec({ ...small, hidden_act: 'gelu' }), /hidden_act 'gelu' is not supported for stablelm/);
});
