// The adapter admin API (DESIGN §7): GET /v1/adapters, POST /v1/adapters/{load,unload,pin}.
//
// Choices (and why):
//  - Protected by `adminToken` when one is set (see admin-auth.ts); open otherwise, as a single-tenant
//    server on a private network usually is.
//  - The Authorization header carries the admin token here, so an adapter's own access token can only
//    come from the body's `api_token` (never from the header, unlike the generate routes).
//  - `adapter_source` defaults to `defaultSource`, 'hub' unless told: the same default as the generate
//    routes, so `{adapter_id: X}` here and `parameters: {adapter_id: X}` there name the same adapter.
//  - Strict bodies: unknown keys are refused by name (422); `null` means absent, as in validate.ts.
//  - Engine errors keep their status (STATUS_BY_KIND); the request's api token is scrubbed from their
//    message before they reach the client or the log.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { EngineError, type AdapterRef, type AdapterSource, type GenerationEngine } from '../engine/types.js';
import { adminAuthHook } from './admin-auth.js';
import { HttpError, validationError } from './errors.js';
import { spanOf } from './lifecycle.js';
import { ADAPTER_SOURCES, bearerToken } from './validate.js';

export interface AdminRouteOptions {
  /** When set, every /v1/adapters route requires `Authorization: Bearer <adminToken>`. */
  adminToken?: string;
  /** Source of an adapter whose body gives no `adapter_source`. Default 'hub' (as the generate routes). */
  defaultSource?: AdapterSource;
}

export const ADMIN_DEFAULT_SOURCE: AdapterSource = 'hub';

export type AdminAction = 'load' | 'unload' | 'pin';

export interface ValidAdminBody {
  ref: AdapterRef;
  /** Only for pin (default true). */
  pinned: boolean;
}

type Json = Record<string, unknown>;

const REF_KEYS = ['adapter_id', 'adapter_source', 'api_token'] as const;
const KEYS: Readonly<Record<AdminAction, ReadonlySet<string>>> = {
  load: new Set(REF_KEYS),
  unload: new Set(REF_KEYS),
  pin: new Set([...REF_KEYS, 'pinned']),
};

export function registerAdminRoutes(app: FastifyInstance, engine: GenerationEngine, opts: AdminRouteOptions = {}): void {
  const onRequest = adminAuthHook(opts.adminToken);
  const defaultSource = opts.defaultSource ?? ADMIN_DEFAULT_SOURCE;
  const guarded = onRequest ? { onRequest } : {};

  app.get('/v1/adapters', guarded, async () => ({ adapters: engine.adapters.list() }));

  for (const action of ['load', 'unload', 'pin'] as const) {
    app.post(`/v1/adapters/${action}`, guarded, async (request) => {
      const { ref, pinned } = validateAdminBody(request.body, action, defaultSource);
      const span = spanOf(request);
      span.setAttribute('weft.adapter_id', ref.id);
      span.setAttribute('weft.adapter_source', ref.source);
      request.log.info({ action, adapter_id: ref.id, adapter_source: ref.source, ...(action === 'pin' ? { pinned } : {}) }, 'adapter admin');
      try {
        const adapter = await run(engine, action, ref, pinned);
        return { adapter };
      } catch (err) {
        throw scrubbed(err, secretsOf(request, ref));
      }
    });
  }
}

function run(engine: GenerationEngine, action: AdminAction, ref: AdapterRef, pinned: boolean) {
  switch (action) {
    case 'load':
      return engine.adapters.load(ref);
    case 'unload':
      return engine.adapters.unload(ref);
    case 'pin':
      return engine.adapters.pin(ref, pinned);
    default: {
      const unhandled: never = action;
      throw new Error(`unknown admin action ${String(unhandled)}`);
    }
  }
}

/** The body of POST /v1/adapters/<action>: `{adapter_id, adapter_source?, api_token?, pinned? (pin only)}`. */
export function validateAdminBody(body: unknown, action: AdminAction, defaultSource: AdapterSource): ValidAdminBody {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw validationError('request body must be a JSON object');
  }
  const b = body as Json;
  for (const key of Object.keys(b)) {
    if (!KEYS[action].has(key)) throw validationError(`unknown field \`${key.slice(0, 64)}\``);
  }
  if (b.adapter_id === undefined || b.adapter_id === null) throw validationError('missing field `adapter_id`');
  if (typeof b.adapter_id !== 'string') throw validationError('`adapter_id` must be a string');
  if (b.adapter_id.length === 0) throw validationError('`adapter_id` cannot be empty');

  let source = defaultSource;
  if (b.adapter_source !== undefined && b.adapter_source !== null) {
    if (typeof b.adapter_source !== 'string' || !(ADAPTER_SOURCES as readonly string[]).includes(b.adapter_source)) {
      throw validationError(`\`adapter_source\` must be one of ${ADAPTER_SOURCES.join(', ')}`);
    }
    source = b.adapter_source as AdapterSource;
  }

  const ref: AdapterRef = { id: b.adapter_id, source };
  if (b.api_token !== undefined && b.api_token !== null) {
    if (typeof b.api_token !== 'string') throw validationError('`api_token` must be a string');
    if (b.api_token.length > 0) ref.apiToken = b.api_token;
  }

  let pinned = true;
  if (b.pinned !== undefined && b.pinned !== null) {
    if (typeof b.pinned !== 'boolean') throw validationError('`pinned` must be a boolean');
    pinned = b.pinned;
  }
  return { ref, pinned };
}

/** Secrets this request carries: the adapter's api token and whatever the Authorization header holds. */
function secretsOf(request: FastifyRequest, ref: AdapterRef): string[] {
  const secrets: string[] = [];
  if (ref.apiToken) secrets.push(ref.apiToken);
  const bearer = bearerToken(request.headers.authorization);
  if (bearer) secrets.push(bearer);
  return secrets;
}

const REDACTED = '[REDACTED]';

function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) out = out.split(secret).join(REDACTED);
  return out;
}

/**
 * The same error with every secret removed from its message (and stack), and no cause chain that could
 * still hold one: the server's error handler sends the message and may log the error.
 */
function scrubbed(err: unknown, secrets: readonly string[]): unknown {
  if (secrets.length === 0) return err;
  if (err instanceof EngineError) return new EngineError(err.kind, scrub(err.message, secrets));
  if (err instanceof HttpError) return new HttpError(err.status, err.errorType, scrub(err.message, secrets));
  if (err instanceof Error) {
    const clean = new Error(scrub(err.message, secrets));
    clean.stack = err.stack === undefined ? undefined : scrub(err.stack, secrets);
    return clean;
  }
  return new Error('admin operation failed (non-Error thrown)');
}
