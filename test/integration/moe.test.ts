// Mixture-of-experts models (Mixtral, Qwen3-MoE) beyond the golden conformance tests: the config rules, the
// per-expert adapter layout of transformers 4 (one nn.Linear per expert) against the golden logits of the same
// matrices in PEFT's target_parameters layout, the refusals (router LoRA, merges) and serving over HTTP.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalEngine } from '../../shard/index.js';
import { loadAdapterDir } from '../../shard/adapters/index.js';
import { mergeAdapters } from '../../shard/adapters/merge.js';
import { parseModelSpec, readModelSpec } from '../../shard/models/spec.js';
import { writeSafetensors } from '../../shard/formats/index.js';
import { loadGoldenCase, maxAbsDiff } from '../helpers/golden.js';
import { generateEverySequence, goldenKey, prefillMatchesGolden, startGoldenServer } from '../helpers/golden-server.js';

const tmp = mkdtempSync(join(tmpdir(), 'weft-moe-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const QWEN3_MOE = {
  architectures: ['Qwen3MoeForCausalLM'], hidden_size: 64, intermediate_size: 96, num_hidden_layers: 4, num_attention_heads: 4,
  num_key_value_heads: 2, head_dim: 16, vocab_size: 128, max_position_embeddings: 256, num_experts: 8, num_experts_per_tok: 2,
  moe_intermediate_size: 32,
};

test('MoE configs: Mixtral renormalises, Qwen3-MoE follows norm_topk_prob, mlp_only_layers and decoder_sparse_step', () => {
  const mixtral = readModelSpec(loadGoldenCase('mixtral').modelDir);
  assert.equal(mixtral.architecture, 'mixtral');
  const softmax = { sigmoid: false, groups: 1, topkGroups: 1, routedScale: 1, sharedExpert: false };
  assert.deepEqual(mixtral.moe, { experts: 4, perToken: 2, intermediate: 48, renormalize: true, layers: null, ...softmax });
  const qwen = parseModelSpec({ ...QWEN3_MOE, norm_topk_prob: true, mlp_only_layers: [0], decoder_sparse_step: 2 });
  assert.deepEqual(qwen.moe, { experts: 8, perToken: 2, intermediate: 32, renormalize: true, layers: [false, true, false, true], ...softmax });
  assert.equal(qwen.qkNorm, true);
  assert.equal(parseModelSpec(QWEN3_MOE).moe!.renormalize, false);  // Qwen3MoeConfig's default
  assert.equal(parseModelSpec(QWEN3_MOE).moe!.layers, null);
  // transformers 5 saves Qwen3-MoE's count under Mixtral's name
  const { num_experts: _n, ...renamed } = QWEN3_MOE;
  assert.equal(parseModelSpec({ ...renamed, num_local_experts: 6 }).moe!.experts, 6);
  assert.throws(() => parseModelSpec({ ...QWEN3_MOE, num_experts_per_tok: 9 }), /num_experts_per_tok 9 is more than the 8 experts/);
  assert.throws(() => parseModelSpec({ ...QWEN3_MOE, shared_expert_intermediate_size: 64 }), /not part of Qwen3-MoE; use Qwen2MoeForCausalLM/);
  assert.throws(() => parseModelSpec({ ...QWEN3_MOE, decoder_sparse_step: 0 }), /decoder_sparse_step must be a positive integer/);
});

test('GLM-4.5 configs: sigmoid routing, groups, routed scale, the shared expert and the dense first layers', () => {
  const glm = readModelSpec(loadGoldenCase('glm4_moe').modelDir);
  assert.equal(glm.architecture, 'glm4_moe');
  assert.deepEqual(glm.moe, { experts: 8, perToken: 2, intermediate: 32, renormalize: true, layers: [false, true], sigmoid: true,
    groups: 2, topkGroups: 1, routedScale: 2.5, sharedExpert: true });
  assert.equal(glm.qkNorm, true);
  assert.equal(glm.oBias, false);  // q/k/v biases only
  assert.equal(glm.rope!.rotaryDim, 16);  // partial_rotary_factor 0.5 of head_dim 32, rotate-half
  assert.equal(glm.ropeInterleaved, false);
  const base = { architectures: ['Glm4MoeForCausalLM'], hidden_size: 64, intermediate_size: 96, num_hidden_layers: 3,
    num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, vocab_size: 128, max_position_embeddings: 256,
    n_routed_experts: 8, num_experts_per_tok: 2, moe_intermediate_size: 32 };
  // GLM4MoeConfig's defaults: one shared expert, one group, norm_topk_prob true, scale 1, first layer dense
  assert.deepEqual(parseModelSpec(base).moe, { experts: 8, perToken: 2, intermediate: 32, renormalize: true,
    layers: [false, true, true], sigmoid: true, groups: 1, topkGroups: 1, routedScale: 1, sharedExpert: true });
  assert.equal(parseModelSpec({ ...base, n_shared_experts: 0, first_k_dense_replace: 0 }).moe!.sharedExpert, false);
  // n shared experts: one MLP n times as wide (transformers' Glm4MoeMLP of moe_intermediate_size · n)
  assert.equal(parseModelSpec({ ...base, n_shared_experts: 2 }).moe!.sharedIntermediate, 64);
  assert.equal(parseModelSpec(base).moe!.sharedIntermediate, undefined);
  assert.throws(() => parseModelSpec({ ...base, n_group: 3 }), /n_group 3 \/ topk_group 1 must split the 8 experts evenly/);
  assert.throws(() => parseModelSpec({ ...base, n_group: 4, topk_group: 0 }), /must split the 8 experts/);
  assert.throws(() => parseModelSpec({ ...base, first_k_dense_replace: 3 }), /leaves no mixture-of-experts layer/);
});

test('Qwen2-MoE configs: a gated shared expert of its own width, Qwen2 attention, sparse steps', () => {
  const q = readModelSpec(loadGoldenCase('qwen2_moe').modelDir);
  assert.equal(q.architecture, 'qwen2_moe');
  assert.deepEqual(q.moe, { experts: 8, perToken: 2, intermediate: 32, renormalize: false, layers: [true, false, true],
    sigmoid: false, groups: 1, topkGroups: 1, routedScale: 1, sharedExpert: true, sharedIntermediate: 48, sharedGate: true });
  assert.equal(q.qkvBias, true);
  const base = { architectures: ['Qwen2MoeForCausalLM'], hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 128, max_position_embeddings: 256, num_experts: 8,
    num_experts_per_tok: 2, moe_intermediate_size: 32 };
  assert.equal(parseModelSpec(base).moe!.sharedIntermediate, 5632, "Qwen2MoeConfig's default shared width");
  assert.equal(parseModelSpec({ ...base, shared_expert_intermediate_size: 0 }).moe!.sharedExpert, false);
  assert.equal(parseModelSpec({ ...base, qkv_bias: false }).qkvBias, false);
  assert.throws(() => parseModelSpec({ ...base, shared_expert_intermediate_size: -1 }), /shared_expert_intermediate_size must be a non-negative integer/);
  // LoRA on the shared expert's gate (a [1, hidden] Linear) is not served: refused by name
  const dir = join(tmp, 'shared-gate');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['shared_expert_gate'] }));
  writeSafetensors(join(dir, 'adapter_model.safetensors'), {
    'base_model.model.model.layers.0.mlp.shared_expert_gate.lora_A.weight': { dtype: 'F32', shape: [2, 64], data: new Float32Array(128) },
    'base_model.model.model.layers.0.mlp.shared_expert_gate.lora_B.weight': { dtype: 'F32', shape: [1, 2], data: new Float32Array(2) },
  });
  const engine = LocalEngine.open(loadGoldenCase('qwen2_moe').modelDir, { numBlocks: 8, blockSize: 4, adapterSlots: 1 });
  try {
    assert.throws(() => engine.loadAdapter(0, dir), /'model\.layers\.0\.mlp\.shared_expert_gate', which is not a supported linear module/);
  } finally {
    engine.dispose();
  }
});

