// The reasoning parsers (coordinator/engine/reasoning.ts): <think> blocks and gpt-oss's harmony channels split into
// thoughts and answer token by token, the format picked from the vocabulary, a template's open <think> detected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { detectReasoningFormat, promptOpensThinking, ReasoningSplitter } from '../../coordinator/engine/reasoning.js';

/** Feeds [piece, delta] pairs (a special marker: delta ''), returns the joined thoughts and answer. */
function split(s: ReasoningSplitter, tokens: [string, string][]): { reasoning: string; content: string } {
  let reasoning = '', content = '';
  for (const [piece, delta] of tokens) {
    const d = s.push(piece, delta);
    reasoning += d.reasoning;
    content += d.content;
  }
  return { reasoning, content };
}

const words = (text: string): [string, string][] => text.split(/(?= )/).map((w) => [w, w]);

test('think: the block between the tags is the thoughts; the answer\'s leading whitespace after them is dropped', () => {
  const out = split(new ReasoningSplitter('think'), [['<think>', '<think>'], ...words('Let me see.'), ['</think>', '</think>'],
    ['\n\n', '\n\n'], ...words('It is 4.')]);
  assert.deepEqual(out, { reasoning: 'Let me see.', content: 'It is 4.' });
  // no block: all answer, whitespace kept
  assert.deepEqual(split(new ReasoningSplitter('think'), words(' plain answer')), { reasoning: '', content: ' plain answer' });
  // a template that opened the block (DeepSeek-R1: the prompt ends with <think>\n): thoughts until </think>
  assert.deepEqual(split(new ReasoningSplitter('think', true), [...words('hmm'), ['</think>', ''], ...words(' 42')]),
    { reasoning: 'hmm', content: '42' });
  // cut off while thinking: all thoughts
  assert.deepEqual(split(new ReasoningSplitter('think', true), words('still going')), { reasoning: 'still going', content: '' });
});

test('harmony: analysis is the thoughts, final and commentary the answer; headers and markers are dropped', () => {
  const M = (m: string): [string, string] => [m, ''];  // a special marker: no text delta
  const out = split(new ReasoningSplitter('harmony'), [
    M('<|channel|>'), ['analysis', 'analysis'], M('<|message|>'), ...words('User asks 2+2.'), M('<|end|>'),
    M('<|start|>'), ['assistant', 'assistant'], M('<|channel|>'), ['final', 'final'], M('<|message|>'), ...words('4'), M('<|return|>'),
  ]);
  assert.deepEqual(out, { reasoning: 'User asks 2+2.', content: '4' });
  // a recipient in the header and a content type after the channel name: commentary is answer text
  const tool = split(new ReasoningSplitter('harmony'), [
    M('<|start|>'), ['assistant', 'assistant'], [' to=functions.f', ' to=functions.f'], M('<|channel|>'), ['commentary', 'commentary'],
    [' json', ' json'], M('<|message|>'), ['{"a":1}', '{"a":1}'], M('<|call|>'),
  ]);
  assert.deepEqual(tool, { reasoning: '', content: '{"a":1}' });  // (a request without tools: no call markup)
  // text before any header (a model that skips it) is answer
  assert.deepEqual(split(new ReasoningSplitter('harmony'), words('just text')), { reasoning: '', content: 'just text' });
});

test('the format from the vocabulary: auto prefers harmony\'s markers, then <think>; a named one the tokenizer lacks is refused', () => {
  const vocab = (...t: string[]) => (s: string) => t.includes(s);
  const harmony = vocab('<|channel|>', '<|message|>', '<|end|>', '<|start|>');
  assert.equal(detectReasoningFormat('auto', harmony), 'harmony');
  assert.equal(detectReasoningFormat('auto', vocab('<think>', '</think>')), 'think');
  assert.equal(detectReasoningFormat('auto', vocab('<think>')), null);
  assert.equal(detectReasoningFormat('none', harmony), null);
  assert.equal(detectReasoningFormat('think', vocab('<think>', '</think>')), 'think');
  assert.throws(() => detectReasoningFormat('think', harmony), /--reasoning-parser think: the tokenizer has no <think>/);
  assert.throws(() => detectReasoningFormat('harmony', vocab('<|channel|>')), /--reasoning-parser harmony: the tokenizer lacks/);
});

test('a prompt that ends inside an opened <think> block starts the answer in thoughts', () => {
  assert.equal(promptOpensThinking('<｜User｜>hi<｜Assistant｜><think>\n'), true);
  assert.equal(promptOpensThinking('<|im_start|>assistant\n<think>\n\n</think>\n\n'), false);  // Qwen3 with thinking off
  assert.equal(promptOpensThinking('user wrote <think> in the middle of a question'), false);
  assert.equal(promptOpensThinking('plain'), false);
});

test('harmony: a message addressed to a function is a call (HARMONY_CALL markup in the answer), recipient in its channel or header', async () => {
  const { HARMONY_CALL: C } = await import('../../coordinator/engine/reasoning.js');
  const m = (x: string): [string, string] => [x, ''];  // a special marker
  // Thoughts, then the call with the recipient in the channel: <|channel|>commentary to=functions.f <|constrain|>json<|message|>…<|call|>
  const inChannel = split(new ReasoningSplitter('harmony', false, true), [m('<|channel|>'), ...words('analysis'), m('<|message|>'), ...words('Need weather.'),
    m('<|end|>'), m('<|start|>'), ...words('assistant'), m('<|channel|>'), ...words('commentary to=functions.get_weather '),
    m('<|constrain|>'), ...words('json'), m('<|message|>'), ['{"city":', '{"city":'], [' "Paris"}', ' "Paris"}'], m('<|call|>')]);
  assert.deepEqual(inChannel, { reasoning: 'Need weather.', content: `${C.open}get_weather${C.args}{"city": "Paris"}${C.close}` });
  // The recipient in the header of the answer's first message (the template wrote "<|start|>assistant").
  const inHeader = split(new ReasoningSplitter('harmony', false, true), [[' to', ' to'], ['=functions.now', '=functions.now'], m('<|channel|>'),
    ...words('commentary json'), m('<|message|>'), ['{}', '{}']]);
  assert.deepEqual(inHeader, { reasoning: '', content: `${C.open}now${C.args}{}` });
  // An answer that is all a would-be header is text at the end; without tools nothing is held at all.
  const short = new ReasoningSplitter('harmony', false, true);
  assert.deepEqual(split(short, [['to', 'to']]), { reasoning: '', content: '' });
  assert.equal(short.finish(), 'to');
  assert.deepEqual(split(new ReasoningSplitter('harmony'), [['to', 'to']]), { reasoning: '', content: 'to' });
  // A plain answer that starts like a header ("t…") is held one token, then is text.
  assert.deepEqual(split(new ReasoningSplitter('harmony', false, true), [['t', 't'], ['oday', 'oday'], [' is', ' is']]), { reasoning: '', content: 'today is' });
  // A final message after the call's preamble is text, and a commentary message without recipient too.
  assert.deepEqual(split(new ReasoningSplitter('harmony'), [m('<|channel|>'), ...words('final'), m('<|message|>'), ...words('Done.')]),
    { reasoning: '', content: 'Done.' });
});
