// POST /generate, POST /generate_stream and TGI's POST / (either, by the body's `stream` flag).
import type { Span } from '@opentelemetry/api';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { GenerateRequest, GenerationEngine, PrefillToken } from '../engine/types.js';
import { errorBody, toHttpError } from './errors.js';
import { spanOf } from './lifecycle.js';
import { adapterAuthorization, allOrCancel, endedEarly, runEvents, sendSse, startEngineRun, startRuns, unknownEvent, type EngineRun } from './engine-run.js';
import {
  bestOfSequenceJson,
  generateResponse,
  sseFrame,
  streamEndEvent,
  streamTokenEvent,
  type Collected,
  type EmittedToken,
  type GenerateResponseJson,
  type ResponseOptions,
} from './responses.js';
import { randomSeed, validateGenerateBody, type GenerateRoute, type ValidGenerate } from './validate.js';
import { loadImages, markdownImages } from './content-parts.js';

export interface GenerateDeps {
  engine: GenerationEngine;
  /** Whether an `Authorization: Bearer` token stands for an adapter's access token (false with API keys on). */
  bearerIsAdapterToken?: boolean;
}

interface Run extends EngineRun {
  options: ResponseOptions;
}

export function registerGenerateRoutes(app: FastifyInstance, deps: GenerateDeps): void {
  app.post('/generate', async (request, reply) => {
    const valid = await validate(request, deps, 'generate');
    if (valid.bestOf > 1) return generateBestOf(request, reply, deps, valid);
    return generate(await start(request, reply, deps, valid), reply);
  });
  app.post('/generate_stream', async (request, reply) => {
    const valid = await validate(request, deps, 'generate_stream');
    return stream(await start(request, reply, deps, valid), reply);
  });
  app.post('/', async (request, reply) => {
    const valid = await validate(request, deps, 'compat');
    // TGI's compat route wraps the non-streamed answer in a list (the Inference API's shape).
    if (valid.bestOf > 1) return [await generateBestOf(request, reply, deps, valid)];
    const run = await start(request, reply, deps, valid);
    return valid.stream ? stream(run, reply) : [await generate(run, reply)];
  });
}

async function validate(request: FastifyRequest, deps: GenerateDeps, route: GenerateRoute): Promise<ValidGenerate> {
  const valid = validateGenerateBody(
    request.body,
    { maxTotalTokens: deps.engine.info.maxTotalTokens, maxInputLength: deps.engine.info.maxInputLength,
      defaultAdapterSource: deps.engine.info.defaultAdapterSource },
    route,
    adapterAuthorization(request, deps.bearerIsAdapterToken),
  );
  // LoRAX apply_chat_template: the model sees the messages rendered with its chat template.
  if (valid.chatMessages) {
    valid.request = { ...valid.request, inputs: deps.engine.renderChat(valid.chatMessages), templated: true };
  }
  // TGI's markdown images (`![](url)`), for a vision-language model: each becomes its image placeholder (the image
  // token with its template's wrapper, as TGI writes it). The inputs as sent stay what return_full_text prepends.
  const vision = deps.engine.info.vision;
  if (vision && !valid.chatMessages) {
    const { text, images } = markdownImages(valid.request.inputs, vision.imagePlaceholder);
    if (images.length > 0) {
      valid.originalInputs = valid.request.inputs;
      valid.request = { ...valid.request, inputs: text, images: await loadImages(deps.engine, images) };
    }
  }
  const span = spanOf(request);
  span.setAttribute('weft.adapter_id', valid.request.adapter?.id ?? '');
  if (valid.request.adapter) span.setAttribute('weft.adapter_source', valid.request.adapter.source);
  return valid;
}

/**
 * Calls engine.generate with the request's span active (so the engine's spans are its children) and
 * reads the first event, so that errors before any output still get their own HTTP status.
 */
async function start(request: FastifyRequest, reply: FastifyReply, deps: GenerateDeps, valid: ValidGenerate,
  requestId = request.id): Promise<Run> {
  const req: GenerateRequest = { requestId, ...valid.request };
  const run = await startEngineRun(deps.engine, req, spanOf(request), request, reply);
  const options: ResponseOptions = {
    inputs: valid.originalInputs ?? valid.request.inputs,
    details: valid.details || valid.request.promptLogprobs,
    returnFullText: valid.returnFullText,
    samplingSeed: valid.request.sampling.doSample ? valid.request.sampling.seed : null,
    specialIds: new Set(deps.engine.info.eosTokenIds),
    topTokens: valid.topTokens,
    alternatives: valid.alternatives,
  };
  return { ...run, options };
}

async function generate(run: Run, reply: FastifyReply): Promise<GenerateResponseJson> {
  const c = await collect(run);
  answered(reply, c);
  return generateResponse(c, run.options);
}

function answered(reply: FastifyReply, c: Collected): void {
  annotateEnd(spanOfReply(reply), c.end.finishReason, c.end.generatedTokens);
  reply.header('x-prompt-tokens', String(c.promptTokens));
  reply.header('x-generated-tokens', String(c.end.generatedTokens));
}

/** The run's whole output. */
async function collect(run: Run): Promise<Collected> {
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
      case 'end':
        return { promptTokens, prefill, tokens, end: ev };
      case 'error':
        throw ev.error;
      default:
        throw unknownEvent(ev);
    }
  }
  throw endedEarly(run);
}

/**
 * best_of (TGI): best_of sequences sampled with random seeds; the one with the highest mean token log-prob
 * answers and, with details, the others are listed in best_of_sequences. One that cannot start or fails
 * fails the request and cancels the rest.
 */
async function generateBestOf(request: FastifyRequest, reply: FastifyReply, deps: GenerateDeps, valid: ValidGenerate):
  Promise<GenerateResponseJson> {
  const runs = await startRuns(valid.bestOf, reply, (i) => start(request, reply, deps,
    { ...valid, request: { ...valid.request, sampling: { ...valid.request.sampling, seed: randomSeed() } } }, `${request.id}.${i}`));
  const all = await allOrCancel(runs, collect, 'another best_of sequence failed');
  const mean = (c: Collected) => c.tokens.reduce((n, t) => n + t.token.logprob, 0) / Math.max(1, c.tokens.length);
  let best = 0;
  all.forEach((c, i) => { if (mean(c) > mean(all[best]!)) best = i; });
  answered(reply, all[best]!);
  const out = generateResponse(all[best]!, runs[best]!.options);
  if (out.details) out.details.best_of_sequences = all.filter((_, i) => i !== best).map((c, i) => bestOfSequenceJson(c, runs[i >= best ? i + 1 : i]!.options));
  return out;
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
