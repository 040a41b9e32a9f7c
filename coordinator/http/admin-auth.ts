// The admin token check for /v1/adapters: `Authorization: Bearer <token>`, compared in constant time.
// Both sides are hashed to 32-byte digests first, so timingSafeEqual always gets equal-length buffers
// and the comparison time does not reveal the configured token's length either.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { HttpError } from './errors.js';
import { bearerToken } from './validate.js';

/** 401: no credentials, or an Authorization header that is not `Bearer <token>`. */
export const adminUnauthorized = (): HttpError =>
  new HttpError(401, 'unauthorized', 'the adapter admin API requires `Authorization: Bearer <admin token>`');

/** 403: well-formed credentials that are not the admin token (never echoed). */
export const adminForbidden = (): HttpError => new HttpError(403, 'forbidden', 'invalid admin token');

export type AdminAuthHook = (request: FastifyRequest, reply: FastifyReply) => Promise<void>;

/** A secret's SHA-256: equal-length buffers for timingSafeEqual, whatever the secrets' lengths (api-key-auth too). */
export const secretDigest = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();

/**
 * An onRequest hook that admits only the admin token; undefined (no hook: the routes are open) when no
 * token is configured. An empty token is a configuration mistake, not "open": it throws.
 */
export function adminAuthHook(adminToken: string | undefined): AdminAuthHook | undefined {
  if (adminToken === undefined) return undefined;
  if (adminToken.length === 0) throw new Error('adminToken must not be empty (leave it unset for an open admin API)');
  const expected = secretDigest(adminToken);
  return async (request, reply) => {
    const header = request.headers.authorization;
    const given = bearerToken(header);
    if (given === undefined) {
      reply.header('www-authenticate', 'Bearer');
      throw adminUnauthorized();
    }
    if (!timingSafeEqual(secretDigest(given), expected)) throw adminForbidden();
  };
}