test('Granite MoE configs: Granite\'s multipliers, the renormalised top-k, experts read stacked; a wrong stacked shape is named', () => {
  const g = readModelSpec(loadGoldenCase('granitemoe').modelDir);
  assert.equal(g.architecture, 'granitemoe');
  assert.deepEqual([g.moe!.experts, g.moe!.perToken, g.moe!.intermediate, g.moe!.renormalize, g.moe!.layers], [8, 2, 32, true, null]);
  assert.deepEqual([g.embedScale, g.attnScale, g.residualScale, g.logitsDivisor, g.tieEmbeddings], [3, 0.2, 0.5, 4, true]);
  // a checkpoint whose stacked experts do not have the config's shape is refused by name
  const src = loadGoldenCase('granitemoe').modelDir, dir = join(tmp, 'granitemoe-bad');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(src, 'config.json'), 'utf8')), intermediate_size: 16 }));
  writeFileSync(join(dir, 'model.safetensors'), readFileSync(join(src, 'model.safetensors')));
  assert.throws(() => LocalEngine.open(dir, { numBlocks: 8, blockSize: 4, adapterSlots: 1 }),
    /block_sparse_moe\.input_linear\.weight' \/ '.*output_linear\.weight' have shapes \[8, 64, 64\] \/ \[8, 64, 32\], expected \[8, 32, 64\] \/ \[8, 64, 16\]/);
});

