// The mixture-of-experts part of a config.json (spec.ts's MoeSpec): which layers route, to how many of how many
// experts, and how — softmax (Mixtral, Qwen3-MoE, OLMoE) or sigmoid with groups (GLM-4.5, DeepSeek-V3).
import { int, refuseIf, type Json } from './config-fields.js';
import type { Architecture, MoeSpec } from './spec.js';
import { gptOssMoe } from './gpt-oss-spec.js';

/**
 * Mixtral's and Qwen3-MoE's experts as transformers routes them (modeling_mixtral.py, modeling_qwen3_moe.py):
 * Mixtral renormalises the chosen experts' weights always, Qwen3-MoE when norm_topk_prob; Qwen3-MoE's layers in
 * mlp_only_layers, or off its decoder_sparse_step, keep a dense MLP of intermediate_size.
 */
export function moeSpec(arch: Architecture, cfg: Json, where: string): MoeSpec | null {
  if (arch === 'ernie4_5_moe') return ernieMoe(cfg, where);
  if (arch === 'gpt_oss') return gptOssMoe(cfg, where, (key) => int(cfg, key, where));
  if (arch === 'minimax_m2') return minimaxM2Moe(cfg, where);
  if (arch === 'phimoe') return phimoeMoe(cfg, where);
  if (arch === 'hunyuan_v1_moe') return hunyuanMoe(cfg, where);
  if (arch !== 'mixtral' && !arch.startsWith('granitemoe') && arch !== 'qwen3_moe' && arch !== 'qwen2_moe' && arch !== 'glm4_moe' &&
    arch !== 'olmoe' && arch !== 'flex_olmo' && arch !== 'dots1') return null;
  // The count's name: Mixtral num_local_experts, Qwen3-MoE num_experts, GLM-4.5 n_routed_experts (transformers 5
  // saves the last two as num_local_experts).
  const own = arch === 'qwen3_moe' || arch === 'qwen2_moe' || arch === 'olmoe' || arch === 'flex_olmo' ? 'num_experts'
    : arch === 'glm4_moe' || arch === 'dots1' ? 'n_routed_experts' : 'num_local_experts';
  const experts = int(cfg, cfg[own] !== undefined ? own : 'num_local_experts', where);
  const perToken = int(cfg, 'num_experts_per_tok', where);
  refuseIf(perToken > experts, where, `num_experts_per_tok ${perToken} is more than the ${experts} experts`);
  const softmax = { sigmoid: false, groups: 1, topkGroups: 1, routedScale: 1, sharedExpert: false };
  // Granite MoE: softmax over the chosen experts' logits (the renormalised top-k), experts of intermediate_size
  if (arch === 'mixtral' || arch === 'granitemoe') {
    return { experts, perToken, intermediate: int(cfg, 'intermediate_size', where), renormalize: true, layers: null, ...softmax };
  }
  // Granite MoE with shared experts (GraniteMoeSharedMoE): plus one MLP of shared_intermediate_size for every token (0: none)
  if (arch === 'granitemoeshared') {
    const width = cfg.shared_intermediate_size ?? 0;
    refuseIf(!(typeof width === 'number' && Number.isInteger(width) && width >= 0), where,
      `shared_intermediate_size must be a non-negative integer, got ${JSON.stringify(width)}`);
    return { experts, perToken, intermediate: int(cfg, 'intermediate_size', where), renormalize: true, layers: null, ...softmax,
      ...((width as number) > 0 ? { sharedExpert: true, sharedIntermediate: width as number } : {}) };
  }
  if (arch === 'olmoe' || arch === 'flex_olmo') {  // every layer MoE, experts of intermediate_size; norm_topk_prob (default false)
    return { experts, perToken, intermediate: int(cfg, 'intermediate_size', where), renormalize: cfg.norm_topk_prob === true,
      layers: null, ...softmax };
  }
  const layers = int(cfg, 'num_hidden_layers', where);
  if (arch === 'glm4_moe') return sigmoidMoeRouting(cfg, where, experts, perToken, layers, GLM4_MOE_DEFAULTS);
  if (arch === 'dots1') return sigmoidMoeRouting(cfg, where, experts, perToken, layers, DOTS1_DEFAULTS);
  const step = cfg.decoder_sparse_step ?? 1;
  refuseIf(!(typeof step === 'number' && Number.isInteger(step) && step > 0), where, `decoder_sparse_step must be a positive integer`);
  const only = cfg.mlp_only_layers ?? [];
  refuseIf(!Array.isArray(only) || !only.every((l) => Number.isInteger(l)), where, `mlp_only_layers must list layer indices`);
  // Qwen2-MoE (Qwen1.5-MoE, Qwen2-57B-A14B): one shared expert of shared_expert_intermediate_size, its output times
  // sigmoid(shared_expert_gate(x)), added after the routed ones (Qwen2MoeSparseMoeBlock). Qwen3-MoE has none.
  const sharedWidth = cfg.shared_expert_intermediate_size ?? (arch === 'qwen2_moe' ? 5632 : 0);  // Qwen2MoeConfig's default
  refuseIf(!(typeof sharedWidth === 'number' && Number.isInteger(sharedWidth) && sharedWidth >= 0), where,
    `shared_expert_intermediate_size must be a non-negative integer, got ${JSON.stringify(sharedWidth)}`);
  const shared = arch === 'qwen2_moe' && sharedWidth !== 0
    ? { sharedExpert: true, sharedIntermediate: sharedWidth as number, sharedGate: true } : {};
  refuseIf(arch === 'qwen3_moe' && typeof sharedWidth === 'number' && sharedWidth > 0, where,
    'shared experts (shared_expert_intermediate_size) are not part of Qwen3-MoE; use Qwen2MoeForCausalLM');
  const moeLayers = Array.from({ length: layers }, (_, l) => !(only as number[]).includes(l) && (l + 1) % (step as number) === 0);
  return { experts, perToken, intermediate: int(cfg, 'moe_intermediate_size', where), renormalize: cfg.norm_topk_prob === true,
    layers: moeLayers.every(Boolean) ? null : moeLayers, ...softmax, ...shared };
}

