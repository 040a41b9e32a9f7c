// API keys for the inference API (`--api-key`): with one or more keys configured, every route but the
// operational ones requires `Authorization: Bearer <key>` (OpenAI / TGI / vLLM clients send exactly that) or
// `X-Api-Key: <key>`.
//
// Choices (and why):
//  - Several keys at once, so a key can be rotated without a restart gap: add the new one, move clients, drop
//    the old one.
//  - Open routes: GET /health (load-balancer and Kubernetes probes carry no credentials) and GET /metrics
//    (Prometheus scrapes; put it behind the network policy). Everything else — unknown routes too, so a client
//    without a key learns nothing about which routes exist — answers 401.
//  - When an admin token is set, /v1/adapters… is guarded by it alone (its Authorization header carries the
//    admin token, not an API key); without one, those routes need an API key like the rest.
//  - CORS preflights (cors.ts) pass: browsers send them without credentials, before the real request.
//  - Keys are compared as SHA-256 digests in constant time against every configured key (no early exit), so
//    timing reveals neither a key nor its length nor which key matched.
//  - With API keys on, the Authorization header is the caller's API key and is never used as an adapter's Hub
//    token (that would send the server's key to the Hub); private adapters take `api_token` in the body.
import { timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { secretDigest } from './admin-auth.js';
import { HttpError } from './errors.js';
import { OPERATIONAL_ROUTES } from './service-routes.js';
import { bearerToken } from './validate.js';

export const ADMIN_ROUTE_PREFIX = '/v1/adapters';
export const API_KEY_HEADER = 'x-api-key';

/** 401 for a request without credentials. */
export const missingApiKey = (): HttpError =>
  new HttpError(401, 'authentication', 'this server requires an API key: send `Authorization: Bearer <key>` ' +
    '(or `X-Api-Key: <key>`)');

/** 401 for credentials that match no configured key (the value is never echoed). */
export const invalidApiKey = (): HttpError => new HttpError(401, 'authentication', 'invalid API key');

export type ApiKeyHook = (request: FastifyRequest, reply: FastifyReply) => Promise<void>;

/** The key a request presents: the bearer token, else the X-Api-Key header. */
export function presentedKey(request: FastifyRequest): string | undefined {
  const bearer = bearerToken(request.headers.authorization);
  if (bearer !== undefined) return bearer;
  const header = request.headers[API_KEY_HEADER];
  const value = (Array.isArray(header) ? header[0] : header)?.trim();
  return value ? value : undefined;
}

/** The request's path without its query string. */
function pathOf(request: FastifyRequest): string {
  const url = request.url;
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/**
 * An onRequest hook admitting only requests with one of `keys`; undefined (no hook: the API is open) when
 * no key is configured. An empty key is a configuration mistake, not "open": it throws.
 */
export function apiKeyHook(keys: readonly string[],
  opts: { adminTokenSet: boolean; skip?: (request: FastifyRequest) => boolean }): ApiKeyHook | undefined {
  if (keys.length === 0) return undefined;
  if (keys.some((k) => k.length === 0)) throw new Error('an API key must not be empty (leave --api-key unset for an open API)');
  const expected = keys.map(secretDigest);
  return async (request, reply) => {
    const path = pathOf(request);
    if (OPERATIONAL_ROUTES.has(path) || opts.skip?.(request)) return;
    if (opts.adminTokenSet && (path === ADMIN_ROUTE_PREFIX || path.startsWith(`${ADMIN_ROUTE_PREFIX}/`))) return;
    const given = presentedKey(request);
    if (given === undefined) {
      reply.header('www-authenticate', 'Bearer');
      throw missingApiKey();
    }
    const d = secretDigest(given);
    let ok = false;
    for (const e of expected) ok = timingSafeEqual(d, e) || ok;
    if (!ok) {
      reply.header('www-authenticate', 'Bearer error="invalid_token"');
      throw invalidApiKey();
    }
  };
}
