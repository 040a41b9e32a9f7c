// Adapters (and base models) stored in S3 or an S3-compatible store (MinIO, R2, … via endpointUrl).
// An id is `s3://bucket/prefix` or `bucket/prefix`; the files sit directly under the prefix.
//
// Access: S3 is read with the SERVER's credentials (given by the caller, from AWS_*; absent, the SDK's
// default chain: instance or task role, profile files). A request's own token is a hub token, not an S3
// credential, so it is ignored here: every request that names an S3 adapter may use it, and checkAccess
// only checks that the server can still list it.
//
// Revision: S3 has no commits, so the revision is a digest of the needed files' names, sizes and ETags
// (s3-listing.ts). A request may name it (`id@rev`), but only as it is now: an older digest is not found
// and anything else (an S3 version id, a branch name) is refused as invalid.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { EngineError } from '../../engine/types.js';
import type { DiskCache } from '../disk-cache.js';
import type { AdapterSourceClient } from './types.js';
import { downloadAll, readSmallObject } from './s3-download.js';
import { s3Error } from './s3-errors.js';
import {
  checkShardIndex, listDirectChildren, MODEL_INDEX_FILE, REVISION_PATTERN, revisionOf, selectAdapterFiles,
  selectModelFiles, type S3Object,
} from './s3-listing.js';
import { formatS3Location, parseS3Id, type S3Location } from './s3-location.js';

export interface S3Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

export interface S3SourceOptions {
  readonly cache: DiskCache;
  /** S3_ENDPOINT_URL: an S3-compatible store, addressed path-style (http://host:9000/bucket/key). */
  readonly endpointUrl?: string;
  /** Default us-east-1; a bucket in another region is followed by its redirect. */
  readonly region?: string;
  /** AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN. Absent: the SDK's default chain. */
  readonly credentials?: S3Credentials;
  /** AWS_PROFILE, for the default chain when no credentials are given. */
  readonly profile?: string;
  /**
   * How long one listing of a prefix (so the revision it gives) is reused, in ms. checkAccess runs for
   * every request; this keeps a busy adapter at one LIST per interval. 0: list on every call. Default 5000.
   */
  readonly listingTtlMs?: number;
  /** Attempts per S3 request, retries included (SDK default 3). */
  readonly maxAttempts?: number;
}

type Listing = Map<string, S3Object>;
type Target = 'adapter' | 'model';

const DEFAULT_LISTING_TTL_MS = 5_000;
const CONNECT_TIMEOUT_MS = 10_000;
const MAX_REMEMBERED_LISTINGS = 1_024;

/** Where sentence-transformers keeps the pooling module's config when modules.json does not say. */
const POOLING_DIR = '1_Pooling';
const MODULES_JSON_MAX_BYTES = 1 << 20;

export class S3Source implements AdapterSourceClient {
  readonly kind = 's3' as const;
  private readonly client: S3Client;
  private readonly cache: DiskCache;
  private readonly listingTtlMs: number;
  private readonly listings = new Map<string, { expires: number; listing: Promise<Listing> }>();

  constructor(opts: S3SourceOptions) {
    this.cache = opts.cache;
    this.listingTtlMs = opts.listingTtlMs ?? DEFAULT_LISTING_TTL_MS;
    const custom = opts.endpointUrl !== undefined;
    const config: S3ClientConfig = {
      region: opts.region ?? 'us-east-1',
      followRegionRedirects: true,
      maxAttempts: opts.maxAttempts,
      requestHandler: { connectionTimeout: CONNECT_TIMEOUT_MS },
      ...(opts.credentials ? { credentials: { ...opts.credentials } } : {}),
      ...(opts.profile !== undefined ? { profile: opts.profile } : {}),
      // S3-compatible stores: path-style addressing, and no SDK checksums beyond what the API requires
      // (several stores reject or mangle them); downloads are checked against size and MD5 anyway.
      ...(custom ? {
        endpoint: opts.endpointUrl, forcePathStyle: true,
        requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
      } as const : {}),
    };
    this.client = new S3Client(config);
  }

  /** The token is ignored: S3 is read with the server's credentials (see the top of this file). */
  async checkAccess(id: string, revision: string | null, _token: string | undefined): Promise<string> {
    const loc = parseS3Id(id);
    const { revision: current } = await this.resolve(loc, 'adapter');
    return pickRevision(revision, current, formatS3Location(loc));
  }

  /** Downloads adapter_config.json and the weights file, once per (prefix, revision). */
  async fetch(id: string, revision: string, _token: string | undefined): Promise<string> {
    return this.download(parseS3Id(id), revision, 'adapter');
  }

  /**
   * A base model's directory (config.json, weights, tokenizer and generation files that exist), at
   * `revision` or, when null, as the prefix is now. Models are cached apart from adapters ('s3-model').
   * The token is ignored, as for adapters; it is there so that every source is called alike.
   */
  async fetchModel(id: string, revision: string | null = null, _token?: string): Promise<string> {
    const loc = parseS3Id(id);
    const { revision: current } = await this.resolve(loc, 'model');
    return this.download(loc, pickRevision(revision, current, formatS3Location(loc)), 'model');
  }