/** The routing fields' defaults where a config leaves them out (Glm4MoeConfig's, DeepseekV3Config's). */
export interface SigmoidRoutingDefaults {
  n_shared_experts: number;
  n_group: number;
  topk_group: number;
  first_k_dense_replace: number;
  routed_scaling_factor: number;
  /** norm_topk_prob when the config leaves it out (true for GLM-4.5 and DeepSeek-V3). */
  norm_topk_prob?: boolean;
}
const GLM4_MOE_DEFAULTS: SigmoidRoutingDefaults = {
  n_shared_experts: 1, n_group: 1, topk_group: 1, first_k_dense_replace: 1, routed_scaling_factor: 1,
};
// dots.llm1 (Dots1Config; its router is DeepSeek-V3's): no shared experts, groups or dense layers unless set, and the
// top-k not renormalised by default.
const DOTS1_DEFAULTS: SigmoidRoutingDefaults = {
  n_shared_experts: 0, n_group: 1, topk_group: 1, first_k_dense_replace: 0, routed_scaling_factor: 1, norm_topk_prob: false,
};

// GLM-4.5 (Glm4MoeTopkRouter) and DeepSeek-V3 (DeepseekV3TopkRouter, the same): sigmoid scores,
// e_score_correction_bias in the choice, n_group / topk_group, norm_topk_prob (default true), routed_scaling_factor;
// n_shared_experts shared experts of moe_intermediate_size each, which transformers runs as one MLP n times as wide;
// the first_k_dense_replace layers keep a dense MLP of intermediate_size. With `softmax` (DeepSeek-V2's
// DeepseekV2TopkRouter): softmax probabilities, no bias, no renormalisation, and groups only with
// topk_method group_limited_greedy (a group ranked by its best probability).
export function sigmoidMoeRouting(cfg: Json, where: string, experts: number, perToken: number, layers: number,
  defaults: SigmoidRoutingDefaults, softmax = false): MoeSpec {
  const num = (key: keyof SigmoidRoutingDefaults, dflt = defaults[key]): number => {
    const v = cfg[key] ?? dflt;
    refuseIf(typeof v !== 'number' || !Number.isFinite(v), where, `${key} must be a number, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const shared = num('n_shared_experts');
  refuseIf(!Number.isInteger(shared) || shared < 0, where, `n_shared_experts must be a non-negative integer, got ${shared}`);
  const method = softmax ? String(cfg.topk_method ?? 'greedy') : 'noaux_tc';
  refuseIf(method !== 'greedy' && method !== 'group_limited_greedy' && method !== 'noaux_tc', where,
    `topk_method '${method}' is not supported (greedy, group_limited_greedy)`);
  const grouped = !softmax || method === 'group_limited_greedy';
  const groups = grouped ? num('n_group') : 1, topkGroups = grouped ? num('topk_group') : 1;
  refuseIf(!Number.isInteger(groups) || groups < 1 || experts % groups !== 0 || (groups > 1 && experts / groups < 2) ||
    !Number.isInteger(topkGroups) || topkGroups < 1 || topkGroups > groups || perToken > topkGroups * (experts / groups),
  where, `n_group ${groups} / topk_group ${topkGroups} must split the ${experts} experts evenly and leave ${perToken} to choose from`);
  const dense = num('first_k_dense_replace');
  const moeLayers = Array.from({ length: layers }, (_, l) => l >= dense);
  refuseIf(!moeLayers.some(Boolean), where, `first_k_dense_replace ${dense} leaves no mixture-of-experts layer`);
  const intermediate = int(cfg, 'moe_intermediate_size', where);
  return {
    experts, perToken, intermediate, renormalize: !softmax && (cfg.norm_topk_prob ?? defaults.norm_topk_prob ?? true) === true,
    layers: moeLayers.every(Boolean) ? null : moeLayers, sigmoid: !softmax, groups, topkGroups,
    routedScale: num('routed_scaling_factor'), sharedExpert: shared > 0,
    ...(shared > 1 ? { sharedIntermediate: shared * intermediate } : {}), ...(softmax && groups > 1 ? { groupMax: true } : {}),
  };
}


/**
 * MiniMax-M2 (MiniMaxM2TopKRouter): sigmoid scores, the choice ranked with the MoE block's e_score_correction_bias, the
 * chosen scores always renormalised; no groups, no scale, no shared expert; Mixtral's experts of intermediate_size.
 */
function minimaxM2Moe(cfg: Json, where: string): MoeSpec {
  const experts = int(cfg, cfg.num_local_experts !== undefined ? 'num_local_experts' : 'num_experts', where);
  const perToken = int(cfg, 'num_experts_per_tok', where);
  refuseIf(perToken > experts, where, `num_experts_per_tok ${perToken} is more than the ${experts} experts`);
  const scoring = cfg.scoring_func ?? 'sigmoid';
  refuseIf(scoring !== 'sigmoid', where, `scoring_func '${String(scoring)}' is not supported for minimax_m2 (only sigmoid)`);
  refuseIf(typeof cfg.shared_intermediate_size === 'number' && cfg.shared_intermediate_size > 0, where,
    'shared_intermediate_size > 0 (a shared expert) is not part of MiniMax-M2 in transformers; not supported');
  return { experts, perToken, intermediate: int(cfg, 'intermediate_size', where), renormalize: true, layers: null,
    sigmoid: true, groups: 1, topkGroups: 1, routedScale: 1, sharedExpert: false };
}

/**
 * ERNIE 4.5 MoE (Ernie4_5_MoeTopKRouter): softmax probabilities in fp32, the choice ranked with moe_statics'
 * e_score_correction_bias added, the chosen probabilities renormalised by max(sum, moe_norm_min); moe_num_shared_experts
 * shared experts as one MLP n times as wide; MoE layers every moe_layer_interval from moe_layer_start_index to
 * moe_layer_end_index (-1: the last), the others dense.
 */
function ernieMoe(cfg: Json, where: string): MoeSpec {
  const experts = int(cfg, cfg.moe_num_experts !== undefined ? 'moe_num_experts' : 'num_experts', where);
  const perToken = int(cfg, cfg.moe_k !== undefined ? 'moe_k' : 'num_experts_per_tok', where);
  refuseIf(perToken > experts, where, `moe_k ${perToken} is more than the ${experts} experts`);
  const layers = int(cfg, 'num_hidden_layers', where);
  const num = (key: string, dflt: number): number => {
    const v = cfg[key] ?? dflt;
    refuseIf(typeof v !== 'number' || !Number.isFinite(v), where, `${key} must be a number, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const start = num('moe_layer_start_index', 1), interval = num('moe_layer_interval', 1), shared = num('moe_num_shared_experts', 2);
  const endGiven = num('moe_layer_end_index', -1), end = endGiven === -1 ? layers - 1 : endGiven;
  refuseIf(!Number.isInteger(interval) || interval < 1, where, `moe_layer_interval must be a positive integer, got ${interval}`);
  refuseIf(!Number.isInteger(shared) || shared < 0, where, `moe_num_shared_experts must be a non-negative integer, got ${shared}`);
  const moeLayers = Array.from({ length: layers }, (_, l) => (l + 1) % interval === 0 && l >= start && l <= end);
  refuseIf(!moeLayers.some(Boolean), where, 'moe_layer_start_index / end / interval leave no mixture-of-experts layer');
  const intermediate = int(cfg, 'moe_intermediate_size', where);
  return {
    experts, perToken, intermediate, renormalize: true, layers: moeLayers.every(Boolean) ? null : moeLayers,
    sigmoid: false, groups: 1, topkGroups: 1, routedScale: 1, sharedExpert: shared > 0,
    ...(shared > 1 ? { sharedIntermediate: shared * intermediate } : {}),
    choiceBias: true, renormMin: num('moe_norm_min', 1e-12),
  };
}

/**
 * Phi-3.5-MoE (PhimoeSparseMoeBlock in eval mode): Mixtral's experts of intermediate_size, routed by transformers'
 * sparsemixer — two stages, each the largest remaining logit weighted by its softmax over the remaining experts within
 * 2 · router_jitter_noise of it (relatively), never renormalised (moe_route.h). transformers routes to two experts
 * whatever num_experts_per_tok says, so another value is refused; input_jitter_noise acts only in training.
 */
function phimoeMoe(raw: Json, where: string): MoeSpec {
  const cfg: Json = { num_local_experts: 16, num_experts_per_tok: 2, router_jitter_noise: 0.01, ...raw };  // PhimoeConfig's
  const experts = int(cfg, 'num_local_experts', where);
  refuseIf(cfg.num_experts_per_tok !== 2, where,
    `num_experts_per_tok ${JSON.stringify(cfg.num_experts_per_tok)} is not supported for phimoe (its sparsemixer routes each token to 2 experts)`);
  refuseIf(experts < 2, where, `num_local_experts ${experts} is fewer than the 2 experts sparsemixer chooses`);
  const eps = cfg.router_jitter_noise;
  refuseIf(!(typeof eps === 'number' && Number.isFinite(eps) && eps >= 0), where,
    `router_jitter_noise (sparsemixer's threshold) must be a non-negative number, got ${JSON.stringify(eps)}`);
  return { experts, perToken: 2, intermediate: int(cfg, 'intermediate_size', where), renormalize: false, layers: null,
    sigmoid: false, groups: 1, topkGroups: 1, routedScale: 1, sharedExpert: false, mixerThreshold: Math.fround(2 * (eps as number)) };
}

/**
 * Hunyuan MoE (HunYuanMoEV1Moe, Hunyuan-A13B): in every layer a softmax over num_experts router logits (mlp.gate.wg), the
 * moe_topk best renormalised, experts of intermediate_size, plus one shared MLP of intermediate_size (mlp.shared_mlp) for
 * every token, added after the experts with weight 1. The published per-layer lists must give every layer what
 * transformers computes (one top-k; one shared MLP; experts of intermediate_size); anything else is refused by name.
 */
function hunyuanMoe(raw: Json, where: string): MoeSpec {
  const cfg: Json = { num_experts: 1, ...raw };  // HunYuanMoEV1Config's default (moe_topk 1 below)
  const layers = int(cfg, 'num_hidden_layers', where);
  refuseIf(Array.isArray(cfg.num_experts), where, 'num_experts as a per-layer list is not supported for hunyuan_v1_moe (transformers builds one expert count)');
  const experts = int(cfg, 'num_experts', where), intermediate = int(cfg, 'intermediate_size', where);
  // One value, or a list with one value per layer that are all equal.
  const perLayer = (key: string, dflt: number): number => {
    const v = cfg[key] ?? dflt, list = Array.isArray(v) ? v : [v];
    refuseIf(!list.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0) || (Array.isArray(v) && v.length !== layers), where,
      `${key} must be a non-negative integer or a list of one per layer (${layers}), got ${JSON.stringify(v)}`);
    refuseIf(new Set(list).size !== 1, where, `${key} ${JSON.stringify(v)} differs between layers; not supported for hunyuan_v1_moe`);
    return list[0] as number;
  };
  const perToken = perLayer(cfg.moe_topk !== undefined ? 'moe_topk' : 'num_experts_per_tok', 1);
  refuseIf(perToken < 1 || perToken > experts, where, `moe_topk ${perToken} must be between 1 and the ${experts} experts`);
  const width = perLayer('moe_intermediate_size', intermediate);
  refuseIf(width !== intermediate, where, `moe_intermediate_size ${width} differs from intermediate_size ${intermediate}; ` +
    'transformers runs the experts and the shared MLP at intermediate_size, so it is not supported');
  refuseIf(perLayer('num_shared_expert', 1) !== 1, where,
    `num_shared_expert ${JSON.stringify(cfg.num_shared_expert)} is not supported for hunyuan_v1_moe (transformers has one shared MLP)`);
  refuseIf(cfg.use_mixed_mlp_moe === false, where, 'use_mixed_mlp_moe=false (no shared MLP) is not supported for hunyuan_v1_moe');
  refuseIf(perLayer('moe_layer_num_skipped', 0) !== 0, where, 'moe_layer_num_skipped > 0 (dense layers) is not supported for hunyuan_v1_moe');
  return { experts, perToken, intermediate, renormalize: true, layers: null, sigmoid: false, groups: 1, topkGroups: 1,
    routedScale: 1, sharedExpert: true };
}
