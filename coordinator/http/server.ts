// The HTTP server: fastify with TGI/LoRAX routes over a GenerationEngine.
import type { SecureContextOptions, TlsOptions } from 'node:tls';
import Fastify, { LogController, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Logger, redactOptions } from 'pino';
import type { GenerationEngine } from '../engine/types.js';
import { registerAdminRoutes } from './admin-routes.js';
import { registerVllmLoraRoutes } from './vllm-lora-routes.js';
import { apiKeyHook } from './api-key-auth.js';
import { isPreflight, registerCors } from './cors.js';
import { errorBody, nobodyToAnswer, routeNotFound, toHttpError, type HttpError } from './errors.js';
import { registerGenerateRoutes } from './generate-routes.js';
import { requestSecrets } from './engine-run.js';
import { installLifecycle, requestId } from './lifecycle.js';
import type { Metrics } from './metrics.js';
import { registerOpenAiRoutes } from './openai-routes.js';
import { registerResponsesApiRoute } from './responses-api-routes.js';
import { registerChatTokenizeRoutes } from './chat-tokenize-route.js';
import { ResponseStore } from './response-store.js';
import { registerModelRoutes } from './openai-models.js';
import { registerEmbeddingRoutes } from './embeddings-routes.js';
import { registerScoreRoutes } from './score-routes.js';
import { captureInvocationTargets, registerSageMakerRoutes } from './sagemaker-routes.js';
import { registerClassifyRoutes } from './classify-routes.js';
import { registerDetokenizeRoute } from './vllm-tokenize.js';
import { registerServiceRoutes } from './service-routes.js';
import type { SamplingDefaults } from './generation-defaults.js';
import type { EmbeddingPipeline } from './sentence-transformers.js';

export interface HttpServerOptions {
  /** A pino logger (a redacting child is made from it), true for fastify's default pino, false for none. */
  logger: Logger | boolean;
  metrics: Metrics;
  /** Largest accepted request body. Default 2 MiB (TGI's axum default body limit). */
  bodyLimitBytes?: number;
  /** When set, the adapter admin API (/v1/adapters…) requires `Authorization: Bearer <adminToken>`. */
  adminToken?: string;
  /** When non-empty, every route but /health and /metrics requires one of these keys (api-key-auth.ts). */
  apiKeys?: readonly string[];
  /** Origins browsers may call the API from (cors.ts); `*` for any; empty: no CORS. */
  corsAllowOrigins?: readonly string[];
  /** Responses API responses kept in memory for GET and previous_response_id (response-store.ts); 0: none. Default 1024. */
  responseStoreEntries?: number;
  /** How embeddings are made (sentence-transformers.ts: pooling, Dense and Normalize modules, or the refusal of a
   * config weft cannot run); absent: the last token's final hidden state. */
  embedding?: EmbeddingPipeline;
  /** --generation-config: defaults for the sampling fields OpenAI requests leave out (generation-defaults.ts); the TGI
   * routes never use them. null/absent: none. */
  samplingDefaults?: SamplingDefaults | null;
  /** Serve HTTPS with these TLS options (deploy/tls.ts); absent/null: plain HTTP. */
  https?: (TlsOptions & SecureContextOptions) | null;
}

export const DEFAULT_BODY_LIMIT_BYTES = 2 * 1024 * 1024;

/** Log paths that may hold a secret: the Authorization header and any api token field. */
export const REDACT: redactOptions = {
  paths: [
    'req.headers.authorization',
    'req.headers["x-api-key"]',
    'request.headers.authorization',
    'headers.authorization',
    'authorization',
    'api_token',
    '*.api_token',
    '*.parameters.api_token',
    '*.*.parameters.api_token',
    'apiToken',
    '*.apiToken',
    '*.adapter.apiToken',
    '*.*.adapter.apiToken',
  ],
  censor: '[REDACTED]',
};

