// Mistral 3's images (Mistral3ForConditionalGeneration: Mistral Small 3.1 / 3.2): a Pixtral vision tower
// (configuration_pixtral.py) run on each image at its own size, whose selected hidden state Mistral3's projector
// normalises, merges (spatial_merge_size² neighbouring patches into one row) and projects into the language model, in
// place of the image's [IMG] tokens; the image's range also holds a row-break token after each row of [IMG] tokens
// ([IMG_BREAK], the last one [IMG_END]), which keep their own embeddings (ModelInfo.vision.rowBreaks). The decoder's
// attention stays causal. model/pixtral_vision.cc computes the tower; pixtral-weights.ts loads it.
import { cudaVlmImages } from './qwen-vl-spec.js';
import { int, refuseIf, type Json } from './config-fields.js';
import { featureLayerIndices, type VisionActivation } from './llava-spec.js';
import type { ModelSpec } from './spec.js';

/** Mistral 3's image encoder (kernels/src/model/pixtral_vision.h). */
export interface PixtralSpec {
  hidden: number;
  heads: number;
  intermediate: number;
  /** The tower's blocks (its config); only the first `layersRun` are loaded and computed. */
  layers: number;
  /** The selected hidden state (vision_feature_layer: 0 = after ln_pre, i = after block i). */
  layersRun: number;
  patchSize: number;
  /** image_size: the rotary table covers image_size / patch_size patches a side. */
  imageSize: number;
  channels: number;
  /** spatial_merge_size: an image's sides are multiples of patchSize · mergeSize pixels. */
  mergeSize: number;
  /** The tower's SwiGLU activation (hidden_act). */
  act: VisionActivation;
  projectorAct: VisionActivation;
  projectorBias: boolean;
  ropeTheta: number;
  /** The projector's RMSNorm epsilon: text_config.rms_norm_eps. */
  normEps: number;
  /** The [IMG] token (image_token_index): the positions of an image's range that take its feature rows. */
  imageTokenId: number;
}

// PixtralVisionConfig's defaults (a given vision_config fills the rest from these) and Mistral3Config's vision_config
// when it has none.
const PIXTRAL_DEFAULTS: Json = {
  hidden_size: 1024, intermediate_size: 4096, num_hidden_layers: 24, num_attention_heads: 16, num_channels: 3,
  image_size: 1024, patch_size: 16, hidden_act: 'gelu',
};
const ACTIVATIONS: Record<string, VisionActivation> = {
  gelu: 'gelu', gelu_new: 'gelu_tanh', gelu_pytorch_tanh: 'gelu_tanh', gelu_fast: 'gelu_tanh', quick_gelu: 'quick_gelu',
  relu: 'relu', silu: 'silu',
};

/**
 * The image encoder of a Mistral3ForConditionalGeneration config, or null when weft serves it text-only: no
 * vision_config (as before), or an [IMG] token outside the vocabulary (weft's batches take vocabulary ids only).
 */
export function pixtralSpec(cfg: Json, where: string, text: Pick<ModelSpec, 'vocab' | 'hidden'>, textEps: number): PixtralSpec | null {
  const given = cfg.vision_config as Json | undefined | null;
  if (given === undefined || given === null) return null;
  refuseIf(typeof given !== 'object', where, 'vision_config must be an object');
  const type = String(given.model_type ?? 'pixtral');
  refuseIf(type !== 'pixtral', where, `Mistral 3 with a '${type}' vision tower is not supported (only pixtral)`);
  const v: Json = { ...PIXTRAL_DEFAULTS, ...given };
  const w = `${where} vision_config`;
  const hidden = int(v, 'hidden_size', w), heads = int(v, 'num_attention_heads', w), layers = int(v, 'num_hidden_layers', w);
  // PixtralAttention splits hidden_size over the heads (PixtralVisionConfig sets head_dim so); the 2-D rotary
  // embedding gives each head's quarters to rows and columns.
  refuseIf(hidden % heads !== 0 || (hidden / heads) % 4 !== 0, w,
    `the vision heads' size (${hidden} / ${heads}) must be a whole multiple of 4 (the 2-D rotary embedding's quarters)`);
  refuseIf(typeof v.image_size !== 'number' || typeof v.patch_size !== 'number', w,
    'image_size and patch_size must be numbers (non-square patches are not supported)');
  const imageSize = int(v, 'image_size', w), patchSize = int(v, 'patch_size', w);
  refuseIf(imageSize < patchSize, w, `image_size ${imageSize} is smaller than patch_size ${patchSize}`);
  const act = ACTIVATIONS[String(v.hidden_act)];
  refuseIf(act === undefined, w, `hidden_act '${String(v.hidden_act)}' is not supported`);
  const rp = (v.rope_parameters ?? {}) as Json;
  const ropeType = rp.rope_type ?? rp.type ?? 'default';
  refuseIf(ropeType !== 'default', w, `rope type '${String(ropeType)}' is not supported (PixtralRotaryEmbedding: default only)`);
  const ropeTheta = Number(rp.rope_theta ?? v.rope_theta ?? 10000);
  refuseIf(!(ropeTheta > 0), w, `rope_theta must be a positive number, got ${JSON.stringify(rp.rope_theta ?? v.rope_theta)}`);
  const projectorAct = ACTIVATIONS[String(cfg.projector_hidden_act ?? 'gelu')];
  refuseIf(projectorAct === undefined, where, `projector_hidden_act '${String(cfg.projector_hidden_act)}' is not supported`);
  const chosen = cfg.vision_feature_layer ?? -1;
  // Mistral3's projector normalises one layer's width (its norm is vision hidden_size wide): a list of several layers
  // fails in transformers too.
  refuseIf(Array.isArray(chosen) && chosen.length !== 1, where,
    `vision_feature_layer ${JSON.stringify(chosen)}: Mistral 3's projector takes one layer's features (its norm is ` +
    `${hidden} wide), not ${Array.isArray(chosen) ? chosen.length : 0}`);
  const [layersRun] = featureLayerIndices(chosen, layers, where);
  const mergeSize = cfg.spatial_merge_size ?? 2;
  refuseIf(!(Number.isInteger(mergeSize) && (mergeSize as number) > 0), where,
    `spatial_merge_size must be a positive integer, got ${JSON.stringify(mergeSize)}`);
  const imageToken = cfg.image_token_index ?? cfg.image_token_id ?? 10;
  refuseIf(!(typeof imageToken === 'number' && Number.isInteger(imageToken) && imageToken >= 0), where,
    `image_token_index must be a token id, got ${JSON.stringify(imageToken)}`);
  if ((imageToken as number) >= text.vocab) return null;
  return {
    hidden, heads, intermediate: int(v, 'intermediate_size', w), layers, layersRun: layersRun!, patchSize, imageSize,
    channels: int(v, 'num_channels', w), mergeSize: mergeSize as number, act, projectorAct,
    projectorBias: cfg.multimodal_projector_bias === true, ropeTheta, normEps: textEps, imageTokenId: imageToken as number,
  };
}

/**
 * The spec a shard serves on `device`, as far as Mistral 3 goes: the CUDA backend is served the language model alone
 * (as before its images were served), like Qwen2-VL and Gemma 3 there; the shard then reports no vision and the
 * coordinator refuses images. Composed with qwen-vl-spec.ts's servedSpec where the engine opens a model.
 */
export function pixtralServedSpec(spec: ModelSpec, device: 'cpu' | 'cuda', cudaImages = cudaVlmImages()): ModelSpec {
  if (device !== 'cuda' || !spec.pixtral || cudaImages) return spec;
  const { pixtral: _tower, ...textOnly } = spec;
  return textOnly;
}
