// What a model directory's tensor names say that config.json does not: a causal-LM architecture saved from its base
// model. Qwen/Qwen3-Embedding-{0.6B,4B,8B} name Qwen3ForCausalLM in config.json but were saved from Qwen3Model: no
// `model.` prefix and no lm_head (4B/8B untied) — the same checkpoint a `*Model` architecture names (spec.baseModel),
// so they are served the same way: the decoder alone, for the embedding routes.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { WeightStore } from '../formats/index.js';
import type { ModelSpec } from './spec.js';

/** Families whose decoder lives under `model.` in a causal-LM checkpoint (the only prefix this looks for). */
const MODEL_PREFIXED = (spec: ModelSpec) => !['gpt2', 'gptj', 'gpt_neox', 'phi'].includes(spec.architecture) && !spec.visionLanguage;

/**
 * `spec` as the checkpoint in `modelDir` is stored: a base-model layout (`embed_tokens.weight`, no `model.` prefix)
 * under a causal-LM architecture becomes a base-model spec — embedding-only when it has no lm_head of its own and its
 * config does not tie one to the embedding (an untied head would be random: transformers initialises it). A tied one
 * still generates, its head the embedding, as transformers runs it. Directories without weights are left alone.
 */
export function withCheckpointLayout(spec: ModelSpec, modelDir: string): ModelSpec {
  if (spec.baseModel || !MODEL_PREFIXED(spec)) return spec;
  if (!existsSync(join(modelDir, 'model.safetensors')) && !existsSync(join(modelDir, 'model.safetensors.index.json'))) return spec;
  let names: Set<string>;
  try {
    const store = WeightStore.openDir(modelDir);
    names = new Set(store.names());
    store.close();
  } catch {
    return spec;  // an unreadable checkpoint: the loader reports it, naming the file
  }
  if (names.has('model.embed_tokens.weight') || !names.has('embed_tokens.weight')) return spec;
  if (names.has('lm_head.weight') || spec.tieEmbeddings) return spec;  // the loader finds the decoder unprefixed
  return { ...spec, tieEmbeddings: true, lmHeadBias: false, baseModel: true };
}
