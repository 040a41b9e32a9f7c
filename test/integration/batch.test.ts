// `weft batch`: an OpenAI batch file through a server it starts (launch flags; demo model) and through a running
// one (--url, with an API key): one result line per request in input order, the server's answers as they are,
// bad lines and refused requests reported without stopping the rest.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runBatch } from '../../deploy/batch.js';
import { launch } from '../../deploy/launch.js';
import { parseArgs } from '../../deploy/config/index.js';

const dir = mkdtempSync(join(tmpdir(), 'weft-batch-'));
const line = (custom_id: string, url: string, body: unknown) => JSON.stringify({ custom_id, method: 'POST', url, body });
const CHAT = { messages: [{ role: 'user', content: 'Say something.' }], max_tokens: 6, temperature: 0 };

interface ResultLine { id: string; custom_id: string | null; response: { status_code: number; body: any } | null; error: { code: string; message: string } | null }
const results = (file: string): ResultLine[] => readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));

test('a batch file through a server started for it: every kind of request, in order, bad lines reported', async () => {
  const input = join(dir, 'in.jsonl'), output = join(dir, 'out.jsonl');
  writeFileSync(input, [
    line('chat-1', '/v1/chat/completions', CHAT),
    line('completion-n2', '/v1/completions', { prompt: 'Once upon', max_tokens: 4, n: 2, seed: 3 }),
    '',
    line('embed', '/v1/embeddings', { input: ['a text', 'another'] }),
    line('responses', '/v1/responses', { input: 'Hello', max_output_tokens: 4 }),
    'this is not json',
    line('bad-url', '/v1/models', {}),
    line('refused', '/v1/completions', { prompt: 'x', max_tokens: -1 }),
    line('streamed', '/v1/chat/completions', { ...CHAT, stream: true }),
    line('chat-2', '/v1/chat/completions', CHAT),
  ].join('\n') + '\n');
  const summary = await runBatch(parseArgs('batch', ['--input', input, '--output', output, '--log-level', 'silent', '--concurrency', '3'], {}), () => {});
  assert.deepEqual({ lines: summary.lines, succeeded: summary.succeeded, failed: summary.failed, invalid: summary.invalid },
    { lines: 9, succeeded: 5, failed: 1, invalid: 3 });
  const out = results(output);
  assert.deepEqual(out.map((r) => r.custom_id), ['chat-1', 'completion-n2', 'embed', 'responses', null, 'bad-url', 'refused', 'streamed', 'chat-2']);
  assert.deepEqual(out.map((r) => r.id), out.map((_, i) => `batch_req_${i}`));
  const [chat1, completion, embed, responses, notJson, badUrl, refused, streamed, chat2] = out;
  assert.equal(chat1!.response!.status_code, 200);
  assert.equal(chat1!.response!.body.object, 'chat.completion');
  assert.equal(chat1!.response!.body.choices[0].message.content, chat2!.response!.body.choices[0].message.content, 'greedy: the same answer twice');
  assert.equal(completion!.response!.body.choices.length, 2);
  assert.equal(embed!.response!.body.data.length, 2);
  assert.equal(responses!.response!.body.object, 'response');
  for (const r of [chat1, completion, embed, responses]) assert.equal(r!.error, null);
  assert.deepEqual(notJson!.error, { code: 'invalid_request', message: 'the line is not JSON' });
  assert.match(badUrl!.error!.message, /`url` must be one of/);
  assert.equal(refused!.response!.status_code, 422);
  assert.match(JSON.stringify(refused!.response!.body), /max_tokens/);
  assert.match(streamed!.error!.message, /`body.stream` cannot be true/);
});

test('--url: a running server with an API key; without the key every line is a 401, none lost', async () => {
  const server = await launch(parseArgs('launch', ['--port', '0', '--hostname', '127.0.0.1', '--log-level', 'silent', '--api-key', 'k-123'], {}),
    { cacheDir: mkdtempSync(join(tmpdir(), 'weft-batch-srv-')) });
  try {
    const input = join(dir, 'url.jsonl');
    writeFileSync(input, Array.from({ length: 12 }, (_, i) => line(`q${i}`, '/v1/completions', { prompt: `Item ${i}`, max_tokens: 3, seed: i })).join('\n'));
    const ok = join(dir, 'url-ok.jsonl'), denied = join(dir, 'url-denied.jsonl');
    const s1 = await runBatch(parseArgs('batch', ['--input', input, '--output', ok, '--url', server.url, '--api-key', 'k-123', '--concurrency', '5'], {}), () => {});
    assert.equal(s1.succeeded, 12);
    assert.deepEqual(results(ok).map((r) => [r.custom_id, r.response!.status_code]), Array.from({ length: 12 }, (_, i) => [`q${i}`, 200]));
    // An interrupted run: 5 complete result lines and a sixth cut short. --resume keeps the 5, drops the stub, sends the rest.
    const cut = join(dir, 'url-cut.jsonl');
    const okLines = readFileSync(ok, 'utf8').split('\n');
    writeFileSync(cut, okLines.slice(0, 5).join('\n') + '\n' + okLines[5]!.slice(0, 20));
    const resumed = await runBatch(parseArgs('batch', ['--input', input, '--output', cut, '--url', server.url, '--api-key', 'k-123', '--resume'], {}), () => {});
    assert.deepEqual([resumed.resumed, resumed.succeeded, resumed.lines], [5, 7, 12]);
    assert.deepEqual(results(cut).map((r) => [r.id, r.custom_id, r.response!.status_code]), Array.from({ length: 12 }, (_, i) => [`batch_req_${i}`, `q${i}`, 200]));
    assert.deepEqual(readFileSync(cut, 'utf8').split('\n').slice(0, 5), okLines.slice(0, 5), 'the kept lines are untouched');
    const again = await runBatch(parseArgs('batch', ['--input', input, '--output', cut, '--url', server.url, '--resume'], {}), () => {});
    assert.deepEqual([again.resumed, again.succeeded + again.failed], [12, 0], 'a finished output: nothing is sent');
    const other = join(dir, 'other.jsonl');
    writeFileSync(other, line('z0', '/v1/completions', { prompt: 'x', max_tokens: 1 }) + '\n');
    await assert.rejects(runBatch(parseArgs('batch', ['--input', other, '--output', cut, '--url', server.url, '--resume'], {}), () => {}),
      /result line 1 of .* is for custom_id 'q0' but input line 1 is 'z0'/);
    await assert.rejects(runBatch(parseArgs('batch', ['--input', input, '--url', server.url, '--resume'], {}), () => {}), /--resume needs --output/);
    const s2 = await runBatch(parseArgs('batch', ['--input', input, '--output', denied, '--url', server.url], {}), () => {});
    assert.equal(s2.failed, 12);
    assert.ok(results(denied).every((r) => r.response!.status_code === 401));
    assert.equal(server.engine.stats().usedBlocks, 0);
  } finally {
    await server.close();
  }
});
