// LLaVA-1.5-style vision-language models (LlavaForConditionalGeneration): a CLIP vision tower whose selected hidden
// states go through the multi-modal projector, one row per image placeholder token, in place of those tokens'
// embeddings in the language model (a Llama, Mistral or Qwen2 decoder: text_config). What transformers'
// configuration_llava.py / modeling_llava.py define is read here; model/vision.cc computes it.
import { int, refuseIf, visionLanguageText, type Json } from './config-fields.js';
import type { ModelSpec } from './spec.js';

export type VisionActivation = 'quick_gelu' | 'gelu' | 'gelu_tanh' | 'relu' | 'silu';

/** The image encoder of a vision-language model (CLIP vision tower + LLaVA projector; or, `siglip`, Gemma 3's
 * SigLIP tower + projector: gemma3-vision-spec.ts). */
export interface VisionSpec {
  /** Gemma 3: a SigLIP tower (every layer run, post_layernorm) whose patch grid is pooled to tokensPerImage rows, and
   * whose image tokens attend to each other both ways in the language model (no prefill chunk ends inside one). */
  siglip?: true;
  /** Idefics3 / SmolVLM (idefics3-spec.ts): a SigLIP-like tower (every layer, post_layernorm; no class row) whose
   * patches the connector pixel-shuffles by scaleFactor and projects (modality_projection, no bias); causal. */
  idefics3?: { scaleFactor: number };
  hidden: number;
  heads: number;
  intermediate: number;
  /** The tower's encoder layers (its config); only the first `layersRun` are loaded and computed. */
  layers: number;
  /** The deepest hidden state a feature layer selects: the layers after it never reach a feature. */
  layersRun: number;
  imageSize: number;
  patchSize: number;
  channels: number;
  normEps: number;
  act: VisionActivation;
  /** Indices into the tower's hidden states (0: embeddings after pre_layrnorm, i: after layer i), concatenated in order. */
  featureLayers: number[];
  /** vision_feature_select_strategy 'default': the class row is dropped ('full' keeps it). */
  dropCls: boolean;
  projectorAct: VisionActivation;
  projectorBias: boolean;
  /** The placeholder token an image's rows replace (image_token_index). */
  imageTokenId: number;
  /** Placeholder tokens (feature rows) per image: the patches, plus the class row with 'full'. */
  tokensPerImage: number;
}

/** The text models' config defaults, by text_config.model_type (a LLaVA text_config sets only what differs). */
export type TextDefaults = Record<'llama' | 'mistral' | 'qwen2', Json>;

// LlamaConfig's defaults (transformers 5): llava-hf/llava-1.5-7b-hf's text_config relies on them.
export const LLAMA_DEFAULTS: Json = {
  vocab_size: 32000, hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32,
  hidden_act: 'silu', max_position_embeddings: 2048, rms_norm_eps: 1e-6, tie_word_embeddings: false, bos_token_id: 1,
  eos_token_id: 2,
};
// Qwen2Config's defaults.
export const QWEN2_DEFAULTS: Json = {
  vocab_size: 151_936, hidden_size: 4096, intermediate_size: 22_016, num_hidden_layers: 32, num_attention_heads: 32,
  num_key_value_heads: 32, hidden_act: 'silu', max_position_embeddings: 32_768, rms_norm_eps: 1e-6,
  tie_word_embeddings: false, use_sliding_window: false, sliding_window: 4096,
};
// CLIPVisionConfig's defaults, as LlavaConfig fills a missing vision_config (the CLIP ViT-L/14-336 of LLaVA-1.5).
const LLAVA_VISION_DEFAULTS: Json = {
  hidden_size: 1024, intermediate_size: 4096, num_hidden_layers: 24, num_attention_heads: 16, image_size: 336,
  patch_size: 14,
};
const CLIP_VISION_DEFAULTS: Json = {
  hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, num_channels: 3,
  image_size: 224, patch_size: 32, hidden_act: 'quick_gelu', layer_norm_eps: 1e-5,
};
const ACTIVATIONS: Record<string, VisionActivation> = {
  quick_gelu: 'quick_gelu', gelu: 'gelu', gelu_new: 'gelu_tanh', gelu_pytorch_tanh: 'gelu_tanh', relu: 'relu', silu: 'silu',
};

/**
 * A LlavaForConditionalGeneration config: its language model's spec (built by `textSpec` from text_config over the
 * text model's defaults) with the vision encoder's. `visionLanguage` makes the loader find the language model
 * under model.language_model. / language_model.model. and adapter paths resolve the same way.
 */
