// One streamed generation against a weft (or TGI-compatible) server: POST /generate_stream, timing every
// server-sent token event. Loopback servers only: the load generator never leaves this machine.
import type { PlannedRequest } from './load-gen.js';

export type Outcome = 'ok' | `http-${number}` | 'stream-error' | 'network' | 'timeout';

export interface RequestResult {
  outcome: Outcome;
  adapter: string | null;
  /** Send → first token event, ms (null without one). */
  ttftMs: number | null;
  /** Gaps between consecutive token events, ms. */
  itlMs: number[];
  tokens: number;
  e2eMs: number;
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/** The base URL when it is a loopback http(s) URL; throws otherwise. */
export function loopbackUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`--url ${url}: not a URL`);
  }
  if (!(u.protocol === 'http:' || u.protocol === 'https:') || !(LOOPBACK.has(u.hostname) || u.hostname.startsWith('127.'))) {
    throw new Error(`--url ${url}: the serve benchmark only loads servers on this machine (localhost, 127.x, [::1])`);
  }
  return u;
}

/** The JSON body of one request (TGI/LoRAX parameters). */
export function requestBody(r: PlannedRequest, adapterSource: string | null): Record<string, unknown> {
  const parameters: Record<string, unknown> = { max_new_tokens: r.maxNewTokens, details: true, do_sample: false };
  if (r.adapter !== null) {
    parameters.adapter_id = r.adapter;
    if (adapterSource) parameters.adapter_source = adapterSource;
  }
  return { inputs: r.prompt, parameters };
}

/** Request headers carrying an API key, if one is given. */
export function authHeaders(apiKey: string | undefined): Record<string, string> {
  return apiKey ? { authorization: `Bearer ${apiKey}` } : {};
}

export async function streamOne(base: URL, r: PlannedRequest,
  o: { timeoutMs: number; adapterSource: string | null; apiKey?: string }): Promise<RequestResult> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), o.timeoutMs);
  const t0 = performance.now();
  const times: number[] = [];
  const done = (outcome: Outcome): RequestResult => ({
    outcome, adapter: r.adapter, ttftMs: times.length ? times[0]! - t0 : null,
    itlMs: times.slice(1).map((t, i) => t - times[i]!), tokens: times.length, e2eMs: performance.now() - t0,
  });
  try {
    const res = await fetch(new URL('generate_stream', base.href.endsWith('/') ? base : `${base.href}/`), {
      method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...authHeaders(o.apiKey) },
      body: JSON.stringify(requestBody(r, o.adapterSource)), signal: abort.signal,
    });
    if (!res.ok || !res.body) {
      await res.text().catch(() => '');
      return done(`http-${res.status}`);
    }
    const decoder = new TextDecoder();
    let buffered = '';
    let failed = false;
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      const now = performance.now();
      buffered += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        const frame = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        const data = frame.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('');
        if (!data) continue;
        const ev = JSON.parse(data) as { token?: unknown; error?: unknown };
        if (ev.error !== undefined) failed = true;
        else if (ev.token) times.push(now);
      }
    }
    return done(failed ? 'stream-error' : 'ok');
  } catch {
    return done(abort.signal.aborted ? 'timeout' : 'network');
  } finally {
    clearTimeout(timer);
  }
}
