// `adapter_source: "hub"`: PEFT adapters (and base models for `--model-id`) from the Hugging Face Hub
// or a mirror speaking its API (HF_ENDPOINT). checkAccess resolves a branch/tag/sha to a commit sha with
// the request's token; fetch downloads that commit's files once into the DiskCache, verified.
// The 401/403/404 mapping is documented on hubError (hub-http.ts).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { EngineError } from '../../engine/types.js';
import type { DiskCache } from '../disk-cache.js';
import { HubHttp, type HubSubject } from './hub-http.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_OPTIONAL_FILES, ADAPTER_WEIGHT_FILES, type AdapterSourceClient } from './types.js';

export const DEFAULT_HUB_ENDPOINT = 'https://huggingface.co';
export const DEFAULT_HUB_TIMEOUT_MS = 30_000;

/** Files of a base model repo that are downloaded when present (weights are chosen separately). */
export const MODEL_FILES = [
  'config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json',
  'special_tokens_map.json', 'chat_template.jinja', 'tokenizer.model',
  // sentence-transformers' pooling (embedding models): which pooling /v1/embeddings may serve
  'modules.json', '1_Pooling/config.json',
] as const;
const MODEL_WEIGHTS = 'model.safetensors';
const MODEL_INDEX = 'model.safetensors.index.json';
const PARALLEL_DOWNLOADS = 4;

export interface HubSourceOptions {
  /** HF_ENDPOINT; default https://huggingface.co. */
  endpoint: string;
  cache: DiskCache;
  fetchImpl?: typeof fetch;
  /** Per request, and per stall while downloading; default 30 s. */
  timeoutMs?: number;
}

/** One commit of a repo as the revision API describes it. */
export interface HubRevision {
  sha: string;
  files: ReadonlySet<string>;
  gated: boolean;
}

export class HubSource implements AdapterSourceClient {
  readonly kind = 'hub' as const;
  private readonly http: HubHttp;
  private readonly cache: DiskCache;

