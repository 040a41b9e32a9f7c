// What is under a prefix, which of those files an adapter or a model needs, and the revision they make:
// a digest of the chosen files' names, sizes and ETags, so that any change to one of them is a new
// revision (and so a new disk-cache entry), while unrelated files beside them (a README) change nothing.
import { createHash } from 'node:crypto';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { EngineError } from '../../engine/types.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_OPTIONAL_FILES, ADAPTER_WEIGHT_FILES } from './types.js';
import { formatS3Location, listPrefix, type S3Location } from './s3-location.js';

export interface S3Object {
  /** The file name under the prefix (no '/'). */
  readonly name: string;
  readonly key: string;
  readonly size: number;
  /** As S3 returns it, quotes included. */
  readonly etag: string;
}

/** A revision is 40 lowercase hex digits (like a git sha), so `id@rev` stays unambiguous. */
export const REVISION_PATTERN = /^[0-9a-f]{40}$/;

// One prefix with more direct children than this is not an adapter or model directory.
const MAX_PAGES = 10;

/** The objects directly under `loc` (not in sub-"folders"), by file name. */
export async function listDirectChildren(client: S3Client, loc: S3Location): Promise<Map<string, S3Object>> {
  const prefix = listPrefix(loc);
  const out = new Map<string, S3Object>();
  let token: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const res = await client.send(new ListObjectsV2Command({
      Bucket: loc.bucket, Prefix: prefix || undefined, Delimiter: '/', ContinuationToken: token,
    }));
    for (const o of res.Contents ?? []) {
      if (!o.Key || !o.Key.startsWith(prefix)) continue;
      const name = o.Key.slice(prefix.length);
      if (name === '' || name.includes('/')) continue; // a "folder" marker object
      out.set(name, { name, key: o.Key, size: o.Size ?? 0, etag: o.ETag ?? '' });
    }
    if (!res.IsTruncated) return out;
    token = res.NextContinuationToken;
  }
  throw new EngineError('adapter_load',
    `${formatS3Location(loc)} has more than ${MAX_PAGES * 1000} objects directly under it; not an adapter or model`);
}

/** adapter_config.json, the first weights file that exists (safetensors before .bin) and the optional files present. */
export function selectAdapterFiles(listing: ReadonlyMap<string, S3Object>, where: string): S3Object[] {
  if (listing.size === 0) throw new EngineError('adapter_not_found', `${where}: no objects under this prefix`);
  const config = listing.get(ADAPTER_CONFIG_FILE);
  if (!config) throw new EngineError('adapter_not_found', `${where}: no ${ADAPTER_CONFIG_FILE} under this prefix`);
  const weights = ADAPTER_WEIGHT_FILES.map((f) => listing.get(f)).find((o) => o !== undefined);
  if (!weights) {
    throw new EngineError('adapter_not_found', `${where}: no ${ADAPTER_WEIGHT_FILES.join(' or ')} under this prefix`);
  }
  return [config, weights, ...ADAPTER_OPTIONAL_FILES.map((f) => listing.get(f)).filter((o): o is S3Object => o !== undefined)];
}

export const MODEL_CONFIG_FILE = 'config.json';
export const MODEL_WEIGHTS_FILE = 'model.safetensors';
export const MODEL_INDEX_FILE = 'model.safetensors.index.json';
/** Downloaded when present: generation defaults and every tokenizer format transformers writes. */
export const MODEL_OPTIONAL_FILES = [
  'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json',
  'added_tokens.json', 'tokenizer.model', 'vocab.json', 'merges.txt', 'chat_template.jinja', 'chat_template.json',
  // sentence-transformers' modules (embedding models: its pooling config is fetched from 1_Pooling/ by s3.ts)
  'modules.json',
] as const;
const MODEL_SHARD = /^model-\d+-of-\d+\.safetensors$/;

/**
 * config.json, the weights (model.safetensors, else the index and its `model-NNNNN-of-NNNNN` shards, as
 * transformers picks them) and the optional files that exist. That the index names only shards that are
 * here is checked once downloaded (checkShardIndex).
 */
export function selectModelFiles(listing: ReadonlyMap<string, S3Object>, where: string): S3Object[] {
  if (listing.size === 0) throw new EngineError('adapter_not_found', `${where}: no objects under this prefix`);
  const config = listing.get(MODEL_CONFIG_FILE);
  if (!config) throw new EngineError('adapter_not_found', `${where}: no ${MODEL_CONFIG_FILE} under this prefix`);
  const files = [config];
  const single = listing.get(MODEL_WEIGHTS_FILE);
  const index = listing.get(MODEL_INDEX_FILE);
  if (single) {
    files.push(single);
  } else if (index) {
    files.push(index, ...[...listing.values()].filter((o) => MODEL_SHARD.test(o.name)));
  } else {
    throw new EngineError('adapter_not_found',
      `${where}: no ${MODEL_WEIGHTS_FILE} or ${MODEL_INDEX_FILE} under this prefix`);
  }
  for (const name of MODEL_OPTIONAL_FILES) {
    const o = listing.get(name);
    if (o) files.push(o);
  }
  return files;
}

/** Throws unless every file the shard index maps a tensor to was downloaded into `dir`. */
export function checkShardIndex(indexJson: string, present: ReadonlySet<string>, where: string): void {
  let weightMap: unknown;
  try {
    weightMap = (JSON.parse(indexJson) as { weight_map?: unknown }).weight_map;
  } catch (e) {
    throw new EngineError('adapter_load', `${where}: ${MODEL_INDEX_FILE} is not valid JSON`, { cause: e });
  }
  if (typeof weightMap !== 'object' || weightMap === null) {
    throw new EngineError('adapter_load', `${where}: ${MODEL_INDEX_FILE} has no weight_map`);
  }
  for (const file of new Set(Object.values(weightMap as Record<string, unknown>))) {
    if (typeof file !== 'string' || !present.has(file)) {
      throw new EngineError('adapter_not_found', `${where}: ${MODEL_INDEX_FILE} names shard '${String(file)}', ` +
        'which is not a model-NNNNN-of-NNNNN.safetensors object under this prefix');
    }
  }
}

export function revisionOf(files: readonly S3Object[]): string {
  const h = createHash('sha256');
  for (const o of [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    h.update(`${o.name}\t${o.size}\t${o.etag}\n`);
  }
  return h.digest('hex').slice(0, 40);
}
