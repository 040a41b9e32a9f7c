// PEFT LoRA adapters: adapter_config.json → LoraConfig, per-module rank/alpha/scale exactly as PEFT computes them,
// tensor key parsing, and loading an adapter directory. Served: plain LoRA, `y = xWᵀ + s·(xAᵀ)Bᵀ` (on the token
// embedding too: h = E[t] + s·A[:, t]ᵀBᵀ), DoRA (use_dora: each output channel of that scaled by magnitude /
// ||W + s·BA||, the norm over the channel's weight row), and trainable tokens (trainable_token_indices: whole rows of
// the embedding / lm_head replaced for a few token ids; trainable-tokens.ts turns them into LoRA pairs). Anything else whose forward pass differs (LoRA bias,
// base-modifying inits, …) is refused with a message that names the field or key and says what to do; nothing is
// silently ignored (DESIGN.md §4).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile, loadTorchBin } from '../formats/index.js';

export class AdapterConfigError extends Error {
  override readonly name = 'AdapterConfigError';
  /** The config field or tensor key at fault, when there is one. */
  readonly field: string | undefined;
  constructor(message: string, field?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.field = field;
  }
}

export interface LoraConfig {
  r: number;
  loraAlpha: number;
  useRslora: boolean;
  /** Module-path patterns → rank, in file order (see loraScaleFor for the matching rule). */
  rankPattern: Record<string, number>;
  /** Module-path patterns → alpha, in file order. */
  alphaPattern: Record<string, number>;
  /** A list of module-name suffixes, or one Python regex matched against whole module paths. */
  targetModules: string[] | string;
  layersToTransform: number[] | null;
  layersPattern: string | string[] | null;
  fanInFanOut: boolean;
  /** DoRA: every targeted module has a lora_magnitude_vector (PEFT `use_dora`). */
  useDora: boolean;
  /** trainable_token_indices: token ids of the input embedding (a list), or per module name (an object). */
  trainableTokens: number[] | Record<string, number[]> | null;
  /** target_parameters: MoE experts' stacked gate_up_proj / down_proj (shard/models/expert-lora.ts); empty: none. */
  targetParameters: string[];
  /** A task_type SEQ_CLS adapter whose modules_to_save is its classification head (HEAD tensors). */
  classifierHead: boolean;
  baseModelNameOrPath: string | null;
  revision: string | null;
}

type Json = Record<string, unknown>;

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const absent = (v: unknown): boolean => v === undefined || v === null;

// init_lora_weights values that only choose how A and B start (the saved tensors are the truth).
const HARMLESS_INITS = new Set(['gaussian', 'orthogonal', 'eva', 'mica']);
// LoRA variants whose forward pass differs from plain LoRA; refused when their config is set.
const VARIANT_CONFIGS: ReadonlyArray<[string, string]> = [
  ['use_bdlora', 'BD-LoRA (block-diagonal factors)'],
  ['megatron_config', 'Megatron-parallel LoRA layers'],
  ['arrow_config', 'Arrow routing'],
  ['kasa_config', 'KaSA (modifies the base weight and adds lora_diag)'],
  ['monteclora_config', 'MonteCLoRA'],
  ['velora_config', 'VeLoRA'],
  ['alora_invocation_tokens', 'activated LoRA (aLoRA)'],
  ['layer_replication', 'layer replication (changes the base model\'s layer stack)'],
];

