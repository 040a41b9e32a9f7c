// Qwen3-VL (Qwen3VLForConditionalGeneration): a Qwen3 decoder (per-head q/k RMS norms) with interleaved multimodal
// RoPE (Qwen3VLTextRotaryEmbedding.apply_interleaved_mrope: frequencies t h w t h w …) and a dynamic-resolution vision
// tower — Qwen2-VL's blocks with a patch bias, learned position embeddings interpolated to each image's grid and
// deepstack mergers whose features are added to the image tokens' hidden states after the first decoder layers. What
// configuration_qwen3_vl.py defines is read here; model/qwen_vision.cc computes the tower, mrope.ts the positions
// (get_rope_index places an image's tokens as Qwen2-VL's does).
import { int, refuseIf, type Json } from './config-fields.js';
import { mropeSection, type QwenVisionSpec } from './qwen-vl-spec.js';
import type { ModelSpec } from './spec.js';

// Qwen3VLTextConfig's defaults (transformers 5; rope_theta: its default_theta).
const TEXT_DEFAULTS: Json = {
  vocab_size: 151_936, hidden_size: 4096, intermediate_size: 22_016, num_hidden_layers: 32, num_attention_heads: 32,
  num_key_value_heads: 32, head_dim: 128, hidden_act: 'silu', max_position_embeddings: 128_000, rms_norm_eps: 1e-6,
  rope_theta: 500_000, attention_bias: false,
};
// Qwen3VLMoeTextConfig's (Qwen3-VL-30B-A3B, 235B-A22B: a Qwen3-MoE decoder; num_experts is saved as num_local_experts).
const MOE_TEXT_DEFAULTS: Json = {
  vocab_size: 151_936, hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 24, num_attention_heads: 16,
  num_key_value_heads: 16, hidden_act: 'silu', max_position_embeddings: 128_000, rms_norm_eps: 1e-6, rope_theta: 500_000,
  attention_bias: false, decoder_sparse_step: 1, moe_intermediate_size: 1408, num_experts_per_tok: 4, mlp_only_layers: [],
};
// Qwen3VLVisionConfig's defaults (Qwen3VLMoeVisionConfig's the same).
const VISION_DEFAULTS: Json = {
  depth: 27, hidden_size: 1152, hidden_act: 'gelu_pytorch_tanh', intermediate_size: 4304, num_heads: 16, in_channels: 3,
  patch_size: 16, spatial_merge_size: 2, temporal_patch_size: 2, out_hidden_size: 3584, num_position_embeddings: 2304,
  deepstack_visual_indexes: [8, 16, 24],
};
const ACTIVATIONS: Record<string, QwenVisionSpec['act']> = {
  gelu_pytorch_tanh: 'gelu_tanh', gelu_new: 'gelu_tanh', gelu: 'gelu', quick_gelu: 'quick_gelu', silu: 'silu', relu: 'relu',
};

/** The text config of a Qwen3-VL config: text_config (transformers 5 and the Hub) over Qwen3VLTextConfig's defaults;
 * tie_word_embeddings at the top (or in text_config). Its rope type stays "default": the sections only matter for
 * image positions (a text token's three coordinates are equal). */
function textConfig(cfg: Json, where: string, moe: boolean): Json {
  const nested = cfg.text_config;
  refuseIf(nested !== undefined && (nested === null || typeof nested !== 'object'), where, 'text_config must be an object');
  const t = (nested ?? {}) as Json;
  const tie = cfg.tie_word_embeddings ?? t.tie_word_embeddings;
  if (!moe) return { ...TEXT_DEFAULTS, ...t, tie_word_embeddings: tie === true };
  // Qwen3VLMoeTextTopKRouter renormalises the top k always (norm_topk_prob is not read); no shared expert, no window
  // (its __post_init__ sets sliding_window None); head_dim None: hidden / heads.
  refuseIf(typeof t.shared_expert_intermediate_size === 'number' && t.shared_expert_intermediate_size > 0, where,
    'shared experts (shared_expert_intermediate_size) are not part of Qwen3-VL-MoE in transformers');
  const { head_dim: headDim, num_local_experts: local, shared_expert_intermediate_size: _shared, ...rest } = t;
  return { ...MOE_TEXT_DEFAULTS, ...rest, ...(headDim === null || headDim === undefined ? {} : { head_dim: headDim }),
    num_experts: t.num_experts ?? local ?? 60, mlp_only_layers: t.mlp_only_layers ?? [], norm_topk_prob: true,
    use_sliding_window: false, sliding_window: null, tie_word_embeddings: tie === true };
}

