// A local stand-in for the Hugging Face Hub: a real node:http server on 127.0.0.1 speaking the part of
// the Hub API that weft uses. Like the real Hub:
//   GET /api/models/{id}/revision/{rev}   → { id, sha, private, gated, siblings: [{ rfilename }] }
//   GET|HEAD /{id}/resolve/{rev}/{file}   → LFS files: 302 to a content-addressed /cdn/{sha256} URL with
//                                           X-Linked-ETag / X-Linked-Size; other files: 200 with the git
//                                           blob sha1 as ETag; X-Repo-Commit on both
//   auth: an unknown token → 401 "Invalid credentials in Authorization header" (even for public repos);
//   a private or missing repo without token → 401 RepoNotFound; a private repo with another valid
//   token → 404 RepoNotFound; a gated repo's files → 401 (no token) / 403 GatedRepo (other token),
//   while its metadata stays public; unknown revision → 404 RevisionNotFound; unknown file → 404 EntryNotFound.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HubRepoSpec {
  private?: boolean;
  /** Files need a token (401 without, 403 with another user's), metadata stays public. */
  gated?: boolean;
  /** The token that may read this repo when private or gated. */
  token?: string;
  revisions: Record<string /* branch or sha */, { sha: string; files: Record<string, Buffer | string /* path on disk */> }>;
}

export interface HubServerHandle {
  endpoint: string;
  /** Requests per URL path (e.g. `/api/models/o/n/revision/main`, `/cdn/<sha256>`). */
  hits: Map<string, number>;
  stop(): Promise<void>;
  /** The next download of `path` sends its headers and `afterBytes` bytes, then cuts the connection. */
  failNextDownload(path: string, afterBytes: number): void;
  /** The next download of `path` has its last byte flipped (same length, wrong sha256). */
  corruptNextDownload(path: string): void;
  /** The /cdn path an LFS file with these bytes is served from. */
  blobPath(content: Buffer): string;
}

interface Blob { bytes: Buffer; sha256: string; gitSha1: string; lfs: boolean }

const LFS_SUFFIXES = ['.safetensors', '.bin', '.pt', '.pth', '.gguf', '.onnx', '.msgpack', '.h5'];

