// --generation-config (coordinator/http/generation-defaults.ts): reading and checking a model's generation_config.json,
// where the setting looks for it, and how the defaults reach the OpenAI routes' sampling (and not the TGI routes').
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  GenerationConfigError,
  readSamplingDefaults,
  resolveSamplingDefaults,
  withSamplingDefaults,
} from '../../coordinator/http/generation-defaults.js';
import { validateChatBody, validateCompletionBody } from '../../coordinator/http/openai-validate.js';
import { parseArgs } from '../../deploy/config/index.js';
import { post, testServer, type TestServer } from './http-engine-double.test.js';

/** A model directory holding `config` as its generation_config.json (none when undefined). */
function modelDir(config?: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-gencfg-'));
  if (config !== undefined) writeFileSync(join(dir, 'generation_config.json'), typeof config === 'string' ? config : JSON.stringify(config));
  return dir;
}
const fileOf = (config: unknown) => join(modelDir(config), 'generation_config.json');

// Qwen3-8B's generation_config.json, as shipped.
const QWEN3 = { bos_token_id: 151643, do_sample: true, eos_token_id: [151645, 151643], pad_token_id: 151643,
  temperature: 0.6, top_k: 20, top_p: 0.95, transformers_version: '4.51.0' };

describe('reading generation_config.json', () => {
  test('a full file: the sampling fields, under the request names; the rest ignored', () => {
    assert.deepEqual(readSamplingDefaults(fileOf(QWEN3)), { temperature: 0.6, top_p: 0.95, top_k: 20 });
    const all = { temperature: 0.7, top_p: 0.8, top_k: 40, min_p: 0.05, repetition_penalty: 1.05, max_new_tokens: 512 };
    assert.deepEqual(readSamplingDefaults(fileOf(all)),
      { temperature: 0.7, top_p: 0.8, top_k: 40, min_p: 0.05, repetition_penalty: 1.05, max_tokens: 512 });
  });

  test('partial: only the fields present (null counts as absent); none at all is null', () => {
    assert.deepEqual(readSamplingDefaults(fileOf({ temperature: 0.6, top_p: 0.9, eos_token_id: [128001] })), { temperature: 0.6, top_p: 0.9 });
    assert.deepEqual(readSamplingDefaults(fileOf({ temperature: null, repetition_penalty: 1.1 })), { repetition_penalty: 1.1 });
    assert.equal(readSamplingDefaults(fileOf({ bos_token_id: 1, eos_token_id: 2, _from_model_config: true })), null);
  });

  test('do_sample is not read (vLLM ignores it): do_sample false with a temperature keeps the temperature', () => {
    assert.deepEqual(readSamplingDefaults(fileOf({ do_sample: false, temperature: 0.6, top_p: 0.9 })), { temperature: 0.6, top_p: 0.9 });
    assert.equal(readSamplingDefaults(fileOf({ do_sample: false })), null);
  });

  test('top_k 0 or -1 is "no top-k": nothing to default to', () => {
    assert.equal(readSamplingDefaults(fileOf({ top_k: 0 })), null);
    assert.deepEqual(readSamplingDefaults(fileOf({ top_k: -1, temperature: 0 })), { temperature: 0 });
  });

  const invalid: [string, unknown, RegExp][] = [
    ['temperature a string', { temperature: 'hot' }, /`temperature` must be a number >= 0 and <= 2 .*got "hot"/],
    ['temperature above 2', { temperature: 3 }, /`temperature` must be a number >= 0 and <= 2/],
    ['top_p 0', { top_p: 0 }, /`top_p` must be a number > 0 and <= 1/],
    ['top_p above 1', { top_p: 1.5 }, /`top_p` must be a number > 0 and <= 1/],
    ['top_k fractional', { top_k: 2.5 }, /`top_k` must be an integer -1 or 0 \(off\), or 1 to 2147483647/],
    ['top_k below -1', { top_k: -5 }, /`top_k` must be an integer/],
    ['min_p above 1', { min_p: 2 }, /`min_p` must be a number >= 0 and <= 1/],
    ['repetition_penalty 0', { repetition_penalty: 0 }, /`repetition_penalty` must be a number >= 0.01 and <= 100/],
    ['max_new_tokens 0', { max_new_tokens: 0 }, /`max_new_tokens` must be an integer >= 1/],
    ['max_new_tokens a string', { max_new_tokens: '512' }, /`max_new_tokens` must be an integer >= 1/],
  ];
  for (const [name, config, message] of invalid) {
    test(`invalid: ${name} → an error naming the file, the field and the way out`, () => {
      const path = fileOf(config);
      assert.throws(() => readSamplingDefaults(path), (err: Error) => {
        assert.ok(err instanceof GenerationConfigError, String(err));
        assert.ok(err.message.startsWith(path), err.message);
        assert.match(err.message, message);
        assert.match(err.message, /--generation-config vllm to ignore it/);
        return true;
      });
    });
  }

  test('invalid: not JSON, or not an object', () => {
    assert.throws(() => readSamplingDefaults(fileOf('{"temperature": 0.6,')), /generation_config\.json is not valid JSON/);
    assert.throws(() => readSamplingDefaults(fileOf([0.6])), /generation_config\.json must hold a JSON object/);
  });
});

