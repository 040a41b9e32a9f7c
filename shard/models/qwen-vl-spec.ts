// Qwen2-VL and Qwen2.5-VL (Qwen2VLForConditionalGeneration, Qwen2_5_VLForConditionalGeneration): a Qwen2 decoder
// with multimodal RoPE (its rotary frequencies in temporal / height / width sections) and a dynamic-resolution
// vision tower whose merged patches replace the <|image_pad|> tokens. What configuration_qwen2_vl.py /
// configuration_qwen2_5_vl.py define is read here; model/qwen_vision.cc computes the tower, mrope.ts the positions.
import { int, refuseIf, type Json } from './config-fields.js';
import type { ModelSpec } from './spec.js';
import type { VisionActivation } from './llava-spec.js';

/** The vision tower of a Qwen2-VL / Qwen2.5-VL model (kernels/src/model/qwen_vision.h). */
export interface QwenVisionSpec {
  /** Qwen2.5-VL: RMSNorm, SwiGLU MLP with biases, window attention; else Qwen2-VL (LayerNorm, fc1 → act → fc2). */
  windowed: boolean;
  hidden: number;
  heads: number;
  intermediate: number;
  depth: number;
  patchSize: number;
  mergeSize: number;
  temporalPatchSize: number;
  channels: number;
  /** The merger's output size (must be the language model's hidden size). */
  outHidden: number;
  act: VisionActivation;
  windowSize: number;
  fullBlocks: number[];
  /** The placeholder token an image's rows replace (image_token_id). */
  imageTokenId: number;
  /** Qwen3-VL (qwen3-vl-spec.ts): a patch bias, learned position embeddings on a square grid of
   * numPositionEmbeddings, and deepstack mergers on the outputs of these blocks (deepstack_visual_indexes), whose
   * features are added to the image tokens' hidden states after decoder layers 0, 1, …. Absent: Qwen2-VL / 2.5-VL. */
  qwen3?: { numPositionEmbeddings: number; deepstack: number[] };
}

// Qwen2VLVisionConfig's and Qwen2_5_VLVisionConfig's defaults (transformers 5).
const QWEN2_VL_VISION: Json = {
  depth: 32, embed_dim: 1280, hidden_size: 3584, hidden_act: 'quick_gelu', mlp_ratio: 4, num_heads: 16, in_channels: 3,
  patch_size: 14, spatial_merge_size: 2, temporal_patch_size: 2,
};
const QWEN2_5_VL_VISION: Json = {
  depth: 32, hidden_size: 3584, hidden_act: 'silu', intermediate_size: 3420, num_heads: 16, in_channels: 3,
  patch_size: 14, spatial_merge_size: 2, temporal_patch_size: 2, window_size: 112, out_hidden_size: 3584,
  fullatt_block_indexes: [7, 15, 23, 31],
};
const ACTIVATIONS: Record<string, VisionActivation> = {
  quick_gelu: 'quick_gelu', gelu: 'gelu', gelu_new: 'gelu_tanh', gelu_pytorch_tanh: 'gelu_tanh', relu: 'relu', silu: 'silu',
};

/**
 * The vision tower of a Qwen2-VL / Qwen2.5-VL config, or null when it has no vision_config (a text-only config:
 * weft then serves the language model alone, as before).
 */
