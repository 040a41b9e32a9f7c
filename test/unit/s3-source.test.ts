// S3Source against a real S3-API server (s3rver on 127.0.0.1): the golden adapters and model go up
// through the S3 API and come back through S3Source, byte for byte.
import { sentenceTransformersPooling } from '../../coordinator/http/embeddings-routes.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DiskCache } from '../../coordinator/adapters/disk-cache.js';
import { moduleFolders, S3Source, type S3SourceOptions } from '../../coordinator/adapters/sources/s3.js';
import { embeddingPipeline } from '../../coordinator/http/sentence-transformers.js';
import { EngineError, type EngineErrorKind } from '../../coordinator/engine/types.js';
import { startS3Server, type S3ServerHandle } from '../helpers/s3-server.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const GOLDEN = join(ROOT, 'test/fixtures/golden/llama');
const ADAPTERS = ['all_r8', 'qv_r4', 'rslora_r16'];
const BUCKET = 'weft-adapters';

let s3: S3ServerHandle;
const tmp = mkdtempSync(join(tmpdir(), 'weft-s3-test-'));
const sources: S3Source[] = [];
let cacheSeq = 0;

function source(extra: Partial<S3SourceOptions> = {}): S3Source {
  const src = new S3Source({
    cache: new DiskCache(join(tmp, `cache-${cacheSeq++}`)),
    endpointUrl: s3.endpoint, region: 'us-east-1', credentials: s3.credentials, maxAttempts: 1, ...extra,
  });
  sources.push(src);
  return src;
}

const gets = (): number => s3.requests.filter((r) => r.method === 'GET' && r.url.includes('x-id=GetObject')).length;
const lists = (): number => s3.requests.filter((r) => r.method === 'GET' && r.url.includes('list-type=2')).length;

