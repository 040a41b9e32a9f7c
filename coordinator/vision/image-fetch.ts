// An image URL of a request to its bytes: `data:image/...;base64,...`, http(s) (bounded in time, bytes and
// redirects; optionally only from allowed domains), or file:// under --allowed-local-media-path (vLLM's flag;
// refused otherwise). Errors name the image by where it is in the request and by its URL without query string
// or credentials: a presigned URL's signature is a secret and never goes into an answer or a log.
import { realpath, stat, open } from 'node:fs/promises';
import { isAbsolute, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ImageInputError } from './image-error.js';

export interface ImageFetchLimits {
  /** Largest image file accepted (base64 decoded, downloaded or read). */
  maxImageBytes: number;
  /** Per http(s) image: connection, redirects and body together. */
  fetchTimeoutMs: number;
  /** file:// URLs may name files under this directory (symlinks resolved); null: file:// is refused. */
  allowedLocalMediaPath: string | null;
  /** Non-empty: http(s) images only from these hosts or their subdomains (vLLM's --allowed-media-domains). */
  allowedMediaDomains: readonly string[];
}

export const MAX_REDIRECTS = 5;

/** The URL as errors show it: scheme, host and path (no user, password or query); a data URL by its media type only. */
export function describeUrl(url: string): string {
  if (url.startsWith('data:')) return `data:${url.slice(5, url.indexOf(',') < 0 ? 45 : Math.min(url.indexOf(','), 45)).split(';')[0]}…`;
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname.length > 80 ? `${u.pathname.slice(0, 80)}…` : u.pathname}`;
  } catch {
    return 'an invalid URL';
  }
}

/** The bytes of image `url`; `label` names it in errors (e.g. "image messages[0].content[1]"). */
export async function fetchImageBytes(url: string, limits: ImageFetchLimits, label: string, signal?: AbortSignal): Promise<Uint8Array> {
  if (url.startsWith('data:')) return dataUrlBytes(url, limits, label);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ImageInputError(422, `${label}: the URL is not valid; send an http(s) URL or a data:image/...;base64 URL`);
  }
  if (parsed.protocol === 'file:') return fileBytes(parsed, limits, label);
  if (parsed.protocol === 'http:' || parsed.protocol === 'https:') return httpBytes(parsed, limits, label, signal);
  throw new ImageInputError(422, `${label}: URL scheme ${parsed.protocol} is not supported; send an http(s) URL or a data:image/...;base64 URL`);
}

function dataUrlBytes(url: string, limits: ImageFetchLimits, label: string): Uint8Array {
  const comma = url.indexOf(',');
  const header = comma < 0 ? '' : url.slice(5, comma);
  const params = header.split(';');
  if (comma < 0 || !params.includes('base64')) {
    throw new ImageInputError(422, `${label}: a data URL must be data:image/<type>;base64,<data>`);
  }
  const type = params[0]!.toLowerCase();
  if (type !== '' && !type.startsWith('image/')) throw new ImageInputError(422, `${label}: the data URL's media type ${type.slice(0, 40)} is not an image`);
  const body = url.slice(comma + 1).replace(/\s+/g, '');
  const approx = Math.floor(body.length * 3 / 4);
  if (approx > limits.maxImageBytes + 2) throw tooLarge(label, approx, limits);
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(body)) throw new ImageInputError(422, `${label}: the data URL's base64 data is not valid base64`);
  const bytes = Buffer.from(body, 'base64');
  if (bytes.length > limits.maxImageBytes) throw tooLarge(label, bytes.length, limits);
  if (bytes.length === 0) throw new ImageInputError(422, `${label}: the data URL holds no data`);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

function tooLarge(label: string, bytes: number, limits: ImageFetchLimits): ImageInputError {
  return new ImageInputError(413, `${label} is ${bytes} bytes, over the server's limit of ${limits.maxImageBytes} (--max-image-bytes); send a smaller image`);
}

