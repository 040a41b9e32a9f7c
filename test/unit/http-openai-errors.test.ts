// Every way an OpenAI-route request can fail, through the real server: the HTTP status (the same as the
// TGI routes'), and OpenAI's error shape `{"error": {message, type, param, code}}` with code = weft's
// error_type — for validation, engine errors, fastify's body errors and failures mid-stream.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PRIVATE_TOKEN, post, testServer, type TestServer } from './http-engine-double.test.js';

let s: TestServer;
before(async () => { s = await testServer({ bodyLimitBytes: 4096 }); });
after(async () => { await s.app.close(); });

type Res = Awaited<ReturnType<typeof post>>;

function assertOpenAiError(res: Res, status: number, type: string, code: string, message: string | RegExp): void {
  assert.equal(res.statusCode, status, res.body);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const body = res.json() as { error: Record<string, unknown> };
  assert.deepEqual(Object.keys(body), ['error']);
  assert.deepEqual(Object.keys(body.error), ['message', 'type', 'param', 'code']);
  assert.equal(body.error.type, type);
  assert.equal(body.error.code, code);
  assert.equal(body.error.param, null);
  if (typeof message === 'string') assert.equal(body.error.message, message);
  else assert.match(String(body.error.message), message);
}

const invalid = (res: Res, message: string | RegExp) => assertOpenAiError(res, 422, 'invalid_request_error', 'validation', message);
const chat = (extra: Record<string, unknown>) => ({ messages: [{ role: 'user', content: 'hi' }], ...extra });
const completion = (extra: Record<string, unknown>) => ({ prompt: 'hi', ...extra });

