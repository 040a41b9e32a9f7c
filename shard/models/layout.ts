// How each architecture's Hugging Face tensors map onto the executor's fused modules.
// A fused module's output rows are sub-blocks (q|k|v, gate|up); each sub-block is sliced by the
// partition and placed at a local offset. The same description drives base weights and LoRA B rows.
import type { Partition, Range } from './partition.js';
import { layerIsMoe, type MlaSpec, type ModelSpec } from './spec.js';
import { rangeLen } from './partition.js';
import { NO_BASE_MODEL_LAYOUT } from './config-fields.js';

/** q_b / kv_b: latent attention's second projections (spec.mla: q_b_proj, kv_b_proj). */
export type ExecModule = 'qkv' | 'o' | 'up' | 'down' | 'q_b' | 'kv_b' | 'lmHead' | 'embed';

/** One sub-block of a fused module's output rows. */
export interface SubBlock {
  role: string;        // q | k | v | gate | up | fc | lm_head; latent attention: q_a | kv_a | k_rope | kv
  fullOffset: number;  // first row of this sub-block in the full (unsplit) fused output
  fullLen: number;
  local: Range;        // rows of this sub-block that this rank keeps (relative to the sub-block)
  localOffset: number; // where they land in this rank's fused output
}

/** The up projection is [gate | up] (SwiGLU, GeGLU, gpt-oss's clamped SwiGLU). */
export function isGatedMlp(spec: Pick<ModelSpec, 'mlp'>): boolean {
  return spec.mlp === 'gated_silu' || spec.mlp === 'gated_gelu_tanh' || spec.mlp === 'clamped_swiglu';
}

export function subBlocks(spec: ModelSpec, part: Partition, module: 'qkv' | 'up' | 'q_b' | 'kv_b' | 'lmHead'): SubBlock[] {
  const hd = spec.headDim;
  if (spec.mla && (module === 'qkv' || module === 'q_b' || module === 'kv_b')) return mlaSubBlocks(spec, spec.mla, part, module);
  if (module === 'qkv') {
    const q = spec.heads * hd, kv = spec.kvHeads * hd;
    const qLocal = { start: part.heads.start * hd, end: part.heads.end * hd };
    const kvLocal = { start: part.kvHeads.start * hd, end: part.kvHeads.end * hd };
    return [
      { role: 'q', fullOffset: 0, fullLen: q, local: qLocal, localOffset: 0 },
      { role: 'k', fullOffset: q, fullLen: kv, local: kvLocal, localOffset: rangeLen(qLocal) },
      { role: 'v', fullOffset: q + kv, fullLen: kv, local: kvLocal, localOffset: rangeLen(qLocal) + rangeLen(kvLocal) },
    ];
  }
  if (module === 'up') {
    const I = spec.intermediate, il = rangeLen(part.intermediate);
    if (!isGatedMlp(spec)) return [{ role: 'fc', fullOffset: 0, fullLen: I, local: part.intermediate, localOffset: 0 }];
    return [
      { role: 'gate', fullOffset: 0, fullLen: I, local: part.intermediate, localOffset: 0 },
      { role: 'up', fullOffset: I, fullLen: I, local: part.intermediate, localOffset: il },
    ];
  }
  return [{ role: 'lm_head', fullOffset: 0, fullLen: spec.vocab, local: part.vocab, localOffset: 0 }];
}

/**
 * Latent attention's modules: qkv is the first projection, replicated (every rank computes the whole latent) except
 * q without a q rank, which is split by heads like q_b (each head's nope+rope rows) and kv_b (each head's nope+v rows).
 */
