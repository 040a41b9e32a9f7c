// Adapters from the Hub and S3 through the real server: downloads, per-request access checks even for
// cached adapters, the global-token switch, and no token ever in the logs.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { startHubServer, type HubServerHandle } from '../helpers/hub-server.js';
import { startS3Server, type S3ServerHandle } from '../helpers/s3-server.js';
import { prefillMatchesGolden, startGoldenServer, textOf, type GoldenServer } from '../helpers/golden-server.js';
import { loadGoldenCase } from '../helpers/golden.js';

const c = loadGoldenCase('llama');
const PRIVATE_TOKEN = 'hf_private_Zq8s1Xk2';
const GLOBAL_TOKEN = 'hf_global_Vb7m3Lp9';
const WRONG_TOKEN = 'hf_wrong_Pp0q1Rr2';
const sha = (ch: string) => ch.repeat(40);
const dirFiles = (dir: string) => Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f))]));
const files = (name: string) => dirFiles(join(c.dir, 'adapters', name));
// A sequence classifier with its labels in config.json (test/fixtures/classify): fetched along with the adapter.
const CLASSIFIER = join(import.meta.dirname, '../../../test/fixtures/classify/llama/sentiment');
const seq = c.sequences[0];
const body = (id: string, extra: Record<string, unknown> = {}) => ({ inputs: textOf(seq),
  parameters: { adapter_id: id, adapter_source: 'hub', max_new_tokens: 1, details: true, decoder_input_details: true, ...extra } });

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

describe('Hub and S3 adapters', () => {
  let hub: HubServerHandle;
  let s3: S3ServerHandle;
  let g: GoldenServer;
  const logs = new Capture();
  let env: Record<string, string>;

  before(async () => {
    hub = await startHubServer({ repos: {
      'weft/public-all': { revisions: { main: { sha: sha('a'), files: files('all_r8') } } },
      'weft/private-qv': { private: true, token: PRIVATE_TOKEN, revisions: { main: { sha: sha('b'), files: files('qv_r4') } } },
      'weft/global-rs': { private: true, token: GLOBAL_TOKEN, revisions: { main: { sha: sha('c'), files: files('rslora_r16') } } },
      'weft/sentiment': { revisions: { main: { sha: sha('e'), files: dirFiles(CLASSIFIER) } } },
    } });
    s3 = await startS3Server();
    await s3.putDir('adapters', 'rslora', join(c.dir, 'adapters', 'rslora_r16'));
    await s3.putDir('adapters', 'sentiment', CLASSIFIER);
    env = { HF_ENDPOINT: hub.endpoint, HF_TOKEN: GLOBAL_TOKEN, S3_ENDPOINT_URL: s3.endpoint, AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey };
    g = await startGoldenServer({ logLevel: 'debug' }, { env, logs: logs });
  });
  after(async () => {
    await g.close();
    await hub.stop();
    await s3.stop();
  });

  test('a public Hub adapter downloads once for concurrent requests and matches PEFT', async () => {
    const rs = await Promise.all(Array.from({ length: 10 }, () => g.post('/generate', body('weft/public-all'))));
    for (const r of rs) {
      assert.equal(r.status, 200, r.text);
      prefillMatchesGolden(c, r.json, `adapter/all_r8/seq0`, seq);
    }
    const weights = readFileSync(join(c.dir, 'adapters', 'all_r8', 'adapter_model.safetensors'));
    assert.equal(hub.hits.get(hub.blobPath(weights)), 1);
  });

  test('a private adapter: no token 401, wrong token 403, right token (body or Bearer) 200', async () => {
    assert.equal((await g.post('/generate', body('weft/private-qv'))).status, 401);
    assert.equal((await g.post('/generate', body('weft/private-qv', { api_token: WRONG_TOKEN }))).status, 403);
    const ok = await g.post('/generate', body('weft/private-qv', { api_token: PRIVATE_TOKEN }));
    assert.equal(ok.status, 200, ok.text);
    prefillMatchesGolden(c, ok.json, 'adapter/qv_r4/seq0', seq);
    const bearer = await g.post('/generate', body('weft/private-qv'), { authorization: `Bearer ${PRIVATE_TOKEN}` });
    assert.equal(bearer.status, 200, bearer.text);
    // Now cached on disk and resident: still refused without the right token.
    assert.equal((await g.post('/generate', body('weft/private-qv', { api_token: WRONG_TOKEN }))).status, 403);
    assert.equal((await g.post('/generate', body('weft/private-qv'))).status, 401);
  });

  test('the server Hub token is used only with WEFT_USE_GLOBAL_HF_TOKEN=1', async () => {
    assert.equal((await g.post('/generate', body('weft/global-rs'))).status, 401);
    const g2 = await startGoldenServer({}, { env: { ...env, WEFT_USE_GLOBAL_HF_TOKEN: '1' }, logs });
    try {
      const r = await g2.post('/generate', body('weft/global-rs'));
      assert.equal(r.status, 200, r.text);
      prefillMatchesGolden(c, r.json, 'adapter/rslora_r16/seq0', seq);
    } finally {
      await g2.close();
    }
  });

  test('an S3 adapter (s3://bucket/prefix) matches PEFT; a missing prefix is 404', async () => {
    const r = await g.post('/generate', body('s3://adapters/rslora', { adapter_source: 's3' }));
    assert.equal(r.status, 200, r.text);
    prefillMatchesGolden(c, r.json, 'adapter/rslora_r16/seq0', seq);
    assert.equal((await g.post('/generate', body('s3://adapters/nope', { adapter_source: 's3' }))).status, 404);
  });

  test('a classifier adapter from the Hub and from S3 brings its config.json: /classify names its labels', async () => {
    const expected = JSON.parse(readFileSync(join(import.meta.dirname, '../../../test/fixtures/classify/classify.json'), 'utf8'))
      .cases.llama.entries.find((e: { adapter: string }) => e.adapter === 'sentiment');
    for (const [model, source] of [['weft/sentiment', 'hub'], ['s3://adapters/sentiment', 's3']]) {
      const r = await g.post('/classify', { model, adapter_source: source, input: [expected.tokens], use_activation: false });
      assert.equal(r.status, 200, r.text);
      const best = expected.logits.indexOf(Math.max(...expected.logits));
      assert.equal(r.json.data[0].label, ['negative', 'neutral', 'positive'][best], source);
      assert.ok(r.json.data[0].probs.every((x: number, i: number) => Math.abs(x - expected.logits[i]) <= 1e-4), source);
    }
  });

  test('no token appears in any log line of the coordinator or the shards', () => {
    assert.ok(logs.text.length > 1000, 'logs were captured');
    for (const t of [PRIVATE_TOKEN, GLOBAL_TOKEN, WRONG_TOKEN, s3.credentials.secretAccessKey === 'S3RVER' ? 'never-matches' : s3.credentials.secretAccessKey]) {
      assert.equal(logs.text.includes(t), false, `token ${t.slice(0, 6)}… leaked into the logs`);
    }
  });
});

