// Fill in the middle (OpenAI completions' `suffix`) on a golden model whose tokenizer has StarCoder's FIM tokens:
// the answer is the completion of <fim_prefix>prompt<fim_suffix>suffix<fim_middle>, as token ids; a model without
// FIM tokens, echo, and token-id prompts are refused with the reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startGoldenServer, textOf } from '../helpers/golden-server.js';

const FIM = { 500: '<fim_prefix>', 501: '<fim_suffix>', 502: '<fim_middle>' };

test('suffix: the completion of the prompt and suffix in the model\'s FIM tokens; refusals say why', async () => {
  const g = await startGoldenServer({}, { specialTokens: FIM });
  try {
    assert.equal((await (await fetch(`${g.url}/info`)).json()).fim_format, 'starcoder');
    const prefix = [182, 162, 289], suffix = [318, 293];
    const fim = await g.post('/v1/completions', { prompt: textOf(prefix), suffix: textOf(suffix), max_tokens: 5, temperature: 0 });
    assert.equal(fim.status, 200, fim.text);
    const ids = await g.post('/v1/completions', { prompt: [500, ...prefix, 501, ...suffix, 502], max_tokens: 5, temperature: 0 });
    assert.equal(ids.status, 200, ids.text);
    assert.equal(fim.json.choices[0].text, ids.json.choices[0].text);
    assert.equal(fim.json.usage.prompt_tokens, prefix.length + suffix.length + 3);
    const plain = await g.post('/v1/completions', { prompt: textOf(prefix), suffix: '', max_tokens: 5, temperature: 0 });
    assert.equal(plain.json.usage.prompt_tokens, prefix.length, 'an empty suffix is no suffix');
    for (const [body, why] of [
      [{ prompt: 't1', suffix: 't2', echo: true }, /`echo` cannot be combined with `suffix`/],
      [{ prompt: [1, 2], suffix: 't2' }, /`suffix` needs a text prompt/],
      [{ prompt: 't1', suffix: 5 }, /`suffix` must be a string/],
    ] as const) {
      const r = await g.post('/v1/completions', { max_tokens: 2, ...body });
      assert.equal(r.status, 422, JSON.stringify(body));
      assert.match(r.text, why);
    }
  } finally {
    await g.close();
  }
  const plainModel = await startGoldenServer();
  try {
    const r = await plainModel.post('/v1/completions', { prompt: 't1', suffix: 't2', max_tokens: 2 });
    assert.equal(r.status, 422);
    assert.match(r.text, /`suffix` needs a model trained to fill in the middle/);
  } finally {
    await plainModel.close();
  }
});
