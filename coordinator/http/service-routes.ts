// GET /health, GET /info, GET /metrics, POST /tokenize (TGI's body, or vLLM's: vllm-tokenize.ts).
import type { FastifyInstance } from 'fastify';
import type { GenerationEngine } from '../engine/types.js';
import { unhealthy } from './errors.js';
import type { Metrics } from './metrics.js';
import { infoJson } from './responses.js';
import type { EmbeddingPipeline } from './sentence-transformers.js';
import { validateTokenizeBody } from './validate.js';
import { isVllmTokenizeBody, vllmTokenize } from './vllm-tokenize.js';
import type { Json } from './json.js';
import type { SamplingDefaults } from './generation-defaults.js';

/** Probe and scrape routes: open without an API key, and logged at debug (a probe every few seconds). */
export const OPERATIONAL_ROUTES: ReadonlySet<string> = new Set(['/health', '/metrics', '/ping']);  // /ping: SageMaker's probe

export function registerServiceRoutes(app: FastifyInstance, engine: GenerationEngine, metrics: Metrics,
  samplingDefaults: SamplingDefaults | null = null, embedding?: EmbeddingPipeline): void {
  // TGI: 200 with an empty body when healthy; 503 {"error": "unhealthy", "error_type": "healthcheck"}.
  app.get('/health', async (_request, reply) => {
    if (!engine.healthy()) throw unhealthy();
    return reply.code(200).send();
  });

  const info = Object.freeze(infoJson(engine.info, samplingDefaults, embedding));
  app.get('/info', async () => info);

  app.get('/metrics', async (_request, reply) => {
    const text = await metrics.expose();
    return reply.type(metrics.contentType).send(text);
  });

  app.post('/tokenize', async (request) => {
    if (isVllmTokenizeBody(request.body)) return vllmTokenize(engine, request.body as Json);
    const { inputs, chatMessages } = validateTokenizeBody(request.body, { maxTotalTokens: engine.info.maxTotalTokens });
    const tokens = chatMessages ? await engine.tokenize(engine.renderChat(chatMessages), true) : await engine.tokenize(inputs);
    return tokens.map((t) => ({ id: t.id, text: t.text, start: t.start, stop: t.stop }));
  });
}