function mlaSubBlocks(spec: ModelSpec, mla: MlaSpec, part: Partition, module: 'qkv' | 'q_b' | 'kv_b'): SubBlock[] {
  const whole = (n: number): Range => ({ start: 0, end: n });
  const byHead = (perHead: number): Range => ({ start: part.heads.start * perHead, end: part.heads.end * perHead });
  const q = spec.heads * spec.headDim, qLocal = byHead(spec.headDim);
  if (module === 'q_b') return [{ role: 'q', fullOffset: 0, fullLen: q, local: qLocal, localOffset: 0 }];
  if (module === 'kv_b') {
    const per = mla.nopeDim + mla.vDim;
    return [{ role: 'kv', fullOffset: 0, fullLen: spec.heads * per, local: byHead(per), localOffset: 0 }];
  }
  const first = mla.qRank > 0
    ? { role: 'q_a', fullOffset: 0, fullLen: mla.qRank, local: whole(mla.qRank), localOffset: 0 }
    : { role: 'q', fullOffset: 0, fullLen: q, local: qLocal, localOffset: 0 };
  const at = rangeLen(first.local);
  return [
    first,
    { role: 'kv_a', fullOffset: first.fullLen, fullLen: mla.kvRank, local: whole(mla.kvRank), localOffset: at },
    { role: 'k_rope', fullOffset: first.fullLen + mla.kvRank, fullLen: mla.ropeDim, local: whole(mla.ropeDim), localOffset: at + mla.kvRank },
  ];
}

/** Expert e's intermediate width: the shared expert's own (after the routed ones), or the routed experts'. */
export function expertWidth(spec: Pick<ModelSpec, 'moe'>, e: number): number {
  const moe = spec.moe!;
  return e === moe.experts && moe.sharedIntermediate ? moe.sharedIntermediate : moe.intermediate;
}

/** The rows of expert e's intermediate this rank holds. */
export function expertRows(spec: Pick<ModelSpec, 'moe'>, part: Partition, e: number): Range {
  return e === spec.moe!.experts ? part.sharedIntermediate : part.expertIntermediate;
}

/** A MoE expert's up projection: [gate | up] rows of the expert's intermediate, sliced like a dense MLP's. */
export function expertSubBlocks(spec: ModelSpec, part: Partition, expert: number): SubBlock[] {
  const I = expertWidth(spec, expert), rows = expertRows(spec, part, expert), il = rangeLen(rows);
  return [
    { role: 'gate', fullOffset: 0, fullLen: I, local: rows, localOffset: 0 },
    { role: 'up', fullOffset: I, fullLen: I, local: rows, localOffset: il },
  ];
}

/** Columns (input features) a row-parallel module keeps on this rank (`expert`: that MoE expert's down). */
export function rowParallelInput(spec: ModelSpec, part: Partition, module: 'o' | 'down', expert?: number): Range {
  if (module === 'o') {  // each head's attention output: its value width (latent attention's v_head_dim)
    const per = spec.mla ? spec.mla.vDim : spec.headDim;
    return { start: part.heads.start * per, end: part.heads.end * per };
  }
  return expert === undefined ? part.intermediate : expertRows(spec, part, expert);
}

/** Where a Hugging Face tensor (or a PEFT target module) sits in the executor. */
export interface ModuleRef {
  layer: number;          // -1 for lm_head and the token embedding
  module: ExecModule;
  /** Sub-block roles this HF module provides, in row order (fused HF modules provide several). */
  roles: string[];
  /** GPT-2 Conv1D stores weights [in, out]. */
  conv1d: boolean;
  /** A MoE expert's module (module up or down; roles gate / up / []). */
  expert?: number;
  /**
   * GPT-NeoX's query_key_value: its rows are per head, [q | k | v] of head 0, then of head 1, … (interleavedHeadRows
   * picks a role's rows of some heads), not q of all heads then k then v.
   */
  headInterleaved?: boolean;
  /**
   * PEFT's target_parameters on a MoE layer's stacked experts (`mlp.experts`, nested wrappers `….base_layer`): one
   * pair for all experts' gate_up_proj or down_proj, told apart by its shapes (load-adapter.ts).
   */
  stackedExperts?: boolean;
  /** A hybrid model's Mamba mixer: in_proj (module qkv) or out_proj (module o) of a Mamba layer (mamba-weights.ts). */
  mamba?: 'in_proj' | 'out_proj';
}