export function llavaSpec(cfg: Json, where: string, defaults: TextDefaults,
  textSpec: (arch: 'llama' | 'mistral' | 'qwen2', text: Json) => ModelSpec): ModelSpec {
  const nested = (cfg.text_config ?? {}) as Json;
  refuseIf(typeof nested !== 'object' || nested === null, where, 'text_config must be an object');
  const type = String(nested.model_type ?? 'llama');
  refuseIf(type !== 'llama' && type !== 'mistral' && type !== 'qwen2', where,
    `LLaVA with a '${type}' language model is not supported (text_config.model_type: llama, mistral or qwen2)`);
  const arch = type as 'llama' | 'mistral' | 'qwen2';
  const text = visionLanguageText({ ...cfg, text_config: nested }, defaults[arch], where);
  // LlavaConfig: the top-level tie_word_embeddings, or the text config's when that one ties.
  text.tie_word_embeddings = cfg.tie_word_embeddings === true || text.tie_word_embeddings === true;
  const spec = textSpec(arch, text);
  // Granite-like multipliers or Gemma's scale would apply to the image rows too (they scale inputs_embeds inside the
  // text model); the three text models served here have none.
  refuseIf(spec.embedScale !== 1, where, 'a text model that scales its input embeddings is not supported under LLaVA');
  return { ...spec, visionLanguage: true, vision: llavaVision(cfg, where, spec.hidden) };
}

function llavaVision(cfg: Json, where: string, textHidden: number): VisionSpec {
  const given = cfg.vision_config as Json | undefined | null;
  refuseIf(given !== undefined && given !== null && typeof given !== 'object', where, 'vision_config must be an object');
  const type = String(given?.model_type ?? 'clip_vision_model');
  refuseIf(type !== 'clip_vision_model', where, `LLaVA with a '${type}' vision tower is not supported (only clip_vision_model)`);
  const v: Json = { ...CLIP_VISION_DEFAULTS, ...(given ?? LLAVA_VISION_DEFAULTS) };
  const w = `${where} vision_config`;
  const hidden = int(v, 'hidden_size', w), heads = int(v, 'num_attention_heads', w), layers = int(v, 'num_hidden_layers', w);
  refuseIf(hidden % heads !== 0, w, `hidden_size ${hidden} is not a multiple of num_attention_heads ${heads}`);
  refuseIf(typeof v.image_size !== 'number' || typeof v.patch_size !== 'number', w,
    'image_size and patch_size must be numbers (non-square images are not supported)');
  const imageSize = int(v, 'image_size', w), patchSize = int(v, 'patch_size', w);
  refuseIf(imageSize % patchSize !== 0, w, `image_size ${imageSize} is not a multiple of patch_size ${patchSize}`);
  const act = ACTIVATIONS[String(v.hidden_act)];
  refuseIf(act === undefined, w, `hidden_act '${String(v.hidden_act)}' is not supported`);
  const projectorAct = ACTIVATIONS[String(cfg.projector_hidden_act ?? 'gelu')];
  refuseIf(projectorAct === undefined, where, `projector_hidden_act '${String(cfg.projector_hidden_act)}' is not supported`);
  const strategy = cfg.vision_feature_select_strategy ?? 'default';
  refuseIf(strategy !== 'default' && strategy !== 'full', where,
    `vision_feature_select_strategy '${String(strategy)}' is not supported (default or full)`);
  const featureLayers = featureLayerIndices(cfg.vision_feature_layer ?? -2, layers, where);
  const imageToken = cfg.image_token_index ?? cfg.image_token_id ?? 32000;
  refuseIf(!(typeof imageToken === 'number' && Number.isInteger(imageToken) && imageToken >= 0), where,
    `image_token_index must be a token id, got ${JSON.stringify(imageToken)}`);
  const patches = (imageSize / patchSize) ** 2;
  return {
    hidden, heads, intermediate: int(v, 'intermediate_size', w), layers, layersRun: Math.max(...featureLayers),
    imageSize, patchSize, channels: int(v, 'num_channels', w), normEps: Number(v.layer_norm_eps), act, featureLayers,
    dropCls: strategy === 'default', projectorAct, projectorBias: cfg.multimodal_projector_bias !== false,
    imageTokenId: imageToken as number, tokensPerImage: patches + (strategy === 'default' ? 0 : 1),
  };
}

/**
 * vision_feature_layer (an index or a list) as indices into the tower's layers + 1 hidden states, where 0 is the
 * embeddings after pre_layrnorm and a negative index counts from the end (Python's indexing of hidden_states).
 */
export function featureLayerIndices(given: unknown, layers: number, where: string): number[] {
  const list = Array.isArray(given) ? given : [given];
  refuseIf(list.length === 0, where, 'vision_feature_layer must name at least one layer');
  return list.map((x) => {
    refuseIf(!(typeof x === 'number' && Number.isInteger(x)), where, `vision_feature_layer must be integers, got ${JSON.stringify(given)}`);
    const i = (x as number) < 0 ? layers + 1 + (x as number) : (x as number);
    refuseIf(i < 0 || i > layers, where, `vision_feature_layer ${String(x)} is outside the tower's ${layers + 1} hidden states`);
    return i;
  });
}
