// Public surface of the HTTP API (DESIGN §7).
export { buildHttpServer, DEFAULT_BODY_LIMIT_BYTES, REDACT, type HttpServerOptions } from './server.js';
export { Metrics, type AdapterLoadResult, type EngineMetricsObserver, type MetricsOptions } from './metrics.js';
export {
  HttpError,
  STATUS_BY_KIND,
  errorBody,
  toHttpError,
  type ErrorBody,
} from './errors.js';
export {
  ADAPTER_SOURCES,
  DEFAULT_MAX_NEW_TOKENS,
  MAX_SEED,
  MAX_STOP_SEQUENCES,
  MAX_TOP_N_TOKENS,
  bearerToken,
  validateGenerateBody,
  validateTokenizeBody,
  type GenerateRoute,
  type ValidGenerate,
  type ValidationLimits,
} from './validate.js';
export { REQUEST_ID_HEADER, TRACER_NAME } from './lifecycle.js';
export type {
  DetailsJson,
  GenerateResponseJson,
  StreamDetailsJson,
  StreamEventJson,
  TokenJson,
} from './responses.js';
