// TokenizerPool and StreamingDetokenizer over a SentencePiece-style fixture (Llama-2 layout: Metaspace
// pre-tokenizer, BPE with byte fallback, a post-processor that adds <s>, a decoder that strips the
// leading space), built here in a temp dir so the test needs no download.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { StreamingDetokenizer, TokenizerPool } from '../../coordinator/tokenizer/index.js';
import { trainBpe } from '../../deploy/demo-model/index.js';

const CORPUS = `the server streams tokens to the user while the model writes the answer one token at a time
and the scheduler keeps the batch full so the device is never idle when the queue has work`;

function sentencePieceTokenizer(): Record<string, unknown> {
  const counts = new Map<string, number>();
  for (const w of CORPUS.split(/\s+/)) counts.set('▁' + w, (counts.get('▁' + w) ?? 0) + 1);
  const alphabet = [...new Set([...counts.keys()].flatMap((w) => Array.from(w)))].sort();
  const { merges, tokens } = trainBpe(counts, 80);
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  for (const piece of [...alphabet, ...tokens]) vocab[piece] ??= Object.keys(vocab).length;
  const special = (id: number, content: string) => ({
    id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
  });
  return {
    version: '1.0',
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges,
    },
  };
}

async function writeModelDir(dir: string, config: Record<string, unknown>): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(sentencePieceTokenizer()));
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>', ...config }));
  await writeFile(join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: 1, eos_token_id: 2 }));
  return dir;
}

const TEXTS = ['the server streams tokens', 'the user sees 世界 and 🤖 too', '  two leading spaces', 'unseen wörds'];

describe('SentencePiece-style tokenizer', () => {
  let root: string;
  let pool: TokenizerPool;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'weft-sp-test-'));
    pool = await TokenizerPool.create(await writeModelDir(join(root, 'default'), {}), { threads: 1 });
  });
  after(async () => {
    await pool.close();
    await rm(root, { recursive: true, force: true });
  });

  it("adds <s> as the post-processor says, and round-trips text through byte fallback", async () => {
    assert.equal(pool.bosTokenId, 1);
    assert.deepEqual(pool.eosTokenIds, [2]);
    assert.equal(pool.chatTemplate, null);
    for (const text of TEXTS) {
      const ids = await pool.encode(text);
      assert.equal(ids[0], 1);
      assert.deepEqual(await pool.encode(text, { addSpecialTokens: false }), ids.slice(1));
      // As in transformers: the decoder strips one leading space, and "<s>" is followed by the word's space.
      const decoded = text.replace(/^ /, '');
      assert.equal(await pool.decode(ids, { skipSpecialTokens: true }), decoded);
      assert.equal(await pool.decode(ids), '<s> ' + decoded);
    }
    const cjk = await pool.encode('世', { addSpecialTokens: false });
    assert.deepEqual(cjk.slice(-3), [3 + 0xe4, 3 + 0xb8, 3 + 0x96], 'unknown characters fall back to bytes');
  });

  it('honours add_bos_token / add_eos_token from tokenizer_config.json', async () => {
    const noBos = await TokenizerPool.create(await writeModelDir(join(root, 'nobos'), { add_bos_token: false }), { threads: 1 });
    const withEos = await TokenizerPool.create(
      await writeModelDir(join(root, 'eos'), { add_bos_token: true, add_eos_token: true }),
      { threads: 1 },
    );
    try {
      const plain = await pool.encode('the user', { addSpecialTokens: false });
      assert.deepEqual(await noBos.encode('the user'), plain);
      assert.deepEqual(await withEos.encode('the user'), [1, ...plain, 2]);
      assert.deepEqual(await withEos.encode('the user', { addSpecialTokens: false }), plain);
    } finally {
      await noBos.close();
      await withEos.close();
    }
  });

  it('a chat template that writes {{ bos_token }} gives one <s> when encoded without special tokens (as the engine does)', async () => {
    const { renderChat } = await import('../../coordinator/tokenizer/index.js');
    const template = "{{ bos_token }}{% for m in messages %}{{ m['content'] }} {% endfor %}";
    const text = renderChat(template, [{ role: 'user', content: 'the user' }], { addGenerationPrompt: true, bosToken: '<s>', eosToken: '</s>' });
    const once = await pool.encode(text, { addSpecialTokens: false });
    assert.equal(once.filter((id) => id === 1).length, 1);
    assert.equal(once[0], 1);
    // What tokenizing it as plain text would do (the double BOS that GenerateRequest.templated avoids).
    assert.deepEqual((await pool.encode(text)).slice(0, 2), [1, 1]);
  });

  it('streams text with the right spaces and no broken characters', async () => {
    for (const text of TEXTS) {
      const ids = await pool.encode(text, { addSpecialTokens: false });
      const detok = new StreamingDetokenizer({ decode: (x) => pool.decodeSync(x) });
      const parts = ids.map((id) => detok.push(id));
      parts.push(detok.flush());
      for (const p of parts) assert.ok(!p.includes('\uFFFD'), `partial character in ${JSON.stringify(p)}`);
      assert.equal(parts.join(''), pool.decodeSync(ids));
      assert.equal(parts.join(''), text.replace(/^ /, ''), 'the decoder strips one leading space');
    }
  });

  it('uses prompt context so a continuation keeps its leading space', async () => {
    const prompt = await pool.encode('the server', { addSpecialTokens: true });
    const continuation = await pool.encode('the server streams tokens', { addSpecialTokens: true });
    assert.deepEqual(continuation.slice(0, prompt.length), prompt);
    const generated = continuation.slice(prompt.length);
    const detok = new StreamingDetokenizer({ decode: (x) => pool.decodeSync(x, { skipSpecialTokens: true }), context: prompt });
    const text = generated.map((id) => detok.push(id)).join('') + detok.flush();
    assert.equal(text, ' streams tokens');
    assert.deepEqual(detok.ids, generated);
  });
});