// Per-expert module names of the MoE checkpoints as published (and of adapters trained on transformers 4, whose
// experts were nn.Linear modules): Mixtral's w1 (gate), w3 (up), w2 (down); Qwen3-MoE's gate/up/down_proj.
const EXPERT_MODULES: Record<string, { module: ExecModule; roles: string[] }> = {
  w1: { module: 'up', roles: ['gate'] }, w3: { module: 'up', roles: ['up'] }, w2: { module: 'down', roles: [] },
  gate_proj: { module: 'up', roles: ['gate'] }, up_proj: { module: 'up', roles: ['up'] }, down_proj: { module: 'down', roles: [] },
};

/**
 * A MoE layer's MLP path (`mlp.experts.3.gate_proj`, `block_sparse_moe.experts.0.w1`, `mlp.experts[.base_layer]`,
 * GLM-4.5's `mlp.shared_experts.gate_proj`: the expert after the routed ones).
 */
function resolveExpertModule(spec: ModelSpec, layer: number, rest: string): ModuleRef | null {
  // w1, w3, w2 (as MiniMax-M2 and PhiMoE)
  const mixtralNames = spec.architecture === 'mixtral' || spec.architecture === 'minimax_m2' || spec.architecture === 'phimoe';
  const block = mixtralNames ? '(?:block_sparse_moe|mlp)' : spec.architecture.startsWith('granitemoe') ? 'block_sparse_moe' : 'mlp';
  const one = new RegExp(`^${block}\\.experts\\.(\\d+)\\.(\\w+)$`).exec(rest);
  if (one) {
    const entry = EXPERT_MODULES[one[2]!];
    const expert = Number(one[1]);
    const names = mixtralNames ? ['w1', 'w2', 'w3'] : ['gate_proj', 'up_proj', 'down_proj'];
    if (!entry || !names.includes(one[2]!) || expert >= spec.moe!.experts) return null;
    return { layer, module: entry.module, roles: entry.roles, conv1d: false, expert };
  }
  // GLM-4.5's and DeepSeek's shared experts, Qwen2-MoE's shared expert, Hunyuan MoE's shared MLP: expert E
  const shared = /^mlp\.(?:shared_experts?|shared_mlp)\.(gate_proj|up_proj|down_proj)$/.exec(rest);
  if (shared && spec.moe!.sharedExpert) {
    const entry = EXPERT_MODULES[shared[1]!]!;
    return { layer, module: entry.module, roles: entry.roles, conv1d: false, expert: spec.moe!.experts };
  }
  // Granite MoE's shared MLP: input_linear is [gate | up] (one pair for both), output_linear the down projection
  const graniteShared = /^shared_mlp\.(input_linear|output_linear)$/.exec(rest);
  if (graniteShared && spec.moe!.sharedExpert) {
    const up = graniteShared[1] === 'input_linear';
    return { layer, module: up ? 'up' : 'down', roles: up ? ['gate', 'up'] : [], conv1d: false, expert: spec.moe!.experts };
  }
  if (new RegExp(`^${block}\\.experts(?:\\.base_layer)*$`).test(rest)) {
    return { layer, module: 'up', roles: [], conv1d: false, stackedExperts: true };
  }
  return null;
}

