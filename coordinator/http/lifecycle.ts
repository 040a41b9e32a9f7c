// Per-request bookkeeping shared by every route: request id, one OpenTelemetry server span, and the
// request counter / duration histogram — all settled once, when the response closes (finished or not).
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { INVALID_SPAN_CONTEXT, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { logCompleted } from './access-log.js';
import type { Metrics } from './metrics.js';

export const TRACER_NAME = 'weft-coordinator';
export const REQUEST_ID_HEADER = 'x-request-id';
/** A client's request id is used as given when it is short and plain; otherwise a new one is made. */
const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** Route label for requests that matched no route (keeps metric cardinality bounded). */
export const UNMATCHED_ROUTE = 'unmatched';

interface RequestState {
  span: Span;
  route: string;
  startNs: bigint;
}

const states = new WeakMap<FastifyRequest, RequestState>();

export function requestId(raw: IncomingMessage): string {
  const given = raw.headers[REQUEST_ID_HEADER];
  const value = Array.isArray(given) ? given[0] : given;
  return value !== undefined && CLIENT_REQUEST_ID.test(value) ? value : randomUUID();
}

/** The server span of this request (a non-recording span if none was started). */
export function spanOf(request: FastifyRequest): Span {
  return states.get(request)?.span ?? trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
}

export function installLifecycle(app: FastifyInstance, metrics: Metrics): void {
  const tracer = trace.getTracer(TRACER_NAME);
  app.addHook('onRequest', (request, reply, done) => {
    const route = request.routeOptions.url ?? UNMATCHED_ROUTE;
    const span = tracer.startSpan(`${request.method} ${route}`, {
      kind: SpanKind.SERVER,
      attributes: {
        'http.request.method': request.method,
        'http.route': route,
        'weft.request_id': request.id,
      },
    });
    states.set(request, { span, route, startNs: process.hrtime.bigint() });
    reply.header(REQUEST_ID_HEADER, request.id);
    reply.raw.once('close', () => settle(request, reply, metrics));
    done();
  });
}

function settle(request: FastifyRequest, reply: FastifyReply, metrics: Metrics): void {
  const state = states.get(request);
  if (!state) return;
  states.delete(request);
  const status = reply.statusCode;
  const seconds = Number(process.hrtime.bigint() - state.startNs) / 1e9;
  metrics.requestsTotal.inc({ route: state.route, status: String(status) });
  metrics.requestDuration.observe({ route: state.route }, seconds);
  state.span.setAttribute('http.response.status_code', status);
  if (!reply.raw.writableFinished) state.span.setAttribute('weft.client_disconnected', true);
  if (status >= 500) state.span.setStatus({ code: SpanStatusCode.ERROR });
  state.span.end();
  logCompleted(request, state.route, status, seconds * 1000, !reply.raw.writableFinished);
}

/** When the request arrived (process.hrtime.bigint()), for the access log's time to first token. */
export function startOf(request: FastifyRequest): bigint {
  return states.get(request)?.startNs ?? process.hrtime.bigint();
}
