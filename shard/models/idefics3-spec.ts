// Idefics3 and SmolVLM (Idefics3ForConditionalGeneration, SmolVLMForConditionalGeneration: SmolVLM / SmolVLM2): a
// SigLIP-like vision tower (modeling_idefics3.py's Idefics3VisionTransformer: patch convolution with bias, learned
// position embeddings, post_layernorm) whose last hidden state the connector pixel-shuffles by scale_factor and
// projects without bias (modality_projection) into a Llama decoder (text_config), one row per <image> token.
//
// The processor splits an image into square tiles of max_image_size (rows × cols of them plus a global tile, or the
// global tile alone) and writes image_seq_len <image> tokens per tile: weft's protocol takes each tile as one image
// ([3, S, S]), whose ImageRef covers its run of tokensPerImage <image> tokens. Tiles are always S × S (the processor
// resizes to multiples of S and pads nothing within one prompt), so patch_attention_mask is all ones and weft needs
// none. Positions: Idefics3VisionEmbeddings buckets patch i of a full tile's n × n grid at i·(1/n) in float32 against
// torch.arange(1/n, 1, 1/n): patch i's own position for the published grids (Idefics3-8B 26, SmolVLM 32) and any power
// of two, which weft uses (vision-weights.ts). The tower runs on the CPU whatever --device is, as LLaVA's.
import { int, refuseIf, visionLanguageText, type Json } from './config-fields.js';
import type { TextDefaults, VisionActivation, VisionSpec } from './llava-spec.js';
import type { ModelSpec } from './spec.js';

// Idefics3VisionConfig / SmolVLMVisionConfig defaults (transformers 5): the same values.
const VISION_DEFAULTS: Json = {
  hidden_size: 1152, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 16, num_channels: 3,
  image_size: 224, patch_size: 32, hidden_act: 'gelu_pytorch_tanh', layer_norm_eps: 1e-6,
};
const ACTIVATIONS: Record<string, VisionActivation> = {
  gelu_pytorch_tanh: 'gelu_tanh', gelu_new: 'gelu_tanh', gelu_fast: 'gelu_tanh', gelu: 'gelu', quick_gelu: 'quick_gelu',
  relu: 'relu', silu: 'silu',
};

/** Idefics3's / SmolVLM's spec: the Llama decoder of text_config with the tower and connector (spec.vision.idefics3). */
export function idefics3Spec(archName: string, cfg: Json, where: string, defaults: TextDefaults,
  llamaFamily: (arch: 'llama', text: Json) => ModelSpec): ModelSpec {
  const nested = cfg.text_config ?? {};
  refuseIf(typeof nested !== 'object' || nested === null, where, 'text_config must be an object');
  const type = String((nested as Json).model_type ?? 'llama');
  refuseIf(type !== 'llama', where, `${archName} with a '${type}' language model is not supported (text_config.model_type: llama)`);
  // Idefics3Config / SmolVLMConfig without text_config: LlamaConfig(rms_norm_eps=1e-5).
  const text = visionLanguageText({ ...cfg, text_config: { rms_norm_eps: 1e-5, ...(nested as Json) } }, defaults.llama, where);
  // The top-level tie_word_embeddings (default false), or the text config's when that one ties; a stored lm_head wins.
  text.tie_word_embeddings = cfg.tie_word_embeddings === true || text.tie_word_embeddings === true;
  const spec = llamaFamily('llama', text);
  const vision = idefics3Vision(cfg, where, spec.vocab);
  return { ...spec, visionLanguage: true, ...(vision ? { vision } : {}) };
}

function idefics3Vision(cfg: Json, where: string, vocab: number): VisionSpec | null {
  const given = (cfg.vision_config ?? {}) as Json;
  refuseIf(typeof given !== 'object' || given === null, where, 'vision_config must be an object');
  const type = String(given.model_type ?? 'idefics3_vision');
  refuseIf(type !== 'idefics3_vision' && type !== 'smolvlm_vision', where,
    `a '${type}' vision tower is not supported (idefics3_vision or smolvlm_vision)`);
  const v: Json = { ...VISION_DEFAULTS, ...given };
  const w = `${where} vision_config`;
  const hidden = int(v, 'hidden_size', w), heads = int(v, 'num_attention_heads', w), layers = int(v, 'num_hidden_layers', w);
  refuseIf(hidden % heads !== 0, w, `hidden_size ${hidden} is not a multiple of num_attention_heads ${heads}`);
  refuseIf(typeof v.image_size !== 'number' || typeof v.patch_size !== 'number', w,
    'image_size and patch_size must be numbers (non-square tiles are not supported)');
  const imageSize = int(v, 'image_size', w), patchSize = int(v, 'patch_size', w);
  refuseIf(imageSize % patchSize !== 0, w, `image_size ${imageSize} is not a multiple of patch_size ${patchSize}`);
  const act = ACTIVATIONS[String(v.hidden_act)];
  refuseIf(act === undefined, w, `hidden_act '${String(v.hidden_act)}' is not supported`);
  const scale = cfg.scale_factor ?? 2, side = imageSize / patchSize;
  refuseIf(!(typeof scale === 'number' && Number.isInteger(scale) && scale > 0 && side % scale === 0), where,
    `scale_factor ${JSON.stringify(scale)} must be a positive integer dividing the ${side} patches a side`);
  const imageToken = cfg.image_token_id ?? 128_257;
  refuseIf(!(typeof imageToken === 'number' && Number.isInteger(imageToken) && imageToken >= 0), where,
    `image_token_id must be a token id, got ${JSON.stringify(imageToken)}`);
  if ((imageToken as number) >= vocab) return null;  // outside the vocabulary: served text-only
  return {
    idefics3: { scaleFactor: scale as number }, hidden, heads, intermediate: int(v, 'intermediate_size', w), layers,
    layersRun: layers, imageSize, patchSize, channels: int(v, 'num_channels', w), normEps: Number(v.layer_norm_eps), act,
    featureLayers: [layers], dropCls: false, projectorAct: act, projectorBias: false, imageTokenId: imageToken as number,
    tokensPerImage: (side / (scale as number)) ** 2,
  };
}