export async function startHubServer(opts: { repos: Record<string, HubRepoSpec> }): Promise<HubServerHandle> {
  const repos = opts.repos;
  const knownTokens = new Set(Object.values(repos).map((r) => r.token).filter((t): t is string => t !== undefined));
  const blobs = new Map<string, Blob>(); // by sha256
  const filesOf = new Map<string, Map<string, Blob>>(); // by `${id}@${commit sha}`
  for (const [id, repo] of Object.entries(repos)) {
    for (const rev of Object.values(repo.revisions)) {
      const files = new Map<string, Blob>();
      for (const [name, src] of Object.entries(rev.files)) {
        const blob = makeBlob(typeof src === 'string' ? readFileSync(src) : src, LFS_SUFFIXES.some((s) => name.endsWith(s)));
        blobs.set(blob.sha256, blob);
        files.set(name, blob);
      }
      filesOf.set(`${id}@${rev.sha}`, files);
    }
  }
  const hits = new Map<string, number>();
  const failures = new Map<string, number>();
  const corruptions = new Set<string>();

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://x');
    hits.set(url.pathname, (hits.get(url.pathname) ?? 0) + 1);
    let segs: string[];
    try {
      segs = url.pathname.split('/').slice(1).map((s) => decodeURIComponent(s));
    } catch {
      return fail(res, 400, '', 'Bad Request');
    }
    if (segs[0] === 'cdn' && segs.length === 2) { // the CDN: content-addressed, no auth (its real URLs are signed)
      const blob = blobs.get(segs[1]!);
      if (!blob) return fail(res, 404, '', 'no such object');
      return sendBytes(req, res, url.pathname, blob, { etag: `"${blob.sha256}"` });
    }
    const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (auth !== undefined && !knownTokens.has(auth)) return fail(res, 401, '', 'Invalid credentials in Authorization header');
    const api = segs[0] === 'api' && segs[1] === 'models';
    const rest = api ? segs.slice(2) : segs;
    const marker = api ? 'revision' : 'resolve';
    const at = rest.indexOf(marker);
    if (at < 1 || at > 2) return fail(res, 404, '', 'Not Found');
    const id = rest.slice(0, at).join('/');
    const repo = repos[id];
    const denied = access(repo, auth, api);
    if (denied) return fail(res, denied.status, denied.code, denied.message);
    const revName = api ? rest.slice(at + 1).join('/') : rest[at + 1] ?? '';
    const rev = repo!.revisions[revName] ?? Object.values(repo!.revisions).find((r) => r.sha === revName);
    if (!rev) return fail(res, 404, 'RevisionNotFound', `Invalid rev id: ${revName}`);
    const files = filesOf.get(`${id}@${rev.sha}`)!;
    if (api) {
      return json(res, { _id: id, id, modelId: id, sha: rev.sha, private: Boolean(repo!.private),
        gated: repo!.gated ? 'manual' : false, siblings: [...files.keys()].map((rfilename) => ({ rfilename })) });
    }
    const file = rest.slice(at + 2).join('/');
    const blob = files.get(file);
    if (!blob) return fail(res, 404, 'EntryNotFound', `Entry not found: ${file}`);
    const common = { 'x-repo-commit': rev.sha };
    if (blob.lfs) {
      res.writeHead(302, { ...common, location: `/cdn/${blob.sha256}`, etag: `"${blob.sha256}"`,
        'x-linked-etag': `"${blob.sha256}"`, 'x-linked-size': String(blob.bytes.length), 'content-length': '0' });
      return void res.end();
    }
    return sendBytes(req, res, url.pathname, blob, { ...common, etag: `"${blob.gitSha1}"` });
  };

  const sendBytes = (req: IncomingMessage, res: ServerResponse, path: string, blob: Blob, headers: Record<string, string>): void => {
    res.writeHead(200, { ...headers, 'content-type': 'application/octet-stream', 'content-length': String(blob.bytes.length) });
    if (req.method === 'HEAD') return void res.end();
    let bytes = blob.bytes;
    if (corruptions.delete(path)) {
      bytes = Buffer.from(bytes);
      bytes[bytes.length - 1] ^= 0xff;
    }
    const cutAt = failures.get(path);
    if (cutAt === undefined) return void res.end(bytes);
    failures.delete(path);
    res.write(bytes.subarray(0, Math.min(cutAt, bytes.length - 1)), () => res.destroy());
  };

  const server = createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  let stopped: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    hits,
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return stopped;
    },
    failNextDownload(path, afterBytes) {
      failures.set(path, afterBytes);
    },
    corruptNextDownload(path) {
      corruptions.add(path);
    },
    blobPath(content) {
      return `/cdn/${createHash('sha256').update(content).digest('hex')}`;
    },
  };
}

/** The Hub's answer to a request for `repo` with `token` (already known valid, or absent); null = allowed. */
function access(repo: HubRepoSpec | undefined, token: string | undefined, metadata: boolean):
  { status: number; code: string; message: string } | null {
  const notFound = { code: 'RepoNotFound', message: 'Repository not found' };
  if (!repo) return { status: token === undefined ? 401 : 404, ...notFound };
  if (repo.private && token !== repo.token) return { status: token === undefined ? 401 : 404, ...notFound };
  if (repo.gated && !metadata && token !== repo.token) {
    return { status: token === undefined ? 401 : 403, code: 'GatedRepo', message: 'Access to this gated repo is restricted' };
  }
  return null;
}

function makeBlob(bytes: Buffer, lfs: boolean): Blob {
  return {
    bytes,
    lfs,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    gitSha1: createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex'),
  };
}

function fail(res: ServerResponse, status: number, code: string, message: string): void {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'x-error-message': message };
  if (code) headers['x-error-code'] = code;
  res.writeHead(status, headers);
  res.end(JSON.stringify({ error: message }));
}

function json(res: ServerResponse, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}
