import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { TokenizerLoadError, TokenizerPool } from '../../coordinator/tokenizer/index.js';
import { DEMO_TOKEN_IDS, ensureDemoModel } from '../../deploy/demo-model/index.js';
import { EngineError } from '../../coordinator/engine/types.js';

const GOLDEN_LLAMA_MODEL = fileURLToPath(new URL('../../../test/fixtures/golden/llama/model', import.meta.url));

const SAMPLES = [
  'Hello world',
  'The scheduler adds new requests at every step.',
  '你好，世界！',
  'emoji 🤖👍🏽 and café',
  '',
  ' ',
  'line one\nline two\n\n\ttabbed',
];

describe('TokenizerPool over the demo model', () => {
  let root: string;
  let pool: TokenizerPool;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'weft-tokenizer-test-'));
    pool = await TokenizerPool.create(await ensureDemoModel(join(root, 'demo')), { threads: 2 });
  });
  after(async () => {
    await pool.close();
    await rm(root, { recursive: true, force: true });
  });

  it('exposes the special tokens and the chat template', () => {
    assert.equal(pool.vocabSize, 1024);
    assert.equal(pool.bosTokenId, DEMO_TOKEN_IDS.endoftext);
    assert.equal(pool.bosToken, '<|endoftext|>');
    assert.equal(pool.eosToken, '<|endoftext|>');
    assert.deepEqual(pool.eosTokenIds, [DEMO_TOKEN_IDS.endoftext, DEMO_TOKEN_IDS.end]);
    assert.deepEqual([...pool.specialTokenIds].sort(), [1020, 1021, 1022, 1023]);
    assert.match(pool.chatTemplate ?? '', /add_generation_prompt/);
  });

  it('encodes and decodes in the workers, agreeing with the in-process tokenizer', async () => {
    for (const text of SAMPLES) {
      const ids = await pool.encode(text);
      assert.deepEqual(ids, pool.encodeSync(text));
      assert.equal(await pool.decode(ids), text);
      assert.equal(pool.decodeSync(ids), text);
    }
  });

  it('adds no special tokens for a tokenizer whose post-processor adds none', async () => {
    const text = 'same either way';
    assert.deepEqual(await pool.encode(text), await pool.encode(text, { addSpecialTokens: false }));
  });

  it('keeps special tokens whole and can skip them when decoding', async () => {
    const ids = await pool.encode('<|user|>\nHi<|end|>\n<|assistant|>\n');
    assert.equal(ids[0], DEMO_TOKEN_IDS.user);
    assert.ok(ids.includes(DEMO_TOKEN_IDS.end) && ids.includes(DEMO_TOKEN_IDS.assistant));
    assert.equal(await pool.decode(ids), '<|user|>\nHi<|end|>\n<|assistant|>\n');
    assert.equal(await pool.decode(ids, { skipSpecialTokens: true }), '\nHi\n\n');
    assert.equal(pool.decodeSync(ids, { skipSpecialTokens: true }), '\nHi\n\n');
  });

  it('gives the text of each token', async () => {
    const ids = await pool.encode('Hello world<|endoftext|>');
    const strings = await pool.tokenStrings(ids);
    assert.equal(strings.length, ids.length);
    assert.equal(strings.join(''), 'Hello world<|endoftext|>');
    assert.equal(strings.at(-1), '<|endoftext|>');
    assert.deepEqual(pool.tokenStringsSync(ids), strings);
  });

  it('answers many concurrent calls correctly', async () => {
    const texts = Array.from({ length: 200 }, (_, i) => `request ${i}: ${SAMPLES[i % SAMPLES.length]} ${'x'.repeat(i % 17)}`);
    const encoded = await Promise.all(texts.map((t) => pool.encode(t)));
    encoded.forEach((ids, i) => assert.deepEqual(ids, pool.encodeSync(texts[i]!)));
    const decoded = await Promise.all(encoded.map((ids) => pool.decode(ids)));
    assert.deepEqual(decoded, texts);
    assert.deepEqual(await pool.encodeBatch(texts.slice(0, 5)), encoded.slice(0, 5));
  });

  it('rejects token ids outside the vocabulary', async () => {
    await assert.rejects(pool.decode([1, 5000]), /token id 5000 is outside the tokenizer's vocabulary/);
    assert.throws(() => pool.decodeSync([-1]), RangeError);
    assert.equal(pool.decodeSync([]), '');
  });
});

