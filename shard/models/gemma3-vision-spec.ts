// Gemma 3's images (Gemma3ForConditionalGeneration, 4B-27B): a SigLIP vision tower (configuration_siglip.py) whose
// last hidden state (post_layernorm, every patch) Gemma3MultiModalProjector average-pools to mm_tokens_per_image rows,
// RMS-normalises (x · (1 + w)) and projects into the language model, in place of the <image_soft_token> placeholders.
// In the language model an image's tokens attend to each other both ways (token_type_ids' blocks): the shard passes
// each image's span to the attention, and the coordinator never ends a prefill chunk inside an image
// (ModelInfo.vision.bidirectionalImages). model/vision.cc computes the tower (VisionTower::kSiglipGemma3).
import { int, refuseIf, type Json } from './config-fields.js';
import type { VisionActivation, VisionSpec } from './llava-spec.js';

// SiglipVisionConfig's defaults (transformers 5): a Gemma3Config without vision_config gets these.
const SIGLIP_VISION_DEFAULTS: Json = {
  hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, num_channels: 3,
  image_size: 224, patch_size: 16, hidden_act: 'gelu_pytorch_tanh', layer_norm_eps: 1e-6,
};
const ACTIVATIONS: Record<string, VisionActivation> = {
  gelu_pytorch_tanh: 'gelu_tanh', gelu_new: 'gelu_tanh', gelu_fast: 'gelu_tanh', gelu: 'gelu', quick_gelu: 'quick_gelu',
  relu: 'relu', silu: 'silu',
};

/**
 * The image encoder of a Gemma3ForConditionalGeneration config, or null when weft serves it text-only: no
 * vision_config (as before), or an image token outside the vocabulary (transformers then embeds it as token 0; weft's
 * batches take vocabulary ids only).
 */
export function gemma3VisionSpec(cfg: Json, where: string, vocab: number): VisionSpec | null {
  const given = cfg.vision_config as Json | undefined | null;
  if (given === undefined || given === null) return null;
  refuseIf(typeof given !== 'object', where, 'vision_config must be an object');
  const type = String(given.model_type ?? 'siglip_vision_model');
  refuseIf(type !== 'siglip_vision_model', where, `Gemma 3 with a '${type}' vision tower is not supported (only siglip_vision_model)`);
  const v: Json = { ...SIGLIP_VISION_DEFAULTS, ...given };
  const w = `${where} vision_config`;
  const hidden = int(v, 'hidden_size', w), heads = int(v, 'num_attention_heads', w), layers = int(v, 'num_hidden_layers', w);
  refuseIf(hidden % heads !== 0, w, `hidden_size ${hidden} is not a multiple of num_attention_heads ${heads}`);
  refuseIf(typeof v.image_size !== 'number' || typeof v.patch_size !== 'number', w,
    'image_size and patch_size must be numbers (non-square images are not supported)');
  const imageSize = int(v, 'image_size', w), patchSize = int(v, 'patch_size', w);
  refuseIf(imageSize % patchSize !== 0, w, `image_size ${imageSize} is not a multiple of patch_size ${patchSize}`);
  const act = ACTIVATIONS[String(v.hidden_act)];
  refuseIf(act === undefined, w, `hidden_act '${String(v.hidden_act)}' is not supported`);
  const tokens = cfg.mm_tokens_per_image ?? 256;
  const side = imageSize / patchSize, perSide = Math.round(Math.sqrt(Number(tokens)));
  refuseIf(!(Number.isInteger(tokens) && perSide * perSide === tokens && side % perSide === 0), where,
    `mm_tokens_per_image ${JSON.stringify(tokens)} must be a square whose side divides the ${side} patches a side`);
  const imageToken = cfg.image_token_index ?? cfg.image_token_id ?? 262_144;
  refuseIf(!(typeof imageToken === 'number' && Number.isInteger(imageToken) && imageToken >= 0), where,
    `image_token_index must be a token id, got ${JSON.stringify(imageToken)}`);
  if ((imageToken as number) >= vocab) return null;
  return {
    siglip: true, hidden, heads, intermediate: int(v, 'intermediate_size', w), layers, layersRun: layers, imageSize,
    patchSize, channels: int(v, 'num_channels', w), normEps: Number(v.layer_norm_eps), act, featureLayers: [layers],
    dropCls: false, projectorAct: act, projectorBias: false, imageTokenId: imageToken as number,
    tokensPerImage: tokens as number,
  };
}