export function parseLoraConfig(json: unknown, where: string): LoraConfig {
  if (!isObj(json)) throw new AdapterConfigError(`${where}: adapter config must be a JSON object`);
  const fail = (field: string, what: string): never => {
    throw new AdapterConfigError(`${where}: field "${field}" ${what}`, field);
  };
  const bool = (field: string, dflt: boolean): boolean => {
    const v = json[field];
    if (absent(v)) return dflt;
    return typeof v === 'boolean' ? v : fail(field, `must be true or false, got ${JSON.stringify(v)}`);
  };
  const optString = (field: string): string | null => {
    const v = json[field];
    if (absent(v)) return null;
    return typeof v === 'string' ? v : fail(field, `must be a string or null, got ${JSON.stringify(v)}`);
  };

  const peftType = json.peft_type;
  if (peftType !== 'LORA') {
    fail('peft_type', `is ${JSON.stringify(peftType ?? null)}: weft serves LoRA adapters only (peft_type "LORA"); ` +
      `other PEFT methods are not supported`);
  }
  const r = json.r;
  if (!isInt(r) || r <= 0) fail('r', `must be a positive integer, got ${JSON.stringify(r ?? null)}; set it to the ` +
    `rank the adapter was trained with`);
  const alpha = absent(json.lora_alpha) ? 8 : json.lora_alpha; // PEFT's LoraConfig default
  if (typeof alpha !== 'number' || !Number.isFinite(alpha)) fail('lora_alpha', `must be a number, got ${JSON.stringify(alpha)}`);

  if (bool('lora_bias', false)) fail('lora_bias', 'is true: LoRA B bias terms are not supported; retrain with lora_bias=false');
  if (bool('use_qalora', false)) {
    fail('use_qalora', 'is true: QA-LoRA (pooled inputs for GPTQ models) is not supported; retrain with use_qalora=false');
  }
  const bias = json.bias ?? 'none';
  if (bias !== 'none') fail('bias', `is ${JSON.stringify(bias)}: adapters that train base-model biases are not ` +
    `supported; retrain with bias="none" or merge the adapter into the base model`);
  const mts = json.modules_to_save;
  // A sequence-classification adapter (task_type SEQ_CLS) saves its trained head through modules_to_save (PEFT adds
  // 'classifier' and 'score'): the coordinator reads it for /classify (classifier-head.ts); the shards drop it.
  const classifierHead = json.task_type === 'SEQ_CLS' && Array.isArray(mts) && mts.length > 0 && mts.every((m) => CLASSIFIER_MODULES.includes(m as string));
  if (!absent(mts) && !(Array.isArray(mts) && mts.length === 0) && !classifierHead) {
    fail('modules_to_save', `is ${JSON.stringify(mts)}: adapters that replace whole modules are not supported (except a ` +
      `task_type "SEQ_CLS" adapter's ${CLASSIFIER_MODULES.join('/')} head); merge those modules into the base model and save the adapter without modules_to_save`);
  }
  // target_parameters: LoRA on raw parameters; weft serves it on MoE experts' stacked gate_up_proj / down_proj
  // (transformers 5's Mixtral, Qwen3-MoE), whose pairs shard/models/expert-lora.ts places.
  const tp = json.target_parameters;
  if (!absent(tp) && !(Array.isArray(tp) && tp.every((t) => typeof t === 'string' && /^(?:.*\.)?experts\.(?:gate_up_proj|down_proj)$|^(?:gate_up_proj|down_proj)$/.test(t)))) {
    fail('target_parameters', `is ${JSON.stringify(tp)}: LoRA on raw parameters is supported on MoE experts only ` +
      `('mlp.experts.gate_up_proj', 'mlp.experts.down_proj', or PEFT's short names 'gate_up_proj', 'down_proj'); target nn.Linear modules with target_modules instead`);
  }
  for (const [field, what] of VARIANT_CONFIGS) {
    if (!absent(json[field])) fail(field, `is set: ${what} is not supported; use a plain LoRA adapter`);
  }
  checkInit(json.init_lora_weights, fail);

  const layers = json.layers_to_transform;
  let layersToTransform: number[] | null = null;
  if (isInt(layers)) layersToTransform = [layers];
  else if (Array.isArray(layers) && layers.every(isInt)) layersToTransform = [...layers];
  else if (!absent(layers)) fail('layers_to_transform', `must be an integer, a list of integers or null, got ${JSON.stringify(layers)}`);

  const lp = json.layers_pattern;
  let layersPattern: string | string[] | null = null;
  if (typeof lp === 'string' || (Array.isArray(lp) && lp.every((x) => typeof x === 'string'))) layersPattern = lp as string | string[];
  else if (!absent(lp)) fail('layers_pattern', `must be a string, a list of strings or null, got ${JSON.stringify(lp)}`);

  const tm = json.target_modules;
  let targetModules: string[] | string = [];
  if (typeof tm === 'string' || (Array.isArray(tm) && tm.every((x) => typeof x === 'string'))) targetModules = tm as string | string[];
  else if (!absent(tm)) fail('target_modules', `must be a list of module names or a regex string, got ${JSON.stringify(tm)}`);

  const cfg: LoraConfig = {
    r: r as number,
    loraAlpha: alpha as number,
    useRslora: bool('use_rslora', false),
    rankPattern: patternMap(json, 'rank_pattern', (v) => isInt(v) && v > 0, 'a positive integer rank', fail),
    alphaPattern: patternMap(json, 'alpha_pattern', (v) => typeof v === 'number' && Number.isFinite(v), 'a number', fail),
    targetModules,
    classifierHead,
    layersToTransform,
    layersPattern,
    fanInFanOut: bool('fan_in_fan_out', false),
    useDora: bool('use_dora', false),
    trainableTokens: trainableTokenIndices(json.trainable_token_indices, fail),
    targetParameters: Array.isArray(tp) ? [...(tp as string[])] : [],
    baseModelNameOrPath: optString('base_model_name_or_path'),
    revision: optString('revision'),
  };
  return cfg;
}

