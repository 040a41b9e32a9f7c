// Streams S3 objects to files, checking each against what the listing promised: the same ETag (the
// object did not change since the revision was computed), the same size, and — where the ETag is the
// object's MD5, i.e. a single-part upload not encrypted with KMS or a customer key — the same MD5.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { dirname, join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, type GetObjectCommandOutput, type S3Client } from '@aws-sdk/client-s3';
import { EngineError } from '../../engine/types.js';
import { s3Error } from './s3-errors.js';
import type { S3Object } from './s3-listing.js';

const PLAIN_MD5_ETAG = /^"?([0-9a-f]{32})"?$/;
const PARALLEL_DOWNLOADS = 4;

/** Downloads `files` into `dir` (as their names), a few at a time. */
export async function downloadAll(client: S3Client, bucket: string, files: readonly S3Object[], dir: string,
  where: string): Promise<void> {
  const queue = [...files];
  const worker = async (): Promise<void> => {
    for (let o = queue.shift(); o; o = queue.shift()) await downloadObject(client, bucket, o, join(dir, o.name), where);
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_DOWNLOADS, files.length) }, worker));
}

export async function downloadObject(client: S3Client, bucket: string, obj: S3Object, dest: string,
  where: string): Promise<void> {
  const what = `${where}/${obj.name}`;
  const { res, body } = await getObject(client, bucket, obj, what);
  const md5 = createHash('md5');
  let bytes = 0;
  try {
    await pipeline(body, async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        md5.update(chunk);
        bytes += chunk.length;
        yield chunk;
      }
    }, await openForWrite(dest));
  } catch (e) {
    throw new EngineError('adapter_load', `${what}: the download broke off after ${bytes} bytes`, { cause: e });
  }
  if (bytes !== obj.size) {
    throw new EngineError('adapter_load', `${what}: downloaded ${bytes} bytes, S3 listed ${obj.size}`);
  }
  const expected = PLAIN_MD5_ETAG.exec(obj.etag)?.[1];
  const encryptedWithKey = res.ServerSideEncryption?.startsWith('aws:kms') || res.SSECustomerAlgorithm !== undefined;
  if (expected && !encryptedWithKey && md5.digest('hex') !== expected) {
    throw new EngineError('adapter_load', `${what}: the downloaded bytes do not match the object's MD5 ETag`);
  }
}

/** A small object's bytes (modules.json), at most `maxBytes`; its ETag checked as downloadObject checks it. */
export async function readSmallObject(client: S3Client, bucket: string, obj: S3Object, where: string, maxBytes: number): Promise<Buffer> {
  const what = `${where}/${obj.name}`;
  if (obj.size > maxBytes) throw new EngineError('adapter_load', `${what}: ${obj.size} bytes, more than the ${maxBytes} read here`);
  const chunks: Buffer[] = [];
  for await (const chunk of (await getObject(client, bucket, obj, what)).body as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** GET of the object as listed (If-Match its ETag): a change since the listing is an error saying to retry. */
async function getObject(client: S3Client, bucket: string, obj: S3Object, what: string): Promise<{ res: GetObjectCommandOutput; body: Readable }> {
  let res: GetObjectCommandOutput;
  try {
    res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: obj.key, IfMatch: obj.etag || undefined }));
  } catch (e) {
    if ((e as { name?: string }).name === 'PreconditionFailed') throw changed(what, e);
    throw s3Error(e, what);
  }
  if (obj.etag && res.ETag && res.ETag !== obj.etag) throw changed(what);
  if (!(res.Body instanceof Readable)) throw new EngineError('adapter_load', `${what}: S3 returned no body`);
  return { res, body: res.Body };
}

function changed(what: string, cause?: unknown): EngineError {
  return new EngineError('adapter_load',
    `${what} changed while it was being downloaded; retry to get the new revision`, { cause });
}

/** A new file at `dest`, its directory made first (1_Pooling/config.json). */
async function openForWrite(dest: string) {
  await mkdir(dirname(dest), { recursive: true });
  return createWriteStream(dest, { flags: 'wx' });
}