const LLAMA_MODULES: Record<string, { module: ExecModule; roles: string[] }> = {
  'self_attn.q_proj': { module: 'qkv', roles: ['q'] },
  'self_attn.k_proj': { module: 'qkv', roles: ['k'] },
  'self_attn.v_proj': { module: 'qkv', roles: ['v'] },
  'self_attn.qkv_proj': { module: 'qkv', roles: ['q', 'k', 'v'] },
  'self_attn.o_proj': { module: 'o', roles: [] },
  'mlp.gate_proj': { module: 'up', roles: ['gate'] },
  'mlp.up_proj': { module: 'up', roles: ['up'] },
  'mlp.gate_up_proj': { module: 'up', roles: ['gate', 'up'] },
  'mlp.down_proj': { module: 'down', roles: [] },
};
const STARCODER2_MODULES: Record<string, { module: ExecModule; roles: string[] }> = {
  ...Object.fromEntries(Object.entries(LLAMA_MODULES).filter(([k]) => k.startsWith('self_attn.'))),
  'mlp.c_fc': { module: 'up', roles: ['fc'] },
  'mlp.c_proj': { module: 'down', roles: [] },
};
// Arcee, Nemotron, Jais 2: a non-gated up → relu² → down (Apertus: → xIELU →)
const RELU2_MODULES: Record<string, { module: ExecModule; roles: string[] }> = {
  ...Object.fromEntries(Object.entries(LLAMA_MODULES).filter(([k]) => k.startsWith('self_attn.'))),
  'mlp.up_proj': { module: 'up', roles: ['fc'] },
  'mlp.down_proj': { module: 'down', roles: [] },
};
const PHI_MODULES: Record<string, { module: ExecModule; roles: string[] }> = {
  ...Object.fromEntries(Object.entries(LLAMA_MODULES).filter(([k]) => /^self_attn\.[qkv]_proj$/.test(k))),
  'self_attn.dense': { module: 'o', roles: [] },
  'mlp.fc1': { module: 'up', roles: ['fc'] },
  'mlp.fc2': { module: 'down', roles: [] },
};
const DEEPSEEK_MODULES: Record<string, { module: ExecModule; roles: string[] }> = {
  'self_attn.q_proj': { module: 'qkv', roles: ['q'] },
  'self_attn.q_a_proj': { module: 'qkv', roles: ['q_a'] },
  'self_attn.kv_a_proj_with_mqa': { module: 'qkv', roles: ['kv_a', 'k_rope'] },
  'self_attn.q_b_proj': { module: 'q_b', roles: ['q'] },
  'self_attn.kv_b_proj': { module: 'kv_b', roles: ['kv'] },
  'self_attn.o_proj': { module: 'o', roles: [] },
  'mlp.gate_proj': { module: 'up', roles: ['gate'] },
  'mlp.up_proj': { module: 'up', roles: ['up'] },
  'mlp.down_proj': { module: 'down', roles: [] },
};
const GPTJ_MODULES: Record<string, { module: ExecModule; roles: string[] }> = {
  'attn.q_proj': { module: 'qkv', roles: ['q'] },
  'attn.k_proj': { module: 'qkv', roles: ['k'] },
  'attn.v_proj': { module: 'qkv', roles: ['v'] },
  'attn.out_proj': { module: 'o', roles: [] },
  'mlp.fc_in': { module: 'up', roles: ['fc'] },
  'mlp.fc_out': { module: 'down', roles: [] },
};
const NEOX_MODULES: Record<string, { module: ExecModule; roles: string[] }> = {
  'attention.query_key_value': { module: 'qkv', roles: ['q', 'k', 'v'] },
  'attention.dense': { module: 'o', roles: [] },
  'mlp.dense_h_to_4h': { module: 'up', roles: ['fc'] },
  'mlp.dense_4h_to_h': { module: 'down', roles: [] },
};
// DBRX (transformer.blocks.<i>.…): its fused Wqkv and out_proj; the experts' fused tensors take no LoRA (load-adapter.ts)
const DBRX_MODULES: Record<string, { module: ExecModule; roles: string[] }> = {
  'norm_attn_norm.attn.Wqkv': { module: 'qkv', roles: ['q', 'k', 'v'] },
  'norm_attn_norm.attn.out_proj': { module: 'o', roles: [] },
};
const GPT2_MODULES: Record<string, { module: ExecModule; roles: string[] }> = {
  'attn.c_attn': { module: 'qkv', roles: ['q', 'k', 'v'] },
  'attn.c_proj': { module: 'o', roles: [] },
  'mlp.c_fc': { module: 'up', roles: ['fc'] },
  'mlp.c_proj': { module: 'down', roles: [] },
};

