// `weft router`: one HTTP endpoint in front of several weft replicas (each a coordinator with its shards), routing
// by adapter. Behind a plain load balancer every replica ends up loading every adapter — with many adapters each
// replica's slots thrash and every request risks a load. Here the requests for one adapter go to one replica (its
// rendezvous-hash first choice, placement.ts) unless that one is above the load bound (then its next choice), so
// each replica holds its share of the adapters; base-model requests go to the least busy replica (both read the
// requests in flight this router counts on each replica). A replica that is down, unreachable or answers 429 for
// an adapter request is skipped for the next choice (requests are buffered, so they can be sent again; nothing is
// retried once a response has started). Responses API ids are remembered with the replica that stored them. Admin
// requests go to every replica (broadcast.ts). Bodies and responses pass through unchanged (streams stream); each
// response says which replica answered (`x-weft-backend`). /metrics: metrics.ts.
import { httpsOptionsOf } from '../tls.js';
import { Readable, Transform } from 'node:stream';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { BackendPool, parseBackend, type Backend } from './backends.js';
import { broadcast, NamedAdapterLog, type Forwarded } from './broadcast.js';
import { routerMetrics } from './metrics.js';
import { loadBound, placeAdapter, placeLeastBusy, type Placement } from './placement.js';
import { routeOf } from './route-key.js';

export interface RouterOptions {
  backends: readonly string[];
  port: number;
  hostname: string;
  healthIntervalMs: number;
  /** c of the bounded-load placement (≥ 1; large: pure affinity). */
  loadFactor: number;
  logLevel: string;
  /** --ssl-keyfile, --ssl-certfile, --ssl-ca-certs: the router's own HTTPS (deploy/tls.ts); absent: plain HTTP. */
  sslKeyfile?: string | null;
  sslCertfile?: string | null;
  sslCaCerts?: string | null;
}

export interface RunningRouter {
  url: string;
  pool: BackendPool;
  close(): Promise<void>;
}

/** Headers that describe one connection, not the request or response (never forwarded). */
const HOP = new Set(['host', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'expect', 'content-length',
  'proxy-connection', 'te', 'trailer', 'content-encoding']);
/** Responses API ids remembered with their replica. */
const MAX_OWNERS = 100_000;
const BODY_LIMIT = 64 * 1024 * 1024;

