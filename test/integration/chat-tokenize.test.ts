// TGI's POST /chat_tokenize: the chat body rendered by the template as /v1/chat/completions renders it, with that
// prompt's tokens (as many as the completion's usage counts); vLLM's GET /version.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGoldenServer, type GoldenServer } from '../helpers/golden-server.js';

const TEMPLATE = "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} {% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}";
let g: GoldenServer;
before(async () => { g = await startGoldenServer({}, { chatTemplate: TEMPLATE }); });
after(async () => { await g.close(); });

test('/chat_tokenize renders and tokenizes the chat prompt the chat route runs', async () => {
  const messages = [{ role: 'system', content: 't4 t5' }, { role: 'user', content: 't7 t8 t9' }];
  const r = await g.post('/chat_tokenize', { messages });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.templated_text, '<system> t4 t5 <user> t7 t8 t9 <assistant>');
  const ids = r.json.tokenize_response.map((t: { id: number }) => t.id);
  const chat = await g.post('/v1/chat/completions', { messages, max_tokens: 1 });
  assert.equal(chat.status, 200, chat.text);
  assert.equal(ids.length, chat.json.usage.prompt_tokens);
  // The offsets point into the rendered text (the role markers are unknown words here: the word-level tokenizer's t0).
  for (const t of r.json.tokenize_response.filter((x: { id: number }) => x.id !== 0)) assert.equal(r.json.templated_text.slice(t.start, t.stop).trim(), t.text);
  assert.deepEqual(ids.filter((i: number) => i !== 0), [4, 5, 7, 8, 9]);
  const bad = await g.post('/chat_tokenize', { messages: 'hello' });
  assert.equal(bad.status, 422, bad.text);
  assert.ok(bad.json.error.message.length > 0, 'an OpenAI-shaped error');
});

test('/version', async () => {
  const r = await fetch(`${g.url}/version`);
  assert.deepEqual(await r.json(), { version: '0.1.0' });
});
