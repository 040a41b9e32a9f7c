import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AdapterConfigError,
  loadAdapterDir,
  loraScaleFor,
  parseLoraConfig,
  parseLoraTensorKey,
  type LoraConfig,
} from '../../shard/adapters/index.js';
import { UnsafePickleError, writeSafetensors } from '../../shard/formats/index.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const GOLDEN = join(ROOT, 'test/fixtures/golden');
const TORCH_BIN = join(ROOT, 'test/fixtures/torch-bin');
const tmp = mkdtempSync(join(tmpdir(), 'weft-peft-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
let seq = 0;
const newDir = (): string => {
  const d = join(tmp, String(seq++));
  mkdirSync(d);
  return d;
};

const BASE = { peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'], bias: 'none', task_type: 'CAUSAL_LM' };
const cfg = (over: Record<string, unknown> = {}): LoraConfig => parseLoraConfig({ ...BASE, ...over }, 'cfg.json');

function refused(over: Record<string, unknown>, field: string, re: RegExp): void {
  assert.throws(() => cfg(over), (e: unknown) => {
    assert.ok(e instanceof AdapterConfigError, String(e));
    assert.equal(e.field, field);
    assert.match(e.message, new RegExp(`^cfg\\.json: field "${field}" `));
    assert.match(e.message, re);
    return true;
  }, `${JSON.stringify(over)} must be refused`);
}

test('every golden adapter loads, with PEFT scaling', () => {
  const seen: string[] = [];
  for (const arch of readdirSync(GOLDEN)) {
    let names: string[];
    try {
      names = readdirSync(join(GOLDEN, arch, 'adapters'));
    } catch {
      continue;
    }
    for (const name of names) {
      const dir = join(GOLDEN, arch, 'adapters', name);
      const { config, tensors } = loadAdapterDir(dir);
      const raw = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as { r: number; lora_alpha: number };
      assert.equal(config.r, raw.r);
      const kinds = new Map<string, number>();
      for (const [key, t] of tensors) {
        const { modulePath, kind } = parseLoraTensorKey(key);
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
        if (kind === 'BASE') continue;  // a base-layer copy (PEFT's save_embedding_layers), checked against the model
        if (kind === 'TOKENS') {  // trainable tokens: one row per listed token id
          assert.ok(config.trainableTokens !== null && t.shape.length === 2, key);
          continue;
        }
        if (kind === 'M') {  // DoRA magnitude: one per output feature of a LoRA-targeted module
          assert.ok(config.useDora && t.shape.length === 1 && t.shape[0]! > 0, key);
          continue;
        }
        // target_parameters on stacked MoE experts: r per expert (rank_pattern keyed by the parameter), r·E rows
        const stacked = /\.experts(?:\.base_layer)*$/.test(modulePath);
        const rank = stacked ? Math.max(...['gate_up_proj', 'down_proj'].map((p) => loraScaleFor(config, `${modulePath.replace(/(\.base_layer)+$/, '')}.${p}`).rank)) : loraScaleFor(config, modulePath).rank;
        if (stacked) assert.equal((kind === 'A' ? t.shape[0]! : t.shape[1]!) % rank, 0, key);
        else assert.equal(kind === 'A' ? t.shape[0] : t.shape[1], rank, key);
        assert.equal(t.data.length, t.shape[0]! * t.shape[1]!);
      }
      assert.ok((kinds.get('A') ?? 0) >= 1 && kinds.get('A') === kinds.get('B'), `${arch}/${name}: A/B pairs`);
      if (config.useDora) assert.equal(kinds.get('M'), kinds.get('A'), `${arch}/${name}: one magnitude per DoRA pair`);
      seen.push(`${arch}/${name}`);
    }
  }
  for (const want of ['llama/rslora_r16', 'llama/qv_r4', 'gpt2/attn_mlp_r8', 'llama_dora/dora_r8', 'llama_embed/embed_qv_head',
    'llama_lmhead_saved/lmhead_saved', 'gemma3/all_r8', 'qwen3/all_r8', 'llama_tokens/qv_tok_head', 'mixtral/qv_experts_r4',
    'qwen3_moe/qv_experts_r4']) assert.ok(seen.includes(want), `${want} not among ${seen.join(' ')}`);
});

test('llama golden adapters: all_r8, qv_r4 (alpha 32), rslora_r16', () => {
  const q = 'model.layers.0.self_attn.q_proj';
  const all = loadAdapterDir(join(GOLDEN, 'llama/adapters/all_r8'));
  assert.deepEqual(loraScaleFor(all.config, 'model.layers.1.mlp.down_proj'), { rank: 8, alpha: 16, scale: 2 });
  assert.equal(all.config.useRslora, false);

  const qv = loadAdapterDir(join(GOLDEN, 'llama/adapters/qv_r4'));
  assert.deepEqual(loraScaleFor(qv.config, q), { rank: 4, alpha: 32, scale: 8 });
  assert.deepEqual([...qv.config.targetModules as string[]].sort(), ['q_proj', 'v_proj']);
  assert.deepEqual(qv.tensors.get(`base_model.model.${q}.lora_A.weight`)!.shape, [4, 64]);
  assert.deepEqual(qv.tensors.get(`base_model.model.${q}.lora_B.weight`)!.shape, [64, 4]);

  const rs = loadAdapterDir(join(GOLDEN, 'llama/adapters/rslora_r16'));
  assert.equal(rs.config.useRslora, true);
  assert.deepEqual(loraScaleFor(rs.config, q), { rank: 16, alpha: 16, scale: 4 }); // 16 / sqrt(16)

  const gpt2 = loadAdapterDir(join(GOLDEN, 'gpt2/adapters/attn_mlp_r8'));
  assert.equal(gpt2.config.fanInFanOut, true);
  assert.equal(gpt2.config.baseModelNameOrPath, null);
});

test('config fields are typed and defaulted like PEFT', () => {
  const c = cfg({ layers_to_transform: 3, layers_pattern: 'layers', revision: 'main', base_model_name_or_path: 'meta-llama/Llama-2-7b-hf' });
  assert.deepEqual(c, {
    r: 8, loraAlpha: 16, useRslora: false, rankPattern: {}, alphaPattern: {}, targetModules: ['q_proj', 'v_proj'],
    layersToTransform: [3], layersPattern: 'layers', fanInFanOut: false, useDora: false, trainableTokens: null, targetParameters: [], classifierHead: false, baseModelNameOrPath: 'meta-llama/Llama-2-7b-hf', revision: 'main',
  });
  // A sequence classifier (task_type SEQ_CLS) may save its head through modules_to_save; nothing else may.
  assert.equal(cfg({ task_type: 'SEQ_CLS', modules_to_save: ['classifier', 'score'] }).classifierHead, true);
  refused({ task_type: 'CAUSAL_LM', modules_to_save: ['score'] }, 'modules_to_save', /\["score"\].*not supported/);
  refused({ task_type: 'SEQ_CLS', modules_to_save: ['score', 'lm_head'] }, 'modules_to_save', /not supported \(except a task_type "SEQ_CLS"/);
  assert.equal(cfg({ lora_alpha: undefined }).loraAlpha, 8);
  assert.equal(cfg({ target_modules: '.*\\.(q|v)_proj' }).targetModules, '.*\\.(q|v)_proj');
  assert.deepEqual(cfg({ layers_to_transform: [0, 2] }).layersToTransform, [0, 2]);
  for (const init of [true, false, 'gaussian', 'orthogonal', 'eva', 'mica']) cfg({ init_lora_weights: init });
  cfg({ modules_to_save: [], target_parameters: [], loftq_config: {}, use_dora: false, lora_bias: false, layer_replication: null });
  // MoE experts' stacked parameters, full (PEFT's target_parameters) or as PEFT's v4 → v5 conversion saves them
  assert.deepEqual(cfg({ target_parameters: ['mlp.experts.gate_up_proj', 'mlp.experts.down_proj'] }).targetParameters,
    ['mlp.experts.gate_up_proj', 'mlp.experts.down_proj']);
  assert.deepEqual(cfg({ target_parameters: ['gate_up_proj', 'down_proj'] }).targetParameters, ['gate_up_proj', 'down_proj']);
});

test('missing or bad r and wrong types are refused, naming the field', () => {
  refused({ r: undefined }, 'r', /must be a positive integer, got null/);
  refused({ r: 0 }, 'r', /positive integer/);
  refused({ r: -4 }, 'r', /positive integer/);
  refused({ r: 2.5 }, 'r', /positive integer/);
  refused({ r: '8' }, 'r', /positive integer, got "8"/);
  refused({ lora_alpha: '16' }, 'lora_alpha', /must be a number/);
  refused({ use_rslora: 'yes' }, 'use_rslora', /must be true or false/);
  refused({ fan_in_fan_out: 1 }, 'fan_in_fan_out', /must be true or false/);
  refused({ target_modules: 5 }, 'target_modules', /list of module names or a regex string/);
  refused({ target_modules: ['q_proj', 3] }, 'target_modules', /list of module names/);
  refused({ layers_to_transform: 'all' }, 'layers_to_transform', /integer, a list of integers or null/);
  refused({ layers_pattern: 7 }, 'layers_pattern', /string, a list of strings or null/);
  refused({ rank_pattern: { q_proj: 0 } }, 'rank_pattern', /entry "q_proj" must be a positive integer rank/);
  refused({ rank_pattern: [1] }, 'rank_pattern', /must be an object/);
  refused({ alpha_pattern: { q_proj: 'x' } }, 'alpha_pattern', /must be a number/);
  refused({ rank_pattern: { 'q_proj(': 4 } }, 'rank_pattern', /key "q_proj\(" is not a valid regular expression/);
  refused({ revision: 3 }, 'revision', /must be a string or null/);
  assert.throws(() => parseLoraConfig([], 'x.json'), /x\.json: adapter config must be a JSON object/);
});

test('unsupported PEFT features are refused with what to do', () => {
  refused({ peft_type: 'IA3' }, 'peft_type', /"IA3": weft serves LoRA adapters only/);
  refused({ peft_type: undefined }, 'peft_type', /null/);
  refused({ modules_to_save: ['lm_head'] }, 'modules_to_save', /\["lm_head"\].*not supported/);
  refused({ bias: 'all' }, 'bias', /"all".*retrain with bias="none"/);
  refused({ bias: 'lora_only' }, 'bias', /lora_only/);
  refused({ lora_bias: true }, 'lora_bias', /retrain with lora_bias=false/);
  refused({ init_lora_weights: 'pissa' }, 'init_lora_weights', /"pissa".*path_initial_model_for_weight_conversion/);
  refused({ init_lora_weights: 'pissa_niter_16' }, 'init_lora_weights', /pissa_niter_16/);
  refused({ init_lora_weights: 'olora' }, 'init_lora_weights', /olora/);
  refused({ init_lora_weights: 'corda' }, 'init_lora_weights', /corda/);
  refused({ init_lora_weights: 'lora_ga' }, 'init_lora_weights', /lora_ga/);
  refused({ init_lora_weights: 'loftq' }, 'init_lora_weights', /LoftQ/);
  refused({ init_lora_weights: 'something_new' }, 'init_lora_weights', /does not know/);
  refused({ init_lora_weights: 3 }, 'init_lora_weights', /boolean or a string/);
  refused({ layer_replication: [[0, 4], [2, 5]] }, 'layer_replication', /layer replication/);
  refused({ use_qalora: true }, 'use_qalora', /QA-LoRA/);
  refused({ alora_invocation_tokens: [1, 2] }, 'alora_invocation_tokens', /aLoRA/);
  refused({ target_parameters: ['self_attn.q_proj.weight'] }, 'target_parameters', /MoE experts only.*target nn\.Linear modules/);
  refused({ target_parameters: ['mlp.experts.gate_up_proj', 'mlp.gate.weight'] }, 'target_parameters', /"mlp\.gate\.weight"/);
  refused({ use_bdlora: { nblocks: 2 } }, 'use_bdlora', /BD-LoRA/);
  refused({ megatron_config: { tp: 2 } }, 'megatron_config', /Megatron/);
  refused({ kasa_config: {} }, 'kasa_config', /KaSA/);
});

test('rank_pattern / alpha_pattern follow PEFT get_pattern_key: (.*\\.)?key$, first match wins', () => {
  const m1 = 'model.layers.1.self_attn.q_proj';
  const m11 = 'model.layers.11.self_attn.q_proj';
  const c = cfg({ rank_pattern: { 'layers.1.self_attn.q_proj': 4 }, alpha_pattern: { q_proj: 64 } });
  assert.deepEqual(loraScaleFor(c, m1), { rank: 4, alpha: 64, scale: 16 });
  assert.deepEqual(loraScaleFor(c, m11), { rank: 8, alpha: 64, scale: 8 }); // layers.1 must not match layers.11
  assert.deepEqual(loraScaleFor(c, 'model.layers.1.self_attn.v_proj'), { rank: 8, alpha: 16, scale: 2 });
  // a key that is only the tail of a segment name does not match
  const tail = cfg({ rank_pattern: { proj: 2, _proj: 3, 'q_proj': 5 } });
  assert.equal(loraScaleFor(tail, m1).rank, 5);
  assert.equal(loraScaleFor(tail, 'model.layers.1.self_attn.kq_proj').rank, 8);
  // first match in file order wins, even when a later key is more specific
  const order = cfg({ rank_pattern: { q_proj: 2, 'layers.1.self_attn.q_proj': 16 } });
  assert.equal(loraScaleFor(order, m1).rank, 2);
  // keys are regexes
  const re = cfg({ rank_pattern: { 'layers\\.[0-3]\\.self_attn\\.(q|k)_proj': 12 } });
  assert.equal(loraScaleFor(re, 'model.layers.3.self_attn.k_proj').rank, 12);
  assert.equal(loraScaleFor(re, 'model.layers.13.self_attn.k_proj').rank, 8);
  // full path as key; rsLoRA uses alpha / sqrt(rank) with the per-module values
  const rs = cfg({ use_rslora: true, rank_pattern: { [m1]: 4 }, alpha_pattern: { [m1]: 10 } });
  assert.deepEqual(loraScaleFor(rs, m1), { rank: 4, alpha: 10, scale: 5 });
  assert.deepEqual(loraScaleFor(rs, m11), { rank: 8, alpha: 16, scale: 16 / Math.sqrt(8) });
});

test('tensor keys: module path and A/B; everything else is refused by name', () => {
  assert.deepEqual(parseLoraTensorKey('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'), { modulePath: 'model.layers.0.self_attn.q_proj', kind: 'A' });
  assert.deepEqual(parseLoraTensorKey('base_model.model.model.layers.0.mlp.down_proj.lora_B.default.weight'), { modulePath: 'model.layers.0.mlp.down_proj', kind: 'B' });
  assert.deepEqual(parseLoraTensorKey('base_model.model.lm_head.lora_B.weight'), { modulePath: 'lm_head', kind: 'B' });
  assert.deepEqual(parseLoraTensorKey('base_model.model.transformer.h.3.attn.c_attn.lora_A.weight'), { modulePath: 'transformer.h.3.attn.c_attn', kind: 'A' });
  const no = (key: string, re: RegExp): void => {
    assert.throws(() => parseLoraTensorKey(key), (e: unknown) => e instanceof AdapterConfigError && e.field === key && e.message.startsWith(`tensor '${key}': `) && re.test(e.message));
  };
  // LoRA on the token embedding, as PEFT saves it (parameters: no `.weight`) and unconverted (adapter name).
  assert.deepEqual(parseLoraTensorKey('base_model.model.model.embed_tokens.lora_embedding_A'), { modulePath: 'model.embed_tokens', kind: 'A' });
  assert.deepEqual(parseLoraTensorKey('base_model.model.model.embed_tokens.lora_embedding_B.default'), { modulePath: 'model.embed_tokens', kind: 'B' });
  assert.deepEqual(parseLoraTensorKey('base_model.model.model.embed_tokens.base_layer.weight'), { modulePath: 'model.embed_tokens', kind: 'BASE' });
  // DoRA magnitudes as PEFT saves them, and as older state dicts name them.
  for (const suffix of ['', '.weight', '.default.weight']) {
    assert.deepEqual(parseLoraTensorKey(`base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector${suffix}`),
      { modulePath: 'model.layers.0.self_attn.q_proj', kind: 'M' });
  }
  no('base_model.model.model.layers.0.self_attn.q_proj.lora_B.bias', /lora_bias=false/);
  no('base_model.model.lm_head.modules_to_save.default.weight', /not a LoRA weight/);
  no('base_model.model.model.embed_tokens.weight', /not a LoRA weight/);
  no('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight.extra', /not a LoRA weight/);
  // trainable tokens (trainable-tokens.test.ts)
  assert.deepEqual(parseLoraTensorKey('base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta'),
    { modulePath: 'model.embed_tokens', kind: 'TOKENS' });
});

function adapterDir(config: Record<string, unknown>, tensors?: Record<string, { shape: number[]; fill?: number }>): string {
  const dir = newDir();
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(config));
  if (tensors) {
    const t: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    for (const [k, v] of Object.entries(tensors)) t[k] = { dtype: 'F32', shape: v.shape, data: new Float32Array(v.shape.reduce((a, b) => a * b, 1)).fill(v.fill ?? 0.5) };
    writeSafetensors(join(dir, 'adapter_model.safetensors'), t, { format: 'pt' });
  }
  return dir;
}

test('loadAdapterDir: .bin via the restricted unpickler; safetensors wins when both exist', () => {
  const q = 'base_model.model.model.layers.0.self_attn.q_proj';
  const v = 'base_model.model.model.layers.0.self_attn.v_proj';
  const dir = adapterDir({ ...BASE, r: 4 });
  copyFileSync(join(TORCH_BIN, 'fp32.bin'), join(dir, 'adapter_model.bin'));
  const fromBin = loadAdapterDir(dir);
  assert.equal(fromBin.tensors.size, 4);
  assert.equal(fromBin.tensors.get(`${q}.lora_A.weight`)!.data[0], -0.75);
  writeSafetensors(join(dir, 'adapter_model.safetensors'), {
    [`${q}.lora_A.weight`]: { dtype: 'BF16', shape: [4, 8], data: new Float32Array(32).fill(0.25) },
    [`${q}.lora_B.weight`]: { dtype: 'F16', shape: [8, 4], data: new Float32Array(32).fill(-1) },
    [`${v}.lora_A.weight`]: { dtype: 'F32', shape: [4, 8], data: new Float32Array(32) },
    [`${v}.lora_B.weight`]: { dtype: 'F32', shape: [6, 4], data: new Float32Array(24) },
  });
  const fromSt = loadAdapterDir(dir);
  assert.equal(fromSt.tensors.get(`${q}.lora_A.weight`)!.data[0], 0.25);
  assert.equal(fromSt.tensors.get(`${q}.lora_B.weight`)!.data[31], -1);

  const evil = adapterDir({ ...BASE, r: 4 });
  copyFileSync(join(TORCH_BIN, 'malicious_os_system.bin'), join(evil, 'adapter_model.bin'));
  assert.throws(() => loadAdapterDir(evil), UnsafePickleError);
});

test('loadAdapterDir: missing, corrupt and inconsistent adapters name the file', () => {
  const empty = newDir();
  assert.throws(() => loadAdapterDir(empty), new RegExp(`${empty}: no adapter_config\\.json`));
  const badJson = newDir();
  writeFileSync(join(badJson, 'adapter_config.json'), '{"r": 8,');
  assert.throws(() => loadAdapterDir(badJson), /adapter_config\.json: cannot read adapter config/);
  const noWeights = adapterDir(BASE);
  assert.throws(() => loadAdapterDir(noWeights), /adapter weights missing: looked for adapter_model\.safetensors and adapter_model\.bin/);
  const corrupt = adapterDir(BASE);
  writeFileSync(join(corrupt, 'adapter_model.safetensors'), Buffer.from('garbage!garbage!'));
  assert.throws(() => loadAdapterDir(corrupt), /adapter_model\.safetensors: header length \d+ exceeds the file size 16/);
  const truncatedBin = adapterDir(BASE);
  copyFileSync(join(TORCH_BIN, 'truncated.bin'), join(truncatedBin, 'adapter_model.bin'));
  assert.throws(() => loadAdapterDir(truncatedBin), /adapter_model\.bin: not a PyTorch zip checkpoint/);

  const m = 'base_model.model.model.layers.0.self_attn.q_proj';
  const wrongRank = adapterDir(BASE, { [`${m}.lora_A.weight`]: { shape: [4, 16] }, [`${m}.lora_B.weight`]: { shape: [16, 4] } });
  assert.throws(() => loadAdapterDir(wrongRank), /module 'model\.layers\.0\.self_attn\.q_proj' has lora_A \[4, 16\] and lora_B \[16, 4\] but the config gives it rank 8/);
  const patterned = adapterDir({ ...BASE, rank_pattern: { q_proj: 4 } }, { [`${m}.lora_A.weight`]: { shape: [4, 16] }, [`${m}.lora_B.weight`]: { shape: [16, 4] } });
  assert.equal(loadAdapterDir(patterned).tensors.size, 2);
  const unpaired = adapterDir(BASE, { [`${m}.lora_A.weight`]: { shape: [8, 16] } });
  assert.throws(() => loadAdapterDir(unpaired), /adapter_model\.safetensors: module 'model\.layers\.0\.self_attn\.q_proj' has lora_A but no lora_B/);
  const pair = { [`${m}.lora_A.weight`]: { shape: [8, 16] }, [`${m}.lora_B.weight`]: { shape: [16, 8] } };
  const dora = adapterDir({ ...BASE, use_dora: true }, { ...pair, [`${m}.lora_magnitude_vector`]: { shape: [16] } });
  assert.equal(loadAdapterDir(dora).tensors.size, 3);
  assert.equal(loadAdapterDir(dora).config.useDora, true);
  const magNoDora = adapterDir(BASE, { ...pair, [`${m}.lora_magnitude_vector`]: { shape: [16] } });
  assert.throws(() => loadAdapterDir(magNoDora), /has a DoRA lora_magnitude_vector but the config does not set use_dora/);
  const magWrong = adapterDir({ ...BASE, use_dora: true }, { ...pair, [`${m}.lora_magnitude_vector`]: { shape: [8] } });
  assert.throws(() => loadAdapterDir(magWrong), /DoRA magnitude of \[8\] for lora_B \[16, 8\]; it needs one value per output feature \(16\)/);
  const mag2d = adapterDir({ ...BASE, use_dora: true }, { ...pair, [`${m}.lora_magnitude_vector`]: { shape: [1, 16] } });
  assert.throws(() => loadAdapterDir(mag2d), /a DoRA magnitude must be 1-D/);
  const dup = adapterDir(BASE, { [`${m}.lora_A.weight`]: { shape: [8, 16] }, [`${m}.lora_A.default.weight`]: { shape: [8, 16] }, [`${m}.lora_B.weight`]: { shape: [16, 8] } });
  assert.throws(() => loadAdapterDir(dup), /has two lora_A tensors/);
  const doraNoMag = adapterDir({ ...BASE, use_dora: true }, pair);
  assert.throws(() => loadAdapterDir(doraNoMag), /has no lora_magnitude_vector but the config sets use_dora/);
});

test('a SEQ_CLS adapter loads its LoRA pairs; its score head is left to the coordinator; a head elsewhere is refused', () => {
  const dir = join(import.meta.dirname, '../../../test/fixtures/classify/llama/sentiment');
  const a = loadAdapterDir(dir);
  assert.equal(a.config.classifierHead, true);
  assert.ok(a.tensors.size > 0 && [...a.tensors.keys()].every((k) => /lora_[AB]/.test(k)), [...a.tensors.keys()].join());
  assert.deepEqual(parseLoraTensorKey('base_model.model.score.weight'), { modulePath: 'score', kind: 'HEAD' });
  assert.deepEqual(parseLoraTensorKey('base_model.model.score.modules_to_save.default.weight'), { modulePath: 'score', kind: 'HEAD' });
  const copy = mkdtempSync(join(tmpdir(), 'weft-seqcls-'));
  cpSync(dir, copy, { recursive: true });
  const config = JSON.parse(readFileSync(join(copy, 'adapter_config.json'), 'utf8'));
  writeFileSync(join(copy, 'adapter_config.json'), JSON.stringify({ ...config, task_type: 'CAUSAL_LM', modules_to_save: null }));
  assert.throws(() => loadAdapterDir(copy), /'base_model\.model\.score\.weight' is a classification head but the config is not a task_type "SEQ_CLS"/);
});
