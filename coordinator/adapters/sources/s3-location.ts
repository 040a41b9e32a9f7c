// Parses and checks S3 source ids: `s3://bucket/prefix` or `bucket/prefix` (the prefix may be empty:
// the files then sit at the bucket's root). Checked here so that a bad id is a 422, never a request to S3.
import { EngineError } from '../../engine/types.js';

export interface S3Location {
  readonly bucket: string;
  /** Without leading or trailing '/'; '' for the bucket's root. */
  readonly prefix: string;
}

const SCHEME = 's3://';
// AWS's rules for new buckets (lowercase, digits, '.', '-'; 3–63 characters), which MinIO and R2 share.
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;
const MAX_KEY_BYTES = 1024;

export function parseS3Id(id: string): S3Location {
  const bare = id.startsWith(SCHEME) ? id.slice(SCHEME.length) : id;
  const slash = bare.indexOf('/');
  const bucket = slash < 0 ? bare : bare.slice(0, slash);
  const prefix = slash < 0 ? '' : bare.slice(slash + 1).replace(/\/+$/, '');
  if (!BUCKET.test(bucket) || bucket.includes('..') || IPV4.test(bucket)) {
    throw invalid(id, `'${bucket}' is not a valid bucket name (3–63 lowercase letters, digits, '.' or '-')`);
  }
  if (prefix !== '') {
    for (const segment of prefix.split('/')) {
      if (segment === '') throw invalid(id, 'the prefix has an empty path segment');
      if (segment === '.' || segment === '..') throw invalid(id, `the prefix has a '${segment}' segment`);
    }
    if (/[\u0000-\u001f\u007f\\]/.test(prefix)) throw invalid(id, 'the prefix has a control character or a backslash');
    if (Buffer.byteLength(prefix) + 1 > MAX_KEY_BYTES - 64) throw invalid(id, 'the prefix is too long');
  }
  return { bucket, prefix };
}

/** The canonical spelling, used in messages and as part of cache keys. */
export function formatS3Location(loc: S3Location): string {
  return loc.prefix === '' ? `${SCHEME}${loc.bucket}` : `${SCHEME}${loc.bucket}/${loc.prefix}`;
}

/** The ListObjectsV2 prefix for the files directly under `loc` ('' or 'a/b/'). */
export function listPrefix(loc: S3Location): string {
  return loc.prefix === '' ? '' : `${loc.prefix}/`;
}

function invalid(id: string, why: string): EngineError {
  return new EngineError('validation', `invalid S3 adapter id '${id}': ${why} (expected s3://bucket/prefix)`);
}
