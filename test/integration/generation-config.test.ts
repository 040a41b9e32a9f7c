// --generation-config through a real `weft launch` (golden llama model, word-level tokenizer): the served model's
// generation_config.json gives the OpenAI routes their defaults for omitted fields, a request's own values win, the TGI
// routes keep TGI's defaults, `vllm` ignores the file, and a broken file stops the launch before any shard starts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch } from '../../deploy/launch.js';
import { parseArgs } from '../../deploy/config/index.js';
import { loadGoldenCase } from '../helpers/golden.js';
import { startGoldenServer, textOf, tokenizedGoldenModel, type GoldenServer } from '../helpers/golden-server.js';

// top_k 1 makes every default-sampled completion the greedy one whatever its seed; max_new_tokens beyond
// --max-total-tokens (256 in startGoldenServer) is fitted to the room the prompt leaves.
const GENERATION_CONFIG = { bos_token_id: 1, eos_token_id: 2, do_sample: true, temperature: 0.7, top_k: 1, max_new_tokens: 1000 };
const TEMPLATE = "{% for m in messages %}{{ m['content'] }} {% endfor %}";
const PROMPT = textOf([5, 17, 29]);
const SEEDS = [1, 2, 3, 4, 5];

/** The completion text of `body` under each seed (8 tokens, past EOS so every answer has the same length). */
async function textsBySeed(g: GoldenServer, body: Record<string, unknown>): Promise<string[]> {
  return Promise.all(SEEDS.map(async (seed) => {
    const r = await g.post('/v1/completions', { prompt: PROMPT, max_tokens: 8, ignore_eos: true, seed, ...body });
    assert.equal(r.status, 200, r.text);
    return r.json.choices[0].text as string;
  }));
}

describe('--generation-config auto: the model\'s generation_config.json', () => {
  let g: GoldenServer;
  let greedy: string;
  before(async () => {
    g = await startGoldenServer({}, { generationConfig: GENERATION_CONFIG, chatTemplate: TEMPLATE });
    const r = await g.post('/v1/completions', { prompt: PROMPT, max_tokens: 8, ignore_eos: true, temperature: 0 });
    greedy = r.json.choices[0].text;
  });
  after(async () => { await g.close(); });

  test('/info reports the defaults in effect', async () => {
    const info = await (await fetch(`${g.url}/info`)).json();
    assert.deepEqual(info.default_sampling, { temperature: 0.7, top_k: 1, max_tokens: 1000 });
  });

  test('an omitted top_k follows the file: every seed gives the greedy answer', async () => {
    assert.deepEqual(await textsBySeed(g, {}), SEEDS.map(() => greedy));
  });

  test('request values win: top_k -1 switches the default off, and the seeds then differ', async () => {
    const texts = await textsBySeed(g, { top_k: -1, temperature: 1 });
    assert.ok(new Set(texts).size > 1, `sampled answers differ by seed: ${JSON.stringify(texts)}`);
  });

  test('chat takes the same defaults', async () => {
    const texts = await Promise.all(SEEDS.map(async (seed) => {
      const r = await g.post('/v1/chat/completions', { messages: [{ role: 'user', content: PROMPT }], max_tokens: 8, ignore_eos: true, seed });
      assert.equal(r.status, 200, r.text);
      return r.json.choices[0].message.content as string;
    }));
    assert.equal(new Set(texts).size, 1, `top_k 1: one answer for every seed: ${JSON.stringify(texts)}`);
  });

  test('an omitted max_tokens follows max_new_tokens, fitted to the room the prompt leaves', async () => {
    const r = await g.post('/v1/completions', { prompt: PROMPT, ignore_eos: true });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.usage.prompt_tokens, 3);
    assert.equal(r.json.usage.completion_tokens, 256 - 3, 'not the route\'s own 100, and not refused as over the limit');
    assert.equal(r.json.choices[0].finish_reason, 'length');
    const given = await g.post('/v1/completions', { prompt: PROMPT, ignore_eos: true, max_tokens: 4 });
    assert.equal(given.json.usage.completion_tokens, 4);
  });

  test('the TGI routes keep TGI\'s defaults: sampling without top_k, 100 new tokens', async () => {
    const texts = await Promise.all(SEEDS.map(async (seed) => {
      const r = await g.post('/generate', { inputs: PROMPT, parameters: { do_sample: true, seed, max_new_tokens: 8, ignore_eos_token: true } });
      assert.equal(r.status, 200, r.text);
      return r.json.generated_text as string;
    }));
    assert.ok(new Set(texts).size > 1, `TGI sampling is not limited by the file's top_k: ${JSON.stringify(texts)}`);
    const r = await g.post('/generate', { inputs: PROMPT, parameters: { ignore_eos_token: true, details: true } });
    assert.equal(r.json.details.generated_tokens, 100);
  });
});

describe('--generation-config vllm: the file is ignored', () => {
  let g: GoldenServer;
  before(async () => { g = await startGoldenServer({}, { generationConfig: GENERATION_CONFIG, flags: ['--generation-config', 'vllm'] }); });
  after(async () => { await g.close(); });

  test('no defaults: /info says null, and an omitted temperature is OpenAI\'s 1 (seeds differ)', async () => {
    const info = await (await fetch(`${g.url}/info`)).json();
    assert.equal(info.default_sampling, null);
    const texts = await textsBySeed(g, {});
    assert.ok(new Set(texts).size > 1, `temperature 1 without top_k: answers differ by seed: ${JSON.stringify(texts)}`);
    const r = await g.post('/v1/completions', { prompt: PROMPT, ignore_eos: true });
    assert.equal(r.json.usage.completion_tokens, 100, 'the route\'s own max_tokens default');
  });
});

test('an invalid generation_config.json stops the launch, naming the file and the field', async () => {
  const dir = tokenizedGoldenModel(loadGoldenCase('llama'));
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ temperature: 0.6, top_p: 0 }));
  const config = parseArgs('launch', ['--model-id', dir, '--port', '0', '--hostname', '127.0.0.1', '--cluster', `gc${process.pid}`,
    '--log-level', 'silent'], {});
  await assert.rejects(launch(config, { cacheDir: mkdtempSync(join(tmpdir(), 'weft-cache-')) }), (err: Error) => {
    assert.ok(err.message.includes(join(dir, 'generation_config.json')), err.message);
    assert.match(err.message, /`top_p` must be a number > 0 and <= 1 .*got 0; .*--generation-config vllm/);
    return true;
  });
});
