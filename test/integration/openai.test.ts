// The OpenAI-compatible routes on the built-in demo model (real tokenizer and chat template).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, type Launched } from '../../deploy/launch.js';
import { parseArgs } from '../../deploy/config/index.js';
import { ensureDemoAdapter } from '../../deploy/demo-model/index.js';

let server: Launched;
let adapterRoot: string;
const post = (path: string, body: unknown) => fetch(server.url + path, { method: 'POST',
  headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

before(async () => {
  const cacheDir = mkdtempSync(join(tmpdir(), 'weft-openai-'));
  adapterRoot = join(cacheDir, 'adapters');
  server = await launch({ ...parseArgs('launch', ['--port', '0', '--hostname', '127.0.0.1', '--log-level', 'silent',
    '--adapter-root', adapterRoot, '--trust-request-chat-template'], {}) }, { cacheDir });
  await ensureDemoAdapter(join(cacheDir, 'demo-model'), adapterRoot, 'style', 3);
});
after(async () => { await server.close(); });

function sse(text: string): any[] {
  return text.split('\n').filter((l) => l.startsWith('data: ') && l !== 'data: [DONE]').map((l) => JSON.parse(l.slice(6)));
}

test('chat completion: template-rendered prompt, usage, streamed chunks equal the whole answer', async () => {
  const req = { model: '', messages: [{ role: 'user', content: 'Tell me about adapters.' }], max_tokens: 12, temperature: 0 };
  const r = await post('/v1/chat/completions', req);
  assert.equal(r.status, 200);
  const j = await r.json();
  assert.match(j.id, /^chatcmpl-/);
  assert.equal(j.object, 'chat.completion');
  assert.equal(j.choices[0].message.role, 'assistant');
  assert.ok(['stop', 'length'].includes(j.choices[0].finish_reason));
  assert.ok(j.usage.prompt_tokens > 5);
  assert.equal(j.usage.total_tokens, j.usage.prompt_tokens + j.usage.completion_tokens);
  const s = await post('/v1/chat/completions', { ...req, stream: true });
  const text = await s.text();
  assert.ok(text.trim().endsWith('data: [DONE]'));
  const chunks = sse(text);
  assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), j.choices[0].message.content);
  assert.equal(chunks.at(-1).choices[0].finish_reason, j.choices[0].finish_reason);
});

test('completions: model selects the adapter; the base model id or empty is the base model', async () => {
  const base = await (await post('/v1/completions', { model: 'weft-demo', prompt: 'The shard', max_tokens: 8, temperature: 0 })).json();
  const empty = await (await post('/v1/completions', { prompt: 'The shard', max_tokens: 8, temperature: 0 })).json();
  assert.equal(base.choices[0].text, empty.choices[0].text);
  const withAdapter = await post('/v1/completions', { model: 'style', adapter_source: 'local', prompt: 'The shard', max_tokens: 8, temperature: 0 });
  assert.equal(withAdapter.status, 200);
  const a = await withAdapter.json();
  assert.notEqual(a.choices[0].text, base.choices[0].text, 'the adapter changes the output');
  const missing = await post('/v1/completions', { model: 'nope', adapter_source: 'local', prompt: 'x', max_tokens: 2 });
  assert.equal(missing.status, 404);
  const err = await missing.json();
  assert.equal(typeof err.error.message, 'string');
});

test('a chat that continues an earlier one reports its shared prefix as cached tokens; the answer is unchanged', async () => {
  // Long enough for a few 16-token blocks; the demo model's default is --block-size 16.
  const system = { role: 'system', content: 'You are the weft demo. '.repeat(12) };
  const first = { model: '', messages: [system, { role: 'user', content: 'First question?' }], max_tokens: 6, temperature: 0 };
  const a = await (await post('/v1/chat/completions', first)).json();
  assert.equal(a.usage.prompt_tokens_details.cached_tokens, 0, 'nothing was cached before');
  const again = await (await post('/v1/chat/completions', first)).json();
  assert.equal(again.choices[0].message.content, a.choices[0].message.content);
  const cached = again.usage.prompt_tokens_details.cached_tokens;
  assert.ok(cached >= 32 && cached < again.usage.prompt_tokens && cached % 16 === 0, `cached ${cached} of ${again.usage.prompt_tokens}`);
  const next = { ...first, messages: [...first.messages, { role: 'assistant', content: a.choices[0].message.content },
    { role: 'user', content: 'And a second one?' }], stream: true, stream_options: { include_usage: true } };
  const chunks = sse(await (await post('/v1/chat/completions', next)).text());
  const usage = chunks.at(-1).usage;
  assert.ok(usage.prompt_tokens_details.cached_tokens >= 32, JSON.stringify(usage));
});

