// HTTP plumbing for the Hugging Face Hub source: JSON requests, access probes and verified streaming
// downloads, with the Hub's status codes mapped to EngineError kinds. The token goes only into the
// Authorization header of requests to the Hub's own origin; no message built here ever contains it.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { EngineError } from '../../engine/types.js';

/** What a request is about, for error messages: `'owner/name'`, its revision, and a file when there is one. */
export interface HubSubject {
  id: string;
  revision: string;
  file?: string;
}

export interface HubHttpOptions {
  endpoint: string;
  fetchImpl: typeof fetch;
  /** Connect/response timeout, and the longest a download may go without receiving a byte. */
  timeoutMs: number;
}

export interface DownloadResult {
  bytes: number;
  sha256: string;
  /** Computed only when the ETag announced one. */
  gitSha1: string | null;
}

const MAX_REDIRECTS = 5;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const GIT_SHA1_HEX = /^[0-9a-f]{40}$/;

/**
 * How the Hub's answers map to EngineError kinds. The Hub answers 401 both for a private (or gated)
 * repo without a token and for a repo that does not exist, so without a token a 401 says "missing or
 * private" (adapter_unauthorized); with a token, a 401 means the token itself was refused (invalid,
 * expired) → adapter_forbidden. 403 (gated repo not accepted, token without read scope) →
 * adapter_forbidden. 404 → adapter_not_found, naming the repo, revision or file from X-Error-Code;
 * an authenticated user who cannot see a private repo also gets 404 from the Hub, and we say so.
 * Anything else (429, 5xx, unexpected codes, network errors, timeouts) → adapter_load (424).
 */
export function hubError(status: number, headers: Headers, s: HubSubject, tokenSent: boolean, token?: string): EngineError {
  const code = headers.get('x-error-code') ?? '';
  const hubSays = serverMessage(headers.get('x-error-message'), token);
  const where = `Hugging Face repo '${s.id}'`;
  const suffix = hubSays ? ` (Hub: ${hubSays})` : '';
  if (status === 401) {
    if (tokenSent) return new EngineError('adapter_forbidden', `the Hub refused the api_token for ${where}: it is invalid or expired${suffix}`);
    if (code === 'GatedRepo') return new EngineError('adapter_unauthorized', `${where} is gated: pass an api_token of a user granted access${suffix}`);
    return new EngineError('adapter_unauthorized',
      `${where} does not exist, or it is private or gated and needs an api_token${suffix}`);
  }
  if (status === 403) {
    const why = code === 'GatedRepo' ? 'it is gated and this token\'s user has not been granted access' : 'this token may not read it';
    return new EngineError('adapter_forbidden', `access to ${where} is forbidden: ${why}${suffix}`);
  }
  if (status === 404) {
    if (code === 'RevisionNotFound') return new EngineError('adapter_not_found', `${where} has no revision '${s.revision}'${suffix}`);
    if (code === 'EntryNotFound' || (s.file !== undefined && code !== 'RepoNotFound')) {
      return new EngineError('adapter_not_found', `${where} has no file '${s.file ?? '?'}' at revision '${s.revision}'${suffix}`);
    }
    const hint = tokenSent ? ', or it is private and this token cannot see it' : '';
    return new EngineError('adapter_not_found', `${where} was not found${hint}${suffix}`);
  }
  const what = s.file ? `'${s.file}' from ${where}` : where;
  return new EngineError('adapter_load', `the Hub answered HTTP ${status} for ${what} at revision '${s.revision}'${suffix}`);
}

/** A server-provided explanation, short, single-line and with the token removed should it echo one. */
function serverMessage(text: string | null, token?: string): string {
  if (!text) return '';
  let t = text.replace(/[\r\n\t]+/g, ' ').trim();
  if (token) t = t.split(token).join('<redacted>');
  return t.length > 200 ? `${t.slice(0, 200)}…` : t;
}

