// TGI /tokenize offsets (coordinator/tokenizer/token-spans.ts) over a byte-level vocabulary decoded as a real one
// is: pieces that split a character share its span, an added BOS and an unknown piece are empty spans, a chat
// marker lands on its text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tokenSpans } from '../../coordinator/tokenizer/token-spans.js';

// Token id → bytes: 0 "<s>" (a BOS the text does not hold), 1 "H", 2 "i", 3 " h", 4 0xC3 (é's first byte), 5 0xA9,
// 6 "<|end|>", 7 "!", 8 "[UNK]".
const VOCAB: Buffer[] = ['<s>', 'H', 'i', ' h', null, null, '<|end|>', '!', '[UNK]'].map((s, i) =>
  s === null ? Buffer.from([i === 4 ? 0xc3 : 0xa9]) : Buffer.from(s));
const decode = (ids: number[]) => new TextDecoder().decode(Buffer.concat(ids.map((i) => VOCAB[i]!)));

test('spans of byte-level tokens in the text they encode', () => {
  const text = 'Hi hé<|end|>!?';
  const ids = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const spans = tokenSpans(text, ids, ids.map((i) => decode([i])), decode).map((s) => [s.id, s.start, s.stop]);
  assert.deepEqual(spans, [[0, 0, 0], [1, 0, 1], [2, 1, 2], [3, 2, 4], [4, 4, 5], [5, 4, 5], [6, 5, 12], [7, 12, 13], [8, 13, 13]]);
  const lone = tokenSpans('x', [4], ['\uFFFD'], decode);  // a character cut off at the end: an empty span
  assert.deepEqual([lone[0]!.start, lone[0]!.stop], [0, 0]);
});
