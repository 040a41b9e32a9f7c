// Amazon SageMaker's inference contract (as TGI's and vLLM's images serve it): GET /ping answers 200 while the server
// is healthy, and POST /invocations takes any of the API's request bodies, run by the route whose body it is —
// `inputs` TGI's generate (the compat route: streamed when `stream` is true), `messages` chat completions, `prompt`
// completions, `input` embeddings, `text_1`/`text_2` score, `query`/`documents` rerank. The chosen route's own
// handler, pre-handler and error handler run, so the answer (errors included) is exactly that route's.
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import type { GenerationEngine } from '../engine/types.js';
import { unhealthy, validationError } from './errors.js';
import { isJsonObject } from './json.js';

type Handler = (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply) => unknown;
type ErrorHandler = (this: FastifyInstance, error: unknown, request: FastifyRequest, reply: FastifyReply) => unknown;
interface CapturedRoute { handler: Handler; errorHandler?: ErrorHandler; preHandlers: Handler[] }

/** Which route an /invocations body is for, by the field that names its kind; null: none matches. */
export function invocationTarget(body: unknown): string | null {
  if (!isJsonObject(body)) return null;
  if ('messages' in body) return '/v1/chat/completions';
  if ('prompt' in body) return '/v1/completions';
  if ('inputs' in body) return '/';
  if ('query' in body && 'documents' in body) return '/rerank';
  if ('text_1' in body) return '/score';
  if ('input' in body) return '/v1/embeddings';
  return null;
}

const TARGETS = ['/v1/chat/completions', '/v1/completions', '/', '/rerank', '/score', '/v1/embeddings'];

/**
 * Call before the API's routes are registered: remembers the POST routes /invocations dispatches to (fastify keeps
 * no handle on a registered route's handler).
 */
export function captureInvocationTargets(app: FastifyInstance): Map<string, CapturedRoute> {
  const routes = new Map<string, CapturedRoute>();
  app.addHook('onRoute', (opts: RouteOptions) => {
    const methods = Array.isArray(opts.method) ? opts.method : [opts.method];
    if (!methods.includes('POST') || !TARGETS.includes(opts.url)) return;
    const pre = opts.preHandler === undefined ? [] : Array.isArray(opts.preHandler) ? opts.preHandler : [opts.preHandler];
    routes.set(opts.url, { handler: opts.handler as Handler, errorHandler: opts.errorHandler as ErrorHandler | undefined,
      preHandlers: pre as unknown as Handler[] });
  });
  return routes;
}

export function registerSageMakerRoutes(app: FastifyInstance, engine: GenerationEngine, routes: ReadonlyMap<string, CapturedRoute>): void {
  app.get('/ping', async (_request, reply) => {
    if (!engine.healthy()) throw unhealthy();
    return reply.code(200).send();
  });

  app.post('/invocations', async function (this: FastifyInstance, request, reply) {
    const url = invocationTarget(request.body);
    const route = url === null ? undefined : routes.get(url);
    if (route === undefined) {
      throw validationError('/invocations takes a body of one of the API\'s routes: `inputs` (TGI generate), `messages` ' +
        '(chat completions), `prompt` (completions), `input` (embeddings), `text_1`/`text_2` (score) or `query`/`documents` (rerank)' +
        (url === null ? '' : `; ${url} is not served here`));
    }
    try {
      for (const pre of route.preHandlers) await pre.call(this, request, reply);
      return await route.handler.call(this, request, reply);
    } catch (e) {
      if (route.errorHandler === undefined) throw e;
      return route.errorHandler.call(this, e, request, reply);
    }
  });
}
