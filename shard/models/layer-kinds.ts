// Which layers of a decoder slide an attention window and which rotate q/k, as each architecture's transformers
// config decides it (layer_types, sliding_window_pattern, max_window_layers, no_rope_layers, …).
import { int, refuseIf, type Json } from './config-fields.js';
import type { Architecture } from './spec.js';

export interface Windows { window: number; layerSliding: boolean[] | null }

/**
 * Per layer whether it slides, from `layer_types` (or `fallback`'s kinds per layer), each full_attention or
 * sliding_attention — checked here for every architecture that has them.
 */
export function slidingLayers(cfg: Json, where: string, fallback: (layer: number) => boolean): boolean[] {
  const layers = int(cfg, 'num_hidden_layers', where);
  const types = Array.isArray(cfg.layer_types) ? (cfg.layer_types as unknown[]).map(String)
    : Array.from({ length: layers }, (_, i) => (fallback(i) ? 'sliding_attention' : 'full_attention'));
  refuseIf(types.length !== layers || types.some((t) => t !== 'sliding_attention' && t !== 'full_attention'), where,
    `layer_types ${JSON.stringify(types)} must give full_attention or sliding_attention for each of the ${layers} layers`);
  return types.map((t) => t === 'sliding_attention');
}

/** A window on the layers `sliding` marks: none when none slides (or window 0), every layer alike when all do. */
function windowOn(window: number, sliding: boolean[]): Windows {
  if (window === 0 || !sliding.some(Boolean)) return { window: 0, layerSliding: null };
  return { window, layerSliding: sliding.every(Boolean) ? null : sliding };
}

/**
 * The attention window of a Llama-family model's layers, as transformers applies it: Qwen2/Qwen3 (and the Qwen-VL
 * text models) slide only when use_sliding_window is set, in the layers layer_types marks (by default those from
 * max_window_layers on); Mistral, Mixtral, Phi-3, PhiMoE (and StarCoder2, its own spec) slide in every layer; Llama, Granite and
 * SmolLM3's attention has no window (a sliding_window field there is ignored, as transformers ignores it).
 */
export function attentionWindows(arch: Architecture, cfg: Json, where: string): Windows {
  const sw = typeof cfg.sliding_window === 'number' && cfg.sliding_window > 0 ? cfg.sliding_window : 0;
  if (arch === 'qwen2' || arch === 'qwen2_moe' || arch === 'qwen3') {
    if (cfg.use_sliding_window !== true || sw === 0) return { window: 0, layerSliding: null };
    const from = typeof cfg.max_window_layers === 'number' ? cfg.max_window_layers : 28;  // Qwen2Config's default
    return windowOn(sw, slidingLayers(cfg, where, (i) => i >= from));
  }
  if (arch === 'exaone4') return exaone4Windows(cfg, where);
  if (arch === 'gpt_oss') return windowOn(sw, slidingLayers(cfg, where, (i) => i % 2 === 0));  // GptOssConfig: sliding, full, …
  if (arch === 'olmo3') {  // Olmo3Config: layer_types, by default sliding except every fourth layer
    const window = typeof cfg.sliding_window === 'number' ? cfg.sliding_window : 4096;
    return windowOn(window, slidingLayers(cfg, where, (i) => (i + 1) % 4 !== 0));
  }
  if (arch === 'dots1') {  // Dots1Config: layer_types, by default sliding from max_window_layers on when sliding_window is set
    const from = typeof cfg.max_window_layers === 'number' ? cfg.max_window_layers : 62;
    return windowOn(sw, slidingLayers(cfg, where, (i) => sw > 0 && i >= from));
  }
  if (arch === 'qwen3_moe') {  // Qwen3MoeConfig: the window on every layer, with use_sliding_window only
    return { window: cfg.use_sliding_window === true ? sw : 0, layerSliding: null };
  }
  if (arch === 'smollm3') {
    refuseIf(cfg.use_sliding_window === true, where, 'use_sliding_window=true (sliding windows on the NoPE layers) is not supported');
    return { window: 0, layerSliding: null };
  }
  if (arch !== 'mistral' && arch !== 'mixtral' && arch !== 'phi3' && arch !== 'phimoe') return { window: 0, layerSliding: null };
  const layerTypes = Array.isArray(cfg.layer_types) ? (cfg.layer_types as unknown[]).map(String) : null;
  if (layerTypes && new Set(layerTypes).size > 1) refuseIf(true, where, `layer_types ${JSON.stringify(layerTypes)} mixes attention kinds; not supported`);
  return { window: sw, layerSliding: null };
}

// EXAONE 4 (Exaone4Config): layer_types, else sliding_window_pattern — every n-th layer global (an int, default 4), or
// a cycle of 'L' (local: the window) and 'G' (global) letters such as "LLLG"; no window at all without sliding_window.
// Its layerSliding is kept even when every layer slides: the RoPE follows it (only the sliding layers rotate).
function exaone4Windows(cfg: Json, where: string): Windows {
  const window = typeof cfg.sliding_window === 'number' && cfg.sliding_window > 0 ? cfg.sliding_window : 0;
  if (window === 0) return { window: 0, layerSliding: null };
  const pattern = cfg.sliding_window_pattern ?? 4;
  refuseIf(!(typeof pattern === 'string' ? /^[LG]+$/.test(pattern) : Number.isInteger(pattern) && (pattern as number) > 0), where,
    `sliding_window_pattern must be a positive integer or a string of L and G, got ${JSON.stringify(pattern)}`);
  const sliding = slidingLayers(cfg, where, (i) => (typeof pattern === 'string'
    ? pattern[i % pattern.length] === 'L' : (i + 1) % (pattern as number) !== 0));
  if (!sliding.some(Boolean)) return { window: 0, layerSliding: null };
  return { window, layerSliding: sliding };
}

// SmolLM3Config: no_rope_layers[l] = 1 where layer l rotates q and k, 0 where it does not (NoPE); when absent, every
// no_rope_layer_interval-th layer (default 4) has no RoPE.
export function smollm3RopeLayers(cfg: Json, where: string): boolean[] {
  const layers = int(cfg, 'num_hidden_layers', where);
  const given = cfg.no_rope_layers;
  if (given !== undefined && given !== null) {
    refuseIf(!Array.isArray(given) || given.length !== layers || !given.every((v) => v === 0 || v === 1), where,
      `no_rope_layers must list 0 or 1 for each of the ${layers} layers, got ${JSON.stringify(given)}`);
    return (given as number[]).map((v) => v === 1);
  }
  const interval = typeof cfg.no_rope_layer_interval === 'number' ? cfg.no_rope_layer_interval : 4;
  refuseIf(!(Number.isInteger(interval) && interval > 0), where, `no_rope_layer_interval must be a positive integer`);
  return Array.from({ length: layers }, (_, l) => (l + 1) % interval !== 0);
}
