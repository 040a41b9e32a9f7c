// config.json → ModelSpec for OLMo 1 (parameter-free LayerNorms, clip_qkv) and OLMoE's clip_qkv; the logits are checked
// against transformers + PEFT by the golden case olmo (clip_qkv 0.25, which clamps most q/k/v values of its tiny model).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseModelSpec } from '../../shard/models/spec.js';
import { partitionFor } from '../../shard/models/partition.js';
import { planConfig } from '../../shard/models/load-weights.js';

// allenai/OLMo-7B-0424-hf's config.json (the fields the model reads).
const OLMO_7B_0424 = {
  architectures: ['OlmoForCausalLM'], attention_bias: false, clip_qkv: 8.0, eos_token_id: 50279, hidden_act: 'silu',
  hidden_size: 4096, intermediate_size: 11008, max_position_embeddings: 4096, model_type: 'olmo', num_attention_heads: 32,
  num_hidden_layers: 32, num_key_value_heads: 32, pad_token_id: 1, rope_theta: 10000.0, tie_word_embeddings: false,
  vocab_size: 50304,
};

test('OLMo 1: LayerNorms without parameters (eps 1e-5) and clip_qkv, handed to the plan', () => {
  const s = parseModelSpec(OLMO_7B_0424);
  assert.deepEqual([s.architecture, s.norm, s.normEps, s.normParams, s.qkvClip], ['olmo', 'layer', 1e-5, false, 8]);
  const plan = planConfig(s, partitionFor(s, 0, 1), { rank: 0, world: 1, numBlocks: 4, blockSize: 16, adapterSlots: 1 });
  assert.equal(plan.qkvClip, 8);
  assert.equal(parseModelSpec({ ...OLMO_7B_0424, clip_qkv: null }).qkvClip, 0);
  assert.throws(() => parseModelSpec({ ...OLMO_7B_0424, clip_qkv: -1 }), /clip_qkv must be null or a positive number/);
});

test('OLMoE: clip_qkv is served (clamped after the q/k norms)', () => {
  const olmoe = parseModelSpec({ architectures: ['OlmoeForCausalLM'], hidden_size: 64, intermediate_size: 32,
    num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 128, max_position_embeddings: 256, num_experts: 8,
    num_experts_per_tok: 2, clip_qkv: 5 });
  assert.deepEqual([olmoe.qkNormFull, olmoe.qkvClip], [true, 5]);
});
