// Starts a throwaway S3-API server (s3rver, storing in a temp dir) on 127.0.0.1 for tests, and writes
// objects into it through the S3 API itself. Every request it receives is logged in `requests`.
// s3rver accepts only its built-in key id ('S3RVER') and answers InvalidAccessKeyId (403) to any other;
// it does not check SigV4 signatures themselves, nor If-Match.
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateBucketCommand, DeleteObjectCommand, PutObjectCommand, S3Client,
} from '@aws-sdk/client-s3';
import S3rver from 's3rver';

export interface S3ServerCredentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface S3RequestRecord {
  method: string;
  /** Path and query, e.g. `/bucket/prefix/adapter_config.json?x-id=GetObject`. */
  url: string;
}

export interface S3ServerHandle {
  /** http://127.0.0.1:PORT, for S3Source's endpointUrl. */
  endpoint: string;
  credentials: S3ServerCredentials;
  /** Every request received so far, in order; tests may clear it (`requests.length = 0`). */
  requests: S3RequestRecord[];
  /** Creates `bucket` if needed and uploads every file directly in `localDir` as `prefix/<name>`. */
  putDir(bucket: string, prefix: string, localDir: string): Promise<void>;
  putObject(bucket: string, key: string, body: Buffer | string): Promise<void>;
  deleteObject(bucket: string, key: string): Promise<void>;
  createBucket(bucket: string): Promise<void>;
  /** The file s3rver keeps an object's bytes in, to simulate corruption at rest (its ETag stays). */
  objectFile(bucket: string, key: string): string;
  stop(): Promise<void>;
}

// s3rver's built-in account.
const CREDENTIALS: S3ServerCredentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export async function startS3Server(): Promise<S3ServerHandle> {
  const dir = await mkdtemp(join(tmpdir(), 'weft-s3-'));
  const server = new S3rver({
    address: '127.0.0.1', port: 0, silent: true, directory: dir, vhostBuckets: false, resetOnClose: true,
  });
  let address: AddressInfo;
  try {
    address = await server.run();
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  const requests: S3RequestRecord[] = [];
  // s3rver keeps its http.Server here once running (its typings leave the field out).
  const { httpServer } = server as unknown as { httpServer: Server };
  httpServer.on('request', (req: IncomingMessage) => requests.push({ method: req.method ?? '', url: req.url ?? '' }));
  const endpoint = `http://127.0.0.1:${address.port}`;
  const client = new S3Client({
    endpoint, region: 'us-east-1', forcePathStyle: true, credentials: CREDENTIALS,
    requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const buckets = new Set<string>();

  const createBucket = async (bucket: string): Promise<void> => {
    if (buckets.has(bucket)) return;
    try {
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
    } catch (e) {
      const name = (e as { name?: string }).name;
      if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw e;
    }
    buckets.add(bucket);
  };
  const putObject = async (bucket: string, key: string, body: Buffer | string): Promise<void> => {
    await createBucket(bucket);
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
  };
  let stopped: Promise<void> | undefined;

  return {
    endpoint,
    credentials: { ...CREDENTIALS },
    requests,
    createBucket,
    putObject,
    async putDir(bucket, prefix, localDir) {
      const base = prefix.replace(/^\/+|\/+$/g, '');
      for (const entry of await readdir(localDir, { withFileTypes: true })) {
        if (!entry.isFile()) continue;
        const key = base === '' ? entry.name : `${base}/${entry.name}`;
        await putObject(bucket, key, await readFile(join(localDir, entry.name)));
      }
    },
    objectFile(bucket, key) {
      const parts = key.split('/');
      return join(dir, bucket, ...parts.slice(0, -1), `${parts[parts.length - 1]}._S3rver_object`);
    },
    async deleteObject(bucket, key) {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    },
    stop() {
      stopped ??= (async () => {
        client.destroy();
        await server.close();
        await rm(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}