describe('bad input → 422 in OpenAI shape', () => {
  const both: [string, Record<string, unknown>, string | RegExp][] = [
    ['unknown key', { max_tokens: 2, bogus: 1 }, 'unknown field `bogus`'],
    ['n = 0', { n: 0 }, '`n` must be >= 1 and <= 16. Given: 0'],
    ['n = 17', { n: 17 }, '`n` must be >= 1 and <= 16. Given: 17'],
    ['n not an integer', { n: 1.5 }, '`n` must be an integer'],
    ['presence_penalty above 2', { presence_penalty: 2.5 }, '`presence_penalty` must be >= -2.0 and <= 2.0'],
    ['frequency_penalty below -2', { frequency_penalty: -3 }, '`frequency_penalty` must be >= -2.0 and <= 2.0'],
    ['frequency_penalty not a number', { frequency_penalty: '1' }, '`frequency_penalty` must be a number'],
    ['logit_bias not an object', { logit_bias: [1] }, '`logit_bias` must be an object mapping token ids to biases'],
    ['logit_bias key not an id', { logit_bias: { abc: 1 } }, '`logit_bias` keys must be token ids (integers >= 0), got "abc"'],
    ['logit_bias value too big', { logit_bias: { '5': 101 } }, '`logit_bias` values must be numbers >= -100 and <= 100 (token 5)'],
    ['temperature > 2', { temperature: 2.5 }, '`temperature` must be >= 0 and <= 2'],
    ['temperature < 0', { temperature: -0.1 }, '`temperature` must be >= 0 and <= 2'],
    ['top_p 0', { top_p: 0 }, '`top_p` must be > 0 and <= 1'],
    ['top_p > 1', { top_p: 1.5 }, '`top_p` must be > 0 and <= 1'],
    ['top_k -2', { top_k: -2 }, '`top_k` must be -1 or 0 (all tokens), or between 1 and 2147483647'],
    ['seed negative', { seed: -1 }, '`seed` must be an integer >= 0 and <= 2^53 - 1'],
    ['max_tokens 0', { max_tokens: 0 }, '`max_tokens` must be strictly positive (0 only with `echo`)'],
    ['max_tokens huge', { max_tokens: 100000 }, '`max_tokens` must be <= 256. Given: 100000'],
    ['max_tokens string', { max_tokens: '5' }, '`max_tokens` must be a number'],
    ['five stop sequences', { stop: ['a', 'b', 'c', 'd', 'e'] }, '`stop` supports up to 4 stop sequences. Given: 5'],
    ['stop a number', { stop: 5 }, '`stop` must be a string or an array of strings'],
    ['empty stop', { stop: [''] }, '`stop` sequences cannot be empty strings'],
    ['stream_options without stream', { stream_options: { include_usage: true } }, '`stream_options` is only allowed when `stream` is true'],
    ['stream_options unknown key', { stream: true, stream_options: { x: 1 } }, 'unknown field `stream_options.x`'],
    ['model not a string', { model: 5 }, '`model` must be a string'],
    ['bad adapter_source', { model: 'a', adapter_source: 'ftp' }, '`adapter_source` must be one of hub, s3, local'],
    ['ignore_eos_token not a boolean', { ignore_eos_token: 1 }, '`ignore_eos_token` must be a boolean'],
    ['ignore_eos not a boolean', { ignore_eos: 'true' }, '`ignore_eos` must be a boolean'],
    ['user not a string', { user: 5 }, '`user` must be a string'],
    ['engine: prompt + max_tokens over the limit', { max_tokens: 256 }, /must be <= 256/],
  ];
  for (const [name, extra, message] of both) {
    test(name, async () => {
      invalid(await post(s.app, '/v1/completions', completion(extra)), message);
      invalid(await post(s.app, '/v1/chat/completions', chat(extra)), message);
    });
  }

  const completions: [string, Record<string, unknown>, string | RegExp][] = [
    ['no prompt', {}, 'missing field `prompt`'],
    ['empty prompt', { prompt: '' }, '`prompt` cannot be empty'],
    ['empty prompt array', { prompt: [] }, '`prompt` cannot be empty'],
    ['65 prompts', { prompt: Array.from({ length: 65 }, () => 'a') }, '`prompt` has 65 prompts; at most 64 per request'],
    ['prompts x n over the limit', { prompt: ['a', 'b', 'c', 'd', 'e'], n: 13 }, '5 prompts x n 13 is 65 sequences; at most 64 per request'],
    ['a batch with an empty prompt', { prompt: ['a', ''] }, '`prompt` cannot be empty'],
    ['a batch mixing kinds', { prompt: ['a', 3] }, '`prompt` must be a string, token ids, or an array of either'],
    ['token ids not integers', { prompt: [1, 2.5] }, 'token-id `prompt` entries must be integers >= 0'],
    ['negative token id', { prompt: [[-1]] }, 'token-id `prompt` entries must be integers >= 0'],
    ['empty token ids', { prompt: [[]] }, '`prompt` cannot be empty'],
    ['prompt an object', { prompt: { text: 'a' } }, '`prompt` must be a string, token ids, or an array of either'],
    ['logprobs 6', { prompt: 'a', logprobs: 6 }, '`logprobs` must be >= 0 and <= 5. Given: 6'],
    ['logprobs boolean', { prompt: 'a', logprobs: true }, '`logprobs` must be a number'],
    ['echo not a boolean', { prompt: 'a', echo: 1 }, '`echo` must be a boolean'],
    ['best_of below n', { prompt: 'a', n: 3, best_of: 2 }, '`best_of` must be >= n (3) and <= 16. Given: 2'],
    ['best_of 17', { prompt: 'a', best_of: 17 }, '`best_of` must be >= n (1) and <= 16. Given: 17'],
    ['best_of streamed', { prompt: 'a', best_of: 2, stream: true }, '`best_of` above `n` cannot be streamed (the best are known at the end)'],
    ['prompts x best_of over 64', { prompt: Array.from({ length: 5 }, () => 'a'), best_of: 13 }, '5 prompts x best_of 13 is 65 sequences; at most 64 per request'],
    ['suffix without FIM tokens', { prompt: 'a', suffix: 'end' }, /^`suffix` needs a model trained to fill in the middle: this tokenizer has none of the known FIM tokens/],
    ['chat key on completions', { prompt: 'a', messages: [] }, 'unknown field `messages`'],
  ];
  for (const [name, body, message] of completions) {
    test(`completions: ${name}`, async () => invalid(await post(s.app, '/v1/completions', body), message));
  }

  const chats: [string, Record<string, unknown>, string | RegExp][] = [
    ['no messages', {}, 'missing field `messages`'],
    ['messages not an array', { messages: 'hi' }, '`messages` must be an array'],
    ['empty messages', { messages: [] }, '`messages` cannot be empty'],
    ['message not an object', { messages: ['hi'] }, '`messages[0]` must be a JSON object'],
    ['no role', { messages: [{ content: 'a' }] }, 'missing field `messages[0].role`'],
    ['bad role', { messages: [{ role: 'robot', content: 'a' }] }, '`messages[0].role` must be one of system, user, assistant, tool (or developer, function)'],
    ['tool_call_id on a user message', { messages: [{ role: 'user', content: 'a', tool_call_id: 'x' }] }, '`messages[0].tool_call_id` is only for tool messages'],
    ['function message without a name', { messages: [{ role: 'function', content: 'a' }] }, 'missing field `messages[0].name` (the function whose result this is)'],
    ['function_call on a user message', { messages: [{ role: 'user', content: 'a', function_call: { name: 'f', arguments: '{}' } }] },
      '`messages[0].function_call` is only for assistant messages'],
    ['malformed function_call', { messages: [{ role: 'assistant', content: null, function_call: { name: 'f' } }] },
      '`messages[0].function_call` must be {"name", "arguments"}'],
    ['both tool_calls and function_call', { messages: [{ role: 'assistant', content: null, function_call: { name: 'f', arguments: '{}' },
      tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}' } }] }] }, '`messages[0]` has both `tool_calls` and `function_call`; send one'],
    ['functions and tools', chat({ functions: [{ name: 'f' }], tools: [{ type: 'function', function: { name: 'g' } }] }),
      'use either `tools` or the legacy `functions` / `function_call`, not both'],
    ['functions not an array', chat({ functions: { name: 'f' } }), '`functions` must be an array'],
    ['function with a bad name', chat({ functions: [{ name: 'a b' }] }), '`functions[0].name` must be 1-64 letters, digits, _ or -'],
    ['function_call of an unknown function', chat({ functions: [{ name: 'f' }], function_call: { name: 'g' } }),
      "`function_call` names function 'g', which is not in `functions`"],
    ['function_call required', chat({ functions: [{ name: 'f' }], function_call: 'required' }),
      '`function_call` must be "none", "auto" or {"name": <one of `functions`>}'],
    ['no content', { messages: [{ role: 'user' }] }, 'missing field `messages[0].content`'],
    ['content a number', { messages: [{ role: 'user', content: 1 }] }, '`messages[0].content` must be a string or an array of content parts'],
    ['image part for a text-only model', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/a.png' } }] }] },
      /does not take images: it is a text-only model; send text only/],
    ['image shorthand for a text-only model', { messages: [{ role: 'user', content: [{ type: 'text', text: 'what?' }, { type: 'image_url', image_url: 'data:image/png;base64,AAAA' }] }] },
      /does not take images: it is a text-only model/],
    ['audio part', { messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: {} }] }] },
      '`messages[0].content[0].type` input_audio is not supported: only text and image_url parts'],
    ['image in an assistant message', { messages: [{ role: 'assistant', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] },
      '`messages[0].content[0]`: image parts are only for user messages'],
    ['image_url without url', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { detail: 'low' } }] }] },
      'missing field `messages[0].content[0].image_url.url`'],
    ['image_url with a bad detail', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x', detail: 'ultra' } }] }] },
      '`messages[0].content[0].image_url.detail` must be one of auto, low, high'],
    ['image_url with an unknown key', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x', uuid: 'u' } }] }] },
      'unknown field `messages[0].content[0].image_url.uuid`'],
    ['image_url empty', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: '' }] }] },
      '`messages[0].content[0].image_url` cannot be empty'],
    ['part without a type', { messages: [{ role: 'user', content: [{ text: 'a' }] }] }, '`messages[0].content[0].type` must be "text" or "image_url"'],
    ['part without text', { messages: [{ role: 'user', content: [{ type: 'text' }] }] }, '`messages[0].content[0].text` must be a string'],
    ['unknown message key', { messages: [{ role: 'user', content: 'a', mood: 'x' }] }, 'unknown field `messages[0].mood`'],
    ['malformed tool_calls', { messages: [{ role: 'assistant', content: 'a', tool_calls: [{ id: 'c' }] }] },
      '`messages[0].tool_calls[0]` must be {"id", "type": "function", "function": {"name", "arguments"}}'],
    ['tool_calls arguments not JSON', { messages: [{ role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function',
      function: { name: 'f', arguments: '{x' } }] }] }, '`messages[0].tool_calls[0].function.arguments` must be JSON text'],
    ['tool without a function', chat({ tools: [{ type: 'function' }] }),
      '`tools[0]` must be {"type": "function", "function": {"name", "description"?, "parameters"?}}'],
    ['tool name with a space', chat({ tools: [{ type: 'function', function: { name: 'a b' } }] }), '`tools[0].function.name` must be 1-64 letters, digits, _ or -'],
    ['tool names twice', chat({ tools: [{ type: 'function', function: { name: 'f' } }, { type: 'function', function: { name: 'f' } }] }), '`tools` function names must be distinct'],
    ['tool parameters with an unsupported keyword', chat({ tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object',
      properties: { n: { type: 'number', multipleOf: 3 } } } } }], tool_choice: 'required' }), /^`tools` function 'f' parameters: schema keyword 'multipleOf'/],
    ['tools and a JSON response_format', chat({ tools: [{ type: 'function', function: { name: 'f' } }], response_format: { type: 'json_object' } }), 'use either `tools` or a JSON `response_format`, not both'],
    ['tool_choice of an unknown function', chat({ tools: [{ type: 'function', function: { name: 'f' } }], tool_choice: { type: 'function', function: { name: 'g' } } }),
      "`tool_choice` names function 'g', which is not in `tools`"],
    ['tool_choice always', chat({ tool_choice: 'always' }), '`tool_choice` must be "none", "auto", "required" or {"type": "function", "function": {"name"}}'],
    ['response_format of an unknown type', chat({ response_format: { type: 'yaml' } }), '`response_format.type` must be one of text, json_object, json_schema'],
    ['json_schema without a schema', chat({ response_format: { type: 'json_schema', json_schema: { name: 'x' } } }),
      '`response_format.json_schema.schema` must be a JSON schema object'],
    ['json_schema with an unsupported keyword', chat({ response_format: { type: 'json_schema', json_schema: { name: 'x',
      schema: { type: 'object', properties: { n: { type: 'integer', multipleOf: 3 } } } } } }),
      /^`response_format.json_schema.schema`: schema keyword 'multipleOf' \(at #\/properties\/n\) is not supported in structured output/],
    ['top_logprobs without logprobs', chat({ top_logprobs: 2 }), '`top_logprobs` requires `logprobs` to be true'],
    ['top_logprobs 6', chat({ logprobs: true, top_logprobs: 6 }), '`top_logprobs` must be >= 0 and <= 5. Given: 6'],
    ['logprobs a number', chat({ logprobs: 2 }), '`logprobs` must be a boolean'],
    ['max_tokens and max_completion_tokens disagree', chat({ max_tokens: 2, max_completion_tokens: 3 }),
      '`max_tokens` and `max_completion_tokens` disagree; send one of them'],
    ['completions key on chat', chat({ prompt: 'a' }), 'unknown field `prompt`'],
    ['reasoning_effort not a level', chat({ reasoning_effort: 'extreme' }), '`reasoning_effort` must be one of minimal, low, medium, high'],
    ['include_reasoning a string', chat({ include_reasoning: 'no' }), '`include_reasoning` must be a boolean'],
  ];
  for (const [name, body, message] of chats) {
    test(`chat: ${name}`, async () => invalid(await post(s.app, '/v1/chat/completions', body), message));
  }

  test('no chat template → 422 from the engine, in OpenAI shape', async () => {
    s.engine.hasChatTemplate = false;
    try {
      invalid(await post(s.app, '/v1/chat/completions', chat({})), 'the model has no chat template');
    } finally {
      s.engine.hasChatTemplate = true;
    }
  });
});