test('n = 3 seeded choices each equal a single request with seed + index; streamed the same', async () => {
  const req = { prompt: 'The adapters', max_tokens: 10, temperature: 0.9, seed: 77 };
  const many = await (await post('/v1/completions', { ...req, n: 3 })).json();
  assert.equal(many.choices.length, 3);
  const singles = await Promise.all([0, 1, 2].map(async (i) => (await (await post('/v1/completions', { ...req, seed: 77 + i })).json())));
  many.choices.forEach((c: { index: number; text: string }, i: number) => {
    assert.equal(c.index, i);
    assert.equal(c.text, singles[i].choices[0].text, `choice ${i}`);
  });
  assert.ok(new Set(many.choices.map((c: { text: string }) => c.text)).size > 1, 'different seeds, different samples');
  assert.equal(many.usage.completion_tokens, singles.reduce((n: number, s: any) => n + s.usage.completion_tokens, 0));
  const streamed = sse(await (await post('/v1/completions', { ...req, n: 3, stream: true })).text());
  for (let i = 0; i < 3; i++) {
    const text = streamed.flatMap((c) => c.choices.filter((ch: { index: number }) => ch.index === i).map((ch: { text: string }) => ch.text)).join('');
    assert.equal(text, many.choices[i].text, `streamed choice ${i}`);
  }
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(metrics, /^weft_kv_blocks_used 0$/m);
});

test('best_of 4, n 2: the two sequences of highest mean token log-prob, best first; usage counts all four', async () => {
  const req = { prompt: 'The adapters', max_tokens: 8, temperature: 1.5, seed: 21 };
  const r = await (await post('/v1/completions', { ...req, n: 2, best_of: 4 })).json();
  assert.equal(r.choices.length, 2, JSON.stringify(r));
  // Each of the four sequences alone (seed 21 + j), with its tokens' log-probs (EOS included) from /generate.
  const seqs = await Promise.all([0, 1, 2, 3].map(async (j) => {
    const alone = await (await post('/v1/completions', { ...req, seed: 21 + j })).json();
    const tgi = await (await post('/generate', { inputs: req.prompt, parameters: { do_sample: true, temperature: 1.5, seed: 21 + j,
      max_new_tokens: 8, details: true } })).json();
    assert.equal(tgi.generated_text, alone.choices[0].text, `seed ${21 + j}: both APIs sample alike`);
    const lps = tgi.details.tokens.map((t: { logprob: number }) => t.logprob);
    return { j, text: alone.choices[0].text as string, mean: lps.reduce((a: number, b: number) => a + b, 0) / lps.length,
      tokens: alone.usage.completion_tokens as number };
  }));
  const ranked = [...seqs].sort((a, b) => b.mean - a.mean || a.j - b.j);
  assert.deepEqual(r.choices.map((c: { index: number; text: string }) => [c.index, c.text]), [[0, ranked[0]!.text], [1, ranked[1]!.text]]);
  assert.equal(r.usage.completion_tokens, seqs.reduce((n, q) => n + q.tokens, 0), 'every sequence computed counts');
  const streamed = await post('/v1/completions', { ...req, n: 2, best_of: 4, stream: true });
  assert.equal(streamed.status, 422);
  assert.match((await streamed.json()).error.message, /`best_of` above `n` cannot be streamed/);
});

test('echo + logprobs scores the prompt like decoder_input_details (what evaluation harnesses use); max_tokens 0 too', async () => {
  const prompt = 'The shard serves many adapters in one batch';
  const scored = await (await post('/v1/completions', { prompt, max_tokens: 0, echo: true, logprobs: 1, temperature: 0 })).json();
  const lp = scored.choices[0].logprobs;
  assert.equal(scored.choices[0].text, prompt);
  assert.equal(scored.usage.completion_tokens, 0);
  const tgi = await (await post('/generate', { inputs: prompt, parameters: { max_new_tokens: 1, decoder_input_details: true, details: true } })).json();
  const prefill = tgi.details.prefill as { logprob: number | null }[];
  assert.equal(lp.token_logprobs.length, prefill.length);
  lp.token_logprobs.forEach((v: number | null, i: number) => {
    if (i === 0) assert.equal(v, null);
    else assert.ok(Math.abs(v! - prefill[i]!.logprob!) < 1e-5, `position ${i}: ${v} vs ${prefill[i]!.logprob}`);
  });
  assert.equal(lp.tokens.join(''), prompt, 'the pieces spell the prompt');
  // Each position's top-1 alternative is at least as likely as the prompt token (is_greedy in lm-eval's terms).
  lp.top_logprobs.slice(1).forEach((top: Record<string, number>, i: number) => {
    assert.equal(Object.keys(top).length, 1);
    assert.ok(Math.max(...Object.values(top)) >= lp.token_logprobs[i + 1] - 1e-6);
  });
});

