// What a model directory's tensor names say that config.json does not: a causal-LM architecture saved from its base
// model. Qwen/Qwen3-Embedding-{0.6B,4B,8B} name Qwen3ForCausalLM in config.json but were saved from Qwen3Model: no
// `model.` prefix and no lm_head (4B/8B untied) — the same checkpoint a `*Model` architecture names (spec.baseModel),
// so they are served the same way: the decoder alone, for the embedding routes.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile } from '../formats/index.js';
import { NO_BASE_MODEL_LAYOUT } from './config-fields.js';
import type { ModelSpec } from './spec.js';


/**
 * `spec` as the checkpoint in `modelDir` is stored: a base-model layout (`embed_tokens.weight`, no `model.` prefix)
 * under a causal-LM architecture becomes a base-model spec — embedding-only when it has no lm_head of its own and its
 * config does not tie one to the embedding (an untied head would be random: transformers initialises it). A tied one
 * still generates, its head the embedding, as transformers runs it. Directories without weights are left alone.
 */
export function withCheckpointLayout(spec: ModelSpec, modelDir: string): ModelSpec {
  if (spec.baseModel || spec.visionLanguage || NO_BASE_MODEL_LAYOUT.has(spec.architecture)) return spec;
  const names = tensorNames(modelDir);
  if (names === null) return spec;
  if (names.has('model.embed_tokens.weight') || !names.has('embed_tokens.weight')) return spec;
  if (names.has('lm_head.weight') || spec.tieEmbeddings) return spec;  // the loader finds the decoder unprefixed
  return { ...spec, tieEmbeddings: true, lmHeadBias: false, baseModel: true };
}

/** The checkpoint's tensor names — from the index's weight_map when sharded (no shard opened), else the single file's
 * header; null when there are no weights or they cannot be read (the loader reports that, naming the file). */
function tensorNames(dir: string): Set<string> | null {
  try {
    const index = join(dir, 'model.safetensors.index.json');
    if (existsSync(index)) return new Set(Object.keys((JSON.parse(readFileSync(index, 'utf8')) as { weight_map: object }).weight_map));
    const single = join(dir, 'model.safetensors');
    if (!existsSync(single)) return null;
    const file = SafetensorsFile.open(single);
    const names = new Set(file.names());
    file.close();
    return names;
  } catch {
    return null;
  }
}
