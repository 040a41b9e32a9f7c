// Logs and traces for the coordinator and the shard processes.
export { REDACTED, REDACT_PATHS, createLogger, redactSecrets, type CreateLoggerOptions } from './logger.js';
export {
  TRACER_NAME, extractTraceContext, initTracing, injectTraceHeaders, otlpTracesUrl, withSpan,
  type Tracing, type TracingOptions,
} from './tracing.js';
export { AsyncLocalContextManager } from './context-manager.js';