export async function buildHttpServer(engine: GenerationEngine, opts: HttpServerOptions): Promise<FastifyInstance> {
  const bodyLimitBytes = opts.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  const logging =
    typeof opts.logger === 'boolean'
      ? { logger: opts.logger ? { redact: REDACT } : false }
      : { loggerInstance: opts.logger.child({ component: 'http' }, { redact: REDACT }) };
  const app = Fastify({
    ...logging,
    ...(opts.https ? { https: opts.https } : {}),
    bodyLimit: bodyLimitBytes,
    genReqId: requestId,
    // One line per request from the lifecycle hook (access-log.ts) instead of fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: false,
    return503OnClosing: true,
  }) as unknown as FastifyInstance;

  // JSON only: fastify's text/plain parser would let a plain-text body reach validation (TGI: 415).
  app.removeContentTypeParser('text/plain');

  opts.metrics.observeEngine(engine);
  installLifecycle(app, opts.metrics);
  // Before the key check, so a refused request still carries the CORS headers a browser needs to read it.
  await registerCors(app, opts.corsAllowOrigins ?? []);
  const apiKeys = opts.apiKeys ?? [];
  const keyHook = apiKeyHook(apiKeys, { adminTokenSet: opts.adminToken !== undefined, skip: isPreflight });
  // After the lifecycle hook, so a refused request is still counted, traced and given its request id.
  if (keyHook) app.addHook('onRequest', keyHook);
  // With API keys on, the Authorization header holds the caller's key: never an adapter's Hub token.
  const bearerIsAdapterToken = apiKeys.length === 0;

  app.setErrorHandler((err, request, reply) => {
    if (nobodyToAnswer(err, request, reply)) {
      request.log.info({ err: (err as Error).message }, 'client went away (or the response had started); nothing sent');
      return;
    }
    const httpError = toHttpError(err, bodyLimitBytes);
    logFailure(request, httpError, err);
    return reply.code(httpError.status).send(errorBody(httpError, requestSecrets(request)));
  });
  app.setNotFoundHandler((request, reply) => {
    const httpError = routeNotFound(request.method, request.url);
    return reply.code(httpError.status).send(errorBody(httpError));
  });

  const invocationTargets = captureInvocationTargets(app);
  registerGenerateRoutes(app, { engine, bearerIsAdapterToken });
  const samplingDefaults = opts.samplingDefaults ?? null;
  registerOpenAiRoutes(app, { engine, bodyLimitBytes, bearerIsAdapterToken, samplingDefaults });
  registerChatTokenizeRoutes(app, { engine, bodyLimitBytes, bearerIsAdapterToken, samplingDefaults });
  registerResponsesApiRoute(app, { engine, bodyLimitBytes, bearerIsAdapterToken, samplingDefaults }, new ResponseStore(opts.responseStoreEntries ?? 1024));
  registerModelRoutes(app, engine, bodyLimitBytes);
  const embedding = opts.embedding ? { embedding: opts.embedding } : {};
  registerEmbeddingRoutes(app, { engine, bodyLimitBytes, bearerIsAdapterToken, ...embedding });
  registerScoreRoutes(app, { engine, bodyLimitBytes, bearerIsAdapterToken, ...embedding });
  registerClassifyRoutes(app, { engine, bodyLimitBytes, bearerIsAdapterToken });
  registerDetokenizeRoute(app, engine, bodyLimitBytes);
  registerServiceRoutes(app, engine, opts.metrics, samplingDefaults, opts.embedding);
  registerAdminRoutes(app, engine, { adminToken: opts.adminToken, defaultSource: engine.info.defaultAdapterSource });
  registerVllmLoraRoutes(app, engine, { adminToken: opts.adminToken, bodyLimitBytes });
  registerSageMakerRoutes(app, engine, invocationTargets);
  await app.ready();
  return app;
}


function logFailure(request: FastifyRequest, httpError: HttpError, original: unknown): void {
  const fields = { status: httpError.status, error_type: httpError.errorType };
  if (httpError.status < 500) {
    request.log.info(fields, 'request rejected');
  } else if (httpError.errorType === 'internal' && !(original instanceof Error && original.name === 'EngineError')) {
    // A bug, not an engine outcome: keep the stack (the message is ours, not the client's).
    request.log.error({ ...fields, err: original }, 'request failed');
  } else {
    request.log.error({ ...fields, message: errorBody(httpError, requestSecrets(request)).error }, 'request failed');
  }
}