  constructor(opts: HubSourceOptions) {
    const endpoint = opts.endpoint || DEFAULT_HUB_ENDPOINT;
    if (!/^https?:\/\//.test(endpoint)) throw new EngineError('validation', `HF endpoint must be an http(s) URL, got '${endpoint}'`);
    this.cache = opts.cache;
    this.http = new HubHttp({ endpoint, fetchImpl: opts.fetchImpl ?? fetch, timeoutMs: opts.timeoutMs ?? DEFAULT_HUB_TIMEOUT_MS });
  }

  /** An adapter id is `owner/name`, or `owner/name/sub/folder` for one in a folder of the repo (a checkpoint of a run,
   * one of several adapters a repo holds), as PEFT's `subfolder`. */
  async checkAccess(id: string, revision: string | null, token: string | undefined): Promise<string> {
    const { repo, folder } = adapterRepo(id);
    return (await this.access(repo, revision, checkToken(token), folder + ADAPTER_CONFIG_FILE)).sha;
  }

  /** `sha` is what checkAccess returned: the cache is keyed by immutable commits only. */
  async fetch(id: string, sha: string, token: string | undefined): Promise<string> {
    const { repo, folder } = adapterRepo(id);
    if (!/^[0-9a-f]{40}$/.test(sha)) throw new EngineError('validation', `hub fetch needs a commit sha from checkAccess, got '${clip(sha)}'`);
    const tok = checkToken(token);
    return this.cache.ensure('hub', id, sha, async (tmp) => {
      const rev = await this.revision(repo, sha, tok);
      const has = (f: string) => rev.files.has(folder + f);
      if (!has(ADAPTER_CONFIG_FILE)) throw missing(repo, sha, `file '${folder}${ADAPTER_CONFIG_FILE}'`);
      const weights = ADAPTER_WEIGHT_FILES.find(has);
      if (!weights) throw missing(repo, sha, `'${ADAPTER_WEIGHT_FILES.map((w) => folder + w).join("' or '")}'`);
      await this.downloadAll(repo, rev.sha, [ADAPTER_CONFIG_FILE, weights, ...ADAPTER_OPTIONAL_FILES.filter(has)], tmp, tok, folder);
    });
  }

  /**
   * A base model repo (`--model-id owner/name[@revision]`): its config, tokenizer and generation files
   * that exist, and model.safetensors or model.safetensors.index.json with every shard it names.
   */
  async fetchModel(id: string, revision: string | null, token: string | undefined): Promise<string> {
    const tok = checkToken(token);
    const rev = await this.access(id, revision, tok, 'config.json');
    return this.cache.ensure('hub-model', id, rev.sha, async (tmp) => {
      if (!rev.files.has('config.json')) throw missing(id, rev.sha, "file 'config.json'");
      const files: string[] = [...MODEL_FILES.filter((f) => rev.files.has(f)), ...denseModuleFiles(rev.files)];
      if (rev.files.has(MODEL_WEIGHTS)) {
        files.push(MODEL_WEIGHTS);
      } else if (rev.files.has(MODEL_INDEX)) {
        await this.downloadAll(id, rev.sha, [MODEL_INDEX], tmp, tok);
        files.push(...shardsOf(join(tmp, MODEL_INDEX), rev, id));
      } else {
        throw missing(id, rev.sha, `'${MODEL_WEIGHTS}' or '${MODEL_INDEX}'`);
      }
      await this.downloadAll(id, rev.sha, files, tmp, tok);
    });
  }

  /** Resolves the revision with the token; for a gated repo also probes a file (its metadata is public). */
  private async access(id: string, revision: string | null, token: string | undefined, probeFile: string): Promise<HubRevision> {
    validateRepoId(id);
    const revName = revision ?? 'main';
    validateRevision(revName);
    const rev = await this.revision(id, revName, token);
    if (rev.gated) {
      const file = rev.files.has(probeFile) ? probeFile : [...rev.files][0];
      if (file !== undefined) {
        await this.http.probe(`/${id}/resolve/${rev.sha}/${encodeFile(file)}`, token, { id, revision: revName, file });
      }
    }
    return rev;
  }

  private async revision(id: string, revision: string, token: string | undefined): Promise<HubRevision> {
    const s: HubSubject = { id, revision };
    const body = await this.http.getJson(`/api/models/${id}/revision/${encodeURIComponent(revision)}`, token, s);
    const info = body as { sha?: unknown; siblings?: unknown; gated?: unknown } | null;
    const siblings = Array.isArray(info?.siblings) ? (info.siblings as { rfilename?: unknown }[]) : null;
    if (!info || typeof info.sha !== 'string' || !/^[0-9a-f]{40}$/.test(info.sha) || !siblings) {
      throw new EngineError('adapter_load', `the Hub's answer for '${id}' at revision '${revision}' has no commit sha or file list`);
    }
    const files = new Set(siblings.map((f) => f?.rfilename).filter((f): f is string => typeof f === 'string'));
    return { sha: info.sha, files, gated: Boolean(info.gated) };
  }

  /**
   * Downloads `files` into `dir`, a few at a time. On the first failure the others are cancelled and
   * awaited before it is rethrown, so nothing writes into `dir` once DiskCache removes it.
   */
  private async downloadAll(id: string, sha: string, files: readonly string[], dir: string, token: string | undefined,
    folder = ''): Promise<void> {
    const queue = [...files];
    const cancel = new AbortController();
    let firstError: unknown;
    const worker = async (): Promise<void> => {
      for (let file = queue.shift(); file !== undefined && !cancel.signal.aborted; file = queue.shift()) {
        try {
          await mkdir(dirname(join(dir, file)), { recursive: true });  // 1_Pooling/config.json
          // `folder` (an adapter in a folder of the repo) is read from there and written without it
          await this.http.download(`/${id}/resolve/${sha}/${encodeFile(folder + file)}`, join(dir, file), token,
            { id, revision: sha, file: folder + file }, cancel.signal);
        } catch (e) {
          if (!cancel.signal.aborted) firstError = e;
          cancel.abort();
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_DOWNLOADS, files.length) }, worker));
    if (cancel.signal.aborted) throw firstError;
  }
}

/** sentence-transformers' Dense modules of an embedding model (`2_Dense/config.json` and its weights: model.safetensors,
 * else pytorch_model.bin), which the embedding routes apply after the pooling. */
function denseModuleFiles(files: ReadonlySet<string>): string[] {
  return [...files].flatMap((f) => {
    const dir = /^(\d+_Dense)\/config\.json$/.exec(f)?.[1];
    if (dir === undefined) return [];
    const weights = [`${dir}/model.safetensors`, `${dir}/pytorch_model.bin`].find((w) => files.has(w));
    return weights ? [f, weights] : [f];
  });
}