function trainableTokenIndices(v: unknown, fail: (field: string, what: string) => never): number[] | Record<string, number[]> | null {
  if (absent(v)) return null;
  const ids = (list: unknown, what: string): number[] => {
    if (!Array.isArray(list) || list.length === 0 || !list.every((x) => isInt(x) && x >= 0)) {
      return fail('trainable_token_indices', `${what} must be a non-empty list of token ids, got ${JSON.stringify(list)}`);
    }
    if (new Set(list).size !== list.length) return fail('trainable_token_indices', `${what} lists a token id twice`);
    return [...(list as number[])];
  };
  if (Array.isArray(v)) return ids(v, 'the list');
  if (!isObj(v) || Object.keys(v).length === 0) {
    return fail('trainable_token_indices', `must be a list of token ids or an object of module name → token ids, got ${JSON.stringify(v)}`);
  }
  return Object.fromEntries(Object.entries(v).map(([k, list]) => [k, ids(list, `entry ${JSON.stringify(k)}`)]));
}

function checkInit(init: unknown, fail: (field: string, what: string) => never): void {
  if (absent(init) || typeof init === 'boolean') return;
  if (typeof init !== 'string') fail('init_lora_weights', `must be a boolean or a string, got ${JSON.stringify(init)}`);
  const v = (init as string).toLowerCase();
  if (HARMLESS_INITS.has(v)) return;
  if (/^(pissa|olora|corda|lora_ga)/.test(v)) {
    fail('init_lora_weights', `is "${init}": this initialization subtracts the initial adapter from the base ` +
      `weights, so the adapter only works on a modified base model; re-save it with PEFT's save_pretrained(..., ` +
      `path_initial_model_for_weight_conversion=...) to convert it to a plain LoRA`);
  }
  if (v === 'loftq') {
    fail('init_lora_weights', 'is "loftq": LoftQ adapters belong to a re-quantized base model; merge the adapter into that model instead');
  }
  fail('init_lora_weights', `is "${init}", an initialization weft does not know; only true, false, "gaussian", ` +
    `"orthogonal", "eva" and "mica" are accepted`);
}

function patternMap(
  json: Json, field: string, ok: (v: unknown) => boolean, what: string, fail: (field: string, what: string) => never,
): Record<string, number> {
  const raw = json[field];
  if (absent(raw)) return {};
  if (!isObj(raw)) return fail(field, `must be an object of module pattern → ${what}`);
  const out: Record<string, number> = {};
  for (const [key, v] of Object.entries(raw)) {
    if (!ok(v)) fail(field, `entry ${JSON.stringify(key)} must be ${what}, got ${JSON.stringify(v)}`);
    try {
      patternRegExp(key);
    } catch (e) {
      fail(field, `key ${JSON.stringify(key)} is not a valid regular expression: ${(e as Error).message}`);
    }
    out[key] = v as number;
  }
  return out;
}

const patternCache = new Map<string, RegExp>();
/** PEFT (utils/other.py `get_pattern_key`): `re.match(rf"(.*\.)?({key})$", module_path)`. */
function patternRegExp(key: string): RegExp {
  let re = patternCache.get(key);
  if (!re) {
    re = new RegExp(`^(?:.*\\.)?(?:${key})$`);
    patternCache.set(key, re);
  }
  return re;
}

