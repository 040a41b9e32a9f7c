// vLLM's extra request fields on the OpenAI routes (coordinator/http/openai-vllm.ts, openai-validate.ts): what
// reaches the engine or the chat renderer, and the 422s for bad values — min_p, chat rendering fields and a request's
// own chat_template, the fields accepted at their defaults only, skip_special_tokens, truncate_prompt_tokens,
// stop_token_ids, min_tokens. Served behaviour is checked in test/integration (openai, special-tokens).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { chatRenderOf, MAX_REQUEST_TEMPLATE_CHARS } from '../../coordinator/http/openai-vllm.js';
import { post, testServer, type TestServer } from './http-engine-double.test.js';

let s: TestServer;
before(async () => { s = await testServer(); });
after(async () => { await s.app.close(); });

const USER_HI = [{ role: 'user', content: 'hi there' }];
const last = () => s.engine.requests.at(-1)!;

describe('vLLM request fields on the OpenAI routes', () => {
  test('min_p (vLLM\'s extension) reaches the engine when sampling; greedy drops it; out of [0, 1] is a 422', async () => {
    await post(s.app, '/v1/chat/completions', { messages: USER_HI, max_tokens: 1, min_p: 0.1 });
    assert.equal(last().sampling.minP, 0.1);
    await post(s.app, '/v1/completions', { prompt: 'hi', max_tokens: 1, min_p: 0.1, temperature: 0 });
    assert.equal('minP' in last().sampling, false);
    const bad = await post(s.app, '/v1/completions', { prompt: 'hi', max_tokens: 1, min_p: 2 });
    assert.equal(bad.statusCode, 422);
    assert.match(bad.body, /`min_p` must be >= 0 and <= 1/);
  });

  test('chat rendering (vLLM): add_generation_prompt, continue_final_message, chat_template_kwargs reach the template', async () => {
    await post(s.app, '/v1/chat/completions', { messages: USER_HI, max_tokens: 1 });
    assert.deepEqual(s.engine.lastRender, { addGenerationPrompt: true, continueFinalMessage: false });
    const prefill = [...USER_HI, { role: 'assistant', content: 'Well,' }];
    await post(s.app, '/v1/chat/completions', { messages: prefill, max_tokens: 1, add_generation_prompt: false,
      continue_final_message: true, chat_template_kwargs: { enable_thinking: false } });
    assert.deepEqual(s.engine.lastRender, { addGenerationPrompt: false, continueFinalMessage: true,
      templateKwargs: { enable_thinking: false } });
    for (const [extra, why] of [
      [{ continue_final_message: true }, /`continue_final_message` needs `add_generation_prompt` false/],
      [{ chat_template_kwargs: [1] }, /`chat_template_kwargs` must be an object/],
      [{ chat_template_kwargs: { messages: [] } }, /`chat_template_kwargs.messages` is set by the server/],
      [{ add_generation_prompt: 'yes' }, /`add_generation_prompt` must be a boolean/],
    ] as const) {
      const r = await post(s.app, '/v1/chat/completions', { messages: prefill, max_tokens: 1, ...extra });
      assert.equal(r.statusCode, 422, JSON.stringify(extra));
      assert.match(r.body, why);
    }
  });

  test('vLLM fields sent at their defaults are accepted; other values are refused as not supported', async () => {
    const defaults = { skip_special_tokens: true, spaces_between_special_tokens: true, use_beam_search: false, length_penalty: 1,
      early_stopping: false, return_tokens_as_token_ids: false, priority: 0 };
    const ok = await post(s.app, '/v1/completions', { prompt: 'hi', max_tokens: 1, ...defaults });
    assert.equal(ok.statusCode, 200, ok.body);
    for (const [key, value] of [['spaces_between_special_tokens', false], ['length_penalty', 2], ['priority', 1.5]] as const) {
      const r = await post(s.app, '/v1/chat/completions', { messages: USER_HI, max_tokens: 1, [key]: value });
      assert.equal(r.statusCode, 422, key);
      assert.match(r.body, new RegExp(key));
    }
    // `priority` goes to the engine (which refuses it unless --scheduling-policy priority: integration/priority).
    const prioritized = await post(s.app, '/v1/chat/completions', { messages: USER_HI, max_tokens: 1, priority: -3 });
    assert.equal(prioritized.statusCode, 200, prioritized.body);
    assert.equal(s.engine.requests.at(-1)!.priority, -3);
  });

  test('chat_template (vLLM): refused unless the server trusts request templates; then passed on to the renderer', async () => {
    const r = await post(s.app, '/v1/chat/completions', { messages: USER_HI, max_tokens: 1, chat_template: '{{ messages[0].content }}' });
    assert.equal(r.statusCode, 422);
    assert.match(r.body, /`chat_template` in a request is refused: .*--trust-request-chat-template/);
    const trusted = { maxTotalTokens: 64, requestChatTemplate: true };
    assert.equal(chatRenderOf({ chat_template: '{{ x }}' }, trusted).template, '{{ x }}');
    assert.equal(chatRenderOf({}, trusted).template, undefined);
    for (const bad of ['', 'x'.repeat(MAX_REQUEST_TEMPLATE_CHARS + 1), 7]) {
      assert.throws(() => chatRenderOf({ chat_template: bad }, trusted), /`chat_template` must be/);
    }
  });

  test('skip_special_tokens (vLLM): false keeps special tokens in the text; a non-boolean is a 422', async () => {
    await post(s.app, '/v1/chat/completions', { messages: USER_HI, max_tokens: 1, skip_special_tokens: false });
    assert.equal(last().keepSpecialTokens, true);
    await post(s.app, '/v1/completions', { prompt: 'hi', max_tokens: 1, skip_special_tokens: true });
    assert.equal(last().keepSpecialTokens, undefined);
    const r = await post(s.app, '/v1/completions', { prompt: 'hi', max_tokens: 1, skip_special_tokens: 'no' });
    assert.equal(r.statusCode, 422);
    assert.match(r.body, /skip_special_tokens/);
  });

  test('truncate_prompt_tokens (vLLM) becomes the engine\'s truncate; 0 or above the input limit is a 422', async () => {
    await post(s.app, '/v1/completions', { prompt: 'hi', max_tokens: 1, truncate_prompt_tokens: 3 });
    assert.equal(last().truncate, 3);
    for (const bad of [0, 1_000_000]) {
      const r = await post(s.app, '/v1/completions', { prompt: 'hi', max_tokens: 1, truncate_prompt_tokens: bad });
      assert.equal(r.statusCode, 422, String(bad));
      assert.match(r.body, /`truncate_prompt_tokens` must be >= 1/);
    }
  });

  test('stop_token_ids (vLLM) reach the engine; anything but a list of ids is a 422', async () => {
    await post(s.app, '/v1/completions', { prompt: 'hi', max_tokens: 8, stop_token_ids: [7, 9] });
    assert.deepEqual(last().stopTokenIds, [7, 9]);
    await post(s.app, '/v1/completions', { prompt: 'hi', max_tokens: 8, stop_token_ids: [] });
    assert.equal('stopTokenIds' in last(), false);
    for (const bad of [[-1], ['7'], 7, Array.from({ length: 65 }, (_, i) => i)]) {
      const r = await post(s.app, '/v1/chat/completions', { messages: USER_HI, max_tokens: 1, stop_token_ids: bad });
      assert.equal(r.statusCode, 422, JSON.stringify(bad));
      assert.match(r.body, /`stop_token_ids`/);
    }
  });

  test('min_tokens (vLLM) reaches the engine; above max_tokens is a 422', async () => {
    await post(s.app, '/v1/chat/completions', { messages: USER_HI, max_tokens: 8, min_tokens: 3 });
    assert.equal(last().minNewTokens, 3);
    await post(s.app, '/v1/completions', { prompt: 'hi', max_tokens: 8 });
    assert.equal('minNewTokens' in last(), false);
    const bad = await post(s.app, '/v1/completions', { prompt: 'hi', max_tokens: 2, min_tokens: 3 });
    assert.equal(bad.statusCode, 422);
    assert.match(bad.body, /`min_tokens` must be >= 0 and <= the maximum new tokens \(2\)/);
  });
});

test('reasoning_effort becomes the template variable gpt-oss reads; chat_template_kwargs still win', () => {
  assert.deepEqual(chatRenderOf({ reasoning_effort: 'low' }).templateKwargs, { reasoning_effort: 'low' });
  assert.deepEqual(chatRenderOf({ reasoning_effort: 'low', chat_template_kwargs: { reasoning_effort: 'high', x: 1 } }).templateKwargs,
    { reasoning_effort: 'high', x: 1 });
  assert.equal(chatRenderOf({}).templateKwargs, undefined);
  assert.throws(() => chatRenderOf({ reasoning_effort: 'max' }), /`reasoning_effort` must be one of minimal, low, medium, high/);
});
