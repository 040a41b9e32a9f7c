// Hybrid Mamba-2 / attention models (GraniteMoeHybridForCausalLM: IBM Granite 4.0 H Micro, Tiny, Small): Granite MoE
// shared's decoder (multipliers, stacked experts plus a shared MLP; or the shared MLP alone when num_local_experts is
// 0) whose layers are Mamba-2 mixers or attention by layer_types, attention without position embeddings unless
// position_embedding_type is 'rope'. BambaForCausalLM (IBM Bamba-9B): the same mixer in a Llama decoder (RoPE on half of
// each head, feed_forward MLP, pre_ff_layernorm, final_layernorm), attention in the attn_layer_indices layers. The
// Mamba part of the spec is MambaSpec; model/mamba.cc computes it.
import { refuseIf, type Json } from './config-fields.js';
import type { ModelSpec } from './spec.js';

/** A hybrid model's Mamba-2 mixers (transformers' GraniteMoeHybridMambaLayer). */
export interface MambaSpec {
  /** Per layer: true = a Mamba-2 mixer in place of attention. */
  layers: boolean[];
  heads: number;
  headDim: number;
  state: number;
  groups: number;
  conv: number;
  convBias: boolean;
  projBias: boolean;
  /** time_step_limit: dt clamped to [dtMin, dtMax] after the softplus; dtMax 0: no upper bound. */
  dtMin: number;
  dtMax: number;
}

const posInt = (cfg: Json, key: string, dflt: number, where: string): number => {
  const v = cfg[key] ?? dflt;
  refuseIf(!(typeof v === 'number' && Number.isInteger(v) && v > 0), where, `${key} must be a positive integer, got ${JSON.stringify(v)}`);
  return v as number;
};

// A float as config.json may hold it: a number, or transformers 5's {"__float__": "Infinity"} for non-finite ones.
function jsonFloat(v: unknown, where: string, what: string): number {
  if (typeof v === 'number') return v;
  if (v && typeof v === 'object' && typeof (v as Json).__float__ === 'string') return Number((v as Json).__float__);
  if (typeof v === 'string' && /^[+-]?(?:Infinity|inf)$/i.test(v)) return v.startsWith('-') ? -Infinity : Infinity;
  refuseIf(true, where, `${what} must be a number, got ${JSON.stringify(v)}`);
  return 0;
}

/** The Mamba part of a GraniteMoeHybrid config (GraniteMoeHybridConfig's defaults where it leaves fields out). */
export function mambaSpec(cfg: Json, where: string): MambaSpec {
  const layers = posInt(cfg, 'num_hidden_layers', 32, where), hidden = posInt(cfg, 'hidden_size', 4096, where);
  const types = (cfg.layer_types ?? cfg.layers_block_type ?? Array(layers).fill('mamba')) as unknown;
  refuseIf(!Array.isArray(types) || types.length !== layers, where, `layer_types must list one type per layer (${layers})`);
  const mamba = (types as unknown[]).map((t) => {
    if (t === 'mamba' || t === 'linear_attention') return true;
    if (t === 'attention' || t === 'full_attention') return false;
    refuseIf(true, where, `layer type ${JSON.stringify(t)} is not supported (mamba / attention)`);
    return false;
  });
  const heads = posInt(cfg, 'mamba_n_heads', 128, where), expand = posInt(cfg, 'mamba_expand', 2, where);
  const headDim = cfg.mamba_d_head === undefined || cfg.mamba_d_head === 'auto' ? (expand * hidden) / heads : cfg.mamba_d_head;
  refuseIf(!(typeof headDim === 'number' && Number.isInteger(headDim) && headDim > 0 && headDim * heads === expand * hidden), where,
    `mamba_d_head × mamba_n_heads must be mamba_expand × hidden_size (${expand * hidden}), got ${JSON.stringify(cfg.mamba_d_head)} × ${heads}`);
  const groups = posInt(cfg, 'mamba_n_groups', 1, where);
  refuseIf(heads % groups !== 0, where, `mamba_n_groups ${groups} must divide mamba_n_heads ${heads}`);
  const limit = (cfg.time_step_limit ?? [0, Infinity]) as unknown;
  refuseIf(!Array.isArray(limit) || limit.length !== 2, where, 'time_step_limit must be [min, max]');
  const [dtMin, dtMax] = (limit as unknown[]).map((v, i) => jsonFloat(v, where, `time_step_limit[${i}]`)) as [number, number];
  refuseIf(!(dtMin >= 0 && dtMax > 0 && dtMin <= dtMax), where, `time_step_limit ${JSON.stringify(limit)} must be 0 <= min <= max, max > 0`);
  refuseIf(cfg.hidden_act !== undefined && cfg.hidden_act !== 'silu', where, `hidden_act '${String(cfg.hidden_act)}' is not supported (silu)`);
  return { layers: mamba, heads, headDim: headDim as number, state: posInt(cfg, 'mamba_d_state', 256, where), groups,
    conv: posInt(cfg, 'mamba_d_conv', 4, where), convBias: cfg.mamba_conv_bias !== false, projBias: cfg.mamba_proj_bias === true,
    dtMin, dtMax: Number.isFinite(dtMax) ? dtMax : 0 };
}

