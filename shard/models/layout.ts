// How each architecture's Hugging Face tensors map onto the executor's fused modules.
// A fused module's output rows are sub-blocks (q|k|v, gate|up); each sub-block is sliced by the
// partition and placed at a local offset. The same description drives base weights and LoRA B rows.
import type { Partition, Range } from './partition.js';
import type { ModelSpec } from './spec.js';
import { rangeLen } from './partition.js';

export type ExecModule = 'qkv' | 'o' | 'up' | 'down' | 'lmHead' | 'embed';

/** One sub-block of a fused module's output rows. */
export interface SubBlock {
  role: string;        // q | k | v | gate | up | fc | lm_head
  fullOffset: number;  // first row of this sub-block in the full (unsplit) fused output
  fullLen: number;
  local: Range;        // rows of this sub-block that this rank keeps (relative to the sub-block)
  localOffset: number; // where they land in this rank's fused output
}

/** The up projection is [gate | up] (SwiGLU, GeGLU). */
export function isGatedMlp(spec: Pick<ModelSpec, 'mlp'>): boolean {
  return spec.mlp === 'gated_silu' || spec.mlp === 'gated_gelu_tanh';
}

export function subBlocks(spec: ModelSpec, part: Partition, module: 'qkv' | 'up' | 'lmHead'): SubBlock[] {
  const hd = spec.headDim;
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

/** Columns (input features) a row-parallel module keeps on this rank. */
export function rowParallelInput(spec: ModelSpec, part: Partition, module: 'o' | 'down'): Range {
  return module === 'o'
    ? { start: part.heads.start * spec.headDim, end: part.heads.end * spec.headDim }
    : part.intermediate;
}

/** Where a Hugging Face tensor (or a PEFT target module) sits in the executor. */
export interface ModuleRef {
  layer: number;          // -1 for lm_head and the token embedding
  module: ExecModule;
  /** Sub-block roles this HF module provides, in row order (fused HF modules provide several). */
  roles: string[];
  /** GPT-2 Conv1D stores weights [in, out]. */
  conv1d: boolean;
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
  for (const table of [LLAMA_MODULES, GPT2_MODULES]) {
    for (const [key, { roles }] of Object.entries(table)) if (path.endsWith(`.${key}`)) return Math.max(1, roles.length);
  }
  return 1;
}

/**
 * A vision-language checkpoint's module path as the language model's own (`model.…`, `lm_head`); null for the vision
 * tower and the projector (text requests never run them). Other models: the path unchanged.
 */
export function languageModelPath(spec: Pick<ModelSpec, 'visionLanguage'>, path: string): string | null {
  if (!spec.visionLanguage) return path;
  const m = /^(?:model\.language_model|language_model\.model)\.(.+)$/.exec(path);
  if (m) return `model.${m[1]}`;
  if (path === 'language_model.lm_head') return 'lm_head';
  if (/^(?:model\.)?(?:vision_tower|multi_modal_projector|visual)\./.test(path)) return null;  // visual: Qwen2(.5)-VL
  return path;
}

/** Resolves a module path like `model.layers.3.self_attn.q_proj` or `transformer.h.0.attn.c_attn`. */
export function resolveModule(spec: ModelSpec, rawPath: string): ModuleRef | null {
  const path = languageModelPath(spec, rawPath);
  if (path === null) return null;
  if (path === 'lm_head') return { layer: -1, module: 'lmHead', roles: ['lm_head'], conv1d: false };
  if (path === (spec.architecture === 'gpt2' ? 'transformer.wte' : 'model.embed_tokens')) {
    return { layer: -1, module: 'embed', roles: ['embed'], conv1d: false };
  }
  const m = spec.architecture === 'gpt2'
    ? /^(?:transformer\.)?h\.(\d+)\.(.+)$/.exec(path)
    : /^model\.layers\.(\d+)\.(.+)$/.exec(path);
  if (!m) return null;
  const table = spec.architecture === 'gpt2' ? GPT2_MODULES : spec.architecture === 'starcoder2' ? STARCODER2_MODULES : LLAMA_MODULES;
  const entry = table[m[2]];
  if (!entry) return null;
  const layer = Number(m[1]);
  if (layer >= spec.layers) return null;
  return { layer, module: entry.module, roles: entry.roles, conv1d: spec.architecture === 'gpt2' };
}
