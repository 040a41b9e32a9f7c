// The vision-language architectures' specs: each one's decoder (a Llama-family spec of its text config) with its
// vision tower's spec, or the decoder alone where the checkpoint has no tower. Split from spec.ts, which dispatches here.
import { refuseIf, visionLanguageText, type Json } from './config-fields.js';
import { idefics3Spec } from './idefics3-spec.js';
import { llavaSpec } from './llava-spec.js';
import { pixtralSpec } from './pixtral-spec.js';
import { mropeSection, qwenVisionSpec } from './qwen-vl-spec.js';
import { qwen3VlSpec } from './qwen3-vl-spec.js';
import type { Architecture, ModelSpec } from './spec.js';

/** A Llama-family decoder spec of a text config (spec.ts's llamaFamilySpec). */
export type LlamaFamilySpec = (arch: Architecture, text: Json) => ModelSpec;

/** The text configs' defaults a vision-language config's text_config sets only the differences from. */
export interface TextDefaults { llama: Json; mistral: Json; qwen2: Json }

/** The spec of a vision-language architecture, or null for any other. */
export function visionLanguageSpec(archName: string, cfg: Json, where: string, llamaFamily: LlamaFamilySpec,
  defaults: TextDefaults): ModelSpec | null {
  if (archName === 'LlavaForConditionalGeneration') {
    return llavaSpec(cfg, where, defaults, llamaFamily);
  }
  if (archName === 'Mistral3ForConditionalGeneration') {  // Mistral Small 3.1+: its language model and the Pixtral tower
    const spec: ModelSpec = { ...llamaFamily('mistral', visionLanguageText(cfg, defaults.mistral, where)), visionLanguage: true };
    const pixtral = pixtralSpec(cfg, where, spec, spec.normEps);
    return pixtral ? { ...spec, pixtral } : spec;  // no vision_config (or [IMG] outside the vocabulary): text only
  }
  if (archName === 'Qwen2VLForConditionalGeneration' || archName === 'Qwen2_5_VLForConditionalGeneration') {
    const text = qwenVlText(cfg, where);
    const spec = llamaFamily('qwen2', text);
    const qwenVision = qwenVisionSpec(archName, cfg, where);
    if (!qwenVision) return { ...spec, visionLanguage: true };  // no vision_config: its language model alone
    return { ...spec, visionLanguage: true, qwenVision, mropeSection: mropeSection(text, spec.rope?.rotaryDim ?? spec.headDim, where) };
  }
  if (archName === 'Idefics3ForConditionalGeneration' || archName === 'SmolVLMForConditionalGeneration') {
    return idefics3Spec(archName, cfg, where, defaults, (arch, text) => llamaFamily(arch, text));
  }
  if (archName === 'Qwen3VLForConditionalGeneration') return qwen3VlSpec(cfg, where, (text) => llamaFamily('qwen3', text));
  if (archName === 'Qwen3VLMoeForConditionalGeneration') {
    return qwen3VlSpec(cfg, where, (text) => llamaFamily('qwen3_moe', text), true);
  }
  return null;
}

// Qwen2-VL / Qwen2.5-VL text configs' defaults (Qwen2VLTextConfig, Qwen2_5_VLTextConfig: the same values).
const QWEN_VL_TEXT_DEFAULTS: Json = {
  vocab_size: 152_064, hidden_size: 8192, intermediate_size: 29_568, num_hidden_layers: 80, num_attention_heads: 64,
  num_key_value_heads: 8, hidden_act: 'silu', max_position_embeddings: 32_768, rms_norm_eps: 1e-5,
  use_sliding_window: false, rope_theta: 1_000_000, bos_token_id: 151_643, eos_token_id: 151_645,
};

/**
 * A Qwen2-VL / Qwen2.5-VL config's language model: a Qwen2 decoder whose text fields are at the top level (as
 * published) or in text_config (as transformers 5 saves it); tie_word_embeddings stays at the top. Its multimodal
 * RoPE ("mrope") gives every text token the same position in all three sections, which is plain RoPE — so text
 * requests run it as rope type default, as transformers' text config does.
 */
function qwenVlText(cfg: Json, where: string): Json {
  const nested = cfg.text_config;
  refuseIf(nested !== undefined && (nested === null || typeof nested !== 'object'), where, 'text_config must be an object');
  const { vision_config: _vision, text_config: _text, ...flat } = cfg;
  const text: Json = { ...QWEN_VL_TEXT_DEFAULTS, ...flat, ...(nested as Json | undefined), tie_word_embeddings: cfg.tie_word_embeddings === true };
  for (const key of ['rope_parameters', 'rope_scaling']) {
    const rp = text[key] as Json | undefined;
    if (rp && (rp.rope_type ?? rp.type) === 'mrope') text[key] = { ...rp, rope_type: 'default', type: 'default' };
  }
  return text;
}
