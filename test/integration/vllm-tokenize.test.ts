// vLLM's /tokenize (prompt or messages) and /detokenize on the demo model, beside TGI's /tokenize: the same ids as
// TGI's route, a chat's count equal to the prompt tokens a chat completion reports, and a lossless round trip.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, type Launched } from '../../deploy/launch.js';
import { parseArgs } from '../../deploy/config/index.js';

let s: Launched;
before(async () => {
  s = await launch(parseArgs('launch', ['--port', '0', '--hostname', '127.0.0.1', '--log-level', 'silent'], {}),
    { cacheDir: mkdtempSync(join(tmpdir(), 'weft-tokenize-')) });
});
after(async () => { await s.close(); });
const post = async (path: string, body: unknown) => {
  const r = await fetch(s.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: await r.json() as any };
};

test('prompt: the ids TGI\'s /tokenize gives, with the counts and strings vLLM returns; detokenize round-trips', async () => {
  const text = 'The quick brown fox, jumping.';
  const tgi = await post('/tokenize', { inputs: text });
  const v = await post('/tokenize', { prompt: text, return_token_strs: true });
  assert.equal(v.status, 200);
  assert.deepEqual(v.json.tokens, tgi.json.map((t: { id: number }) => t.id));
  assert.equal(v.json.count, v.json.tokens.length);
  assert.equal(v.json.token_strs.length, v.json.count);
  assert.equal(v.json.max_model_len, s.engine.info.maxTotalTokens);
  const bare = await post('/tokenize', { prompt: text, add_special_tokens: false });
  assert.deepEqual(bare.json.tokens, v.json.tokens.slice(v.json.tokens.length - bare.json.tokens.length), 'the same text tokens');
  const back = await post('/detokenize', { tokens: bare.json.tokens });
  assert.equal(back.status, 200);
  assert.equal(back.json.prompt, text);
});

test('messages: rendered with the chat template; the count is what a chat completion bills as prompt tokens', async () => {
  const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'What is a fox?' }];
  const v = await post('/tokenize', { messages });
  assert.equal(v.status, 200);
  const chat = await post('/v1/chat/completions', { messages, max_tokens: 1 });
  assert.equal(v.json.count, chat.json.usage.prompt_tokens);
  const open = await post('/tokenize', { messages, add_generation_prompt: false });
  assert.ok(open.json.count < v.json.count, 'without the assistant turn opened');
});

test('bad input is a 422 naming the field', async () => {
  for (const [path, body, why] of [
    ['/detokenize', { tokens: [1, -1] }, /`tokens` must be a list of token ids/],
    ['/detokenize', { tokens: [10 ** 9] }, /`tokens` must be a list of token ids/],
    ['/tokenize', { prompt: 5 }, /`prompt` must be a string/],
    ['/tokenize', { prompt: 'x', messages: [] }, /not both/],
    ['/tokenize', { prompt: 'x', bogus: 1 }, /unknown field `bogus`/],
  ] as const) {
    const r = await post(path, body);
    assert.equal(r.status, 422, JSON.stringify(body));
    assert.match(JSON.stringify(r.json), why);
  }
});

test('embeddings of chat messages (vLLM): the conversation as the template renders it, no generation prompt unless asked', async () => {
  const messages = [{ role: 'user', content: 'Is a fox a dog?' }, { role: 'assistant', content: 'Not quite.' }];
  const ids = (await post('/tokenize', { messages, add_generation_prompt: false })).json.tokens;
  const viaIds = await post('/v1/embeddings', { input: [ids] });
  const viaMessages = await post('/v1/embeddings', { messages });
  assert.equal(viaMessages.status, 200, JSON.stringify(viaMessages.json));
  assert.equal(viaMessages.json.usage.prompt_tokens, ids.length);
  assert.deepEqual(viaMessages.json.data[0].embedding, viaIds.json.data[0].embedding);
  const prompted = await post('/v1/embeddings', { messages, add_generation_prompt: true });
  assert.equal(prompted.json.usage.prompt_tokens, (await post('/tokenize', { messages })).json.count);
  assert.notDeepEqual(prompted.json.data[0].embedding, viaMessages.json.data[0].embedding);
  for (const [body, why] of [[{ messages, input: 'x' }, /`input` or `messages`, not both/], [{ input: 'x', add_generation_prompt: true }, /goes with `messages`/],
    [{ messages: [] }, /non-empty list/]] as [unknown, RegExp][]) {
    const r = await post('/v1/embeddings', body);
    assert.equal(r.status, 422, JSON.stringify(r.json));
    assert.match(r.json.error.message, why);
  }
});

test('messages with content parts: text parts as the chat route joins them; an image part on a text-only model is the chat route\'s 422', async () => {
  const plain = await post('/tokenize', { messages: [{ role: 'user', content: 'What is a fox?' }] });
  const parts = await post('/tokenize', { messages: [{ role: 'user', content: [{ type: 'text', text: 'What is ' }, { type: 'text', text: 'a fox?' }] }] });
  assert.equal(parts.status, 200);
  assert.deepEqual(parts.json.tokens, plain.json.tokens);
  const image = [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }, { type: 'text', text: 'What?' }] }];
  const chat = await post('/v1/chat/completions', { messages: image, max_tokens: 1 });
  assert.equal(chat.status, 422);
  const v = await post('/tokenize', { messages: image });
  assert.equal(v.status, 422);
  assert.match(v.json.error, /does not take images: it is a text-only model/);
  const t = await post('/chat_tokenize', { messages: image });
  assert.equal(t.status, 422);
  assert.equal(t.json.error.message, chat.json.error.message);
  assert.equal(v.json.error, chat.json.error.message);
  const assistant = await post('/tokenize', { messages: [{ role: 'assistant', content: [{ type: 'image_url', image_url: { url: 'data:,' } }] }] });
  assert.equal(assistant.status, 422);
  assert.match(assistant.json.error, /image parts are only for user messages/);
});