/**
 * The first pattern key (in file order) that matches the module path, as PEFT's `get_pattern_key`: the key is a
 * regex that must match a whole trailing run of dot-separated segments — `q_proj` matches
 * `model.layers.1.self_attn.q_proj` but not `…self_attn.kq_proj`; `layers.1.self_attn.q_proj` does not match
 * `model.layers.11.self_attn.q_proj`. With no match PEFT looks the module path up verbatim. JSON object order is
 * kept except for integer-like keys (JS orders those first), which are not module paths in practice.
 */
function lookupPattern(patterns: Record<string, number>, modulePath: string): number | undefined {
  for (const [key, v] of Object.entries(patterns)) if (patternRegExp(key).test(modulePath)) return v;
  return Object.hasOwn(patterns, modulePath) ? patterns[modulePath] : undefined;
}

/** A target_parameters pair on a MoE layer's stacked experts: `….experts`, or a nested wrapper `….experts.base_layer`. */
export function isStackedExpertsPath(path: string): boolean {
  return /\.experts(?:\.base_layer)*$/.test(path);
}

/** Rank, alpha and scale of one module, exactly as PEFT sets them (`LoraModel._create_and_replace`, `update_layer`). */
export function loraScaleFor(cfg: LoraConfig, modulePath: string): { rank: number; alpha: number; scale: number } {
  const rank = lookupPattern(cfg.rankPattern, modulePath) ?? cfg.r;
  const alpha = lookupPattern(cfg.alphaPattern, modulePath) ?? cfg.loraAlpha;
  return { rank, alpha, scale: cfg.useRslora ? alpha / Math.sqrt(rank) : alpha / rank };
}

const LORA_KEY = /^(?:base_model\.model\.)?(.+?)\.lora_([AB])(?:\.([^.]+))?\.weight$/;
// DoRA's magnitude as PEFT saves it (`….lora_magnitude_vector`), or as older/unconverted state dicts name it
// (`….lora_magnitude_vector.weight`, `….lora_magnitude_vector.<adapter name>.weight`).
const MAGNITUDE_KEY = /^(?:base_model\.model\.)?(.+?)\.lora_magnitude_vector(?:\.[^.]+)?(?:\.weight)?$/;

/**
 * A: lora_A (or lora_embedding_A), B: lora_B (or lora_embedding_B), M: DoRA's lora_magnitude_vector, BASE: a copy of
 * a targeted lm_head's or token embedding's own weight, which PEFT saves by default when one is a target
 * (`save_embedding_layers="auto"`); base-layer-copy.ts checks it against the model and drops it.
 */
export type LoraTensorKind = 'A' | 'B' | 'M' | 'BASE' | 'TOKENS' | 'HEAD';
/** The module names PEFT saves a sequence classifier's head under (modules_to_save of task_type SEQ_CLS). */
export const CLASSIFIER_MODULES: readonly string[] = ['classifier', 'score'];
// HEAD: a classification head saved through modules_to_save (`score.weight`, or unconverted `score.modules_to_save.default.weight`).
const HEAD_KEY = /^(?:base_model\.model\.)?(score|classifier)(?:\.modules_to_save\.[^.]+)?\.(weight|bias)$/;

/** Which part of a sequence classifier's head a tensor key holds (coordinator/adapters/classifier-head.ts), or null. */
export function classifierHeadPart(key: string): 'weight' | 'bias' | null {
  return (HEAD_KEY.exec(key)?.[2] as 'weight' | 'bias' | undefined) ?? null;
}
// trainable_token_indices: the new rows of those tokens (`<module path>.token_adapter.trainable_tokens_delta` [k, dim];
// "delta" is PEFT's name, the values are whole rows).
const TOKENS_KEY = /^(?:base_model\.model\.)?(.+?)\.token_adapter\.trainable_tokens_delta(?:\.[^.]+)?$/;
const BASE_COPY_KEY = /^(?:base_model\.model\.)?((?:.+\.)?(?:lm_head|embed_tokens|wte))\.base_layer\.weight$/;
// LoRA on an embedding as PEFT saves it: `<module path>.lora_embedding_A` [r, vocab] / `_B` [hidden, r] (parameters,
// so no `.weight`; an adapter-name segment in unconverted state dicts).
const EMBEDDING_KEY = /^(?:base_model\.model\.)?(.+?)\.lora_embedding_([AB])(?:\.[^.]+)?$/;

