// Sizing decisions at launch (deploy/memory-plan.ts): adapter slots from a memory fraction, automatic KV blocks
// on the CPU (host RAM) and on a GPU (what weights, slots and activations leave of --cuda-memory-fraction).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { autoKvBlocks, planMemory, type MemoryPlanConfig } from '../../deploy/memory-plan.js';
import { parseModelSpec } from '../../shard/index.js';

const llama2 = parseModelSpec({ architectures: ['LlamaForCausalLM'], hidden_size: 4096, num_attention_heads: 32,
  num_key_value_heads: 32, num_hidden_layers: 32, intermediate_size: 11008, vocab_size: 32000, max_position_embeddings: 4096,
  rms_norm_eps: 1e-5 });

const base: MemoryPlanConfig & { kvCacheBlocks: number } = { device: 'cpu', dtype: 'float32', numShard: 1, maxTotalTokens: 2048,
  blockSize: 16, maxBatchPrefillTokens: 4096, maxBatchSize: 64, maxLoraRank: 16, maxAdapterSlots: 8, adapterMemoryFraction: 0,
  cudaMemoryFraction: 0.9, kvCacheBlocks: 0 };
const adapterSlots = (spec: typeof llama2, o: Partial<MemoryPlanConfig>, deviceBytes = 64e9) =>
  planMemory(spec, { ...base, ...o }, deviceBytes).adapterSlots;

test('--adapter-memory-fraction: a byte budget, with slots for as many rank-1 all-module adapters as it holds', () => {
  const o = { maxAdapterSlots: 8, adapterMemoryFraction: 0.1, maxLoraRank: 16, numShard: 1 };
  const perAdapter = 4 * 16 * (8192 * 4 + 15104 * 3) * 32; // (in+out) of q,k,v,o and gate,up,down × r × 4 bytes
  assert.ok(Math.abs(perAdapter / 2 - 80e6) / 80e6 < 0.02, 'a rank-16 all-module Llama-2-7B adapter is 80 MB in fp16 (DESIGN §9)');
  const device = 4 * perAdapter * 10;  // the budget holds 4 rank-16 adapters, 64 of rank 1
  const plan = planMemory(llama2, { ...base, ...o }, device);
  assert.equal(plan.adapterBudgetBytes, Math.floor(0.1 * device));
  assert.equal(plan.bytes.adapters, plan.adapterBudgetBytes, 'the budget is what the KV cache plan leaves out');
  assert.equal(plan.adapterSlots, 64);
  assert.equal(adapterSlots(llama2, { ...o, numShard: 2 }, device), 128, 'each shard holds half of every adapter');
  assert.equal(adapterSlots(llama2, o, 1e15), 1024, 'at most 1024 slots');
  const off = planMemory(llama2, { ...base, ...o, adapterMemoryFraction: 0 }, 64e9);
  assert.deepEqual([off.adapterSlots, off.adapterBudgetBytes], [8, 0], 'fraction 0 = --max-adapter-slots, no byte budget');
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

test('on a GPU the KV cache gets what is left of --cuda-memory-fraction after weights, slots and activations', () => {
  const gpu = { ...base, device: 'cuda' as const, dtype: 'bfloat16' as const };
  const h100 = 85e9; // 79.6 GiB
  const p = planMemory(llama2, gpu, h100);
  assert.ok(Math.abs(p.bytes.weights - 13.5e9) / 13.5e9 < 0.02, `Llama-2-7B bf16 weights ≈ 13.5 GB, got ${p.bytes.weights}`);
  assert.equal(p.bytes.adapters, 8 * 16 * (8192 * 4 + 15104 * 3) * 32 * 2, '8 slots of rank 16 in bf16');
  const blockBytes = 2 * 32 * 32 * 128 * 2 * 16; // K+V, 32 layers, 32 kv heads × 128, bf16, 16 tokens: 8 MiB
  assert.equal(p.kvBlocks, Math.floor((0.9 * h100 - 1.5 * 2 ** 30 - p.bytes.weights - p.bytes.adapters - p.bytes.activations) / blockBytes));
  assert.ok(p.kvBlocks * 16 > 60_000, `tens of thousands of tokens of KV on an 80 GB GPU, got ${p.kvBlocks * 16}`);
  assert.ok(p.bytes.weights + p.bytes.adapters + p.bytes.activations + p.bytes.kv <= p.bytes.usable);
  // Two shards on two GPUs: half of the linear weights and KV heads each, so about twice the blocks per shard,
  // up to what --max-batch-size (64) full-length (2048-token, 128-block) sequences can use.
  assert.ok(p.kvBlocks < 128 * 64, 'one shard is memory-bound, not at the cap');
  assert.equal(planMemory(llama2, { ...gpu, numShard: 2 }, h100).kvBlocks, 128 * 64 + 1);
  // A fixed --kv-cache-blocks is kept when it fits and refused with the numbers when it does not.
  assert.equal(planMemory(llama2, { ...gpu, kvCacheBlocks: 100 }, h100).kvBlocks, 100);
  assert.throws(() => planMemory(llama2, { ...gpu, kvCacheBlocks: 100_000 }, h100), /--kv-cache-blocks 100000 needs .* GB and .* GB is left/);
  // Two shards on one GPU (TP over shm on a single device) split it.
  const shared = planMemory(llama2, { ...gpu, numShard: 2 }, h100, 2);
  assert.ok(shared.bytes.usable < p.bytes.usable / 2 + 1);
  // A small model gets no more blocks than --max-batch-size full-length sequences can use.
  const tiny = parseModelSpec({ architectures: ['LlamaForCausalLM'], hidden_size: 64, num_attention_heads: 4,
    num_key_value_heads: 2, num_hidden_layers: 2, intermediate_size: 128, vocab_size: 512, max_position_embeddings: 4096 });
  assert.equal(planMemory(tiny, gpu, h100).kvBlocks, 128 * 64 + 1);
  // A model that does not fit: 7 B in bf16 on a 16 GB GPU.
  assert.throws(() => planMemory(llama2, gpu, 16e9), /does not fit on this GPU .*weights 13\.\d GB.*--num-shard/);
});

test('on the CPU backend, planMemory keeps the host-RAM rule and --kv-cache-blocks as given', () => {
  assert.equal(planMemory(llama2, base, 64e9).kvBlocks, autoKvBlocks(llama2, base));
  assert.equal(planMemory(llama2, { ...base, kvCacheBlocks: 7 }, 64e9).kvBlocks, 7);
});