/**
 * How many LoRA parts a PEFT module path becomes on a shard — its sub-blocks (q|k|v, gate|up), each holding its own
 * copy of the module's lora_A — without knowing the architecture (the registry's size estimate).
 */
export function partsOfModulePath(path: string): number {
  // PEFT's target_parameters pair on stacked MoE experts: gate_up_proj's lora_A serves the gate and the up rows
  // (2 copies); down_proj's once — the name does not tell them apart, so 2 (an upper bound).
  if (/\.experts(?:\.base_layer)*$/.test(path) || path.endsWith('.shared_mlp.input_linear')) return 2;  // Granite's [gate | up]
  if (path.endsWith('.mamba.in_proj')) return 4;  // Granite 4.0 H's mixer: [z | x | B C | dt] (mamba-weights.ts)
  for (const table of [LLAMA_MODULES, GPT2_MODULES, DEEPSEEK_MODULES, NEOX_MODULES, GPTJ_MODULES, DBRX_MODULES]) {
    for (const [key, { roles }] of Object.entries(table)) if (path.endsWith(`.${key}`)) return Math.max(1, roles.length);
  }
  return 1;
}

const UNPREFIXED = /^(?:layers\.\d+\.|embed_tokens$)/;
const MODEL_PREFIXED = (a: ModelSpec['architecture'] | undefined) => a !== undefined && !NO_BASE_MODEL_LAYOUT.has(a);

/**
 * A vision-language checkpoint's module path as the language model's own (`model.…`, `lm_head`); null for the vision
 * tower and the projector (text requests never run them). Other models: the path unchanged, or under `model.`.
 */
export function languageModelPath(spec: Pick<ModelSpec, 'visionLanguage'> & Partial<Pick<ModelSpec, 'architecture'>>,
  path: string): string | null {
  // An adapter trained on the base model (AutoModel, as sentence-transformers + PEFT train embedders) names the
  // decoder's modules without the causal LM's `model.`: the same modules.
  if (!spec.visionLanguage) return UNPREFIXED.test(path) && MODEL_PREFIXED(spec.architecture) ? `model.${path}` : path;
  const m = /^(?:model\.language_model|language_model\.model|model\.text_model)\.(.+)$/.exec(path);  // text_model: Idefics3
  if (m) return `model.${m[1]}`;
  if (path === 'language_model.lm_head') return 'lm_head';
  if (/^(?:model\.)?(?:vision_tower|multi_modal_projector|visual)\./.test(path)) return null;  // visual: Qwen2(.5)-VL
  if (/^model\.(?:vision_model|connector)\./.test(path)) return null;  // Idefics3 / SmolVLM
  return path;
}

