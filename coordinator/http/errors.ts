// Every error the HTTP API can answer with, in one place: a coded constructor per case, and the one
// mapping from engine / fastify errors to `{"error": "...", "error_type": "..."}` with a status.
import { EngineError, type EngineErrorKind } from '../engine/types.js';
import { ImageInputError } from '../vision/index.js';

export interface ErrorBody {
  error: string;
  error_type: string;
}

export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    readonly errorType: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  body(): ErrorBody {
    return { error: this.message, error_type: this.errorType };
  }
}

/** Status per engine error kind (DESIGN §7). */
export const STATUS_BY_KIND: Readonly<Record<EngineErrorKind, number>> = Object.freeze({
  validation: 422,
  overloaded: 429,
  adapter_not_found: 404,
  adapter_unauthorized: 401,
  adapter_forbidden: 403,
  adapter_load: 424,
  generation: 424,
  shard_lost: 500,
  internal: 500,
});

// --- coded constructors ---------------------------------------------------------------------------

/** 422: the request is well-formed JSON but its content is not acceptable. */
export const validationError = (message: string): HttpError => new HttpError(422, 'validation', message);

/** 422: a known TGI/LoRAX parameter that weft does not implement yet (never silently ignored). */
export const notSupported = (name: string): HttpError =>
  new HttpError(422, 'validation', `\`${name}\` is not supported yet`);

/** 400: the body is not parseable JSON (TGI answers 400 here, through axum's JSON extractor). */
export const malformedJson = (detail?: string): HttpError =>
  new HttpError(400, 'validation', `Failed to parse the request body as JSON${detail ? `: ${detail}` : ''}`);

/** 415: the body is not declared as JSON (TGI/axum: "Expected request with `Content-Type: application/json`"). */
export const unsupportedMediaType = (): HttpError =>
  new HttpError(415, 'validation', 'Expected request with `Content-Type: application/json`');

export const payloadTooLarge = (limitBytes: number): HttpError =>
  new HttpError(413, 'validation', `Request body is larger than ${limitBytes} bytes`);

export const routeNotFound = (method: string, url: string): HttpError =>
  new HttpError(404, 'not_found', `Route ${method} ${url.split('?')[0]} not found`);

export const unhealthy = (): HttpError => new HttpError(503, 'healthcheck', 'unhealthy');

export const internalError = (cause?: unknown): HttpError =>
  new HttpError(500, 'internal', 'internal server error', { cause });

// --- mapping --------------------------------------------------------------------------------------

function fromEngine(err: EngineError): HttpError {
  return new HttpError(STATUS_BY_KIND[err.kind], err.kind, err.message, { cause: err });
}

interface FastifyLikeError {
  code?: unknown;
  statusCode?: unknown;
  message?: unknown;
}

/** Fastify's own errors (content-type parser, body limit) in the API's shape. */
function fromFastify(err: FastifyLikeError, bodyLimitBytes: number): HttpError | null {
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return malformedJson();
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return malformedJson('the body is empty');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return unsupportedMediaType();
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return payloadTooLarge(bodyLimitBytes);
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new HttpError(400, 'validation', String(err.message));
    default:
      break;
  }
  // secure-json-parse raises a SyntaxError with statusCode 400 for bad JSON without a code.
  if (err instanceof SyntaxError && (err as FastifyLikeError).statusCode === 400) return malformedJson(err.message);
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    return new HttpError(err.statusCode, 'validation', String(err.message));
  }
  return null;
}

/** Maps anything thrown by a handler or by fastify to the HTTP error the client sees. */
export function toHttpError(err: unknown, bodyLimitBytes: number): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof EngineError) return fromEngine(err);
  if (err instanceof ImageInputError) return new HttpError(err.status, 'validation', err.message, { cause: err });
  if (typeof err === 'object' && err !== null) {
    const mapped = fromFastify(err as FastifyLikeError, bodyLimitBytes);
    if (mapped) return mapped;
  }
  // The body parses (fastify bounds its size, not its depth) but something in it is nested too deep to walk, or
  // builds a string past the engine's limit: the request's to simplify, not the server's failure.
  if (err instanceof RangeError && /call stack|string length|array length/i.test(err.message)) {
    return new HttpError(422, 'validation', `the request is nested too deeply or too large to process (${err.message}); simplify it`);
  }
  return internalError(err);
}

const REDACTED = '[REDACTED]';

/** The body to send, with any secret of this request (api token) scrubbed from the message. */
export function errorBody(err: HttpError, secrets: readonly string[] = []): ErrorBody {
  let message = err.message;
  for (const secret of secrets) {
    if (secret.length > 0) message = message.split(secret).join(REDACTED);
  }
  return { error: message, error_type: err.errorType };
}

/** What an error handler needs of a request and its reply to tell whether the client is still there. */
interface Exchange {
  raw: { socket: { destroyed: boolean } | null };
}
interface SentReply {
  sent: boolean;
  raw: { headersSent: boolean; destroyed: boolean };
}

/**
 * The client went away (closed the connection mid-request or mid-stream), or the response had already started when
 * the error came: there is nobody to answer, and it is not a server failure — handlers log it at info and send
 * nothing (sending again on a started stream would itself fail).
 */
export function nobodyToAnswer(err: unknown, request: Exchange, reply: SentReply): boolean {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  // (Not request.raw.destroyed: a request whose body has been read is destroyed, and its client still waits.)
  return reply.sent || reply.raw.headersSent || reply.raw.destroyed || request.raw.socket?.destroyed === true || code === 'ERR_STREAM_PREMATURE_CLOSE';
}
