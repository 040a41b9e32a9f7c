import { sentenceTransformersPooling } from '../../coordinator/http/embeddings-routes.js';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DiskCache } from '../../coordinator/adapters/disk-cache.js';
import { HubSource } from '../../coordinator/adapters/sources/hub.js';
import { EngineError, type EngineErrorKind } from '../../coordinator/engine/types.js';
import { startHubServer, type HubServerHandle } from '../helpers/hub-server.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const GOLDEN = join(ROOT, 'test/fixtures/golden/llama');
const adapterFiles = (name: string): Record<string, string> => ({
  'adapter_config.json': join(GOLDEN, 'adapters', name, 'adapter_config.json'),
  'adapter_model.safetensors': join(GOLDEN, 'adapters', name, 'adapter_model.safetensors'),
});
const fixture = (name: string, file: string): Buffer => readFileSync(join(GOLDEN, 'adapters', name, file));
const sha = (label: string): string => createHash('sha1').update(label).digest('hex');
const blobOf = (bytes: Buffer): string => `/cdn/${createHash('sha256').update(bytes).digest('hex')}`;

const TOKENS = { priv: 'hf_PrivateSecret0123456789', gated: 'hf_GatedSecret0123456789', other: 'hf_OtherUserSecret0123', bogus: 'hf_NotAKnownToken999' };
const SHA = { main: sha('main'), v2: sha('v2'), priv: sha('priv'), gated: sha('gated'), popular: sha('popular'), flaky: sha('flaky') };
const modelDir = join(GOLDEN, 'model');
const shardA = Buffer.from('shard-a'.repeat(100));
const shardB = Buffer.from('shard-b'.repeat(50));
const index = (map: Record<string, string>): Buffer => Buffer.from(JSON.stringify({ metadata: {}, weight_map: map }));

let hub: HubServerHandle;
const tmp = mkdtempSync(join(tmpdir(), 'weft-hub-'));
let seq = 0;
const errors: unknown[] = [];

