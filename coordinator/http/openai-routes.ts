// POST /v1/completions and POST /v1/chat/completions (OpenAI-compatible), whole or streamed (SSE chunks
// ending with `data: [DONE]`). `model` picks the adapter (engine.adapterForModel). Errors keep the HTTP
// statuses of the other routes but take OpenAI's shape, `{"error": {message, type, param, code}}`, which
// OpenAI SDKs parse (code = weft's error_type); a failure mid-stream is one such `data:` event, then [DONE].
import type { Span } from '@opentelemetry/api';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { EngineError, type AdapterRef, type GenerateRequest, type GenerationEngine } from '../engine/types.js';
import { toHttpError } from './errors.js';
import { spanOf } from './lifecycle.js';
import { endedEarly, requestSecrets, runEvents, sendSse, startEngineRun, unknownEvent, type EngineRun } from './engine-run.js';
import {
  SSE_DONE,
  CompletionLogprobs,
  StopTrimmer,
  chatChunk,
  chatJson,
  chatLogprobs,
  chatTokenLogprob,
  completionChunk,
  completionJson,
  finishReasonOf,
  openAiErrorBody,
  responseHead,
  usageChunk,
  usageJson,
  type ChatTokenLogprobJson,
  type ResponseHead,
} from './openai-responses.js';
import { validateChatBody, validateCompletionBody, type ValidOpenAi } from './openai-validate.js';
import { sseFrame } from './responses.js';

export interface OpenAiDeps {
  engine: GenerationEngine;
  /** The server's body limit (named in the 413 message). */
  bodyLimitBytes: number;
}

type Kind = 'completion' | 'chat';

/** A started generation: its events (the first already read), what shapes its answer, its cancel. */
interface Run extends EngineRun {
  kind: Kind;
  valid: ValidOpenAi;
  head: ResponseHead;
  span: Span;
}

export function registerOpenAiRoutes(app: FastifyInstance, deps: OpenAiDeps): void {
  const errorHandler = openAiErrorHandler(deps.bodyLimitBytes);
  const limits = () => ({ maxTotalTokens: deps.engine.info.maxTotalTokens, defaultAdapterSource: deps.engine.info.defaultAdapterSource });
  app.post('/v1/completions', { errorHandler }, async (request, reply) => {
    const valid = validateCompletionBody(request.body, limits(), request.headers.authorization);
    const run = await start(request, reply, deps, 'completion', valid, valid.prompt);
    return valid.stream ? stream(run, reply) : whole(run);
  });
  app.post('/v1/chat/completions', { errorHandler }, async (request, reply) => {
    const valid = validateChatBody(request.body, limits(), request.headers.authorization);
    const inputs = deps.engine.renderChat(valid.messages);
    const run = await start(request, reply, deps, 'chat', valid, inputs);
    return valid.stream ? stream(run, reply) : whole(run);
  });
}

/** `model` → adapter; with `adapter_source` the model is taken as an adapter id in that source. */
function adapterOf(engine: GenerationEngine, valid: ValidOpenAi): AdapterRef | null {
  const ref = engine.adapterForModel(valid.model, valid.apiToken);
  if (ref === null || valid.adapterSource === undefined || valid.model === undefined) return ref;
  return { ...ref, id: valid.model, source: valid.adapterSource };
}

async function start(
  request: FastifyRequest,
  reply: FastifyReply,
  deps: OpenAiDeps,
  kind: Kind,
  valid: ValidOpenAi,
  inputs: string,
): Promise<Run> {
  const adapter = adapterOf(deps.engine, valid);
  const span = spanOf(request);
  span.setAttribute('weft.adapter_id', adapter?.id ?? '');
  if (adapter) span.setAttribute('weft.adapter_source', adapter.source);
  const req: GenerateRequest = {
    requestId: request.id, inputs, adapter, merge: null, sampling: valid.sampling, maxNewTokens: valid.maxNewTokens,
    stop: valid.stop, promptLogprobs: false, topN: valid.topN, ignoreEos: valid.ignoreEos,
  };
  const run = await startEngineRun(deps.engine, req, span, request, reply);
  return { ...run, kind, valid, head: responseHead(kind, valid.model || deps.engine.info.modelId), span };
}

