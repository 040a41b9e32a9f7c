// Cross-origin access for browser clients (`--cors-allow-origin`, TGI's flag): off unless origins are given.
// @fastify/cors answers preflights (OPTIONS with Access-Control-Request-Method) and sets the response headers;
// this file only says which origins, methods and headers weft allows.
//
// Choices (and why):
//  - Exact origins (`https://app.example.com`) or `*`; no patterns: a regular expression that is not anchored
//    lets look-alike origins in, and an operator listing origins knows them.
//  - No credentials mode: weft authenticates with bearer keys, never cookies, so browsers need no
//    Access-Control-Allow-Credentials (and `*` stays usable).
//  - Preflights never carry credentials (the CORS spec), so the API-key check lets them through
//    (isPreflight); the real request that follows needs its key as usual.
//  - x-request-id is exposed so a browser client can quote it in a bug report.
import cors from '@fastify/cors';
import type { FastifyInstance, FastifyRequest } from 'fastify';

export const CORS_MAX_AGE_S = 600;

/** Checks the configured origins; throws with what to write instead. */
export function checkCorsOrigins(origins: readonly string[]): void {
  for (const o of origins) {
    if (o === '*') continue;
    let u: URL | null = null;
    try {
      u = new URL(o);
    } catch {
      // reported below
    }
    if (!u || !(u.protocol === 'http:' || u.protocol === 'https:') || u.origin !== o) {
      throw new Error(`--cors-allow-origin ${JSON.stringify(o)}: give an origin as the browser sends it ` +
        '(scheme://host[:port], no path or trailing slash, e.g. https://app.example.com), or * for any');
    }
  }
}

/** Registers CORS for `origins` (none: nothing is registered and cross-origin browsers are refused). */
export async function registerCors(app: FastifyInstance, origins: readonly string[]): Promise<void> {
  if (origins.length === 0) return;
  checkCorsOrigins(origins);
  await app.register(cors, {
    origin: origins.includes('*') ? '*' : [...origins],
    methods: ['GET', 'POST'],
    exposedHeaders: ['x-request-id'],
    maxAge: CORS_MAX_AGE_S,
  });
}

/** A CORS preflight (the browser asking, without credentials, whether it may send the real request). */
export function isPreflight(request: FastifyRequest): boolean {
  return request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined;
}
