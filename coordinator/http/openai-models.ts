// GET /v1/models and /v1/models/{id}: what OpenAI clients list before they pick a `model` (SDKs, LiteLLM and
// chat front ends call it to discover and health-check a server). The base model, and every adapter name —
// configured with --preload-adapter or given by POST /v1/load_lora_adapter — (`parent` = the base model). Adapters requested by their own id (Hub, S3,
// local paths) are not listed: which private adapters a deployment has seen is not for anonymous callers
// (the admin API, GET /v1/adapters, lists them behind --admin-token).
import type { FastifyInstance } from 'fastify';
import type { GenerationEngine } from '../engine/types.js';
import { HttpError } from './errors.js';
import { openAiErrorHandler } from './openai-routes.js';

interface ModelJson {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
  parent?: string;
  /** vLLM's field: the longest prompt + completion, in tokens (chat front ends size their context with it). */
  max_model_len: number;
}

export function registerModelRoutes(app: FastifyInstance, engine: GenerationEngine, bodyLimitBytes: number): void {
  const created = Math.floor(Date.now() / 1000);
  const max_model_len = engine.info.maxTotalTokens;
  const base = (): ModelJson[] => engine.info.modelNames.map((id) => ({ id, object: 'model', created, owned_by: 'weft', max_model_len }));
  const models = (): ModelJson[] => [...base(),
    ...engine.adapterNames().map((id): ModelJson => ({ id, object: 'model', created, owned_by: 'weft', parent: engine.info.modelId, max_model_len }))];
  const errorHandler = openAiErrorHandler(bodyLimitBytes);
  app.get('/v1/models', { errorHandler }, async () => ({ object: 'list', data: models() }));
  app.get<{ Params: { id: string } }>('/v1/models/:id', { errorHandler }, async (request) => {
    const found = models().find((m) => m.id === request.params.id);
    if (!found) {
      throw new HttpError(404, 'adapter_not_found', `model '${request.params.id.slice(0, 128)}' is not listed here: the base model ` +
        `is '${engine.info.modelId}'; adapters load by id on request (adapter_source), listed ones are named (--preload-adapter, /v1/load_lora_adapter)`);
    }
    return found;
  });
}