export function qwenVisionSpec(archName: string, cfg: Json, where: string): QwenVisionSpec | null {
  const given = cfg.vision_config as Json | undefined | null;
  if (given === undefined || given === null) return null;
  refuseIf(typeof given !== 'object', where, 'vision_config must be an object');
  const windowed = archName === 'Qwen2_5_VLForConditionalGeneration';
  const v: Json = { ...(windowed ? QWEN2_5_VL_VISION : QWEN2_VL_VISION), ...given };
  const w = `${where} vision_config`;
  // Qwen2-VL calls the tower's width embed_dim and the merger's output hidden_size; Qwen2.5-VL hidden_size and
  // out_hidden_size.
  const hidden = int(v, windowed ? 'hidden_size' : 'embed_dim', w), heads = int(v, 'num_heads', w);
  refuseIf(hidden % heads !== 0 || (hidden / heads) % 4 !== 0, w,
    `the vision heads' size (${hidden} / ${heads}) must be a whole multiple of 4 (the 2-D rotary embedding's halves)`);
  for (const key of ['patch_size', 'temporal_patch_size']) {
    refuseIf(typeof v[key] !== 'number', w, `${key} must be one number (${JSON.stringify(v[key])})`);
  }
  const act = ACTIVATIONS[String(v.hidden_act)];
  refuseIf(act === undefined, w, `hidden_act '${String(v.hidden_act)}' is not supported`);
  const depth = int(v, 'depth', w);
  const fullBlocks = windowed ? (v.fullatt_block_indexes as unknown[]) : [];
  refuseIf(!Array.isArray(fullBlocks) || !fullBlocks.every((b) => Number.isInteger(b) && (b as number) >= 0 && (b as number) < depth),
    w, `fullatt_block_indexes must list blocks of the ${depth}, got ${JSON.stringify(v.fullatt_block_indexes)}`);
  const patchSize = int(v, 'patch_size', w), mergeSize = int(v, 'spatial_merge_size', w);
  const windowSize = windowed ? int(v, 'window_size', w) : 0;
  refuseIf(windowed && windowSize % (patchSize * mergeSize) !== 0, w,
    `window_size ${windowSize} is not a multiple of patch_size · spatial_merge_size (${patchSize * mergeSize})`);
  const imageToken = cfg.image_token_id ?? 151_655;
  refuseIf(!(typeof imageToken === 'number' && Number.isInteger(imageToken) && imageToken >= 0), where,
    `image_token_id must be a token id, got ${JSON.stringify(imageToken)}`);
  return {
    windowed, hidden, heads, depth, patchSize, mergeSize, act, windowSize, fullBlocks: fullBlocks as number[],
    intermediate: windowed ? int(v, 'intermediate_size', w) : hidden * int(v, 'mlp_ratio', w),
    temporalPatchSize: int(v, 'temporal_patch_size', w), channels: Number(v.in_channels ?? v.in_chans ?? 3),
    outHidden: int(v, windowed ? 'out_hidden_size' : 'hidden_size', w), imageTokenId: imageToken as number,
  };
}

/** rope_parameters.mrope_section (transformers 5) or rope_scaling.mrope_section (the Hub's configs): frequencies per
 * (temporal, height, width) section, summing to head_dim / 2. */
export function mropeSection(text: Json, headDim: number, where: string): [number, number, number] {
  const rp = (text.rope_parameters ?? text.rope_scaling ?? {}) as Json;
  const s = rp.mrope_section;
  refuseIf(!Array.isArray(s) || s.length !== 3 || !s.every((x) => Number.isInteger(x) && (x as number) >= 0), where,
    `rope_parameters.mrope_section must be 3 frequency counts (temporal, height, width), got ${JSON.stringify(s)}`);
  const sum = (s as number[]).reduce((a, b) => a + b, 0);
  refuseIf(sum !== headDim / 2, where, `mrope_section ${JSON.stringify(s)} sums to ${sum}, not head_dim / 2 = ${headDim / 2}`);
  return s as [number, number, number];
}

/**
 * Whether the CUDA backend serves Qwen2-VL / Qwen2.5-VL and Gemma 3 images (WEFT_CUDA_VLM_IMAGES=1). Its kernels now
 * have multimodal RoPE (rope.cu with mrope_body.h: each frequency section rotated by its (t, h, w) coordinate, decode
 * graphs reading each step's positions) and Gemma 3's image mask in the prefill attention (PagedAttention::image_spans,
 * checked under the warp emulator against the CPU), but no GPU has run them end to end yet
 * (test/gpu/model-vlm.test.ts): until one has, images on cuda are opt-in and the default stays text-only.
 */
export function cudaVlmImages(): boolean {
  return process.env.WEFT_CUDA_VLM_IMAGES === '1';
}

/**
 * The spec a shard serves on `device`. By default a Qwen2-VL / Qwen2.5-VL or Gemma 3 model is served on cuda as its
 * language model alone (text positions make M-RoPE plain RoPE; text has no image mask): the shard then reports no
 * vision and images are refused by the coordinator. With `cudaImages` (default: cudaVlmImages()) the towers are kept
 * — they run on the CPU, as LLaVA's does, and the decoder's M-RoPE and image mask on the GPU.
 */
export function servedSpec(spec: ModelSpec, device: 'cpu' | 'cuda', cudaImages = cudaVlmImages()): ModelSpec {
  // Qwen3-VL's interleaved M-RoPE and deepstack rows are not in the CUDA kernels: text only there, always.
  if (device !== 'cuda' || (cudaImages && !spec.qwenVision?.qwen3)) return spec;
  if (spec.qwenVision) {
    const { qwenVision: _tower, mropeSection: _mrope, mropeInterleaved: _i, ...textOnly } = spec;
    return textOnly;
  }
  if (spec.vision?.siglip) {
    const { vision: _tower, ...textOnly } = spec;
    return textOnly;
  }
  return spec;
}