/** The shard files a safetensors index names: each must be a plain file name that the commit lists. */
function shardsOf(indexPath: string, rev: HubRevision, id: string): string[] {
  let map: unknown;
  try {
    map = (JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map?: unknown }).weight_map;
  } catch {
    throw new EngineError('adapter_load', `'${MODEL_INDEX}' of Hugging Face repo '${id}' is not valid JSON`);
  }
  if (!map || typeof map !== 'object') throw new EngineError('adapter_load', `'${MODEL_INDEX}' of '${id}' has no weight_map`);
  const shards = [...new Set(Object.values(map as Record<string, unknown>))];
  for (const s of shards) {
    if (typeof s !== 'string' || !SAFE_FILE.test(s) || s.includes('..')) {
      throw new EngineError('adapter_load', `'${MODEL_INDEX}' of '${id}' names an unsafe shard file ${clip(JSON.stringify(s))}`);
    }
    if (!rev.files.has(s)) throw missing(id, rev.sha, `shard '${s}' named by '${MODEL_INDEX}'`);
  }
  return shards as string[];
}

const SEGMENT = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?$/;
const SAFE_FILE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$/;

/**
 * A Hub repo id: `owner/name` (or a legacy un-namespaced `name`), each part letters, digits, `-`, `_`, `.`
 * starting and ending with a letter, digit or `_`, at most 96 characters; no `..`, `--` or `.git` suffix
 * (the Hub's own rules). It is pasted into URL paths, so nothing else gets through.
 */
export function validateRepoId(id: string): void {
  const parts = typeof id === 'string' ? id.split('/') : [];
  const ok = parts.length >= 1 && parts.length <= 2 && parts.every((p) => SEGMENT.test(p))
    && !id.includes('..') && !id.includes('--') && !id.endsWith('.git');
  if (!ok) {
    throw new EngineError('validation',
      `invalid Hugging Face repo id ${clip(JSON.stringify(id))}: expected 'owner/name' of letters, digits, '-', '_', '.' (no '..' or '--')`);
  }
}

/** An adapter's id as the repo it is in and its folder there ('' or 'sub/folder/'), each part checked like a repo id's. */
export function adapterRepo(id: string): { repo: string; folder: string } {
  const parts = typeof id === 'string' ? id.split('/') : [];
  if (parts.length <= 2) {
    validateRepoId(id);
    return { repo: id, folder: '' };
  }
  const repo = parts.slice(0, 2).join('/');
  validateRepoId(repo);
  if (parts.slice(2).some((p) => !SEGMENT.test(p)) || id.includes('..')) {
    throw new EngineError('validation', `invalid Hugging Face adapter id ${clip(JSON.stringify(id))}: expected 'owner/name' or ` +
      `'owner/name/folder/…', each part letters, digits, '-', '_', '.'`);
  }
  return { repo, folder: `${parts.slice(2).join('/')}/` };
}

/** A branch, tag or commit sha: printable, no spaces, no `..` (git refuses those in ref names too). */
export function validateRevision(revision: string): void {
  if (typeof revision !== 'string' || !/^[\x21-\x7e]{1,255}$/.test(revision) || revision.includes('..') || revision.startsWith('/')) {
    throw new EngineError('validation', `invalid Hugging Face revision ${clip(JSON.stringify(revision))}: expected a branch, tag or commit sha`);
  }
}

/** '' means no token; a token that cannot go into an HTTP header is refused without being echoed. */
function checkToken(token: string | undefined): string | undefined {
  if (token === undefined || token === '') return undefined;
  if (!/^[\x21-\x7e]+$/.test(token)) throw new EngineError('validation', 'api_token contains characters not allowed in an HTTP header');
  return token;
}

function missing(id: string, sha: string, what: string): EngineError {
  return new EngineError('adapter_not_found', `Hugging Face repo '${id}' has no ${what} at commit ${sha}`);
}

function encodeFile(file: string): string {
  return file.split('/').map(encodeURIComponent).join('/');
}

function clip(s: string): string {
  return s.length > 120 ? `${s.slice(0, 120)}…` : s;
}