export async function startRouter(o: RouterOptions): Promise<RunningRouter> {
  if (!(o.loadFactor >= 1)) throw new Error(`--load-factor must be at least 1 (got ${o.loadFactor})`);
  const backends = o.backends.map(parseBackend);
  const { registry, requests, retries, placements, up: upGauge } = routerMetrics(backends, o.loadFactor);
  const https = httpsOptionsOf({ sslKeyfile: o.sslKeyfile ?? null, sslCertfile: o.sslCertfile ?? null, sslCaCerts: o.sslCaCerts ?? null });
  const app = Fastify({ logger: { level: o.logLevel }, bodyLimit: BODY_LIMIT, ...(https ? { https } : {}) });
  const names = new NamedAdapterLog();
  const pool: BackendPool = new BackendPool(backends, o.healthIntervalMs, (b) => {
    upGauge.set({ backend: b.name }, b.up ? 1 : 0);
    app.log.info({ backend: b.name, url: b.url, up: b.up }, 'replica health changed');
    if (b.up) void names.replay(b, send);
  });
  const owners = new Map<string, string>();
  const remember = (id: string, b: Backend) => {
    if (owners.size >= MAX_OWNERS) owners.delete(owners.keys().next().value!);
    owners.set(id, b.name);
  };

  async function send(b: Backend, method: string, url: string, headers: Record<string, string>, body: Buffer | undefined): Promise<Forwarded> {
    try {
      const r = await fetch(b.url + url, { method, headers, ...(body && body.length > 0 ? { body: new Uint8Array(body) } : {}) });
      return { status: r.status, contentType: r.headers.get('content-type') ?? 'application/json', text: await r.text() };
    } catch (e) {
      pool.markDown(b);
      return { status: 502, contentType: 'application/json', text: JSON.stringify({ error: `replica ${b.name} is unreachable: ${(e as Error).message}`, error_type: 'unavailable' }) };
    }
  }

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.get('/health', async (_req, reply) => reply.code(pool.healthy.length > 0 ? 200 : 503).send({ up: pool.healthy.length, of: pool.backends.length }));
  app.get('/metrics', async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));
  app.get('/router/backends', async () => {
    const bound = loadBound(pool.backends, o.loadFactor);
    return { load_factor: o.loadFactor, load_bound: Number.isFinite(bound) ? bound : null,
      backends: pool.backends.map((b) => ({ name: b.name, url: b.url, up: b.up, in_flight: b.inFlight, base_model: b.baseModel })) };
  });

  app.all('*', async (request: FastifyRequest, reply: FastifyReply) => {
    const raw = Buffer.isBuffer(request.body) ? request.body : undefined;
    const body = parseJson(raw, request.headers['content-type']);
    const headers = forwardHeaders(request);
    const target = routeOf(request.method, request.url, body, pool.baseModels);
    if (target.kind === 'all') {
      if (pool.healthy.length === 0) return unavailable(reply);
      const r = await broadcast(pool.healthy, send, request.method, request.url, headers, raw);
      if (r.ok) names.record(request.url.split('?')[0]!, body, headers);
      return reply.code(r.status).type(r.contentType).header('x-weft-backend', pool.healthy.map((b) => b.name).join(',')).send(r.text);
    }
    // Placed and counted in flight (below) in one turn of the event loop: concurrent requests each see the others.
    let placement: Placement<Backend>;
    if (target.kind === 'owner') {
      const owner = pool.byName(owners.get(target.responseId) ?? '');
      // Unknown here (stored before this router started, or through another one): ask each replica in turn.
      placement = owner?.up ? { candidates: [owner], reason: 'owner', bound: Infinity }
        : request.method === 'POST' ? placeLeastBusy(pool.backends) : { candidates: pool.healthy, reason: 'owner', bound: Infinity };
    } else {
      placement = target.kind === 'adapter' ? placeAdapter(target.key, pool.backends, o.loadFactor) : placeLeastBusy(pool.backends);
    }
    const { candidates } = placement;
    if (candidates.length === 0) return unavailable(reply);
    const abort = new AbortController();
    reply.raw.on('close', () => { if (!reply.raw.writableFinished) abort.abort(); });
    for (let i = 0; i < candidates.length; i++) {
      const b = candidates[i]!, last = i === candidates.length - 1;
      b.inFlight++;
      placements.inc({ backend: b.name, reason: i === 0 ? placement.reason : 'retry' });
      let res: Response;
      try {
        res = await fetch(b.url + request.url, { method: request.method, headers, signal: abort.signal, redirect: 'manual',
          ...(raw && raw.length > 0 ? { body: new Uint8Array(raw) } : {}) });
      } catch (e) {
        b.inFlight--;
        if (abort.signal.aborted) return reply;  // the client left
        request.log.warn({ backend: b.name, err: (e as Error).message }, 'replica unreachable; trying the next');
        pool.markDown(b);
        retries.inc();
        continue;
      }
      // Full for this adapter, or (a stored response asked of every replica) not there: the next choice.
      const next = !last && ((res.status === 429 && target.kind === 'adapter') || (res.status === 404 && target.kind === 'owner' && request.method !== 'POST'));
      if (next) {
        b.inFlight--;
        await res.body?.cancel();
        if (res.status === 429) retries.inc();
        continue;
      }
      requests.inc({ backend: b.name, code: String(res.status) });
      const track = request.method === 'POST' && request.url.split('?')[0] === '/v1/responses' && res.ok;
      return relay(reply, res, b, track ? (id) => remember(id, b) : null);
    }
    return unavailable(reply);
  });

  const address = await app.listen({ port: o.port, host: o.hostname });
  await pool.start();
  const url = address.replace('0.0.0.0', '127.0.0.1').replace('[::]', '127.0.0.1');
  app.log.info({ url, loadFactor: o.loadFactor, backends: pool.backends.map((b) => ({ name: b.name, url: b.url, up: b.up })) }, 'weft router listening');
  return { url, pool, close: async () => { pool.stop(); await app.close(); } };
}

function parseJson(raw: Buffer | undefined, contentType: string | undefined): unknown {
  if (!raw || raw.length === 0 || !(contentType ?? '').includes('json')) return undefined;
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    return undefined;  // the replica answers it with its own 400
  }
}

function forwardHeaders(request: FastifyRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(request.headers)) {
    if (v === undefined || HOP.has(k)) continue;
    out[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

function unavailable(reply: FastifyReply) {
  return reply.code(503).send({ error: 'no replica is available (every --backend is down or unreachable); retry shortly', error_type: 'unavailable' });
}

/** The replica's response as it comes (status, headers, streamed body); `onResponseId`: a stored response's id. */
function relay(reply: FastifyReply, res: Response, b: Backend, onResponseId: ((id: string) => void) | null) {
  reply.code(res.status);
  res.headers.forEach((v, k) => { if (!HOP.has(k)) reply.header(k, v); });
  reply.header('x-weft-backend', b.name);
  if (!res.body) {
    b.inFlight--;
    return reply.send();
  }
  let stream: Readable = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream);
  let done = false;
  const finish = () => { if (!done) { done = true; b.inFlight--; } };
  stream.once('end', finish).once('close', finish).once('error', finish);
  if (onResponseId) stream = stream.pipe(responseIdSniffer(onResponseId));
  return reply.send(stream);
}

/** Passes bytes through; reports the first `"id": "resp_…"` in the first 64 KiB (a JSON response or its first event). */
function responseIdSniffer(found: (id: string) => void): Transform {
  let seen = '';
  let done = false;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (!done) {
        seen += chunk.toString('utf8');
        const m = /"id"\s*:\s*"(resp_[A-Za-z0-9_-]+)"/.exec(seen);
        if (m) { done = true; found(m[1]!); } else if (seen.length > 65536) done = true;
      }
      cb(null, chunk);
    },
  });
}