/**
 * GraniteMoeHybridForCausalLM from the Granite MoE shared spec of the same config (`graniteShared`: spec.ts's
 * llama-family parse as 'granitemoeshared'): its Mamba layers, no RoPE unless asked, and a dense shared MLP when
 * there are no experts.
 */
export function graniteHybridSpec(cfg: Json, where: string, graniteShared: (cfg: Json) => ModelSpec): ModelSpec {
  const experts = cfg.num_local_experts ?? 8;
  refuseIf(!(typeof experts === 'number' && Number.isInteger(experts) && experts >= 0), where,
    `num_local_experts must be a non-negative integer, got ${JSON.stringify(experts)}`);
  const shared = cfg.shared_intermediate_size ?? 1024;
  refuseIf(!(typeof shared === 'number' && Number.isInteger(shared) && shared > 0), where,
    `shared_intermediate_size must be a positive integer, got ${JSON.stringify(shared)}`);
  const pe = cfg.position_embedding_type ?? null;
  refuseIf(pe !== null && pe !== 'rope' && pe !== 'nope', where, `position_embedding_type '${String(pe)}' is not supported (rope, nope)`);
  const mamba = mambaSpec(cfg, where);
  // Dense (no experts): parse as one expert, then drop the MoE — the shared MLP is the layer's MLP.
  const base = graniteShared({ ...cfg, ...(experts === 0 ? { num_local_experts: 1, num_experts_per_tok: 1 } : {}),
    shared_intermediate_size: shared });
  return { ...base, architecture: 'granitemoehybrid', rope: pe === 'rope' ? base.rope : null,
    ...(experts === 0 ? { moe: null, intermediate: shared as number } : {}), mamba };
}

/**
 * BambaForCausalLM from the Llama spec of the same config (`llama`: spec.ts's llama-family parse as 'llama'), RoPE on
 * half of each head (BambaConfig hardcodes partial_rotary_factor 0.5), attention in the attn_layer_indices layers.
 */
export function bambaSpec(cfg: Json, where: string, llama: (cfg: Json) => ModelSpec): ModelSpec {
  const layers = posInt(cfg, 'num_hidden_layers', 32, where);
  const attn = cfg.attn_layer_indices ?? [];
  refuseIf(!Array.isArray(attn) || !attn.every((i) => Number.isInteger(i) && i >= 0 && i < layers), where,
    'attn_layer_indices must list layer indices');
  const layerTypes = Array.from({ length: layers }, (_, i) => ((attn as number[]).includes(i) ? 'attention' : 'mamba'));
  const rp = (cfg.rope_parameters ?? cfg.rope_scaling ?? null) as Json | null;
  const withHalf: Json = { ...cfg, partial_rotary_factor: 0.5, ...(rp ? { rope_parameters: { ...rp, partial_rotary_factor: 0.5 } } : {}) };
  const { layer_types: _t, layers_block_type: _b, ...rest } = cfg;
  return { ...llama(withHalf), architecture: 'bamba', mamba: mambaSpec({ ...rest, layer_types: layerTypes }, where) };
}
