// --chat-template: the chat routes render the template given at launch (a file, or the template itself) instead of
// the model's; a wrong path or a template that does not parse stops the launch with the reason.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGoldenServer, type GoldenServer } from '../helpers/golden-server.js';

const MODEL_TEMPLATE = '{% for m in messages %}{{ m.content }}{% endfor %}';
const OURS = '{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}';
const dir = mkdtempSync(join(tmpdir(), 'weft-chat-template-'));
const file = join(dir, 'chatml-ish.jinja');
writeFileSync(file, OURS);

let g: GoldenServer;
before(async () => { g = await startGoldenServer({}, { chatTemplate: MODEL_TEMPLATE, flags: ['--chat-template', file] }); });
after(async () => { await g?.close(); });

test('the chat routes render the launch template, not the model\'s: /tokenize and a chat completion bill the same prompt', async () => {
  const messages = [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'a fox' }];
  const rendered = await g.post('/tokenize', { messages });
  const expected = await g.post('/tokenize', { prompt: '[system] be brief\n[user] a fox\n[assistant] ', add_special_tokens: false });
  assert.equal(rendered.status, 200, rendered.text);
  assert.deepEqual(rendered.json.tokens, expected.json.tokens);
  const modelOwn = await g.post('/tokenize', { prompt: 'be briefa fox', add_special_tokens: false });
  assert.notDeepEqual(rendered.json.tokens, modelOwn.json.tokens);
  const chat = await g.post('/v1/chat/completions', { messages, max_tokens: 1 });
  assert.equal(chat.status, 200, chat.text);
  assert.equal(chat.json.usage.prompt_tokens, expected.json.tokens.length);
});

test('a wrong path or a template that does not parse stops the launch, naming it', async () => {
  await assert.rejects(startGoldenServer({}, { flags: ['--chat-template', join(dir, 'missing.jinja')] }),
    /--chat-template '.*missing\.jinja': no such file \(give a path to a \.jinja file, or the template itself\)/);
  await assert.rejects(startGoldenServer({}, { flags: ['--chat-template', '{% for m in messages %}{{ m.content }}'] }),
    /--chat-template: the template does not parse/);
});