before(async () => {
  hub = await startHubServer({
    repos: {
      'weft/all-r8': { revisions: {
        main: { sha: SHA.main, files: { ...adapterFiles('all_r8'), 'README.md': Buffer.from('# all_r8\n') } },
        v2: { sha: SHA.v2, files: adapterFiles('qv_r4') },
      } },
      'weft/private-r4': { private: true, token: TOKENS.priv, revisions: { main: { sha: SHA.priv, files: adapterFiles('qv_r4') } } },
      'weft/gated-r16': { gated: true, token: TOKENS.gated, revisions: { main: { sha: SHA.gated, files: adapterFiles('rslora_r16') } } },
      'other/visible': { private: true, token: TOKENS.other, revisions: { main: { sha: sha('o'), files: adapterFiles('qv_r4') } } },
      'weft/popular': { revisions: { main: { sha: SHA.popular, files: adapterFiles('rslora_r16') } } },
      // several adapters in one repo, each in a folder (a run's checkpoints), and one whose folder lacks the weights
      'weft/runs': { revisions: { main: { sha: sha('runs'), files: {
        ...Object.fromEntries(Object.entries(adapterFiles('qv_r4')).map(([f, p]) => [`checkpoint-100/${f}`, p])),
        ...Object.fromEntries(Object.entries(adapterFiles('all_r8')).map(([f, p]) => [`final/lora/${f}`, p])),
        'broken/adapter_config.json': adapterFiles('qv_r4')['adapter_config.json']!,
      } } } },
      'weft/flaky': { revisions: { main: { sha: SHA.flaky, files: adapterFiles('all_r8') } } },
      'weft/no-config': { revisions: { main: { sha: sha('nc'), files: { 'adapter_model.safetensors': adapterFiles('qv_r4')['adapter_model.safetensors']! } } } },
      'weft/no-weights': { revisions: { main: { sha: sha('nw'), files: { 'adapter_config.json': adapterFiles('qv_r4')['adapter_config.json']! } } } },
      'weft/bin-only': { revisions: { main: { sha: sha('bin'), files: {
        'adapter_config.json': adapterFiles('qv_r4')['adapter_config.json']!, 'adapter_model.bin': Buffer.from('not really a zip'),
      } } } },
      'weft/tiny-llama': { revisions: { main: { sha: sha('model'), files: {
        'config.json': join(modelDir, 'config.json'), 'generation_config.json': join(modelDir, 'generation_config.json'),
        'model.safetensors': join(modelDir, 'model.safetensors'), 'README.md': Buffer.from('tiny'),
        // sentence-transformers' pooling config, in its subfolder (an embedding model's)
        'modules.json': Buffer.from(JSON.stringify([{ idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' }])),
        '1_Pooling/config.json': Buffer.from(JSON.stringify({ pooling_mode_lasttoken: true })),
        // Dense modules: config.json and the weights (safetensors before .bin), nothing else of their folders
        '2_Dense/config.json': Buffer.from('{"in_features": 64, "out_features": 8}'), '2_Dense/model.safetensors': Buffer.from('st'),
        '2_Dense/pytorch_model.bin': Buffer.from('bin'), '3_Dense/config.json': Buffer.from('{}'), '3_Dense/pytorch_model.bin': Buffer.from('bin'),
        '3_Dense/README.md': Buffer.from('x'),
      } } } },
      'weft/sharded': { revisions: { main: { sha: sha('sharded'), files: {
        'config.json': join(modelDir, 'config.json'), 'tokenizer.json': Buffer.from('{}'),
        'model.safetensors.index.json': index({ a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors', c: 'model-00001-of-00002.safetensors' }),
        'model-00001-of-00002.safetensors': shardA, 'model-00002-of-00002.safetensors': shardB,
      } } } },
      'weft/evil-index': { revisions: { main: { sha: sha('evil'), files: {
        'config.json': Buffer.from('{}'), 'model.safetensors.index.json': index({ a: '../../escape.safetensors' }),
      } } } },
      'weft/lost-shard': { revisions: { main: { sha: sha('lost'), files: {
        'config.json': Buffer.from('{}'), 'model.safetensors.index.json': index({ a: 'model-00001-of-00009.safetensors' }),
      } } } },
    },
  });
});

after(async () => {
  await hub.stop();
  rmSync(tmp, { recursive: true, force: true });
});

function source(opts: { fetchImpl?: typeof fetch; timeoutMs?: number; endpoint?: string } = {}): { src: HubSource; cache: DiskCache } {
  const cache = new DiskCache(join(tmp, `cache-${seq++}`));
  return { src: new HubSource({ endpoint: opts.endpoint ?? hub.endpoint, cache, fetchImpl: opts.fetchImpl, timeoutMs: opts.timeoutMs }), cache };
}

/** Awaits a rejection with an EngineError of `kind` whose message matches `re`; no token may appear in it. */
async function rejects(p: Promise<unknown>, kind: EngineErrorKind, re: RegExp): Promise<EngineError> {
  try {
    await p;
  } catch (e) {
    errors.push(e);
    assert.ok(e instanceof EngineError, `expected EngineError, got ${String(e)}`);
    assert.equal(e.kind, kind, e.message);
    assert.match(e.message, re);
    assertNoToken(e);
    return e;
  }
  assert.fail(`expected a ${kind} rejection`);
}

function assertNoToken(e: unknown): void {
  const texts: string[] = [];
  for (let x: unknown = e; x instanceof Error; x = x.cause) texts.push(x.message, x.stack ?? '', String(x));
  for (const t of Object.values(TOKENS)) assert.ok(!texts.some((s) => s.includes(t)), `a token leaked into: ${texts[0]}`);
}

/** Every file below `dir` (relative paths). */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true }).map(String).filter((f) => statSync(join(dir, f)).isFile()).sort();
}

test('public adapter: checkAccess resolves main, fetch downloads config and safetensors', async () => {
  const { src } = source();
  assert.equal(await src.checkAccess('weft/all-r8', null, undefined), SHA.main);
  const dir = await src.fetch('weft/all-r8', SHA.main, undefined);
  assert.deepEqual(filesUnder(dir), ['adapter_config.json', 'adapter_model.safetensors']);
  assert.deepEqual(readFileSync(join(dir, 'adapter_model.safetensors')), fixture('all_r8', 'adapter_model.safetensors'));
  assert.deepEqual(readFileSync(join(dir, 'adapter_config.json')), fixture('all_r8', 'adapter_config.json'));
  const before = new Map(hub.hits);
  assert.equal(await src.fetch('weft/all-r8', SHA.main, undefined), dir, 'cached: same directory');
  assert.deepEqual(hub.hits, before, 'a cached fetch makes no request');
});

test('an adapter in a folder of a repo: owner/name/folder[/…], each its own cache entry; a folder without one is refused', async () => {
  const { src } = source();
  assert.equal(await src.checkAccess('weft/runs/checkpoint-100', null, undefined), sha('runs'));
  const a = await src.fetch('weft/runs/checkpoint-100', sha('runs'), undefined);
  const b = await src.fetch('weft/runs/final/lora', sha('runs'), undefined);
  assert.notEqual(a, b);
  assert.deepEqual(filesUnder(a), ['adapter_config.json', 'adapter_model.safetensors']);
  assert.deepEqual(readFileSync(join(a, 'adapter_model.safetensors')), fixture('qv_r4', 'adapter_model.safetensors'));
  assert.deepEqual(readFileSync(join(b, 'adapter_model.safetensors')), fixture('all_r8', 'adapter_model.safetensors'));
  await rejects(src.fetch('weft/runs/broken', sha('runs'), undefined), 'adapter_not_found', /broken\/adapter_model\.safetensors/);
  await rejects(src.fetch('weft/runs/nothing', sha('runs'), undefined), 'adapter_not_found', /nothing\/adapter_config\.json/);
  for (const bad of ['weft/runs/../x', 'weft/runs/a//b', 'weft/runs/.hidden', 'weft/runs/a b']) {
    await rejects(src.checkAccess(bad, null, undefined), 'validation', /invalid Hugging Face/);
  }
});

test('id@revision by branch and by sha', async () => {
  const { src } = source();
  assert.equal(await src.checkAccess('weft/all-r8', 'v2', undefined), SHA.v2);
  assert.equal(await src.checkAccess('weft/all-r8', SHA.main, undefined), SHA.main);
  const dir = await src.fetch('weft/all-r8', SHA.v2, undefined);
  assert.deepEqual(readFileSync(join(dir, 'adapter_model.safetensors')), fixture('qv_r4', 'adapter_model.safetensors'));
  await rejects(src.checkAccess('weft/all-r8', 'no-such-branch', undefined), 'adapter_not_found', /no revision 'no-such-branch'/);
  await rejects(src.fetch('weft/all-r8', 'v2', undefined), 'validation', /commit sha/);
});

test('private repo: right token reads it, wrong / other user / no token are refused', async () => {
  const { src } = source();
  assert.equal(await src.checkAccess('weft/private-r4', null, TOKENS.priv), SHA.priv);
  const dir = await src.fetch('weft/private-r4', SHA.priv, TOKENS.priv);
  assert.deepEqual(readFileSync(join(dir, 'adapter_model.safetensors')), fixture('qv_r4', 'adapter_model.safetensors'));
  await rejects(src.checkAccess('weft/private-r4', null, undefined), 'adapter_unauthorized', /private or gated and needs an api_token/);
  await rejects(src.checkAccess('weft/private-r4', null, TOKENS.bogus), 'adapter_forbidden', /refused the api_token/);
  await rejects(src.checkAccess('weft/private-r4', null, TOKENS.other), 'adapter_not_found', /this token cannot see it/);
  // The weights are cached now; access is still checked against the Hub on every call.
  await rejects(src.checkAccess('weft/private-r4', null, ''), 'adapter_unauthorized', /needs an api_token/);
  await rejects(src.fetch('weft/private-r4', sha('other'), TOKENS.bogus), 'adapter_forbidden', /refused/);
});

test('gated repo: metadata is public, files need the granted token (401 / 403)', async () => {
  const { src } = source();
  await rejects(src.checkAccess('weft/gated-r16', null, undefined), 'adapter_unauthorized', /is gated: pass an api_token/);
  await rejects(src.checkAccess('weft/gated-r16', null, TOKENS.other), 'adapter_forbidden', /gated/);
  assert.equal(await src.checkAccess('weft/gated-r16', null, TOKENS.gated), SHA.gated);
  const dir = await src.fetch('weft/gated-r16', SHA.gated, TOKENS.gated);
  assert.deepEqual(readFileSync(join(dir, 'adapter_model.safetensors')), fixture('rslora_r16', 'adapter_model.safetensors'));
});

test('missing repo, revision, config or weights', async () => {
  const { src } = source();
  await rejects(src.checkAccess('weft/nope', null, undefined), 'adapter_unauthorized', /does not exist, or it is private/);
  await rejects(src.checkAccess('weft/nope', null, TOKENS.other), 'adapter_not_found', /'weft\/nope' was not found/);
  await rejects(src.checkAccess('weft/all-r8', 'v9', TOKENS.other), 'adapter_not_found', /no revision 'v9'/);
  const nc = await src.checkAccess('weft/no-config', null, undefined);
  await rejects(src.fetch('weft/no-config', nc, undefined), 'adapter_not_found', /'adapter_config\.json'/);
  const nw = await src.checkAccess('weft/no-weights', null, undefined);
  await rejects(src.fetch('weft/no-weights', nw, undefined), 'adapter_not_found', /adapter_model\.safetensors' or 'adapter_model\.bin'/);
  const bin = await src.checkAccess('weft/bin-only', null, undefined);
  assert.deepEqual(filesUnder(await src.fetch('weft/bin-only', bin, undefined)), ['adapter_config.json', 'adapter_model.bin']);
});

test('invalid repo ids and revisions are refused before any request', async () => {
  const { src } = source();
  for (const id of ['', '../etc', 'a/..', 'a b/c', 'a/b c', 'owner/', '/name', 'a/b..c', 'a/-b', 'a--b/c', 'a/b.git', 'a/b?x', 'a/b#', 'a\\b/c']) {
    await rejects(src.checkAccess(id, null, undefined), 'validation', /invalid Hugging Face repo id/);
    await rejects(src.fetch(id, SHA.main, undefined), 'validation', /invalid Hugging Face repo id/);
  }
  for (const rev of ['', 'a b', 'x/../y', '/abs', 'tab\there']) {
    await rejects(src.checkAccess('weft/all-r8', rev, undefined), 'validation', /invalid Hugging Face revision/);
  }
  await rejects(src.checkAccess('weft/all-r8', null, 'hf_bad\ntoken'), 'validation', /api_token contains characters/);
});

test('20 concurrent fetches download each file once', async () => {
  const { src } = source();
  const paths = [`/api/models/weft/popular/revision/${SHA.popular}`, `/weft/popular/resolve/${SHA.popular}/adapter_config.json`,
    `/weft/popular/resolve/${SHA.popular}/adapter_model.safetensors`, blobOf(fixture('rslora_r16', 'adapter_model.safetensors'))];
  const before = paths.map((p) => hub.hits.get(p) ?? 0);
  const dirs = await Promise.all(Array.from({ length: 20 }, () => src.fetch('weft/popular', SHA.popular, undefined)));
  assert.equal(new Set(dirs).size, 1);
  assert.deepEqual(paths.map((p, i) => (hub.hits.get(p) ?? 0) - before[i]!), [1, 1, 1, 1]);
});

test('a download cut mid-file fails, leaves nothing in the cache, and the next call succeeds', async () => {
  const { src, cache } = source();
  const weights = fixture('all_r8', 'adapter_model.safetensors');
  hub.failNextDownload(blobOf(weights), 4096);
  await rejects(src.fetch('weft/flaky', SHA.flaky, TOKENS.priv), 'adapter_load', /adapter_model\.safetensors/);
  assert.deepEqual(filesUnder(cache.root), []);
  assert.equal(cache.has('hub', 'weft/flaky', SHA.flaky), false);
  hub.failNextDownload(`/weft/flaky/resolve/${SHA.flaky}/adapter_config.json`, 10);
  await rejects(src.fetch('weft/flaky', SHA.flaky, undefined), 'adapter_load', /adapter_config\.json/);
  assert.deepEqual(filesUnder(cache.root), []);
  const dir = await src.fetch('weft/flaky', SHA.flaky, undefined);
  assert.deepEqual(readFileSync(join(dir, 'adapter_model.safetensors')), weights);
});

test('a sha256 (LFS) or git sha1 (regular file) mismatch is refused', async () => {
  const { src, cache } = source();
  hub.corruptNextDownload(blobOf(fixture('all_r8', 'adapter_model.safetensors')));
  await rejects(src.fetch('weft/flaky', SHA.flaky, TOKENS.priv), 'adapter_load', /sha256 mismatch for 'adapter_model\.safetensors'/);
  hub.corruptNextDownload(`/weft/flaky/resolve/${SHA.flaky}/adapter_config.json`);
  await rejects(src.fetch('weft/flaky', SHA.flaky, undefined), 'adapter_load', /git blob sha1 mismatch for 'adapter_config\.json'/);
  assert.deepEqual(filesUnder(cache.root), []);
  assert.ok(await src.fetch('weft/flaky', SHA.flaky, undefined));
});

test('unreachable Hub, 5xx and timeouts are adapter_load', async () => {
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const { port } = closed.address() as AddressInfo;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const down = source({ endpoint: `http://127.0.0.1:${port}` }).src;
  await rejects(down.checkAccess('weft/all-r8', null, TOKENS.priv), 'adapter_load', /network error connecting .*ECONNREFUSED/);
  const busy = source({ fetchImpl: async () => new Response('overloaded', { status: 503 }) }).src;
  await rejects(busy.checkAccess('weft/all-r8', null, TOKENS.priv), 'adapter_load', /HTTP 503/);
  await rejects(busy.fetch('weft/all-r8', SHA.main, TOKENS.priv), 'adapter_load', /HTTP 503/);
  const stuck: typeof fetch = (_url, init) => new Promise((_resolve, reject) => {
    init?.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
  });
  await rejects(source({ fetchImpl: stuck, timeoutMs: 50 }).src.checkAccess('weft/all-r8', null, TOKENS.gated), 'adapter_load', /timed out after 50 ms/);
  const echo = source({ fetchImpl: async (_u, init) => new Response('', {
    status: 500, headers: { 'x-error-message': `bad header ${String((init?.headers as Record<string, string>).authorization)}` } }) }).src;
  await rejects(echo.checkAccess('weft/all-r8', null, TOKENS.priv), 'adapter_load', /<redacted>/);
});

test('the token is sent to the Hub but never to the CDN host it redirects to', async () => {
  // The wrapper moves the CDN to another origin (127.0.0.2 → served by the same local server).
  const seen: { path: string; auth: boolean }[] = [];
  const viaCdn: typeof fetch = async (input, init) => {
    const url = new URL(String(input));
    seen.push({ path: url.pathname, auth: 'authorization' in ((init?.headers ?? {}) as Record<string, string>) });
    if (url.hostname === '127.0.0.2') url.hostname = '127.0.0.1';
    const res = await fetch(url, init);
    const location = res.headers.get('location');
    if (res.status !== 302 || !location) return res;
    const headers = new Headers(res.headers);
    headers.set('location', new URL(location, url.origin.replace('127.0.0.1', '127.0.0.2')).href);
    return new Response(null, { status: 302, headers });
  };
  const { src } = source({ fetchImpl: viaCdn });
  const dir = await src.fetch('weft/private-r4', SHA.priv, TOKENS.priv);
  assert.deepEqual(readFileSync(join(dir, 'adapter_model.safetensors')), fixture('qv_r4', 'adapter_model.safetensors'));
  const cdn = seen.filter((r) => r.path.startsWith('/cdn/'));
  assert.equal(cdn.length, 1);
  assert.deepEqual(cdn.map((r) => r.auth), [false]);
  assert.ok(seen.filter((r) => !r.path.startsWith('/cdn/')).every((r) => r.auth), 'Hub requests carry the token');
});

test('fetchModel downloads the golden llama model files that exist', async () => {
  const { src } = source();
  const dir = await src.fetchModel('weft/tiny-llama', null, undefined);
  assert.deepEqual(filesUnder(dir), ['1_Pooling/config.json', '2_Dense/config.json', '2_Dense/model.safetensors', '3_Dense/config.json',
    '3_Dense/pytorch_model.bin', 'config.json', 'generation_config.json', 'model.safetensors', 'modules.json']);
  assert.equal(sentenceTransformersPooling(dir), 'lasttoken');
  for (const f of ['config.json', 'generation_config.json', 'model.safetensors']) assert.deepEqual(readFileSync(join(dir, f)), readFileSync(join(modelDir, f)), f);
  assert.equal(await src.fetchModel('weft/tiny-llama', sha('model'), undefined), dir);
});

test('fetchModel: a sharded model brings its index and every shard; unsafe or missing shards are refused', async () => {
  const { src, cache } = source();
  const dir = await src.fetchModel('weft/sharded', 'main', undefined);
  assert.deepEqual(filesUnder(dir), ['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors',
    'model.safetensors.index.json', 'tokenizer.json']);
  assert.deepEqual(readFileSync(join(dir, 'model-00002-of-00002.safetensors')), shardB);
  await rejects(src.fetchModel('weft/evil-index', null, undefined), 'adapter_load', /unsafe shard file/);
  await rejects(src.fetchModel('weft/lost-shard', null, undefined), 'adapter_not_found', /shard 'model-00001-of-00009\.safetensors'/);
  await rejects(src.fetchModel('weft/all-r8', null, undefined), 'adapter_not_found', /'config\.json'/);
  await rejects(src.fetchModel('weft/private-r4', null, TOKENS.bogus), 'adapter_forbidden', /refused/);
  const stray = filesUnder(cache.root).map((f) => join(cache.root, f)).filter((f) => !f.startsWith(dir));
  assert.deepEqual(stray, [], 'failed model downloads leave nothing behind');
  assert.ok(!existsSync(join(tmp, 'escape.safetensors')) && !existsSync(join(cache.root, 'escape.safetensors')));
});

test('no token ever appears in an error (all cases above)', () => {
  assert.ok(errors.length >= 40, `only ${errors.length} errors collected`);
  for (const e of errors) assertNoToken(e);
});