  /** Closes the SDK's connections. Idempotent. */
  destroy(): void {
    this.client.destroy();
  }

  private async download(loc: S3Location, revision: string, target: Target): Promise<string> {
    const where = formatS3Location(loc);
    if (!REVISION_PATTERN.test(revision)) throw badRevision(revision, where);
    const cacheKind = target === 'adapter' ? 's3' : 's3-model';
    return this.cache.ensure(cacheKind, where, revision, async (tmp) => {
      const { files, revision: current } = await this.resolve(loc, target);
      if (current !== revision) throw gone(revision, current, where);
      await downloadAll(this.client, loc.bucket, files, tmp, where);
    }, (dir) => {
      if (target !== 'model') return;
      let index: string;
      try {
        index = readFileSync(join(dir, MODEL_INDEX_FILE), 'utf8');
      } catch {
        return; // a single model.safetensors
      }
      checkShardIndex(index, new Set(readdirSync(dir)), where);
    });
  }

  /** The files `target` needs under `loc` and the revision they make, from a listing at most listingTtlMs old. */
  private async resolve(loc: S3Location, target: Target): Promise<{ files: S3Object[]; revision: string }> {
    const where = formatS3Location(loc);
    const listing = await this.list(loc, where);
    const files = target === 'adapter' ? selectAdapterFiles(listing, where) : selectModelFiles(listing, where);
    // An embedding model's sentence-transformers modules (Pooling, Dense) sit in subfolders the listing does not see.
    const modules = target === 'model' ? listing.get('modules.json') : undefined;
    if (modules) files.push(...await this.moduleFiles(loc, modules, where));
    return { files, revision: revisionOf(files) };
  }

  /**
   * The files of the Pooling and Dense modules modules.json names (each folder's config.json; a Dense's weights,
   * model.safetensors else pytorch_model.bin), named with their folder. A modules.json that does not parse fetches
   * `1_Pooling/` only: the embedding routes then report what is wrong with it.
   */
  private async moduleFiles(loc: S3Location, modulesJson: S3Object, where: string): Promise<S3Object[]> {
    const text = (await readSmallObject(this.client, loc.bucket, modulesJson, where, MODULES_JSON_MAX_BYTES)).toString('utf8');
    const folders = moduleFolders(text);
    const out: S3Object[] = [];
    for (const { dir, dense } of folders) {
      const sub = { ...loc, prefix: loc.prefix === '' ? dir : `${loc.prefix}/${dir}` };
      const listing = await this.list(sub, `${where}/${dir}`);
      const wanted = dense ? ['config.json', listing.has('model.safetensors') ? 'model.safetensors' : 'pytorch_model.bin'] : ['config.json'];
      for (const name of wanted) {
        const o = listing.get(name);
        if (o) out.push({ ...o, name: `${dir}/${name}` });
      }
    }
    return out;
  }

  /** One LIST at a time per prefix (concurrent callers share it); failures are not remembered. */
  private list(loc: S3Location, where: string): Promise<Listing> {
    const now = Date.now();
    const hit = this.listings.get(where);
    if (hit && hit.expires > now) return hit.listing;
    if (this.listings.size >= MAX_REMEMBERED_LISTINGS) {
      for (const [k, v] of this.listings) if (v.expires <= now) this.listings.delete(k);
    }
    const listing = listDirectChildren(this.client, loc).catch((e: unknown) => { throw s3Error(e, where); });
    const entry = { expires: Infinity, listing };
    this.listings.set(where, entry);
    listing.then(
      () => { entry.expires = Date.now() + this.listingTtlMs; },
      () => { if (this.listings.get(where) === entry) this.listings.delete(where); },
    );
    return listing;
  }
}

/** modules.json's Pooling and Dense folders (plain folder names only); 1_Pooling when it does not parse. */
export function moduleFolders(text: string): { dir: string; dense: boolean }[] {
  let entries: unknown;
  try {
    entries = JSON.parse(text);
  } catch {
    return [{ dir: POOLING_DIR, dense: false }];
  }
  if (!Array.isArray(entries)) return [{ dir: POOLING_DIR, dense: false }];
  return entries.flatMap((e) => {
    const { path, type } = (e ?? {}) as { path?: unknown; type?: unknown };
    if (typeof path !== 'string' || typeof type !== 'string' || !/^[\w-][\w.-]*$/.test(path)) return [];
    const kind = type.split('.').pop();
    return kind === 'Pooling' || kind === 'Dense' ? [{ dir: path, dense: kind === 'Dense' }] : [];
  });
}

function pickRevision(requested: string | null, current: string, where: string): string {
  if (requested === null || requested === current) return current;
  if (!REVISION_PATTERN.test(requested)) throw badRevision(requested, where);
  throw gone(requested, current, where);
}

function badRevision(revision: string, where: string): EngineError {
  return new EngineError('validation', `${where}: '${revision}' is not an S3 revision; S3 adapters have no ` +
    'branches or versions here, only the 40-hex content digest that weft reports (or none, for the latest)');
}

function gone(revision: string, current: string, where: string): EngineError {
  return new EngineError('adapter_not_found',
    `${where}: revision ${revision} is gone; the objects under this prefix changed (now ${current})`);
}
