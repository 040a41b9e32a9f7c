// POST /generate, POST /generate_stream and TGI's POST / (either, by the body's `stream` flag).
import type { Span } from '@opentelemetry/api';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { GenerateRequest, GenerationEngine, PrefillToken } from '../engine/types.js';
import { errorBody, toHttpError } from './errors.js';
import { spanOf } from './lifecycle.js';
import { endedEarly, runEvents, sendSse, startEngineRun, unknownEvent, type EngineRun } from './engine-run.js';
import {
  generateResponse,
  sseFrame,
  streamEndEvent,
  streamTokenEvent,
  type EmittedToken,
  type GenerateResponseJson,
  type ResponseOptions,
} from './responses.js';
import { validateGenerateBody, type GenerateRoute, type ValidGenerate } from './validate.js';

export interface GenerateDeps {
  engine: GenerationEngine;
}

interface Run extends EngineRun {
  options: ResponseOptions;
}

export function registerGenerateRoutes(app: FastifyInstance, deps: GenerateDeps): void {
  app.post('/generate', async (request, reply) => {
    const valid = validate(request, deps, 'generate');
    return generate(await start(request, reply, deps, valid), reply);
  });
  app.post('/generate_stream', async (request, reply) => {
    const valid = validate(request, deps, 'generate_stream');
    return stream(await start(request, reply, deps, valid), reply);
  });
  app.post('/', async (request, reply) => {
    const valid = validate(request, deps, 'compat');
    const run = await start(request, reply, deps, valid);
    // TGI's compat route wraps the non-streamed answer in a list (the Inference API's shape).
    return valid.stream ? stream(run, reply) : [await generate(run, reply)];
  });
}

function validate(request: FastifyRequest, deps: GenerateDeps, route: GenerateRoute): ValidGenerate {
  const valid = validateGenerateBody(
    request.body,
    { maxTotalTokens: deps.engine.info.maxTotalTokens, maxInputLength: deps.engine.info.maxInputLength,
      defaultAdapterSource: deps.engine.info.defaultAdapterSource },
    route,
    request.headers.authorization,
  );
  const span = spanOf(request);
  span.setAttribute('weft.adapter_id', valid.request.adapter?.id ?? '');
  if (valid.request.adapter) span.setAttribute('weft.adapter_source', valid.request.adapter.source);
  return valid;
}

/**
 * Calls engine.generate with the request's span active (so the engine's spans are its children) and
 * reads the first event, so that errors before any output still get their own HTTP status.
 */
async function start(request: FastifyRequest, reply: FastifyReply, deps: GenerateDeps, valid: ValidGenerate): Promise<Run> {
  const req: GenerateRequest = { requestId: request.id, ...valid.request };
  const run = await startEngineRun(deps.engine, req, spanOf(request), request, reply);
  const options: ResponseOptions = {
    inputs: valid.request.inputs,
    details: valid.details || valid.request.promptLogprobs,
    returnFullText: valid.returnFullText,
    samplingSeed: valid.request.sampling.doSample ? valid.request.sampling.seed : null,
    specialIds: new Set(deps.engine.info.eosTokenIds),
  };
  return { ...run, options };
}

async function generate(run: Run, reply: FastifyReply): Promise<GenerateResponseJson> {
  let promptTokens = 0;
  let prefill: PrefillToken[] | null = null;
  const tokens: EmittedToken[] = [];
  for await (const ev of runEvents(run)) {
    switch (ev.type) {
      case 'admitted':
        promptTokens = ev.promptTokens;
        prefill = ev.prefill;
        break;
      case 'token':
        tokens.push({ token: ev.token, textDelta: ev.textDelta });
        break;
      case 'end': {
        annotateEnd(spanOfReply(reply), ev.finishReason, ev.generatedTokens);
        reply.header('x-prompt-tokens', String(promptTokens));
        reply.header('x-generated-tokens', String(ev.generatedTokens));
        return generateResponse({ promptTokens, prefill, tokens, end: ev }, run.options);
      }
      case 'error':
        throw ev.error;
      default:
        throw unknownEvent(ev);
    }
  }
  throw endedEarly(run);
}

function stream(run: Run, reply: FastifyReply): FastifyReply {
  return sendSse(reply, sseEvents(run, reply, reply.log));
}

/**
 * TGI's event sequence: one event per token, the last token's event carrying generated_text and
 * details — so each token is held until the next event says whether it was the last.
 */
async function* sseEvents(
  run: Run,
  reply: FastifyReply,
  log: FastifyReply['log'],
): AsyncGenerator<string> {
  let index = 0;
  let promptTokens = 0;
  let held: EmittedToken | null = null;
  let settled = false;
  try {
    for await (const ev of runEvents(run)) {
      switch (ev.type) {
        case 'admitted':
          promptTokens = ev.promptTokens;
          break;
        case 'token':
          if (held) yield sseFrame(streamTokenEvent(++index, held, run.options));
          held = { token: ev.token, textDelta: ev.textDelta };
          break;
        case 'end':
          settled = true;
          annotateEnd(spanOfReply(reply), ev.finishReason, ev.generatedTokens);
          yield sseFrame(streamEndEvent(++index, held, ev, promptTokens, run.options));
          return;
        case 'error':
          settled = true;
          // Tokens already produced still reach the client, then the error.
          if (held) yield sseFrame(streamTokenEvent(++index, held, run.options));
          yield errorFrame(ev.error, run, reply, log);
          return;
        default:
          throw unknownEvent(ev);
      }
    }
    settled = true;
    if (!run.abort.signal.aborted) yield errorFrame(endedEarly(run), run, reply, log);
  } catch (err) {
    settled = true;
    yield errorFrame(err, run, reply, log);
  } finally {
    // Reached early when the response stream is destroyed (client gone): cancel the request.
    if (!settled) run.abort.abort(new Error('response stream closed'));
  }
}

function errorFrame(err: unknown, run: Run, reply: FastifyReply, log: FastifyReply['log']): string {
  const httpError = toHttpError(err, 0);
  const body = errorBody(httpError, run.secrets);
  spanOfReply(reply).setAttribute('weft.error_type', body.error_type);
  if (httpError.status >= 500) log.error({ error_type: body.error_type, msg_text: body.error }, 'stream failed');
  else log.info({ error_type: body.error_type }, 'stream ended with an error');
  return sseFrame(body);
}

function annotateEnd(span: Span, finishReason: string, generatedTokens: number): void {
  span.setAttribute('weft.finish_reason', finishReason);
  span.setAttribute('weft.generated_tokens', generatedTokens);
}

function spanOfReply(reply: FastifyReply): Span {
  return spanOf(reply.request);
}