async function fileBytes(url: URL, limits: ImageFetchLimits, label: string): Promise<Uint8Array> {
  if (limits.allowedLocalMediaPath === null) {
    throw new ImageInputError(422, `${label}: file:// URLs are refused: the server reads local files only under --allowed-local-media-path`);
  }
  const denied = () => new ImageInputError(422, `${label}: ${url.pathname.slice(0, 120)} is not a readable file under --allowed-local-media-path`);
  let path: string;
  let root: string;
  try {
    path = await realpath(fileURLToPath(url));
    root = await realpath(limits.allowedLocalMediaPath);
  } catch {
    throw denied();
  }
  const rel = relative(root, path);
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) throw denied();
  const info = await stat(path).catch(() => null);
  if (info === null || !info.isFile()) throw denied();
  if (info.size > limits.maxImageBytes) throw tooLarge(label, info.size, limits);
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(info.size);
    const { bytesRead } = await fh.read(buf, 0, info.size, 0);
    return new Uint8Array(buf.buffer, buf.byteOffset, bytesRead);
  } finally {
    await fh.close();
  }
}

function hostAllowed(host: string, domains: readonly string[]): boolean {
  if (domains.length === 0) return true;
  const h = host.toLowerCase().replace(/\.$/, '');
  return domains.some((d) => {
    const dd = d.toLowerCase().replace(/^\./, '');
    return h === dd || h.endsWith(`.${dd}`);
  });
}

async function httpBytes(first: URL, limits: ImageFetchLimits, label: string, signal?: AbortSignal): Promise<Uint8Array> {
  const timeout = AbortSignal.timeout(limits.fetchTimeoutMs);
  const abort = signal ? AbortSignal.any([timeout, signal]) : timeout;
  let url = first;
  try {
    for (let hop = 0; ; hop++) {
      if (!hostAllowed(url.hostname, limits.allowedMediaDomains)) {
        throw new ImageInputError(422, `${label}: host ${url.hostname} is not in --allowed-media-domains`);
      }
      // Redirects are followed here, one by one, so that each hop's host is checked and their number bounded.
      const res = await fetch(url, { redirect: 'manual', signal: abort, headers: { accept: 'image/*' } });
      if (res.status >= 300 && res.status < 400 && res.headers.has('location')) {
        await res.body?.cancel();
        if (hop >= MAX_REDIRECTS) throw new ImageInputError(422, `${label} (${describeUrl(first.href)}): more than ${MAX_REDIRECTS} redirects`);
        const next = new URL(res.headers.get('location')!, url);
        if (next.protocol !== 'http:' && next.protocol !== 'https:') {
          throw new ImageInputError(422, `${label} (${describeUrl(first.href)}): redirected to a ${next.protocol} URL`);
        }
        url = next;
        continue;
      }
      if (!res.ok) {
        await res.body?.cancel();
        throw new ImageInputError(422, `${label} could not be fetched from ${describeUrl(url.href)}: HTTP ${res.status}`);
      }
      return await readCapped(res, limits, label);
    }
  } catch (e) {
    if (e instanceof ImageInputError) throw e;
    const why = timeout.aborted ? `no complete answer within ${limits.fetchTimeoutMs} ms (--image-fetch-timeout-ms)`
      : signal?.aborted ? 'the request was cancelled' : ((e as Error).cause as Error | undefined)?.message ?? (e as Error).message;
    throw new ImageInputError(422, `${label} could not be fetched from ${describeUrl(url.href)}: ${why}`);
  }
}

async function readCapped(res: Response, limits: ImageFetchLimits, label: string): Promise<Uint8Array> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > limits.maxImageBytes) {
    await res.body?.cancel();
    throw tooLarge(label, declared, limits);
  }
  const parts: Uint8Array[] = [];
  let total = 0;
  if (res.body === null) return new Uint8Array(0);
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limits.maxImageBytes) {
      await reader.cancel();
      throw new ImageInputError(413, `${label} is over the server's limit of ${limits.maxImageBytes} bytes (--max-image-bytes); send a smaller image`);
    }
    parts.push(value);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