/**
 * `base_model.model.<module path>.lora_A[.<adapter name>].weight` (or lora_B, DoRA's
 * `<module path>.lora_magnitude_vector`, or an lm_head's `lm_head.base_layer.weight` copy) → module path and kind.
 */
export function parseLoraTensorKey(key: string): { modulePath: string; kind: LoraTensorKind } {
  const refuse = (what: string): never => {
    throw new AdapterConfigError(`tensor '${key}': ${what}`, key);
  };
  const emb = EMBEDDING_KEY.exec(key);
  if (emb) return { modulePath: emb[1]!, kind: emb[2] as 'A' | 'B' };
  const tokens = TOKENS_KEY.exec(key);
  if (tokens) return { modulePath: tokens[1]!, kind: 'TOKENS' };
  const copy = BASE_COPY_KEY.exec(key);
  if (copy) return { modulePath: copy[1]!, kind: 'BASE' };
  const head = HEAD_KEY.exec(key);
  if (head) return { modulePath: head[1]!, kind: 'HEAD' };
  const mag = MAGNITUDE_KEY.exec(key);
  if (mag && !/(^|\.)lora_/.test(mag[1]!)) return { modulePath: mag[1]!, kind: 'M' };
  if (/(^|\.)lora_[AB](\.[^.]+)?\.bias$/.test(key)) refuse('LoRA bias terms are not supported; retrain with lora_bias=false');
  const m = LORA_KEY.exec(key);
  if (!m || /(^|\.)lora_/.test(m[1]!)) {
    return refuse('not a LoRA weight (expected base_model.model.<module>.lora_A.weight or .lora_B.weight); ' +
      'adapters may hold only LoRA A/B matrices');
  }
  return { modulePath: m[1]!, kind: m[2] as 'A' | 'B' };
}

export interface LoadedAdapter {
  config: LoraConfig;
  /** Tensor key as stored → shape and float32 data. */
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
}

/** Reads adapter_config.json and adapter_model.safetensors (preferred) or adapter_model.bin, and checks A/B pairs. */
export function loadAdapterDir(dir: string): LoadedAdapter {
  const cfgPath = join(dir, 'adapter_config.json');
  if (!existsSync(cfgPath)) throw new AdapterConfigError(`${dir}: no adapter_config.json; a PEFT adapter directory ` +
    `needs adapter_config.json and adapter_model.safetensors`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(cfgPath, 'utf8'));
  } catch (e) {
    throw new AdapterConfigError(`${cfgPath}: cannot read adapter config: ${(e as Error).message}`, undefined, { cause: e });
  }
  const config = parseLoraConfig(raw, cfgPath);
  const stPath = join(dir, 'adapter_model.safetensors');
  const binPath = join(dir, 'adapter_model.bin');
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  let file: string;
  if (existsSync(stPath)) {
    file = stPath;
    const st = SafetensorsFile.open(stPath);
    try {
      for (const name of st.names()) tensors.set(name, { shape: st.info(name).shape, data: st.readF32(name) });
    } finally {
      st.close();
    }
  } else if (existsSync(binPath)) {
    file = binPath;
    for (const [name, t] of loadTorchBin(binPath)) tensors.set(name, { shape: t.shape, data: t.data });
  } else {
    throw new AdapterConfigError(`${dir}: adapter weights missing: looked for adapter_model.safetensors and adapter_model.bin`);
  }
  checkPairs(config, tensors, file);
  for (const key of [...tensors.keys()]) if (classifierHeadPart(key)) tensors.delete(key);  // the coordinator's
  return { config, tensors };
}