async function whole(run: Run): Promise<object> {
  let promptTokens = 0;
  let cachedTokens = 0;
  const completionLogprobs = new CompletionLogprobs();
  const chatContent: ChatTokenLogprobJson[] = [];
  for await (const ev of runEvents(run)) {
    switch (ev.type) {
      case 'admitted':
        promptTokens = ev.promptTokens;
        cachedTokens = ev.cachedTokens;
        break;
      case 'token':
        if (!run.valid.logprobs || ev.token.special) break;
        if (run.kind === 'chat') chatContent.push(chatTokenLogprob(ev.token, ev.textDelta));
        else completionLogprobs.add(ev.token, ev.textDelta);
        break;
      case 'end': {
        const text = new StopTrimmer(run.valid.stop).finish(ev.generatedText);
        const finish = finishReasonOf(ev.finishReason);
        const usage = usageJson(promptTokens, ev.generatedTokens, cachedTokens);
        run.span.setAttribute('weft.finish_reason', ev.finishReason);
        if (run.kind === 'chat') {
          return chatJson(run.head, text, run.valid.logprobs ? chatLogprobs(chatContent) : null, finish, usage);
        }
        return completionJson(run.head, text, run.valid.logprobs ? completionLogprobs.json : null, finish, usage);
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
  return sendSse(reply, sseChunks(run, reply));
}

/** Chat opens with a role chunk; then a chunk per token that adds text; a finish chunk; usage; [DONE]. */
async function* sseChunks(run: Run, reply: FastifyReply): AsyncGenerator<string> {
  const { head, valid } = run;
  const chunk = (text: string | null, logprobs: ChatTokenLogprobJson | null, finish: 'stop' | 'length' | null) =>
    sseFrame(run.kind === 'chat'
      ? chatChunk(head, text === null ? {} : { content: text }, logprobs ? chatLogprobs([logprobs]) : null, finish, valid.includeUsage)
      : completionChunk(head, text ?? '', null, finish, valid.includeUsage));
  const trimmer = new StopTrimmer(valid.stop);
  const completionLogprobs = new CompletionLogprobs();
  let promptTokens = 0;
  let cachedTokens = 0;
  let settled = false;
  try {
    for await (const ev of runEvents(run)) {
      switch (ev.type) {
        case 'admitted':
          promptTokens = ev.promptTokens;
          cachedTokens = ev.cachedTokens;
          if (run.kind === 'chat') {
            yield sseFrame(chatChunk(head, { role: 'assistant', content: '' }, null, null, valid.includeUsage));
          }
          break;
        case 'token': {
          if (ev.token.special || trimmer.stopped) break;
          const text = trimmer.push(ev.textDelta);
          if (!valid.logprobs) {
            if (text !== '') yield chunk(text, null, null);
          } else if (run.kind === 'chat') {
            yield chunk(text, chatTokenLogprob(ev.token, ev.textDelta), null);
          } else {
            const lp = completionLogprobs.add(ev.token, ev.textDelta);
            yield sseFrame(completionChunk(head, text, lp, null, valid.includeUsage));
          }
          break;
        }
        case 'end': {
          settled = true;
          run.span.setAttribute('weft.finish_reason', ev.finishReason);
          const rest = trimmer.finish(ev.generatedText);
          if (rest !== '') yield chunk(rest, null, null);
          yield chunk(null, null, finishReasonOf(ev.finishReason));
          if (valid.includeUsage) yield sseFrame(usageChunk(run.kind, head, usageJson(promptTokens, ev.generatedTokens, cachedTokens)));
          yield SSE_DONE;
          return;
        }
        case 'error':
          settled = true;
          yield errorFrame(ev.error, run, reply);
          return;
        default:
          throw unknownEvent(ev);
      }
    }
    settled = true;
    if (!run.abort.signal.aborted) yield errorFrame(endedEarly(run), run, reply);
  } catch (err) {
    settled = true;
    yield errorFrame(err, run, reply);
  } finally {
    // Reached early when the response stream is destroyed (client gone): cancel the request.
    if (!settled) run.abort.abort(new Error('response stream closed'));
  }
}

/** A failure after the 200 went out: one OpenAI error event, then [DONE] so clients stop reading. */
function errorFrame(err: unknown, run: Run, reply: FastifyReply): string {
  const httpError = toHttpError(err, 0);
  const body = openAiErrorBody(httpError, run.secrets);
  run.span.setAttribute('weft.error_type', body.error.code);
  if (httpError.status >= 500) reply.log.error({ error_type: body.error.code, msg_text: body.error.message }, 'stream failed');
  else reply.log.info({ error_type: body.error.code }, 'stream ended with an error');
  return sseFrame(body) + SSE_DONE;
}

/** The route-level error handler: every error of these routes (body parsing included) in OpenAI's shape. */
function openAiErrorHandler(bodyLimitBytes: number) {
  return (err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const httpError = toHttpError(err, bodyLimitBytes);
    const fields = { status: httpError.status, error_type: httpError.errorType };
    if (httpError.status < 500) request.log.info(fields, 'request rejected');
    else if (httpError.errorType === 'internal' && !(err instanceof EngineError)) request.log.error({ ...fields, err }, 'request failed');
    else request.log.error({ ...fields, message: openAiErrorBody(httpError, requestSecrets(request)).error.message }, 'request failed');
    return reply.code(httpError.status).send(openAiErrorBody(httpError, requestSecrets(request)));
  };
}

