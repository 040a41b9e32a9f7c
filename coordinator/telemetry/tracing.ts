// Traces: one request is one trace across the coordinator and every shard. W3C trace context (traceparent,
// tracestate) rides in NATS message headers; spans go to an OTLP/HTTP collector when one is configured.
import {
  ROOT_CONTEXT, SpanStatusCode, context, propagation, trace,
  type Attributes, type Context, type Span, type TextMapGetter, type Tracer,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, NodeTracerProvider, SimpleSpanProcessor, type SpanExporter, type SpanProcessor }
  from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { AsyncLocalContextManager } from './context-manager.js';

/** The tracer name withSpan uses. */
export const TRACER_NAME = 'weft';

export interface TracingOptions {
  /** service.name of every span: 'weft-coordinator', 'weft-shard-0', … */
  serviceName: string;
  /** OTLP/HTTP collector base URL (OTEL_EXPORTER_OTLP_ENDPOINT); spans are POSTed to <url>/v1/traces. */
  otlpEndpoint?: string;
  /** Export every span at its end to this exporter (tests: InMemorySpanExporter). */
  exporter?: SpanExporter;
}

export interface Tracing {
  tracer: Tracer;
  /** Flushes pending spans, stops exporting and unregisters the global tracer, propagator and context. */
  shutdown(): Promise<void>;
}

let installed = false;

/**
 * Registers the process-wide tracer provider, W3C propagator and async context. With neither an endpoint
 * nor an exporter no spans are recorded (the tracer is a no-op), but trace context still passes through
 * injectTraceHeaders / extractTraceContext. Once per process until shutdown().
 */
export function initTracing(opts: TracingOptions): Tracing {
  if (installed) throw new Error('initTracing: tracing is already set up in this process; call shutdown() first');
  installed = true;
  const processors: SpanProcessor[] = [];
  if (opts.otlpEndpoint !== undefined && opts.otlpEndpoint !== '') {
    processors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url: otlpTracesUrl(opts.otlpEndpoint) })));
  }
  if (opts.exporter !== undefined) processors.push(new SimpleSpanProcessor(opts.exporter));

  const propagator = new W3CTraceContextPropagator();
  let provider: NodeTracerProvider | undefined;
  if (processors.length > 0) {
    provider = new NodeTracerProvider({
      resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: opts.serviceName }),
      spanProcessors: processors,
    });
    provider.register({ propagator });
  } else {
    context.setGlobalContextManager(new AsyncLocalContextManager().enable());
    propagation.setGlobalPropagator(propagator);
  }

  let done: Promise<void> | undefined;
  return {
    tracer: trace.getTracer(opts.serviceName),
    shutdown: () => done ??= (async () => {
      try {
        await provider?.shutdown();
      } finally {
        trace.disable();
        propagation.disable();
        context.disable();
        installed = false;
      }
    })(),
  };
}

/** `<endpoint>/v1/traces`, unless the endpoint already names that path. */
export function otlpTracesUrl(endpoint: string): string {
  const base = endpoint.replace(/\/+$/, '');
  return base.endsWith('/v1/traces') ? base : `${base}/v1/traces`;
}

/** traceparent / tracestate of `ctx` (default: the active context), for NATS or HTTP headers. */
export function injectTraceHeaders(ctx: Context = context.active()): Record<string, string> {
  const headers: Record<string, string> = {};
  propagation.inject(ctx, headers);
  return headers;
}

const caseInsensitive: TextMapGetter<Record<string, string>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key] ?? Object.entries(carrier).find(([k]) => k.toLowerCase() === key)?.[1],
};

/** The remote parent carried by `headers` (any key case), on top of the root context; ROOT if none. */
export function extractTraceContext(headers: Readonly<Record<string, string>>): Context {
  return propagation.extract(ROOT_CONTEXT, headers, caseInsensitive);
}

/**
 * Runs `fn` inside a new span (child of `parent`, default the active context) that is active for `fn`'s
 * duration. A throw or rejection is recorded on the span (exception event, status ERROR) and rethrown.
 */
export async function withSpan<T>(
  name: string,
  attrs: Attributes,
  fn: (span: Span) => Promise<T>,
  parent: Context = context.active(),
): Promise<T> {
  const span = trace.getTracer(TRACER_NAME).startSpan(name, { attributes: attrs }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    span.recordException(e);
    span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
    throw err;
  } finally {
    span.end();
  }
}
