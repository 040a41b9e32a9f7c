import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { StreamingDetokenizer, TokenizerPool } from '../../coordinator/tokenizer/index.js';
import { DEMO_TOKEN_IDS, ensureDemoModel } from '../../deploy/demo-model/index.js';

const TEXTS = [
  'plain ascii text, with punctuation!',
  '中文字符和日本語のテキスト',
  'emoji: 🤖👍🏽👨‍👩‍👧 🇫🇷',
  'mixed: café 世界 🎉 done',
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 outside the BMP',
];

/** A lone UTF-16 surrogate means half a character was emitted. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function assertWhole(part: string): void {
  assert.ok(!part.includes('\uFFFD'), `emitted a replacement character: ${JSON.stringify(part)}`);
  assert.ok(!LONE_SURROGATE.test(part), `emitted half a surrogate pair: ${JSON.stringify(part)}`);
}

/** Streams `ids` in chunks of the given sizes (cycled); returns every emitted part, flush last. */
function stream(detok: StreamingDetokenizer, ids: number[], chunks: number[] = [1]): string[] {
  const parts: string[] = [];
  for (let i = 0, c = 0; i < ids.length; c++) {
    const n = chunks[c % chunks.length]!;
    parts.push(detok.push(ids.slice(i, i + n)));
    i += n;
  }
  parts.push(detok.flush());
  return parts;
}

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

describe('StreamingDetokenizer with one token per byte', () => {
  const utf8 = new TextDecoder();
  const decode = (ids: number[]): string => utf8.decode(Uint8Array.from(ids));
  const bytes = (text: string): number[] => [...new TextEncoder().encode(text)];

  it('never emits part of a multi-byte character, and ends with the full text', () => {
    for (const text of TEXTS) {
      const parts = stream(new StreamingDetokenizer({ decode }), bytes(text));
      parts.forEach(assertWhole);
      assert.equal(parts.join(''), text);
    }
  });

  it('holds back a character until its last byte arrives', () => {
    const detok = new StreamingDetokenizer({ decode });
    assert.equal(detok.push(0x61), 'a');
    assert.equal(detok.push(0xf0), '');
    assert.equal(detok.push(0x9f), '');
    assert.equal(detok.push(0xa4), '');
    assert.equal(detok.push(0x96), '🤖');
    assert.equal(detok.text, 'a🤖');
    assert.deepEqual(detok.ids, [0x61, 0xf0, 0x9f, 0xa4, 0x96]);
  });

  it('still returns exactly decode(all ids) when the bytes are not valid UTF-8', () => {
    const cases = [
      [0xe4, 0xb8, 0x61, 0x62], // truncated character in the middle
      [0x61, 0xf0, 0x9f], // truncated character at the end
      [0xff, 0xfe, 0x61],
      [0x80],
    ];
    for (const ids of cases) {
      const parts = stream(new StreamingDetokenizer({ decode }), ids);
      assert.equal(parts.join(''), decode(ids));
    }
  });

  it('accepts ids in chunks, and refuses pushes after flush', () => {
    const ids = bytes(TEXTS[3]!);
    for (const chunks of [[2], [3], [1, 4], [7], [100]]) {
      const parts = stream(new StreamingDetokenizer({ decode }), ids, chunks);
      parts.forEach(assertWhole);
      assert.equal(parts.join(''), TEXTS[3]);
    }
    const detok = new StreamingDetokenizer({ decode });
    detok.push(0x61);
    assert.equal(detok.flush(), '');
    assert.equal(detok.flush(), '');
    assert.throws(() => detok.push(0x62), /after flush/);
  });
});

describe('StreamingDetokenizer over the demo byte-level BPE tokenizer', () => {
  let root: string;
  let pool: TokenizerPool;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'weft-detok-test-'));
    pool = await TokenizerPool.create(await ensureDemoModel(join(root, 'demo')), { threads: 1 });
  });
  after(async () => {
    await pool.close();
    await rm(root, { recursive: true, force: true });
  });

  it('splits CJK and emoji over several tokens but emits only whole characters', () => {
    const decode = (ids: number[]): string => pool.decodeSync(ids);
    for (const text of TEXTS) {
      const ids = pool.encodeSync(text);
      for (const chunks of [[1], [2], [3, 1]]) {
        const parts = stream(new StreamingDetokenizer({ decode }), ids, chunks);
        parts.forEach(assertWhole);
        assert.equal(parts.join(''), pool.decodeSync(ids));
        assert.equal(parts.join(''), text);
      }
    }
    // The test is only meaningful if characters really are split across tokens.
    const emojiIds = pool.encodeSync('🤖');
    assert.ok(emojiIds.length > 1, 'an emoji should take several byte tokens');
    assert.ok(emojiIds.every((id) => pool.decodeSync([id]) === '\uFFFD'));
  });

  it('matches decode with special tokens skipped or kept', () => {
    const ids = pool.encodeSync('<|assistant|>\n世界 🤖<|end|>\n<|endoftext|>');
    assert.ok(ids.includes(DEMO_TOKEN_IDS.end));
    for (const skipSpecialTokens of [false, true]) {
      const decode = (x: number[]): string => pool.decodeSync(x, { skipSpecialTokens });
      const parts = stream(new StreamingDetokenizer({ decode }), ids);
      parts.forEach(assertWhole);
      assert.equal(parts.join(''), decode(ids));
    }
  });

  it('equals decode(all ids) for random token sequences, valid UTF-8 or not', () => {
    const rand = seeded(42);
    const decode = (ids: number[]): string => pool.decodeSync(ids);
    for (let trial = 0; trial < 200; trial++) {
      const ids = Array.from({ length: 1 + Math.floor(rand() * 40) }, () => Math.floor(rand() * pool.vocabSize));
      const chunks = [1 + Math.floor(rand() * 3)];
      const parts = stream(new StreamingDetokenizer({ decode }), ids, chunks);
      assert.equal(parts.join(''), decode(ids), `ids ${JSON.stringify(ids)}`);
    }
  });

  it('emits no partial characters for random valid text', () => {
    const rand = seeded(7);
    const pieces = ['a', ' ', 'é', '中', '🤖', '👍🏽', '\n', 'the', ' server', 'ß', '한'];
    const decode = (ids: number[]): string => pool.decodeSync(ids);
    for (let trial = 0; trial < 100; trial++) {
      const text = Array.from({ length: 1 + Math.floor(rand() * 30) }, () => pieces[Math.floor(rand() * pieces.length)]).join('');
      const parts = stream(new StreamingDetokenizer({ decode }), pool.encodeSync(text));
      parts.forEach(assertWhole);
      assert.equal(parts.join(''), text);
    }
  });

  it('costs a bounded window per token on long streams', () => {
    let decodedTokens = 0;
    const decode = (ids: number[]): string => {
      decodedTokens += ids.length;
      return pool.decodeSync(ids);
    };
    const ids = pool.encodeSync('The scheduler adds new requests at every step. '.repeat(40));
    const detok = new StreamingDetokenizer({ decode });
    for (const id of ids) detok.push(id);
    assert.ok(decodedTokens < ids.length * 10, `decoded ${decodedTokens} tokens for ${ids.length} pushes`);
    detok.flush();
    assert.equal(detok.text, pool.decodeSync(ids));
  });
});
