// What every generating route shares: start a request on the engine (cancelled when the client goes
// away, inside the HTTP span's context), read its first event, release it, reply with SSE, and know
// which secrets the request carries so no error message echoes them.
import { Readable } from 'node:stream';
import { context, trace, type Span } from '@opentelemetry/api';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { EngineError, type GenerateRequest, type GenerationEngine, type GenerationEvent } from '../engine/types.js';
import { tapGeneration } from './access-log.js';
import { API_KEY_HEADER } from './api-key-auth.js';
import { internalError } from './errors.js';
import { startOf } from './lifecycle.js';
import { bearerToken } from './validate.js';

/** A started generation: its events (the first already read) and the signal that cancels it. */
export interface EngineRun {
  events: AsyncIterator<GenerationEvent>;
  first: IteratorResult<GenerationEvent>;
  abort: AbortController;
  secrets: string[];
}

/** Starts `req`; an error before any output is thrown (so the route answers with its HTTP status). */
export async function startEngineRun(engine: GenerationEngine, req: GenerateRequest, span: Span, request: FastifyRequest,
  reply: FastifyReply): Promise<EngineRun> {
  const abort = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) abort.abort(new Error('client disconnected'));
  });
  const iterable = await context.with(trace.setSpan(context.active(), span), () => engine.generate(req, abort.signal));
  const events = tapGeneration(request, req, startOf(request), iterable)[Symbol.asyncIterator]();
  const first = await events.next();
  if (!first.done && first.value.type === 'error') {
    release(events);
    throw first.value.error;
  }
  return { events, first, abort, secrets: requestSecrets(request) };
}

/**
 * Starts `count` engine requests of one HTTP request (OpenAI `n`, TGI `best_of`), all or none: if one cannot
 * start, the others are cancelled and its error is thrown. Makes room for their client-gone listeners.
 */
export async function startRuns<R extends EngineRun>(count: number, reply: FastifyReply, startOne: (i: number) => Promise<R>): Promise<R[]> {
  if (count > 1) reply.raw.setMaxListeners(reply.raw.getMaxListeners() + count);
  const started = await Promise.allSettled(Array.from({ length: count }, (_, i) => startOne(i)));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    for (const r of started) if (r.status === 'fulfilled') cancelRun(r.value, 'another part of the request could not start');
    throw failed.reason;
  }
  return started.map((r) => (r as PromiseFulfilledResult<R>).value);
}

/** `each` over every run of one HTTP request; the first failure cancels the others and is thrown. */
export function allOrCancel<R extends EngineRun, T>(runs: readonly R[], each: (run: R) => Promise<T>, why: string): Promise<T[]> {
  return Promise.all(runs.map((run) => each(run).catch((e: unknown) => {
    for (const other of runs) if (other !== run) cancelRun(other, why);
    throw e;
  })));
}

/** Cancels a run (another part of its HTTP request failed) and releases its events. */
export function cancelRun(run: EngineRun, why: string): void {
  run.abort.abort(new Error(why));
  release(run.events);
}

/** Like leaving a for-await loop: lets the engine's iterator clean up (it may still be running). */
export function release(events: AsyncIterator<GenerationEvent>): void {
  events.return?.().catch(() => undefined);
}

/**
 * The run's events, the first (already read) included, for a `for await` loop; the engine's iterator is
 * released however the loop ends (end, error, or the response stream closing under it).
 */
export async function* runEvents(run: Pick<EngineRun, 'first' | 'events'>): AsyncGenerator<GenerationEvent> {
  try {
    for (let r = run.first; !r.done; r = await run.events.next()) yield r.value;
  } finally {
    release(run.events);
  }
}

/** A generation event this code does not know: a programming error, never a client's. */
export function unknownEvent(ev: never): Error {
  return new Error(`unknown generation event ${JSON.stringify(ev)}`);
}

/** The events ended with neither `end` nor `error`. */
export function endedEarly(run: Pick<EngineRun, 'abort'>): Error {
  if (run.abort.signal.aborted) return new EngineError('generation', 'request cancelled');
  return internalError(new Error('the engine ended the request without an end or error event'));
}

export function sendSse(reply: FastifyReply, frames: AsyncIterable<string>): FastifyReply {
  reply.header('content-type', 'text/event-stream');
  reply.header('cache-control', 'no-cache');
  reply.header('x-accel-buffering', 'no');
  return reply.send(Readable.from(frames, { objectMode: false }));
}

/**
 * The Authorization header as the source of an adapter's access token: none when the server takes API keys
 * (then the header holds the caller's key, which must never travel to the Hub).
 */
export function adapterAuthorization(request: FastifyRequest, bearerIsAdapterToken = true): string | string[] | undefined {
  return bearerIsAdapterToken ? request.headers.authorization : undefined;
}

/** Tokens a request carries — Authorization bearer, X-Api-Key, `api_token`, `parameters.api_token` — never to be echoed. */
export function requestSecrets(request: FastifyRequest): string[] {
  const secrets = new Set<string>();
  const bearer = bearerToken(request.headers.authorization);
  if (bearer) secrets.add(bearer);
  const apiKey = request.headers[API_KEY_HEADER];
  for (const k of Array.isArray(apiKey) ? apiKey : [apiKey]) if (k) secrets.add(k.trim());
  const body = request.body as { api_token?: unknown; parameters?: { api_token?: unknown } } | null | undefined;
  if (typeof body === 'object' && body !== null) {
    for (const t of [body.api_token, body.parameters?.api_token]) if (typeof t === 'string' && t.length > 0) secrets.add(t);
  }
  return [...secrets];
}
