// Ministral 3 (Mistral3ForConditionalGeneration with a ministral3 text_config; Ministral3ForCausalLM): the
// position-dependent query scale of rope_parameters.llama_4_scaling_beta. The logits are checked against transformers +
// PEFT by the golden case ministral3 (every position from 4 on scaled).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseModelSpec } from '../../shard/models/spec.js';
import { partitionFor } from '../../shard/models/partition.js';
import { planConfig } from '../../shard/models/load-weights.js';

// mistralai/Ministral-3-8B-Instruct-2512's config.json: the fields the text model reads (vision_config left out).
const MINISTRAL_3_8B = {
  architectures: ['Mistral3ForConditionalGeneration'], model_type: 'mistral3',
  text_config: {
    model_type: 'ministral3', head_dim: 128, hidden_size: 4096, intermediate_size: 14336, max_position_embeddings: 262144,
    num_attention_heads: 32, num_hidden_layers: 34, num_key_value_heads: 8, rms_norm_eps: 1e-5, vocab_size: 131072,
    sliding_window: null, tie_word_embeddings: false,
    rope_parameters: { beta_fast: 32.0, beta_slow: 1.0, factor: 16.0, llama_4_scaling_beta: 0.1, mscale: 1.0,
      mscale_all_dim: 1.0, original_max_position_embeddings: 16384, rope_theta: 1000000000.0, rope_type: 'yarn', type: 'yarn' },
  },
  vision_config: {},
};

test('Ministral 3: llama_4_scaling_beta gives the query scale (period original_max_position_embeddings), handed to the plan', () => {
  const s = parseModelSpec(MINISTRAL_3_8B);
  assert.deepEqual(s.queryScale, { beta: 0.1, period: 16384 });
  assert.equal(s.slidingWindow, 0);
  const plan = planConfig(s, partitionFor(s, 0, 1), { rank: 0, world: 1, numBlocks: 4, blockSize: 16, adapterSlots: 1 });
  assert.deepEqual([plan.qScaleBeta, plan.qScalePeriod], [0.1, 16384]);
  const textOnly = parseModelSpec({ ...MINISTRAL_3_8B.text_config, architectures: ['Ministral3ForCausalLM'] });
  assert.deepEqual(textOnly.queryScale, { beta: 0.1, period: 16384 });
  const noPeriod = { rope_type: 'default', rope_theta: 1e6, llama_4_scaling_beta: 0.1 };  // no YaRN to name the period
  assert.throws(() => parseModelSpec({ ...MINISTRAL_3_8B.text_config, architectures: ['Ministral3ForCausalLM'], rope_parameters: noPeriod }),
    /llama_4_scaling_beta needs original_max_position_embeddings/);
  // Mistral models without the field: no scale
  assert.equal(parseModelSpec({ ...MINISTRAL_3_8B.text_config, architectures: ['MistralForCausalLM'], rope_parameters: { rope_theta: 1e6 } }).queryScale, null);
});
