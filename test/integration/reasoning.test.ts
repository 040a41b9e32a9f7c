// The reasoning parser over HTTP (/v1/chat/completions): a golden model (gpt-oss) whose greedy continuation is known, served
// with a tokenizer that names some of those tokens <think> / </think> (or gpt-oss's harmony markers), so the split
// of real generated tokens into reasoning_content and content can be checked whole and streamed, with
// include_reasoning false and with --reasoning-parser none.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadGoldenCase } from '../helpers/golden.js';
import { startGoldenServer, textOf, type AddedToken } from '../helpers/golden-server.js';

// gpt-oss's golden model: its three base sequences' greedy continuations have six distinct tokens each.
const CASE = 'gpt_oss';
const c = loadGoldenCase(CASE);
// A base sequence whose six greedy tokens are all different, so each can be given its own text.
const s = c.sequences.findIndex((_, i) => new Set(c.greedy[`base/seq${i}`]).size === 6);
const g = c.greedy[`base/seq${s}`]!;
const t = (id: number) => `t${id}`;

function sse(text: string): any[] {
  return text.split('\n').filter((l) => l.startsWith('data: ') && l !== 'data: [DONE]').map((l) => JSON.parse(l.slice(6)));
}

async function chat(tokens: Record<number, AddedToken>, flags: string[], body: Record<string, unknown> = {}) {
  const srv = await startGoldenServer({}, { caseName: CASE, specialTokens: tokens, flags: ['--trust-request-chat-template', ...flags] });
  try {
    // the template gives the prompt exactly the sequence's tokens, so the greedy continuation is the golden one
    const req = { messages: [{ role: 'user', content: textOf(c.sequences[s]!) }], chat_template: '{{ messages[-1].content }}',
      max_tokens: 6, temperature: 0, ...body };
    const whole = await srv.post('/v1/chat/completions', req);
    assert.equal(whole.status, 200, whole.text);
    const streamed = sse((await srv.post('/v1/chat/completions', { ...req, stream: true })).text);
    const deltas = (k: string) => streamed.map((ch) => ch.choices[0]?.delta?.[k] ?? '').join('');
    // the Responses API: the same split as a reasoning item before the message
    const { messages: _m, max_tokens: _x, ...rest } = req;
    const resp = await srv.post('/v1/responses', { ...rest, input: req.messages, max_output_tokens: 6, include: ['message.output_text.logprobs'] });
    assert.equal(resp.status, 200, resp.text);
    const info = await (await fetch(`${srv.url}/info`)).json();
    return { message: whole.json.choices[0].message, streamed: { reasoning: deltas('reasoning_content'), content: deltas('content') },
      response: resp.json, parser: info.reasoning_parser };
  } finally {
    await srv.close();
  }
}

test('think: the tokens between <think> and </think> come back as reasoning_content, whole and streamed', async () => {
  assert.ok(s >= 0, 'a sequence with six distinct greedy tokens');
  const tokens = { [g[1]!]: { content: '<think>', special: false }, [g[3]!]: { content: '</think>', special: false } };
  const { message, streamed, parser, response } = await chat(tokens, []);
  assert.equal(parser, 'think');  // auto: the tokenizer has <think> and </think>
  // output_text's log-probs are the answer's tokens only: not the thoughts, not the markers
  assert.deepEqual(response.output.at(-1).content[0].logprobs.map((l: { token: string }) => l.token.trim()), [g[0]!, g[4]!, g[5]!].map(t));
  assert.equal(message.reasoning_content.trim(), t(g[2]!));
  for (const id of [g[0]!, g[4]!, g[5]!]) assert.ok(message.content.includes(t(id)), `${t(id)} in the answer: ${message.content}`);
  assert.ok(!message.content.includes(t(g[2]!)) && !message.content.includes('think>'), message.content);
  assert.deepEqual(streamed, { reasoning: message.reasoning_content, content: message.content });

  const hidden = await chat(tokens, [], { include_reasoning: false });
  assert.equal(hidden.message.reasoning_content, undefined);
  assert.equal(hidden.message.content, message.content);
  assert.equal(hidden.streamed.reasoning, '');

  const raw = await chat(tokens, ['--reasoning-parser', 'none']);  // the tags stay in the text, no reasoning field
  assert.equal(raw.parser, 'none');
  assert.equal(raw.message.reasoning_content, undefined);
  assert.ok(raw.message.content.includes('<think>') && raw.message.content.includes(t(g[2]!)), raw.message.content);
});

