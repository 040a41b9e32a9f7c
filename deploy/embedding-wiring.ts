// How the served model embeds: its sentence-transformers pipeline (pooling — --pooling-type over the config's —
// Dense and Normalize modules), and whether it does nothing but embed (bidirectional attention, or a base-model
// checkpoint without an lm_head), which the engine turns into whole-prompt prefills and a 422 for generation.
import type { Logger } from 'pino';
import type { LaunchConfig } from './config/index.js';
import { embeddingPipeline, type EmbeddingPipeline } from '../coordinator/http/sentence-transformers.js';
import type { ModelSpec } from '../shard/models/spec.js';

export interface EmbeddingWiring {
  pipeline: EmbeddingPipeline;
  /** The engine's limits for a model that only embeds (EngineLimits.embeddingOnly, bidirectional); {} otherwise. */
  engine: { embeddingOnly?: string; bidirectional?: boolean };
}

export function embeddingWiring(o: Pick<LaunchConfig, 'poolingType'>, modelDir: string, spec: ModelSpec, log: Logger): EmbeddingWiring {
  const pipeline = embeddingPipeline(modelDir, spec.hidden, o.poolingType);
  if (pipeline.refusal) log.warn({ reason: pipeline.refusal }, 'the embedding routes will refuse requests (generation is unaffected)');
  else log.info({ pooling: pipeline.pooling, dimension: pipeline.dimension, modules: pipeline.steps.map((s) => s.kind) }, 'embeddings');
  const why = spec.bidirectional ? 'its attention is bidirectional: use_bidirectional_attention'
    : spec.baseModel ? 'a base-model checkpoint without a language-model head' : undefined;
  return { pipeline, engine: why === undefined ? {} : { embeddingOnly: why, ...(spec.bidirectional ? { bidirectional: true } : {}) } };
}