describe('engine errors → the TGI routes\' statuses, OpenAI types', () => {
  const cases: [string, string, number, string, string, string | RegExp][] = [
    ['unknown adapter', 'missing', 404, 'not_found_error', 'adapter_not_found', "adapter 'missing' not found"],
    ['forbidden adapter', 'private', 403, 'permission_error', 'adapter_forbidden', "access to adapter 'private' denied"],
    ['adapter load failure', 'broken', 424, 'server_error', 'adapter_load', 'adapter weights are corrupt'],
  ];
  for (const [name, model, status, type, code, message] of cases) {
    test(name, async () => {
      assertOpenAiError(await post(s.app, '/v1/completions', { model, prompt: 'a', max_tokens: 2 }), status, type, code, message);
      assertOpenAiError(await post(s.app, '/v1/chat/completions', chat({ model, stream: true })), status, type, code, message);
    });
  }

  test('overloaded → 429 rate_limit_error', async () => {
    s.engine.inFlight = 4;
    try {
      assertOpenAiError(await post(s.app, '/v1/completions', { prompt: 'a' }), 429, 'rate_limit_error', 'overloaded', 'Model is overloaded');
    } finally {
      s.engine.inFlight = 0;
    }
  });

  test('a private adapter with its token works', async () => {
    const res = await post(s.app, '/v1/completions', { model: 'private', prompt: 'a', max_tokens: 1 }, { authorization: `Bearer ${PRIVATE_TOKEN}` });
    assert.equal(res.statusCode, 200, res.body);
  });

  test('an error message never echoes the token', async () => {
    const res = await post(s.app, '/v1/completions', { model: 'private', prompt: 'leak it', api_token: 'hf_wrong_token_x' });
    assertOpenAiError(res, 403, 'permission_error', 'adapter_forbidden', /\[REDACTED\]/);
    assert.ok(!res.body.includes('hf_wrong_token_x'));
    assert.ok(!s.logs.join('').includes('hf_wrong_token_x'), 'nor does the log');
  });

  test('failure mid-stream: the chunks so far, one OpenAI error event, then [DONE]', async () => {
    const res = await post(s.app, '/v1/chat/completions', chat({ model: 'flaky', stream: true, max_tokens: 5 }));
    assert.equal(res.statusCode, 200);
    const frames = res.body.split('\n\n').filter(Boolean);
    assert.equal(frames.length, 5);
    assert.equal(frames.at(-1), 'data: [DONE]');
    assert.deepEqual(JSON.parse(frames.at(-2)!.slice('data: '.length)), {
      error: { message: 'CUDA error: device-side assert', type: 'server_error', param: null, code: 'generation' },
    });
  });

  test('failure before any output of a whole response → its status', async () => {
    const res = await post(s.app, '/v1/completions', { model: 'flaky', prompt: 'a', max_tokens: 5 });
    assertOpenAiError(res, 424, 'server_error', 'generation', 'CUDA error: device-side assert');
    const two = await post(s.app, '/v1/completions', { model: 'flaky', prompt: 'a', max_tokens: 5, n: 2 });
    assertOpenAiError(two, 424, 'server_error', 'generation', 'CUDA error: device-side assert');
  });

  test('n = 3, failing mid-stream: exactly one error event, then [DONE]; nothing left running', async () => {
    const res = await post(s.app, '/v1/chat/completions', chat({ model: 'flaky', stream: true, max_tokens: 5, n: 3 }));
    assert.equal(res.statusCode, 200);
    const frames = res.body.split('\n\n').filter(Boolean);
    assert.equal(frames.at(-1), 'data: [DONE]');
    assert.equal(frames.filter((f) => f.includes('"error"')).length, 1);
    assert.equal(frames.filter((f) => f === 'data: [DONE]').length, 1);
    for (let i = 0; i < 50 && s.engine.inFlight > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(s.engine.inFlight, 0);
  });
});

describe('body format errors keep their statuses, in OpenAI shape', () => {
  const raw = (url: string, payload: string, contentType = 'application/json') =>
    s.app.inject({ method: 'POST', url, payload, headers: { 'content-type': contentType } });

  test('malformed JSON → 400', async () => {
    assertOpenAiError(await raw('/v1/completions', '{"prompt": '), 400, 'invalid_request_error', 'validation', /^Failed to parse the request body as JSON/);
  });

  test('not JSON → 415', async () => {
    assertOpenAiError(await raw('/v1/chat/completions', 'hi', 'text/plain'), 415, 'invalid_request_error', 'validation',
      'Expected request with `Content-Type: application/json`');
  });

  test('body too large → 413', async () => {
    const big = JSON.stringify({ prompt: 'x'.repeat(5000) });
    assertOpenAiError(await raw('/v1/completions', big), 413, 'invalid_request_error', 'validation', 'Request body is larger than 4096 bytes');
  });

  test('body not an object → 422', async () => {
    invalid(await post(s.app, '/v1/completions', ['a']), 'request body must be a JSON object');
  });

  test('the TGI routes keep their own shape', async () => {
    const res = await post(s.app, '/generate', { inputs: 'a', parameters: { bogus: 1 } });
    assert.deepEqual(res.json(), { error: 'unknown parameter `bogus`', error_type: 'validation' });
  });
});