test('ERNIE 4.5 MoE configs: softmax with a choice bias, moe_norm_min, shared experts, the MoE layer range', () => {
  const g = readModelSpec(loadGoldenCase('ernie4_5_moe').modelDir);
  assert.equal(g.architecture, 'ernie4_5_moe');
  assert.deepEqual(g.moe, { experts: 8, perToken: 2, intermediate: 32, renormalize: true, layers: [false, true], sigmoid: false,
    groups: 1, topkGroups: 1, routedScale: 1, sharedExpert: true, sharedIntermediate: 64, choiceBias: true, renormMin: 1e-12 });
  assert.deepEqual([g.ropeInterleaved, g.tieEmbeddings], [true, true]);
  const base = { architectures: ['Ernie4_5_MoeForCausalLM'], hidden_size: 64, intermediate_size: 96, num_hidden_layers: 6,
    num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, vocab_size: 128, max_position_embeddings: 256,
    moe_num_experts: 8, moe_k: 2, moe_intermediate_size: 32 };
  // Ernie4_5_MoeConfig's defaults: MoE from layer 1 to the last, two shared experts
  assert.deepEqual(parseModelSpec(base).moe!.layers, [false, true, true, true, true, true]);
  assert.deepEqual(parseModelSpec({ ...base, moe_layer_interval: 2, moe_layer_end_index: 4 }).moe!.layers,
    [false, true, false, true, false, false]);
  assert.equal(parseModelSpec({ ...base, moe_num_shared_experts: 0 }).moe!.sharedExpert, false);
  assert.throws(() => parseModelSpec({ ...base, moe_layer_start_index: 9 }), /leave no mixture-of-experts layer/);
});

test('dots.llm1 configs: Qwen3 attention, DeepSeek-V3 routing with its own defaults (no renormalisation, no shared experts)', () => {
  const d = readModelSpec(loadGoldenCase('dots1').modelDir);
  assert.deepEqual([d.architecture, d.qkNorm, d.moe!.sigmoid, d.moe!.renormalize, d.moe!.sharedIntermediate, d.moe!.routedScale],
    ['dots1', true, true, false, 64, 2]);
  const base = { architectures: ['Dots1ForCausalLM'], hidden_size: 64, intermediate_size: 96, num_hidden_layers: 3,
    num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, vocab_size: 128, max_position_embeddings: 256,
    n_routed_experts: 8, num_experts_per_tok: 2, moe_intermediate_size: 32 };
  const dflt = parseModelSpec(base).moe!;  // Dots1Config: norm_topk_prob false, no shared experts, every layer MoE
  assert.deepEqual([dflt.renormalize, dflt.sharedExpert, dflt.layers, dflt.groups], [false, false, null, 1]);
  // layer_types by default: sliding from max_window_layers on when sliding_window is set
  assert.deepEqual(parseModelSpec({ ...base, sliding_window: 8, max_window_layers: 1 }).layerSliding, [false, true, true]);
  assert.equal(parseModelSpec({ ...base, sliding_window: 8 }).slidingWindow, 0, 'max_window_layers 62 by default: none here');
});

type Tensor = { shape: number[]; data: Float32Array };

/**
 * The same adapter in transformers 4's layout: one pair per expert module, from PEFT's stacked pairs (expert e: lora_A
 * rows e·r…, lora_B columns e, E+e, …). gate_up_proj's rank-r pair becomes a gate and an up pair of rank r each.
 */