/** An ETag header as a bare lowercase value: without `W/` and quotes. */
export function bareEtag(v: string | null): string | null {
  if (!v) return null;
  return v.replace(/^W\//, '').replace(/^"|"$/g, '').toLowerCase();
}

export class HubHttp {
  private readonly origin: string;

  constructor(private readonly opts: HubHttpOptions) {
    this.origin = new URL(opts.endpoint).origin;
  }

  /** `GET {endpoint}{path}` as JSON; throws the mapped EngineError on any non-2xx answer. */
  async getJson(path: string, token: string | undefined, s: HubSubject): Promise<unknown> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), this.opts.timeoutMs);
    try {
      const res = await this.send(this.url(path), 'GET', token, ac.signal, s, 'json');
      if (!res.ok) {
        await discard(res);
        throw hubError(res.status, res.headers, s, token !== undefined, token);
      }
      try {
        return await res.json();
      } catch (e) {
        throw this.transportError(e, ac.signal, s, 'reading the answer');
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * `HEAD` of a resolve URL without following its redirect: checks the token may read the file (a
   * gated repo answers 401/403 here while its metadata stays public).
   */
  async probe(path: string, token: string | undefined, s: HubSubject): Promise<void> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), this.opts.timeoutMs);
    try {
      const res = await this.send(this.url(path), 'HEAD', token, ac.signal, s, 'manual');
      await discard(res);
      if (res.status >= 400) throw hubError(res.status, res.headers, s, token !== undefined, token);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Streams `{endpoint}{path}` (following the Hub's redirects to its CDN) into `dest`, then checks the
   * byte count against X-Linked-Size / Content-Length and the sha256 against an LFS ETag when given.
   */
  async download(path: string, dest: string, token: string | undefined, s: HubSubject, cancel?: AbortSignal): Promise<DownloadResult> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), this.opts.timeoutMs);
    const onCancel = (): void => ac.abort();
    cancel?.addEventListener('abort', onCancel, { once: true });
    try {
      let url = this.url(path);
      let linkedEtag: string | null = null;
      let linkedSize: string | null = null;
      for (let hop = 0; ; hop++) {
        const res = await this.send(url, 'GET', token, ac.signal, s, 'manual');
        if (res.status >= 300 && res.status < 400) {
          await discard(res);
          linkedEtag ??= bareEtag(res.headers.get('x-linked-etag'));
          linkedSize ??= res.headers.get('x-linked-size');
          const location = res.headers.get('location');
          if (!location || hop >= MAX_REDIRECTS) {
            throw new EngineError('adapter_load', `too many or broken redirects downloading '${s.file}' from Hugging Face repo '${s.id}'`);
          }
          url = new URL(location, url);
          continue;
        }
        if (!res.ok) {
          await discard(res);
          throw hubError(res.status, res.headers, s, token !== undefined, token);
        }
        const etag = linkedEtag ?? bareEtag(res.headers.get('etag'));
        const encoded = (res.headers.get('content-encoding') ?? 'identity') !== 'identity';
        // A regular (non-LFS) file served by the Hub itself has its git blob sha1 as a strong ETag.
        const strong = !(res.headers.get('etag') ?? 'W/').startsWith('W/');
        const direct = hop === 0 && strong && !encoded && res.headers.get('content-length') !== null
          && etag !== null && GIT_SHA1_HEX.test(etag);
        const expected = {
          size: linkedSize ?? (encoded ? null : res.headers.get('content-length')),
          sha256: etag !== null && SHA256_HEX.test(etag) ? etag : null,
          gitSha1: direct ? etag : null,
        };
        const got = await this.stream(res, dest, timer, ac.signal, s, expected.gitSha1 !== null);
        verify(got, expected, s);
        return got;
      }
    } finally {
      clearTimeout(timer);
      cancel?.removeEventListener('abort', onCancel);
    }
  }

  private async stream(res: Response, dest: string, timer: NodeJS.Timeout, signal: AbortSignal, s: HubSubject,
    gitHash: boolean): Promise<DownloadResult> {
    if (!res.body) throw new EngineError('adapter_load', `the Hub sent no body for '${s.file}' of '${s.id}'`);
    const hash = createHash('sha256');
    // git hashes `blob <size>\0` + content; the size is only known up front from Content-Length.
    const git = gitHash ? createHash('sha1').update(`blob ${res.headers.get('content-length')}\0`) : null;
    let bytes = 0;
    const count = async function* (source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
      for await (const chunk of source) {
        timer.refresh(); // the timeout is per stall, not per file: a large shard may take minutes
        hash.update(chunk);
        git?.update(chunk);
        bytes += chunk.length;
        yield chunk;
      }
    };
    try {
      await pipeline(Readable.fromWeb(res.body as NodeReadableStream<Uint8Array>), count, createWriteStream(dest, { flags: 'wx' }));
    } catch (e) {
      throw this.transportError(e, signal, s, `downloading (after ${bytes} bytes)`);
    }
    return { bytes, sha256: hash.digest('hex'), gitSha1: git?.digest('hex') ?? null };
  }

  private async send(url: URL, method: 'GET' | 'HEAD', token: string | undefined, signal: AbortSignal, s: HubSubject,
    redirect: 'json' | 'manual'): Promise<Response> {
    const headers: Record<string, string> = { 'accept-encoding': 'identity', 'user-agent': 'weft' };
    // Like the Hub's own clients: the token never follows a redirect to another host (the CDN).
    if (token !== undefined && url.origin === this.origin) headers.authorization = `Bearer ${token}`;
    try {
      return await this.opts.fetchImpl(url, { method, headers, signal, redirect: redirect === 'json' ? 'follow' : 'manual' });
    } catch (e) {
      throw this.transportError(e, signal, s, 'connecting');
    }
  }

  private transportError(e: unknown, signal: AbortSignal, s: HubSubject, during: string): EngineError {
    if (e instanceof EngineError) return e;
    const what = s.file ? `'${s.file}' from Hugging Face repo '${s.id}'` : `Hugging Face repo '${s.id}'`;
    if (signal.aborted) return new EngineError('adapter_load', `timed out after ${this.opts.timeoutMs} ms ${during} ${what} at ${this.origin}`);
    const reason = e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : 'unknown error';
    return new EngineError('adapter_load', `network error ${during} ${what} at ${this.origin}: ${reason}`);
  }

  private url(path: string): URL {
    return new URL(this.opts.endpoint.replace(/\/+$/, '') + path);
  }
}

function verify(got: DownloadResult, expected: { size: string | null; sha256: string | null; gitSha1: string | null }, s: HubSubject): void {
  const where = `'${s.file}' from Hugging Face repo '${s.id}'`;
  if (expected.size !== null && Number(expected.size) !== got.bytes) {
    throw new EngineError('adapter_load', `downloaded ${got.bytes} bytes of ${where}, the Hub announced ${expected.size}`);
  }
  if (expected.sha256 !== null && expected.sha256 !== got.sha256) {
    throw new EngineError('adapter_load', `sha256 mismatch for ${where}: the Hub announced ${expected.sha256}, got ${got.sha256}`);
  }
  if (expected.gitSha1 !== null && expected.gitSha1 !== got.gitSha1) {
    throw new EngineError('adapter_load', `git blob sha1 mismatch for ${where}: the Hub announced ${expected.gitSha1}, got ${got.gitSha1}`);
  }
}

async function discard(res: Response): Promise<void> {
  try {
    await res.body?.cancel();
  } catch {
    // the connection is already gone; nothing to free
  }
}