async function rejectsWith(p: Promise<unknown>, kind: EngineErrorKind, message?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof EngineError, `expected an EngineError, got ${String(e)}`);
    assert.equal(e.kind, kind, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

function assertSameFiles(dir: string, expectedDir: string, names: string[]): void {
  assert.deepEqual(readdirSync(dir).sort(), [...names].sort());
  for (const name of names) {
    assert.ok(readFileSync(join(dir, name)).equals(readFileSync(join(expectedDir, name))), `${name} differs`);
  }
}

before(async () => {
  s3 = await startS3Server();
  for (const name of ADAPTERS) await s3.putDir(BUCKET, `llama/${name}`, join(GOLDEN, 'adapters', name));
  await s3.putDir('weft-models', 'llama', join(GOLDEN, 'model'));
});

after(async () => {
  for (const src of sources) src.destroy();
  await s3?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe('S3Source adapters', () => {
  test('downloads each golden adapter byte for byte', async () => {
    const src = source();
    for (const name of ADAPTERS) {
      const id = `s3://${BUCKET}/llama/${name}`;
      const rev = await src.checkAccess(id, null, undefined);
      assert.match(rev, /^[0-9a-f]{40}$/);
      const dir = await src.fetch(id, rev, undefined);
      assertSameFiles(dir, join(GOLDEN, 'adapters', name), ['adapter_config.json', 'adapter_model.safetensors']);
    }
  });

  test('s3://bucket/prefix, bucket/prefix and a trailing slash are one adapter and one cache entry', async () => {
    const src = source();
    const a = await src.checkAccess(`s3://${BUCKET}/llama/qv_r4`, null, undefined);
    const b = await src.checkAccess(`${BUCKET}/llama/qv_r4/`, null, undefined);
    assert.equal(a, b);
    assert.equal(await src.fetch(`s3://${BUCKET}/llama/qv_r4`, a, undefined), await src.fetch(`${BUCKET}/llama/qv_r4`, a, undefined));
  });

  test('an adapter at the root of a bucket', async () => {
    const src = source();
    await s3.putDir('weft-root', '', join(GOLDEN, 'adapters/qv_r4'));
    const dir = await src.fetch('s3://weft-root', await src.checkAccess('s3://weft-root/', null, undefined), undefined);
    assertSameFiles(dir, join(GOLDEN, 'adapters/qv_r4'), ['adapter_config.json', 'adapter_model.safetensors']);
  });

  test('the request token is not an S3 credential: it changes nothing', async () => {
    const src = source();
    const id = `s3://${BUCKET}/llama/qv_r4`;
    assert.equal(await src.checkAccess(id, null, 'hf_not_an_s3_key'), await src.checkAccess(id, null, undefined));
  });

  test('concurrent fetches download once; a cached revision is not downloaded again', async () => {
    const src = source();
    const id = `s3://${BUCKET}/llama/all_r8`;
    const rev = await src.checkAccess(id, null, undefined);
    const before = gets();
    const dirs = await Promise.all(Array.from({ length: 8 }, () => src.fetch(id, rev, undefined)));
    assert.equal(new Set(dirs).size, 1);
    assert.equal(gets() - before, 2, 'one GetObject per file');
    await src.fetch(id, rev, undefined);
    assert.equal(gets() - before, 2);
    assertSameFiles(dirs[0]!, join(GOLDEN, 'adapters/all_r8'), ['adapter_config.json', 'adapter_model.safetensors']);
  });

  test('a listing is reused for listingTtlMs and shared by concurrent callers', async () => {
    const id = `s3://${BUCKET}/llama/rslora_r16`;
    const cached = source({ listingTtlMs: 60_000 });
    let n = lists();
    await Promise.all([1, 2, 3].map(() => cached.checkAccess(id, null, undefined)));
    await cached.checkAccess(id, null, undefined);
    assert.equal(lists() - n, 1);
    const uncached = source({ listingTtlMs: 0 });
    n = lists();
    await uncached.checkAccess(id, null, undefined);
    await uncached.checkAccess(id, null, undefined);
    assert.equal(lists() - n, 2);
  });

  test('a changed object gives a new revision; the old one is gone', async () => {
    const src = source({ listingTtlMs: 0 });
    await s3.putDir(BUCKET, 'changing', join(GOLDEN, 'adapters/qv_r4'));
    const id = `s3://${BUCKET}/changing`;
    const r1 = await src.checkAccess(id, null, undefined);
    const d1 = await src.fetch(id, r1, undefined);
    assert.equal(await src.checkAccess(id, r1, undefined), r1, 'the current digest is accepted as a revision');
    const config = JSON.parse(readFileSync(join(GOLDEN, 'adapters/qv_r4/adapter_config.json'), 'utf8'));
    const changed = JSON.stringify({ ...config, lora_alpha: 99 });
    await s3.putObject(BUCKET, 'changing/adapter_config.json', changed);
    const r2 = await src.checkAccess(id, null, undefined);
    assert.notEqual(r2, r1);
    const d2 = await src.fetch(id, r2, undefined);
    assert.notEqual(d2, d1);
    assert.equal(readFileSync(join(d2, 'adapter_config.json'), 'utf8'), changed);
    await rejectsWith(src.checkAccess(id, r1, undefined), 'adapter_not_found', /changed/);
    await rejectsWith(source().fetch(id, r1, undefined), 'adapter_not_found', /changed/);
    await rejectsWith(src.checkAccess(id, 'main', undefined), 'validation', /not an S3 revision/);
  });

  test('an unrelated object beside the adapter does not change its revision', async () => {
    const src = source({ listingTtlMs: 0 });
    await s3.putDir(BUCKET, 'with-readme', join(GOLDEN, 'adapters/qv_r4'));
    const id = `${BUCKET}/with-readme`;
    const r1 = await src.checkAccess(id, null, undefined);
    await s3.putObject(BUCKET, 'with-readme/README.md', '# notes');
    await s3.putObject(BUCKET, 'with-readme/nested/adapter_config.json', '{}');
    assert.equal(await src.checkAccess(id, null, undefined), r1);
  });

  test('adapter_model.bin is fetched when there is no safetensors file', async () => {
    const src = source();
    await s3.putObject(BUCKET, 'bin-only/adapter_config.json', '{"r": 4}');
    await s3.putObject(BUCKET, 'bin-only/adapter_model.bin', Buffer.from([1, 2, 3, 4]));
    const id = `s3://${BUCKET}/bin-only`;
    const dir = await src.fetch(id, await src.checkAccess(id, null, undefined), undefined);
    assert.deepEqual(readdirSync(dir).sort(), ['adapter_config.json', 'adapter_model.bin']);
    assert.deepEqual([...readFileSync(join(dir, 'adapter_model.bin'))], [1, 2, 3, 4]);
  });

  test('missing bucket, prefix, config or weights are adapter_not_found, saying which', async () => {
    const src = source();
    await s3.putObject(BUCKET, 'no-config/adapter_model.safetensors', Buffer.alloc(16));
    await s3.putObject(BUCKET, 'no-weights/adapter_config.json', '{}');
    await rejectsWith(src.checkAccess('s3://no-such-bucket/x', null, undefined), 'adapter_not_found', /bucket does not exist/);
    await rejectsWith(src.checkAccess(`s3://${BUCKET}/nothing/here`, null, undefined), 'adapter_not_found', /no objects/);
    await rejectsWith(src.checkAccess(`s3://${BUCKET}/no-config`, null, undefined), 'adapter_not_found', /no adapter_config\.json/);
    await rejectsWith(src.checkAccess(`s3://${BUCKET}/no-weights`, null, undefined), 'adapter_not_found',
      /no adapter_model\.safetensors or adapter_model\.bin/);
    // A prefix is a directory: 'llama/qv' does not match 'llama/qv_r4/...'.
    await rejectsWith(src.checkAccess(`s3://${BUCKET}/llama/qv`, null, undefined), 'adapter_not_found', /no objects/);
  });

  test('credentials the server refuses are adapter_forbidden', async () => {
    const good = source();
    const id = `s3://${BUCKET}/llama/qv_r4`;
    const rev = await good.checkAccess(id, null, undefined);
    const bad = source({ credentials: { accessKeyId: 'AKIAWRONG', secretAccessKey: 'wrong' } });
    await rejectsWith(bad.checkAccess(id, null, undefined), 'adapter_forbidden', /InvalidAccessKeyId/);
    await rejectsWith(bad.fetch(id, rev, undefined), 'adapter_forbidden');
  });

  test('an unreachable endpoint is adapter_load', async () => {
    const src = source({ endpointUrl: 'http://127.0.0.1:1' });
    await rejectsWith(src.checkAccess(`s3://${BUCKET}/llama/qv_r4`, null, undefined), 'adapter_load', /ECONNREFUSED/);
  });

  test('bytes that do not match the MD5 ETag are refused and leave nothing in the cache', async () => {
    const src = source();
    await s3.putDir(BUCKET, 'rotten', join(GOLDEN, 'adapters/qv_r4'));
    const file = s3.objectFile(BUCKET, 'rotten/adapter_model.safetensors');
    const bytes = readFileSync(file);
    bytes[bytes.length - 1] ^= 0xff;
    writeFileSync(file, bytes);
    const id = `s3://${BUCKET}/rotten`;
    const rev = await src.checkAccess(id, null, undefined);
    await rejectsWith(src.fetch(id, rev, undefined), 'adapter_load', /MD5/);
    const cache = new DiskCache(join(tmp, `cache-${cacheSeq - 1}`));
    assert.equal(cache.has('s3', id, rev), false);
    assert.equal(existsSync(join(cache.dirFor('s3', id, rev), '..')), true, 'only the temp dir was removed');
    assert.deepEqual(readdirSync(join(cache.dirFor('s3', id, rev), '..')), []);
  });

  test('invalid ids and revisions are validation errors, without a request', async () => {
    const src = source();
    const n = s3.requests.length;
    for (const id of ['s3://Bad_Bucket/x', 's3://ab/x', 's3://bucket/a/../b', 's3://bucket/a//b', 's3://bucket/./a',
      's3://192.168.1.1/x', '', 's3://']) {
      await rejectsWith(src.checkAccess(id, null, undefined), 'validation', /invalid S3 adapter id/);
    }
    await rejectsWith(src.fetch(`s3://${BUCKET}/llama/qv_r4`, 'v1', undefined), 'validation');
    assert.equal(s3.requests.length, n);
  });
});

describe('S3Source models', () => {
  test('fetchModel downloads the golden model byte for byte, cached apart from adapters', async () => {
    const src = source();
    const dir = await src.fetchModel('s3://weft-models/llama');
    assertSameFiles(dir, join(GOLDEN, 'model'), ['config.json', 'generation_config.json', 'model.safetensors']);
    const before = gets();
    assert.equal(await src.fetchModel('weft-models/llama'), dir);
    assert.equal(gets(), before);
  });

  test('a sharded model brings its index and shards; an index naming a missing shard is refused', async () => {
    const src = source({ listingTtlMs: 0 });
    const index = { metadata: {}, weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } };
    await s3.putObject('weft-models', 'sharded/config.json', '{}');
    await s3.putObject('weft-models', 'sharded/tokenizer.json', '{"model": {}}');
    await s3.putObject('weft-models', 'sharded/model.safetensors.index.json', JSON.stringify(index));
    await s3.putObject('weft-models', 'sharded/model-00001-of-00002.safetensors', Buffer.alloc(32, 1));
    await s3.putObject('weft-models', 'sharded/model-00002-of-00002.safetensors', Buffer.alloc(32, 2));
    await s3.putObject('weft-models', 'sharded/training_args.bin', Buffer.alloc(8));
    // An embedding model's sentence-transformers pooling, the config in its subfolder.
    await s3.putObject('weft-models', 'sharded/modules.json', JSON.stringify([{ path: '1_Pooling', type: 'sentence_transformers.models.Pooling' }]));
    await s3.putObject('weft-models', 'sharded/1_Pooling/config.json', JSON.stringify({ pooling_mode_mean_tokens: true }));
    const dir = await src.fetchModel('s3://weft-models/sharded');
    assert.deepEqual(readdirSync(dir).sort(), ['1_Pooling', 'config.json', 'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors', 'model.safetensors.index.json', 'modules.json', 'tokenizer.json']);
    assert.equal(sentenceTransformersPooling(dir), 'mean');
    await s3.deleteObject('weft-models', 'sharded/model-00002-of-00002.safetensors');
    await rejectsWith(src.fetchModel('s3://weft-models/sharded'), 'adapter_not_found', /model-00002-of-00002/);
  });

  test('an embedding model brings the Pooling and Dense folders modules.json names, and nothing else', async () => {
    const src = source({ listingTtlMs: 0 });
    const st = join(ROOT, 'test/fixtures/embeddings/llama-st');
    await s3.putObject('weft-models', 'st/config.json', '{}');
    await s3.putObject('weft-models', 'st/model.safetensors', Buffer.alloc(16, 3));
    for (const f of ['modules.json', '1_Pooling/config.json', '2_Dense/config.json', '2_Dense/model.safetensors']) {
      await s3.putObject('weft-models', `st/${f}`, readFileSync(join(st, f)));
    }
    await s3.putObject('weft-models', 'st/2_Dense/README.md', 'not a module file');
    await s3.putObject('weft-models', 'st/9_Dense/config.json', '{}');  // a folder modules.json does not name
    const dir = await src.fetchModel('s3://weft-models/st');
    assert.deepEqual(readdirSync(join(dir, '2_Dense')).sort(), ['config.json', 'model.safetensors']);
    assert.equal(existsSync(join(dir, '9_Dense')), false);
    assert.deepEqual(readFileSync(join(dir, '2_Dense/model.safetensors')), readFileSync(join(st, '2_Dense/model.safetensors')));
    const pipeline = embeddingPipeline(dir, 64);
    assert.equal(pipeline.refusal, null);
    assert.deepEqual([pipeline.pooling, pipeline.dimension, pipeline.steps.map((s) => s.kind)], ['mean', 48, ['dense']]);
    assert.deepEqual(moduleFolders('not json'), [{ dir: '1_Pooling', dense: false }]);
    assert.deepEqual(moduleFolders(JSON.stringify([{ path: '../x', type: 'sentence_transformers.models.Dense' },
      { path: '3_Normalize', type: 'sentence_transformers.models.Normalize' }])), [], 'no folder outside the prefix, no Normalize files');
  });

  test('a model prefix without config.json or weights is adapter_not_found', async () => {
    const src = source();
    await s3.putObject('weft-models', 'no-weights/config.json', '{}');
    await rejectsWith(src.fetchModel('s3://weft-models/no-weights'), 'adapter_not_found', /no model\.safetensors/);
    await rejectsWith(src.fetchModel(`s3://${BUCKET}/llama/qv_r4`), 'adapter_not_found', /no config\.json/);
  });
});