function perExpertCopy(src: string, dst: string, names: { block: string; gate: string; up: string; down: string }, E: number, I: number): void {
  const { tensors } = loadAdapterDir(src);
  const config = JSON.parse(readFileSync(join(src, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  const out: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  const put = (key: string, t: Tensor): void => { out[key] = { dtype: 'F32', shape: t.shape, data: t.data }; };
  const ranks: Record<string, number> = {};
  for (const [key, t] of tensors) {
    const m = /^base_model\.model\.model\.layers\.(\d+)\.mlp\.experts((?:\.base_layer)*)\.lora_A\.weight$/.exec(key);
    if (!m) {
      if (!/\.experts(\.base_layer)*\.lora_B\.weight$/.test(key)) put(key, t);
      continue;
    }
    const b = tensors.get(key.replace('lora_A', 'lora_B'))!;
    const rank = t.shape[0]! / E, inDim = t.shape[1]!, outDim = b.shape[0]!;
    const gateUp = outDim === 2 * I;
    for (let e = 0; e < E; e++) {
      const a = t.data.slice(e * rank * inDim, (e + 1) * rank * inDim);
      const be = new Float32Array(outDim * rank);
      for (let o = 0; o < outDim; o++) for (let j = 0; j < rank; j++) be[o * rank + j] = b.data[o * b.shape[1]! + j * E + e]!;
      const base = `base_model.model.model.layers.${m[1]}.${names.block}.experts.${e}`;
      const pairs: [string, Float32Array][] = gateUp
        ? [[names.gate, be.slice(0, I * rank)], [names.up, be.slice(I * rank)]]
        : [[names.down, be]];
      for (const [mod, bm] of pairs) {
        put(`${base}.${mod}.lora_A.weight`, { shape: [rank, inDim], data: a });
        put(`${base}.${mod}.lora_B.weight`, { shape: [bm.length / rank, rank], data: bm });
        ranks[mod] = rank;
      }
    }
  }
  // PEFT's converted configs scale gate_up_proj by 2·alpha / 2r = alpha / r: the per-expert modules keep alpha / r.
  const alpha = config.lora_alpha as number, r = config.r as number;
  const rankPattern = Object.fromEntries(Object.entries(ranks).filter(([, k]) => k !== r));
  const alphaPattern = Object.fromEntries(Object.keys(rankPattern).map((k) => [k, (alpha * rankPattern[k]!) / r]));
  mkdirSync(dst, { recursive: true });
  writeFileSync(join(dst, 'adapter_config.json'), JSON.stringify({
    ...config, target_parameters: null, rank_pattern: rankPattern, alpha_pattern: alphaPattern,
    target_modules: [...(config.target_modules as string[]), names.gate, names.up, names.down],
  }));
  writeSafetensors(join(dst, 'adapter_model.safetensors'), out);
}

for (const [caseName, names, E, I] of [
  ['mixtral', { block: 'block_sparse_moe', gate: 'w1', up: 'w3', down: 'w2' }, 4, 48],
  ['qwen3_moe', { block: 'mlp', gate: 'gate_proj', up: 'up_proj', down: 'down_proj' }, 8, 40],
] as const) {
  test(`${caseName}: an adapter with one pair per expert (transformers 4's layout) gives the golden logits`, async () => {
    const c = loadGoldenCase(caseName);
    const stacked = c.adapters.find((a) => a.name === 'qv_experts_r4')!;
    const dir = join(tmp, `${caseName}-per-expert`);
    perExpertCopy(stacked.dir, dir, names, E, I);
    const engine = LocalEngine.open(c.modelDir, { numBlocks: 64, blockSize: 4, adapterSlots: 2 });
    try {
      engine.loadAdapter(0, dir);
      engine.loadAdapter(1, stacked.dir);
      for (let s = 0; s < c.sequences.length; s++) {
        const [perExpert, asStacked, base] = await engine.scoreBatch([
          { tokens: c.sequences[s]!, adapterSlot: 0 }, { tokens: c.sequences[s]!, adapterSlot: 1 }, { tokens: c.sequences[s]!, adapterSlot: -1 }]);
        const want = c.logits(`adapter/qv_experts_r4/seq${s}`);
        assert.ok(maxAbsDiff(perExpert!, want) <= 1e-4, `seq${s}: per-expert layout off by ${maxAbsDiff(perExpert!, want)}`);
        assert.ok(maxAbsDiff(asStacked!, want) <= 1e-4);
        assert.ok(maxAbsDiff(base!, c.logits(`base/seq${s}`)) <= 1e-4);
      }
    } finally {
      engine.dispose();
    }
  });
}

test('LoRA on the router, experts on a dense layer and wrong expert shapes are refused by name', () => {
  const c = loadGoldenCase('qwen3_moe');
  const engine = LocalEngine.open(c.modelDir, { numBlocks: 16, blockSize: 4, adapterSlots: 1 });
  const write = (name: string, tensors: Record<string, [number, number]>, extra: Record<string, unknown> = {}): string => {
    const dir = join(tmp, name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['gate'], ...extra }));
    writeSafetensors(join(dir, 'adapter_model.safetensors'), Object.fromEntries(Object.entries(tensors).map(([k, shape]) =>
      [k, { dtype: 'F32', shape, data: new Float32Array(shape[0] * shape[1]).fill(0.01) }])));
    return dir;
  };
  try {
    const router = write('router', { 'base_model.model.model.layers.0.mlp.gate.lora_A.weight': [4, 64], 'base_model.model.model.layers.0.mlp.gate.lora_B.weight': [8, 4] });
    assert.throws(() => engine.loadAdapter(0, router), /targets the MoE router 'model\.layers\.0\.mlp\.gate'.*not supported/);
    // layer 1 of this case is dense (mlp_only_layers): it has no experts
    const dense = write('dense-expert', { 'base_model.model.model.layers.1.mlp.experts.0.gate_proj.lora_A.weight': [4, 64],
      'base_model.model.model.layers.1.mlp.experts.0.gate_proj.lora_B.weight': [40, 4] });
    assert.throws(() => engine.loadAdapter(0, dense), /'model\.layers\.1\.mlp\.experts\.0\.gate_proj', which is not a supported linear module/);
    const shape = write('bad-shape', { 'base_model.model.model.layers.0.mlp.experts.3.down_proj.lora_A.weight': [4, 64],
      'base_model.model.model.layers.0.mlp.experts.3.down_proj.lora_B.weight': [64, 4] });
    assert.throws(() => engine.loadAdapter(0, shape), /experts\.3\.down_proj' expects lora_A \[r, 40\] and lora_B \[64, r\]/);
    const stacked = write('bad-stacked', { 'base_model.model.model.layers.0.mlp.experts.lora_A.weight': [12, 40],
      'base_model.model.model.layers.0.mlp.experts.lora_B.weight': [64, 12] }, { target_parameters: ['mlp.experts.down_proj'] });
    assert.throws(() => engine.loadAdapter(0, stacked), /down_proj pair of 8 experts at rank 4.*needs 32 rows/);
  } finally {
    engine.dispose();
  }
});

test('adapters on MoE experts are not merged per request', () => {
  const c = loadGoldenCase('mixtral');
  const a = loadAdapterDir(c.adapters.find((x) => x.name === 'qv_experts_r4')!.dir);
  const b = loadAdapterDir(c.adapters.find((x) => x.name === 'attn_r8')!.dir);
  assert.throws(() => mergeAdapters([b, a], { weights: [1, 1], strategy: 'cat', density: null, majoritySignMethod: 'total', seed: 0 }),
    /adapter 1 has LoRA on MoE experts through target_parameters, which cannot be merged/);
});

test('over HTTP at --num-shard 2: Mixtral with expert and attention adapters batched beside base requests', async () => {
  const g = await startGoldenServer({ numShard: 2 }, { caseName: 'mixtral' });
  const { c } = g;
  try {
    for (const { r, s, a } of await generateEverySequence(g, [null, 'attn_r8', 'qv_experts_r4'])) {
      assert.equal(r.status, 200, r.text);
      prefillMatchesGolden(c, r.json, goldenKey(a, s), c.sequences[s]!);
    }
    // Listed with its rank per expert (gate_up_proj: 2r after PEFT's conversion).
    const listed = await (await fetch(`${g.url}/v1/adapters`)).json() as { adapters: { id: string; rank: number }[] };
    assert.equal(listed.adapters.find((x) => x.id === 'qv_experts_r4')?.rank, 8);
  } finally {
    await g.close();
  }
});
