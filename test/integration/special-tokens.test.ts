// skip_special_tokens (vLLM's OpenAI field) served end to end: a tokenizer with special added tokens, generation
// forced onto them with logit_bias. By default special tokens are not text; with skip_special_tokens: false they
// are, except the EOS token that ends the generation (vLLM leaves it out too). The token details name them either way.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGoldenServer, type GoldenServer } from '../helpers/golden-server.js';

let g: GoldenServer;
before(async () => {
  g = await startGoldenServer({}, { specialTokens: { 2: '</s>', 3: '<tool>' } });  // 2: the golden model's EOS
});
after(async () => g.close());

const complete = (extra: Record<string, unknown>) =>
  g.post('/v1/completions', { prompt: 't182 t162', max_tokens: 3, temperature: 0, ...extra });

test('special tokens are dropped from the text by default and kept with skip_special_tokens: false', async () => {
  const dropped = await complete({ logit_bias: { 3: 100 } });
  assert.equal(dropped.status, 200, dropped.text);
  assert.equal(dropped.json.choices[0].text, '');
  assert.equal(dropped.json.usage.completion_tokens, 3);
  const kept = await complete({ logit_bias: { 3: 100 }, skip_special_tokens: false });
  assert.equal(kept.status, 200, kept.text);
  assert.equal(kept.json.choices[0].text, '<tool> <tool> <tool>');  // a WordLevel tokenizer decodes words with spaces
  // streamed: the same text in its deltas
  const streamed = await complete({ logit_bias: { 3: 100 }, skip_special_tokens: false, stream: true });
  const text = streamed.text.split('\n').filter((l) => l.startsWith('data: {'))
    .map((l) => JSON.parse(l.slice(6)).choices[0]?.text ?? '').join('');
  assert.equal(text, kept.json.choices[0].text);
});

test('the EOS token that ends the generation is never text', async () => {
  for (const skip of [true, false]) {
    const r = await complete({ logit_bias: { 2: 100 }, skip_special_tokens: skip });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.choices[0].finish_reason, 'stop');
    assert.equal(r.json.choices[0].text, '', `skip_special_tokens ${skip}`);
  }
  // stop_token_ids end like EOS: the ending special token is left out, the tokens before it are text
  const r = await complete({ logit_bias: { 3: 100 }, stop_token_ids: [3], min_tokens: 2, skip_special_tokens: false });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].finish_reason, 'stop');
  assert.equal(r.json.usage.completion_tokens, 3);
  assert.match(r.json.choices[0].text, /^ ?t\d+ t\d+$/);  // the two words drawn before the stop token
});