test('harmony (gpt-oss): the analysis channel is reasoning_content; the markers and channel names are not text', async () => {
  // g0 answer text, then <|channel|>analysis<|message|> g4 <|end|>; <|start|> only needs to exist in the vocabulary
  const start = [...Array(c.vocab).keys()].find((id) => !g.includes(id) && !c.sequences[s]!.includes(id))!;
  const tokens: Record<number, AddedToken> = { [g[1]!]: '<|channel|>', [g[2]!]: { content: 'analysis', special: false },
    [g[3]!]: '<|message|>', [g[5]!]: '<|end|>', [start]: '<|start|>' };
  const { message, streamed, response, parser } = await chat(tokens, []);
  assert.equal(parser, 'harmony');
  assert.equal(message.reasoning_content.trim(), t(g[4]!));
  assert.equal(message.content.trim(), t(g[0]!));
  assert.deepEqual(streamed, { reasoning: message.reasoning_content, content: message.content });
  assert.deepEqual(response.output.map((o: any) => o.type), ['reasoning', 'message']);
  assert.equal(response.output[0].content[0].text, message.reasoning_content);
  assert.equal(response.output[1].content[0].text, message.content);
  assert.equal(response.usage.output_tokens_details.reasoning_tokens, 1);
});

test('harmony tool calls (gpt-oss): a commentary message to=functions.NAME comes back as tool_calls, whole and streamed', async () => {
  // g0 <|channel|>, g1 "commentary to=functions.get_weather", g2 <|constrain|>, g3 <|message|>, g4 the arguments, g5 <|call|>
  const free = [...Array(c.vocab).keys()].filter((id) => !g.includes(id) && !c.sequences[s]!.includes(id));
  const tokens: Record<number, AddedToken> = { [g[0]!]: '<|channel|>', [g[1]!]: { content: 'commentary to=functions.get_weather', special: false },
    [g[2]!]: '<|constrain|>', [g[3]!]: '<|message|>', [g[4]!]: { content: '{"city": "Paris"}', special: false }, [g[5]!]: '<|call|>',
    [free[0]!]: '<|start|>', [free[1]!]: '<|end|>' };
  const srv = await startGoldenServer({}, { caseName: CASE, specialTokens: tokens, flags: ['--trust-request-chat-template', '--tool-call-parser', 'harmony'] });
  try {
    assert.equal((await (await fetch(`${srv.url}/info`)).json()).tool_call_parser, 'harmony');
    const weather = { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } };
    // <|call|> ends the turn (gpt-oss's generation config lists it among the end tokens; here a stop token id).
    const req = { messages: [{ role: 'user', content: textOf(c.sequences[s]!) }], chat_template: '{{ messages[-1].content }}',
      max_tokens: 6, temperature: 0, tools: [weather], stop_token_ids: [g[5]!] };
    const whole = await srv.post('/v1/chat/completions', req);
    assert.equal(whole.status, 200, whole.text);
    const choice = whole.json.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls', whole.text);
    assert.equal(choice.message.content, null);
    assert.deepEqual(choice.message.tool_calls.map((x: any) => [x.function.name, JSON.parse(x.function.arguments)]), [['get_weather', { city: 'Paris' }]]);
    const streamed = sse((await srv.post('/v1/chat/completions', { ...req, stream: true })).text);
    const deltas = streamed.flatMap((ch) => ch.choices[0]?.delta?.tool_calls ?? []);
    assert.deepEqual(deltas.map((d: any) => d.function), choice.message.tool_calls.map((x: any) => x.function));
    assert.equal(streamed.map((ch) => ch.choices[0]?.delta?.content ?? '').join(''), '');
    // Without tools the same answer is text (the arguments), as before.
    const plain = await srv.post('/v1/chat/completions', { ...req, tools: undefined });
    assert.equal(plain.json.choices[0].message.content.trim(), '{"city": "Paris"}');
    const required = await srv.post('/v1/chat/completions', { ...req, tool_choice: 'required' });
    assert.equal(required.status, 422, required.text);
  } finally {
    await srv.close();
  }
});
