// One access-log line per HTTP request, written when its response closes ("request completed"), in place of
// fastify's two lines (incoming + completed). For generating routes it carries what an operator needs to
// read a request without a trace: the adapter, prompt / cached / generated tokens, how each sequence ended,
// time to first token and the mean time per output token. Probes (/health, /metrics) log at debug, so a
// Kubernetes readiness probe every few seconds does not drown the requests.
import type { FastifyRequest } from 'fastify';
import type { GenerateRequest, GenerationEvent } from '../engine/types.js';
import { OPERATIONAL_ROUTES } from './service-routes.js';

/** What the engine runs of one HTTP request produced (several runs with OpenAI `n` / TGI `best_of`). */
interface GenerationSummary {
  adapter: string | null;
  sequences: number;
  promptTokens: number;
  cachedTokens: number;
  generatedTokens: number;
  /** ms from the HTTP request's arrival to its first generated token (any sequence). */
  firstTokenMs: number | null;
  lastTokenMs: number | null;
  finishReasons: string[];
}

const summaries = new WeakMap<FastifyRequest, GenerationSummary>();

function adapterName(req: GenerateRequest): string | null {
  if (req.adapter) return req.adapter.id;
  if (req.merge) return req.merge.adapters.map((a) => a.id).join('+');
  return null;
}

/** `events`, counted into the request's summary as they pass (the consumer sees them unchanged). */
export function tapGeneration(request: FastifyRequest, req: GenerateRequest, startNs: bigint,
  events: AsyncIterable<GenerationEvent>): AsyncIterable<GenerationEvent> {
  let s = summaries.get(request);
  if (!s) {
    s = { adapter: adapterName(req), sequences: 0, promptTokens: 0, cachedTokens: 0, generatedTokens: 0, firstTokenMs: null,
      lastTokenMs: null, finishReasons: [] };
    summaries.set(request, s);
  }
  const summary = s;
  summary.sequences++;
  const sinceStart = () => Number(process.hrtime.bigint() - startNs) / 1e6;
  return {
    [Symbol.asyncIterator]() {
      const inner = events[Symbol.asyncIterator]();
      return {
        async next() {
          const r = await inner.next();
          if (!r.done) count(summary, r.value, sinceStart);
          return r;
        },
        return: inner.return ? (value?: unknown) => inner.return!(value) : undefined,
      } as AsyncIterator<GenerationEvent>;
    },
  };
}

function count(s: GenerationSummary, ev: GenerationEvent, sinceStart: () => number): void {
  switch (ev.type) {
    case 'admitted':
      s.promptTokens += ev.promptTokens;
      s.cachedTokens += ev.cachedTokens;
      break;
    case 'token': {
      s.generatedTokens++;
      const t = sinceStart();
      if (s.firstTokenMs === null) s.firstTokenMs = t;
      s.lastTokenMs = t;
      break;
    }
    case 'end':
      s.finishReasons.push(ev.finishReason);
      break;
    case 'error':
      s.finishReasons.push(`error:${ev.error.kind}`);
      break;
  }
}

const round = (ms: number) => Math.round(ms * 10) / 10;

/** Writes the request's access-log line. */
export function logCompleted(request: FastifyRequest, route: string, status: number, ms: number, clientGone: boolean): void {
  const fields: Record<string, unknown> = { method: request.method, route, status, ms: round(ms) };
  if (clientGone) fields.client_gone = true;
  const s = summaries.get(request);
  if (s) {
    summaries.delete(request);
    fields.adapter = s.adapter;
    if (s.sequences > 1) fields.sequences = s.sequences;
    fields.prompt_tokens = s.promptTokens;
    if (s.cachedTokens > 0) fields.cached_tokens = s.cachedTokens;
    fields.generated_tokens = s.generatedTokens;
    if (s.finishReasons.length > 0) fields.finish_reason = s.finishReasons.length === 1 ? s.finishReasons[0] : s.finishReasons;
    if (s.firstTokenMs !== null) fields.ttft_ms = round(s.firstTokenMs);
    // Mean gap between tokens after the first; one sequence only (n / best_of sequences run side by side).
    if (s.sequences === 1 && s.firstTokenMs !== null && s.lastTokenMs !== null && s.generatedTokens > 1) {
      fields.tpot_ms = round((s.lastTokenMs - s.firstTokenMs) / (s.generatedTokens - 1));
    }
  }
  if (OPERATIONAL_ROUTES.has(route) && status < 400) request.log.debug(fields, 'request completed');
  else request.log.info(fields, 'request completed');
}