test('a token-id prompt gives what its text gives; an id outside the vocabulary is a 422', async () => {
  const text = 'The shard serves';
  const ids = ((await (await post('/tokenize', { inputs: text })).json()) as { id: number }[]).map((t) => t.id);
  const req = { max_tokens: 6, temperature: 0 };
  const byText = await (await post('/v1/completions', { ...req, prompt: text })).json();
  const byIds = await (await post('/v1/completions', { ...req, prompt: ids })).json();
  assert.equal(byIds.choices[0].text, byText.choices[0].text);
  assert.equal(byIds.usage.prompt_tokens, ids.length);
  const bad = await post('/v1/completions', { ...req, prompt: [1, 10_000_000] });
  assert.equal(bad.status, 422);
  assert.match((await bad.json()).error.message, /token id 10000000 is outside the vocabulary/);
});

test('logit_bias +100 forces a token, -100 bans the greedy one; a bias on a token outside the vocabulary is a 422', async () => {
  const prompt = 'The shard';
  const req = { prompt, max_tokens: 1, temperature: 0, logprobs: 0 };
  const greedy = await (await post('/v1/completions', req)).json();
  const target = ((await (await post('/tokenize', { inputs: `${prompt} adapters` })).json()) as { id: number }[]).at(-1)!.id;
  const forced = await (await post('/v1/completions', { ...req, max_tokens: 3, logit_bias: { [String(target)]: 100 } })).json();
  assert.equal(forced.choices[0].text, ' adapters adapters adapters');
  const firstId = ((await (await post('/tokenize', { inputs: prompt + greedy.choices[0].text })).json()) as { id: number }[]).at(-1)!.id;
  const banned = await (await post('/v1/completions', { ...req, logit_bias: { [String(firstId)]: -100 } })).json();
  assert.notEqual(banned.choices[0].text, greedy.choices[0].text);
  const bad = await post('/v1/completions', { ...req, logit_bias: { '99999999': 1 } });
  assert.equal(bad.status, 422);
});

test('a request\'s own chat_template (--trust-request-chat-template) renders the prompt; a broken one is a 422', async () => {
  // The template writes the user's text and nothing else: the prompt is then that text alone (fewer tokens than the
  // model's template, which adds role markers), and greedy decoding continues it as a plain completion does.
  const text = 'The capital of France is';
  const chat = await (await post('/v1/chat/completions', { messages: [{ role: 'user', content: text }], max_tokens: 6,
    temperature: 0, chat_template: '{{ messages[-1].content }}' })).json();
  const plain = await (await post('/v1/chat/completions', { messages: [{ role: 'user', content: text }], max_tokens: 6,
    temperature: 0 })).json();
  assert.ok(chat.usage.prompt_tokens < plain.usage.prompt_tokens, `${chat.usage.prompt_tokens} vs ${plain.usage.prompt_tokens}: the model's template adds role markers`);
  const asCompletion = await (await post('/v1/completions', { prompt: text, max_tokens: 6, temperature: 0 })).json();
  assert.equal(chat.choices[0].message.content, asCompletion.choices[0].text);
  const broken = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], max_tokens: 2,
    chat_template: '{% for m in messages %}' });
  assert.equal(broken.status, 422);
  assert.match(await broken.text(), /the request's chat_template does not parse/);
});

test('an assistant turn echoed back with reasoning_content (or reasoning) is accepted and reaches the template; elsewhere it is refused', async () => {
  const template = '{% for m in messages %}{{ m.role }}: {{ m.reasoning_content or "" }} {{ m.content }}\n{% endfor %}';
  const turn = (extra: Record<string, unknown>) => ({ messages: [{ role: 'user', content: 'Hi' },
    { role: 'assistant', content: 'Hello.', ...extra }, { role: 'user', content: 'Again?' }], chat_template: template, max_tokens: 1 });
  const plain = await (await post('/v1/chat/completions', turn({}))).json();
  const withThoughts = await (await post('/v1/chat/completions', turn({ reasoning_content: 'the user greets me twice over' }))).json();
  const asReasoning = await (await post('/v1/chat/completions', turn({ reasoning: 'the user greets me twice over' }))).json();
  assert.ok(withThoughts.usage.prompt_tokens > plain.usage.prompt_tokens, 'the thoughts were rendered');
  assert.equal(asReasoning.usage.prompt_tokens, withThoughts.usage.prompt_tokens);
  const onUser = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'Hi', reasoning_content: 'x' }], max_tokens: 1 });
  assert.equal(onUser.status, 422);
  assert.match((await onUser.json()).error.message, /unknown field `messages\[0\]\.reasoning_content`/);
});
