// Sizing decisions at launch: adapter slots from a memory fraction, automatic KV blocks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adapterSlots, autoKvBlocks } from '../../deploy/launch.js';
import { parseModelSpec } from '../../shard/index.js';

const llama2 = parseModelSpec({ architectures: ['LlamaForCausalLM'], hidden_size: 4096, num_attention_heads: 32,
  num_key_value_heads: 32, num_hidden_layers: 32, intermediate_size: 11008, vocab_size: 32000, max_position_embeddings: 4096,
  rms_norm_eps: 1e-5 });

test('--adapter-memory-fraction: a rank-16 all-module Llama-2-7B adapter is 160 MB in fp32 (80 MB fp16, DESIGN §9)', () => {
  const o = { maxAdapterSlots: 8, adapterMemoryFraction: 0.1, maxLoraRank: 16, numShard: 1 };
  const perAdapter = 4 * 16 * (8192 * 4 + 15104 * 3) * 32; // (in+out) of q,k,v,o and gate,up,down × r × 4 bytes
  assert.ok(Math.abs(perAdapter / 2 - 80e6) / 80e6 < 0.02, 'fp16 size ≈ 80 MB');
  assert.equal(adapterSlots(llama2, o, 16 * perAdapter * 10), 16);
  assert.equal(adapterSlots(llama2, { ...o, numShard: 2 }, 16 * perAdapter * 10), 32, 'each shard holds half of every adapter');
  assert.equal(adapterSlots(llama2, { ...o, adapterMemoryFraction: 0 }), 8, 'fraction 0 = --max-adapter-slots');
  assert.equal(adapterSlots(llama2, { ...o, adapterMemoryFraction: 1e-9 }, 1e9), 1, 'at least one slot');
});

test('automatic KV blocks hold 16 full-length sequences, capped at 1 GiB per shard but never below one sequence', () => {
  // Llama-2-7B fp32: 16 MiB per 16-token block, so 1 GiB is 64 blocks (1024 tokens) — less than one 2048-token sequence.
  assert.equal(autoKvBlocks(llama2, { maxTotalTokens: 2048, blockSize: 16, numShard: 1 }), 2048 / 16 + 1);
  assert.equal(autoKvBlocks(llama2, { maxTotalTokens: 256, blockSize: 16, numShard: 1 }), 64, 'the 1 GiB cap');
  const tiny = parseModelSpec({ ...{ architectures: ['LlamaForCausalLM'] }, hidden_size: 64, num_attention_heads: 4,
    num_key_value_heads: 2, num_hidden_layers: 2, intermediate_size: 128, vocab_size: 512, max_position_embeddings: 256 });
  assert.equal(autoKvBlocks(tiny, { maxTotalTokens: 256, blockSize: 16, numShard: 1 }), 256);
});