function checkPairs(config: LoraConfig, tensors: Map<string, { shape: number[] }>, file: string): void {
  if (tensors.size === 0) throw new AdapterConfigError(`${file}: the adapter holds no tensors`);
  const modules = new Map<string, { A?: number[]; B?: number[]; M?: number[]; BASE?: number[] }>();
  let tokenRows = 0;
  for (const [key, t] of tensors) {
    let parsed: { modulePath: string; kind: LoraTensorKind };
    try {
      parsed = parseLoraTensorKey(key);
    } catch (e) {
      throw new AdapterConfigError(`${file}: ${(e as Error).message}`, key, { cause: e });
    }
    if (parsed.kind === 'HEAD') {
      if (!config.classifierHead) {
        throw new AdapterConfigError(`${file}: '${key}' is a classification head but the config is not a task_type "SEQ_CLS" ` +
          `adapter saving it (modules_to_save ${CLASSIFIER_MODULES.join('/')})`, key);
      }
      continue;
    }
    if (parsed.kind === 'TOKENS') {  // checked against the config's indices where they become LoRA pairs
      if (t.shape.length !== 2) throw new AdapterConfigError(`${file}: trainable tokens '${key}' must be 2-D [tokens, dim]`, key);
      if (!config.trainableTokens) {
        throw new AdapterConfigError(`${file}: '${key}' holds trainable tokens but the config has no trainable_token_indices; ` +
          'the config does not belong to these weights', key);
      }
      tokenRows++;
      continue;
    }
    const m = modules.get(parsed.modulePath) ?? {};
    if (m[parsed.kind]) throw new AdapterConfigError(`${file}: module '${parsed.modulePath}' has two ` +
      `lora_${parsed.kind} tensors (one is '${key}')`, key);
    if (parsed.kind === 'BASE') {
      const m = modules.get(parsed.modulePath) ?? {};
      m.BASE = t.shape;
      modules.set(parsed.modulePath, m);
      continue;
    }
    if (parsed.kind === 'M' ? t.shape.length !== 1 : t.shape.length !== 2) {
      throw new AdapterConfigError(`${file}: tensor '${key}' has shape [${t.shape.join(', ')}]; ` +
        (parsed.kind === 'M' ? 'a DoRA magnitude must be 1-D [out_features]' : 'LoRA A/B must be 2-D'), key);
    }
    m[parsed.kind] = t.shape;
    modules.set(parsed.modulePath, m);
  }
  if (config.trainableTokens && tokenRows === 0) {
    throw new AdapterConfigError(`${file}: the config sets trainable_token_indices but no '….token_adapter.trainable_tokens_delta' ` +
      'tensor was saved', 'trainable_token_indices');
  }
  for (const [path, { A, B, M, BASE }] of modules) {
    if (BASE && !A && !B && !M) {
      throw new AdapterConfigError(`${file}: '${path}.base_layer.weight' is saved but '${path}' has no LoRA pair; ` +
        'adapters may hold only LoRA tensors', path);
    }
    if (!A || !B) throw new AdapterConfigError(`${file}: module '${path}' has ${A ? 'lora_A' : B ? 'lora_B' : 'a DoRA magnitude'} ` +
      `but no ${A ? 'lora_B' : 'lora_A'}`, path);
    if (config.useDora !== (M !== undefined)) {
      throw new AdapterConfigError(config.useDora
        ? `${file}: module '${path}' has no lora_magnitude_vector but the config sets use_dora; a DoRA adapter ` +
          `needs one per module (save it with PEFT's save_pretrained)`
        : `${file}: module '${path}' has a DoRA lora_magnitude_vector but the config does not set use_dora; ` +
          `the config does not belong to these weights`, path);
    }
    if (M && M[0] !== B[0]) {
      throw new AdapterConfigError(`${file}: module '${path}' has a DoRA magnitude of [${M.join(', ')}] for lora_B ` +
        `[${B.join(', ')}]; it needs one value per output feature (${B[0]})`, path);
    }
    if (isStackedExpertsPath(path) && config.targetParameters.length > 0) {
      // One pair for all experts of gate_up_proj or down_proj, which only the model's shapes tell apart: its rank
      // (r per expert, r·E rows) is checked where the adapter meets the model (shard/models/expert-lora.ts).
      if (A[0] !== B[1]) throw new AdapterConfigError(`${file}: module '${path}' has lora_A [${A.join(', ')}] and lora_B [${B.join(', ')}], not a LoRA pair`, path);
      continue;
    }
    const { rank } = loraScaleFor(config, path);
    if (A[0] !== rank || B[1] !== rank) {
      throw new AdapterConfigError(`${file}: module '${path}' has lora_A [${A.join(', ')}] and lora_B ` +
        `[${B.join(', ')}] but the config gives it rank ${rank} (r / rank_pattern); the config does not belong to these weights`, path);
    }
  }
}