describe('--generation-config: where the defaults come from', () => {
  test('auto: the model directory\'s file; a model without one has none', () => {
    const dir = modelDir(QWEN3);
    assert.deepEqual(resolveSamplingDefaults('auto', dir),
      { source: join(dir, 'generation_config.json'), defaults: { temperature: 0.6, top_p: 0.95, top_k: 20 } });
    assert.deepEqual(resolveSamplingDefaults('auto', modelDir()), { source: null, defaults: null });
  });

  test('vllm: none, even where the model has a file (an invalid one is not even read)', () => {
    assert.deepEqual(resolveSamplingDefaults('vllm', modelDir(QWEN3)), { source: null, defaults: null });
    assert.deepEqual(resolveSamplingDefaults('vllm', modelDir('not json')), { source: null, defaults: null });
  });

  test('a directory: its generation_config.json instead of the model\'s (or the file itself)', () => {
    const other = modelDir({ temperature: 0.2, max_new_tokens: 64 });
    assert.deepEqual(resolveSamplingDefaults(other, modelDir(QWEN3)).defaults, { temperature: 0.2, max_tokens: 64 });
    const file = join(other, 'generation_config.json');
    assert.deepEqual(resolveSamplingDefaults(file, modelDir()), { source: file, defaults: { temperature: 0.2, max_tokens: 64 } });
  });

  test('a directory that is missing, or holds no generation_config.json: a start-up error saying what to give', () => {
    const missing = join(tmpdir(), 'weft-no-such-dir-for-gencfg');
    assert.throws(() => resolveSamplingDefaults(missing, modelDir()), /--generation-config .*no such directory.*'auto' \(the model's own\) or 'vllm' \(none\)/);
    const empty = mkdtempSync(join(tmpdir(), 'weft-gencfg-empty-'));
    assert.throws(() => resolveSamplingDefaults(empty, modelDir()), /has no generation_config\.json; give the directory that holds one/);
  });

  test('auto with an invalid file fails the same way as a named one', () => {
    assert.throws(() => resolveSamplingDefaults('auto', modelDir({ top_p: 0 })), GenerationConfigError);
  });

  test('the flag: default auto, GENERATION_CONFIG from the environment, the flag over it', () => {
    assert.equal(parseArgs('launch', [], {}).generationConfig, 'auto');
    assert.equal(parseArgs('launch', [], { GENERATION_CONFIG: 'vllm' }).generationConfig, 'vllm');
    assert.equal(parseArgs('launch', ['--generation-config', '/models/gen'], { GENERATION_CONFIG: 'vllm' }).generationConfig, '/models/gen');
  });
});

describe('defaults for omitted OpenAI fields', () => {
  const defaults = { temperature: 0.6, top_p: 0.95, top_k: 20, min_p: 0.01, repetition_penalty: 1.1 };
  const limits = { maxTotalTokens: 256, samplingDefaults: defaults };
  const chat = (extra: Record<string, unknown> = {}) => ({ messages: [{ role: 'user', content: 'hi' }], seed: 1, ...extra });

  test('withSamplingDefaults fills absent and null fields, keeps given ones, and leaves the body as it was', () => {
    const body = { temperature: 0.9, top_p: null };
    const filled = withSamplingDefaults(body, defaults);
    assert.deepEqual(filled, { temperature: 0.9, top_p: 0.95, top_k: 20, min_p: 0.01, repetition_penalty: 1.1 });
    assert.deepEqual(body, { temperature: 0.9, top_p: null });
    assert.equal(withSamplingDefaults(body, null), body);
  });

  test('an empty request samples with the defaults', () => {
    assert.deepEqual(validateChatBody(chat(), limits).sampling,
      { temperature: 0.6, topK: 20, topP: 0.95, typicalP: 1, minP: 0.01, repetitionPenalty: 1.1, doSample: true, seed: 1 });
  });

  test('request values win: temperature 0 is greedy, top_k -1 / 0 switch the default top-k off', () => {
    const greedy = validateCompletionBody({ prompt: 'a', temperature: 0 }, limits).sampling;
    assert.equal(greedy.doSample, false);
    assert.equal(greedy.repetitionPenalty, 1.1, 'a penalty still applies to greedy decoding');
    const mine = validateChatBody(chat({ temperature: 1.2, top_p: 1, top_k: 5, min_p: 0, repetition_penalty: 1 }), limits).sampling;
    assert.deepEqual(mine, { temperature: 1.2, topK: 5, topP: 1, typicalP: 1, repetitionPenalty: 1, doSample: true, seed: 1 });
    assert.equal(validateChatBody(chat({ top_k: -1 }), limits).sampling.topK, 0);
    assert.equal(validateChatBody(chat({ top_k: 0 }), limits).sampling.topK, 0);
  });

  test('max_tokens: the default when omitted (kept under --max-total-tokens, fitted to the prompt); a given one wins', () => {
    const withMax = (max_tokens: number) => ({ maxTotalTokens: 256, samplingDefaults: { max_tokens } });
    const d = validateChatBody(chat(), withMax(64));
    assert.equal(d.maxNewTokens, 64);
    assert.equal(d.fitMaxNewTokens, true);
    assert.equal(validateChatBody(chat(), withMax(4096)).maxNewTokens, 255);
    const given = validateChatBody(chat({ max_completion_tokens: 10 }), withMax(64));
    assert.equal(given.maxNewTokens, 10);
    assert.equal(given.fitMaxNewTokens, undefined);
    assert.equal(validateCompletionBody({ prompt: 'a', max_tokens: 7 }, withMax(64)).maxNewTokens, 7);
    assert.equal(validateCompletionBody({ prompt: 'a' }, { maxTotalTokens: 256 }).maxNewTokens, 100, 'no default: the route\'s own');
  });

  test('no defaults: OpenAI\'s temperature 1, no warpers', () => {
    assert.deepEqual(validateChatBody(chat(), { maxTotalTokens: 256 }).sampling,
      { temperature: 1, topK: 0, topP: 1, typicalP: 1, repetitionPenalty: 1, doSample: true, seed: 1 });
  });
});

describe('through the server: OpenAI routes take the defaults, TGI routes do not; /info reports them', () => {
  let s: TestServer;
  const defaults = { temperature: 0.6, top_p: 0.95, top_k: 20, max_tokens: 12 };
  before(async () => { s = await testServer({ samplingDefaults: defaults }); });
  after(async () => { await s.app.close(); });
  const last = () => s.engine.requests.at(-1)!;

  test('/v1/completions and /v1/chat/completions', async () => {
    const c = await post(s.app, '/v1/completions', { prompt: 'a', seed: 3 });
    assert.equal(c.statusCode, 200, c.body);
    assert.deepEqual(last().sampling, { temperature: 0.6, topK: 20, topP: 0.95, typicalP: 1, repetitionPenalty: 1, doSample: true, seed: 3 });
    assert.equal(last().maxNewTokens, 12);
    assert.equal(last().fitMaxNewTokens, true);
    const chat = await post(s.app, '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], temperature: 1, max_tokens: 2 });
    assert.equal(chat.statusCode, 200, chat.body);
    assert.equal(last().sampling.temperature, 1);
    assert.equal(last().sampling.topK, 20);
    assert.equal(last().maxNewTokens, 2);
    assert.equal(last().fitMaxNewTokens, undefined);
  });

  test('/v1/responses: the defaults, echoed as the temperature and top_p in effect', async () => {
    const r = await post(s.app, '/v1/responses', { input: 'hi', store: false });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(last().sampling.temperature, 0.6);
    assert.equal(last().sampling.topK, 20);
    assert.equal(r.json().temperature, 0.6);
    assert.equal(r.json().top_p, 0.95);
    const mine = await post(s.app, '/v1/responses', { input: 'hi', store: false, temperature: 0.3 });
    assert.equal(mine.json().temperature, 0.3);
    assert.equal(last().sampling.temperature, 0.3);
  });

  test('/generate keeps TGI\'s defaults (greedy, 100 tokens)', async () => {
    const g = await post(s.app, '/generate', { inputs: 'a' });
    assert.equal(g.statusCode, 200, g.body);
    assert.deepEqual(last().sampling, { temperature: 1, topK: 0, topP: 1, typicalP: 1, repetitionPenalty: 1, doSample: false, seed: 0 });
    assert.equal(last().maxNewTokens, 100);
  });

  test('/info: default_sampling', async () => {
    const info = (await s.app.inject({ method: 'GET', url: '/info' })).json();
    assert.deepEqual(info.default_sampling, defaults);
    const plain = await testServer();
    assert.equal((await plain.app.inject({ method: 'GET', url: '/info' })).json().default_sampling, null);
    await plain.app.close();
  });
});