describe('TokenizerPool loading errors', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'weft-tokenizer-err-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('names the directory when tokenizer.json is missing', async () => {
    const dir = join(root, 'no-tokenizer');
    await mkdir(dir);
    await assert.rejects(TokenizerPool.create(dir), (err: Error) => {
      assert.ok(err instanceof TokenizerLoadError);
      assert.ok(err.message.includes(dir), err.message);
      assert.match(err.message, /no tokenizer\.json/);
      return true;
    });
  });

  it('refuses the golden llama fixture, which ships weights but no tokenizer', async () => {
    await assert.rejects(TokenizerPool.create(GOLDEN_LLAMA_MODEL), (err: Error) => {
      assert.ok(err instanceof TokenizerLoadError);
      assert.ok(err.message.includes(GOLDEN_LLAMA_MODEL), err.message);
      return true;
    });
  });

  it('reports a tokenizer.json that is not valid JSON', async () => {
    const dir = join(root, 'bad-json');
    await mkdir(dir);
    await writeFile(join(dir, 'tokenizer.json'), '{ not json');
    await assert.rejects(TokenizerPool.create(dir), /tokenizer\.json is not valid JSON/);
  });

  it('reports a tokenizer.json the tokenizer library cannot build', async () => {
    const dir = join(root, 'no-model');
    await mkdir(dir);
    await writeFile(join(dir, 'tokenizer.json'), '{"version": "1.0"}');
    await assert.rejects(TokenizerPool.create(dir), (err: Error) => {
      assert.ok(err instanceof TokenizerLoadError);
      assert.match(err.message, /cannot load .*tokenizer\.json/);
      return true;
    });
  });

  it('rejects calls after close, and close is idempotent', async () => {
    const pool = await TokenizerPool.create(await ensureDemoModel(join(root, 'demo')), { threads: 1 });
    await pool.close();
    await pool.close();
    await assert.rejects(pool.encode('hi'), /closed/);
  });
});

describe('a word-level tokenizer and words outside its vocabulary', () => {
  const model = async (unk: string | null) => {
    const dir = await mkdtemp(join(tmpdir(), 'weft-wordlevel-'));
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify({ version: '1.0', truncation: null, padding: null, normalizer: null,
      added_tokens: [], pre_tokenizer: { type: 'WhitespaceSplit' }, post_processor: null, decoder: null,
      model: { type: 'WordLevel', vocab: { '<unk>': 0, a: 1, b: 2 }, ...(unk ? { unk_token: unk } : {}) } }));
    return dir;
  };

  it('maps an unknown word to tokenizer.json\'s unk_token, as the Rust tokenizers do', async () => {
    const pool = await TokenizerPool.create(await model('<unk>'), { threads: 1 });
    try {
      assert.deepEqual(await pool.encode('a zzz b'), [1, 0, 2]);
      assert.deepEqual(pool.encodeSync('zzz a'), [0, 1]);
    } finally {
      await pool.close();
    }
  });

  it('without an unk token such a text is a validation error (422), never an id-less token', async () => {
    const pool = await TokenizerPool.create(await model(null), { threads: 1 });
    try {
      assert.deepEqual(await pool.encode('a b'), [1, 2]);
      for (const attempt of [() => pool.encode('a zzz'), async () => pool.encodeSync('zzz'), () => pool.encodeBatch(['a', 'q'])]) {
        await assert.rejects(attempt(), (e: unknown) => e instanceof EngineError && e.kind === 'validation' && /no token for part of the text/.test(e.message));
      }
    } finally {
      await pool.close();
    }
  });
});