/** Resolves a module path like `model.layers.3.self_attn.q_proj` or `transformer.h.0.attn.c_attn`. */
export function resolveModule(spec: ModelSpec, rawPath: string): ModuleRef | null {
  const path = languageModelPath(spec, rawPath);
  if (path === null) return null;
  const neox = spec.architecture === 'gpt_neox';
  if (path === (neox ? 'embed_out' : 'lm_head')) return { layer: -1, module: 'lmHead', roles: ['lm_head'], conv1d: false };
  const transformerH = spec.architecture === 'gpt2' || spec.architecture === 'gptj';  // transformer.h.<i>, transformer.wte
  const dbrx = spec.architecture === 'dbrx';  // transformer.blocks.<i>, transformer.wte
  if (path === (transformerH || dbrx ? 'transformer.wte' : neox ? 'gpt_neox.embed_in' : 'model.embed_tokens')) {
    return { layer: -1, module: 'embed', roles: ['embed'], conv1d: false };
  }
  const m = transformerH
    ? /^(?:transformer\.)?h\.(\d+)\.(.+)$/.exec(path) : dbrx ? /^transformer\.blocks\.(\d+)\.(.+)$/.exec(path)
    : neox ? /^gpt_neox\.layers\.(\d+)\.(.+)$/.exec(path) : /^model\.layers\.(\d+)\.(.+)$/.exec(path);
  if (!m) return null;
  const table = spec.architecture === 'gpt2' ? GPT2_MODULES : spec.architecture === 'gptj' ? GPTJ_MODULES
    : spec.architecture === 'starcoder2' ? STARCODER2_MODULES
    : spec.architecture === 'phi' ? PHI_MODULES : spec.mlp === 'relu2' || spec.mlp === 'xielu' ? RELU2_MODULES : dbrx ? DBRX_MODULES
    : spec.mla ? DEEPSEEK_MODULES : neox ? NEOX_MODULES : LLAMA_MODULES;
  const layer = Number(m[1]);
  if (layer >= spec.layers) return null;
  // Llama 4 names its MLP feed_forward (dense: gate/up/down_proj; MoE: router, experts, shared_expert.*)
  const rest = spec.architecture === 'llama4' || spec.architecture === 'bamba' ? m[2]!.replace(/^feed_forward\./, 'mlp.') : m[2]!;
  if (spec.mamba) {  // Granite 4.0 H: the Mamba layers' in_proj / out_proj; a dense model's shared MLP
    const mixer = /^mamba\.(in_proj|out_proj)$/.exec(rest);
    if (mixer) {
      if (!spec.mamba.layers[layer]) return null;
      const which = mixer[1] as 'in_proj' | 'out_proj';
      return { layer, module: which === 'in_proj' ? 'qkv' : 'o', roles: [], conv1d: false, mamba: which };
    }
    if (spec.mamba.layers[layer] && /^self_attn\./.test(rest)) return null;
    const dense = /^shared_mlp\.(input_linear|output_linear)$/.exec(rest);
    if (dense && !layerIsMoe(spec, layer)) {
      return dense[1] === 'input_linear' ? { layer, module: 'up', roles: ['gate', 'up'], conv1d: false }
        : { layer, module: 'down', roles: [], conv1d: false };
    }
  }
  if (layerIsMoe(spec, layer)) {  // its MLP is a router and experts: no dense mlp.* module
    if (/^(?:mlp|block_sparse_moe|shared_mlp)\./.test(rest)) return resolveExpertModule(spec, layer, rest);
  }
  const entry = table[rest];
  if (!entry) return null;
  // Latent attention has q_proj without a q rank, q_a_proj / q_b_proj with one — never both.
  if (spec.mla && (entry.module === 'q_b' || entry.roles[0] === 'q_a' || m[2] === 'self_attn.q_proj') &&
    (m[2] === 'self_attn.q_proj') !== (spec.mla.qRank === 0)) return null;
  return { layer, module: entry.module, roles: entry.roles, conv1d: spec.architecture === 'gpt2',
    ...(neox && entry.module === 'qkv' ? { headInterleaved: true } : {}) };
}

/**
 * Rows of a per-head fused q|k|v matrix (GPT-NeoX's query_key_value: head h's q, k, v rows at (3h + role)·headDim)
 * for one role (0 q, 1 k, 2 v) of `heads` heads, as the rows of q (or k, v) of those heads in order. `m` holds the
 * rows of the heads [heads.start, heads.end) only, each `cols` wide.
 */
export function interleavedHeadRows(m: Float32Array, cols: number, role: number, heads: number, headDim: number): Float32Array {
  const out = new Float32Array(heads * headDim * cols);
  for (let h = 0; h < heads; h++) {
    const from = ((3 * h + role) * headDim) * cols;
    out.set(m.subarray(from, from + headDim * cols), h * headDim * cols);
  }
  return out;
}