/** Qwen3-VL's vision tower, or null without a vision_config (its language model alone). */
export function qwen3VisionSpec(cfg: Json, where: string): QwenVisionSpec | null {
  const given = cfg.vision_config as Json | undefined | null;
  if (given === undefined || given === null) return null;
  refuseIf(typeof given !== 'object', where, 'vision_config must be an object');
  const v: Json = { ...VISION_DEFAULTS, ...given };
  const w = `${where} vision_config`;
  const hidden = int(v, 'hidden_size', w), heads = int(v, 'num_heads', w), depth = int(v, 'depth', w);
  refuseIf(hidden % heads !== 0 || (hidden / heads) % 4 !== 0, w,
    `the vision heads' size (${hidden} / ${heads}) must be a whole multiple of 4 (the 2-D rotary embedding's halves)`);
  for (const key of ['patch_size', 'temporal_patch_size']) {
    refuseIf(typeof v[key] !== 'number', w, `${key} must be one number (${JSON.stringify(v[key])})`);
  }
  const act = ACTIVATIONS[String(v.hidden_act)];
  refuseIf(act === undefined, w, `hidden_act '${String(v.hidden_act)}' is not supported`);
  const positions = int(v, 'num_position_embeddings', w), side = Math.round(Math.sqrt(positions));
  refuseIf(side * side !== positions, w, `num_position_embeddings ${positions} is not a square (a side × side grid)`);
  const deepstack = v.deepstack_visual_indexes as unknown;
  refuseIf(!Array.isArray(deepstack) || !deepstack.every((b) => Number.isInteger(b) && (b as number) >= 0 && (b as number) < depth) ||
    new Set(deepstack).size !== deepstack.length, w,
    `deepstack_visual_indexes must list distinct blocks of the ${depth}, got ${JSON.stringify(v.deepstack_visual_indexes)}`);
  const imageToken = cfg.image_token_id ?? 151_655;
  refuseIf(!(typeof imageToken === 'number' && Number.isInteger(imageToken) && imageToken >= 0), where,
    `image_token_id must be a token id, got ${JSON.stringify(imageToken)}`);
  return {
    windowed: false, hidden, heads, depth, intermediate: int(v, 'intermediate_size', w), patchSize: int(v, 'patch_size', w),
    mergeSize: int(v, 'spatial_merge_size', w), temporalPatchSize: int(v, 'temporal_patch_size', w),
    channels: Number(v.in_channels ?? 3), outHidden: int(v, 'out_hidden_size', w), act: act!, windowSize: 0, fullBlocks: [],
    imageTokenId: imageToken as number, qwen3: { numPositionEmbeddings: positions, deepstack: deepstack as number[] },
  };
}

/** A Qwen3-VL config's spec: its Qwen3 language model (`decoder`: spec.ts's llamaFamilySpec of qwen3, or of qwen3_moe
 * for Qwen3VLMoeForConditionalGeneration, `moe`: its experts fused per layer, load-weights.ts) with the tower and the
 * interleaved M-RoPE. */
export function qwen3VlSpec(cfg: Json, where: string, decoder: (text: Json) => ModelSpec, moe = false): ModelSpec {
  const text = textConfig(cfg, where, moe);
  const spec = decoder(text);
  const qwenVision = qwen3VisionSpec(cfg, where);
  if (!qwenVision) return { ...spec, visionLanguage: true };
  refuseIf(qwenVision.qwen3!.deepstack.length > spec.layers, where,
    `${qwenVision.qwen3!.deepstack.length} deepstack feature sets for a language model of ${spec.layers} layers`);
  return { ...spec, visionLanguage: true, qwenVision, mropeInterleaved: true,
    mropeSection: mropeSection(text, spec.rope?.rotaryDim ?? spec.headDim, where) };
}