describe('base model from the Hub and from S3', () => {
  test('--model-id owner/name and s3://bucket/prefix download the model once and serve it', async () => {
    const { tokenizedGoldenModel } = await import('../helpers/golden-server.js');
    const { cpSync, mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const modelDir = mkdtempSync(join(tmpdir(), 'weft-model-copy-'));
    cpSync(tokenizedGoldenModel(c), modelDir, { recursive: true, dereference: true });
    const modelFiles = Object.fromEntries(readdirSync(modelDir).map((f) => [f, readFileSync(join(modelDir, f))]));
    const hub = await startHubServer({ repos: { 'weft/llama-tiny': { revisions: { main: { sha: sha('d'), files: modelFiles } } } } });
    const s3 = await startS3Server();
    await s3.putDir('models', 'llama-tiny', modelDir);
    const env = { HF_ENDPOINT: hub.endpoint, S3_ENDPOINT_URL: s3.endpoint, AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey };
    try {
      for (const modelId of ['weft/llama-tiny', 's3://models/llama-tiny']) {
        const g = await startGoldenServer({ modelId }, { env });
        try {
          const r = await g.post('/generate', { inputs: textOf(seq), parameters: { max_new_tokens: 1, decoder_input_details: true, details: true } });
          assert.equal(r.status, 200, r.text);
          prefillMatchesGolden(c, r.json, 'base/seq0', seq);
          const info = await (await fetch(`${g.url}/info`)).json();
          assert.equal(info.model_id, modelId);
        } finally {
          await g.close();
        }
      }
    } finally {
      await hub.stop();
      await s3.stop();
    }
  });
});
