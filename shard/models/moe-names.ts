// The checkpoint names of a MoE layer's router and experts, per architecture, as load-weights.ts reads them (published
// layouts; transformers 5's stacked one is found beside them by loadMoeLayer).
import type { ModelSpec } from './spec.js';

/** A MoE layer's router and expert e's gate / up / down (relative to the layer prefix, without `.weight`). */
export interface MoeNames {
  router: string; routerBias?: string; sharedGate?: string; expert(e: number): { gate: string; up: string; down: string };
  /** Granite MoE: all experts in two tensors, [E, 2·I, hidden] ([gate | up] rows of each) and [E, hidden, I]. */
  stacked?: { gateUp: string; down: string };
  /** The router's name in transformers 5's stacked layout when it is not mlp.gate (PhiMoE's mlp.router). */
  v5Router?: string;
}

/**
 * The MoE checkpoints as published: Mixtral's block_sparse_moe.{gate, experts.<e>.w1 (gate) / w3 (up) / w2 (down)},
 * Qwen3-MoE's mlp.{gate, experts.<e>.gate_proj / up_proj / down_proj}.
 */
export function moeNames(spec: ModelSpec): MoeNames {
  if (spec.architecture === 'llama4') {  // feed_forward.{router, experts, shared_expert} (in-out-experts.ts reads the experts)
    return { router: 'feed_forward.router', expert: () => ({ gate: 'feed_forward.shared_expert.gate_proj',
      up: 'feed_forward.shared_expert.up_proj', down: 'feed_forward.shared_expert.down_proj' }),
    stacked: { gateUp: 'feed_forward.experts.gate_up_proj', down: 'feed_forward.experts.down_proj' } };
  }
  if (spec.architecture === 'gpt_oss') {  // mlp.router (weight, bias); the experts stacked (in-out-experts.ts)
    return { router: 'mlp.router', routerBias: 'mlp.router.bias', expert: () => ({ gate: '', up: '', down: '' }),
      stacked: { gateUp: 'mlp.experts.gate_up_proj', down: 'mlp.experts.down_proj' } };
  }
  if (spec.architecture.startsWith('granitemoe')) {  // as published: block_sparse_moe.{router.layer, input_linear, output_linear}
    return { router: 'block_sparse_moe.router.layer', expert: () => ({ gate: 'shared_mlp.input_linear', up: 'shared_mlp.input_linear',
      down: 'shared_mlp.output_linear' }),  // the shared MLP (Granite MoE shared): its input_linear is [gate | up]
      stacked: { gateUp: 'block_sparse_moe.input_linear.weight', down: 'block_sparse_moe.output_linear.weight' } };
  }
  // MiniMax-M2: the choice bias beside the gate; PhiMoE: transformers 5's stacked layout renames the gate mlp.router
  if (spec.architecture === 'mixtral' || spec.architecture === 'minimax_m2' || spec.architecture === 'phimoe') {
    return { router: 'block_sparse_moe.gate', ...(spec.moe!.sigmoid ? { routerBias: 'block_sparse_moe.e_score_correction_bias' } : {}),
      ...(spec.architecture === 'phimoe' ? { v5Router: 'mlp.router' } : {}),
      expert: (e) => ({ gate: `block_sparse_moe.experts.${e}.w1`, up: `block_sparse_moe.experts.${e}.w3`, down: `block_sparse_moe.experts.${e}.w2` }) };
  }
  // The shared expert is expert E (after the routed ones): GLM-4.5's and DeepSeek's mlp.shared_experts.*,
  // Qwen2-MoE's mlp.shared_expert.* (with mlp.shared_expert_gate), Hunyuan MoE's mlp.shared_mlp.* (its router mlp.gate.wg).
  const E = spec.moe!.experts, hunyuan = spec.architecture === 'hunyuan_v1_moe';
  const sharedDir = spec.architecture === 'qwen2_moe' ? 'mlp.shared_expert' : hunyuan ? 'mlp.shared_mlp' : 'mlp.shared_experts';
  const dir = (e: number): string => (e === E ? sharedDir : `mlp.experts.${e}`);
  // ERNIE 4.5 MoE keeps its choice bias in mlp.moe_statics (transformers 5 moves it under mlp.gate)
  const ernieBias = spec.architecture === 'ernie4_5_moe' ? 'mlp.moe_statics.e_score_correction_bias' : null;
  return { router: hunyuan ? 'mlp.gate.wg' : 'mlp.gate', ...(spec.moe!.sigmoid ? { routerBias: 'mlp.gate.e_score_correction_bias' } : {}),
    ...(ernieBias ? { routerBias: ernieBias } : {}),
    ...(spec.moe!.sharedGate ? { sharedGate: 'mlp.shared_expert_gate' } : {}),
    expert: (e) => ({ gate: `${dir(e)}.gate_proj`, up: `${dir(e)}.up_proj`, down: `${dir(e)}.down_proj` }) };
}
