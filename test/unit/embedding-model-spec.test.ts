// Embedding-only checkpoints as the shards read them: EmbeddingGemma's Gemma3TextModel with
// use_bidirectional_attention (the window transformers derives from the config's: w // 2 + 1, two-sided), base-model
// checkpoints without an lm_head (LlamaModel), and what the launcher makes of them for the engine (embedding only,
// whole prompts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { parseModelSpec, readModelSpec, UnsupportedModelError } from '../../shard/models/index.js';
import { embeddingWiring } from '../../deploy/embedding-wiring.js';

const GEMMA = join(import.meta.dirname, '../../../test/fixtures/embeddings/embeddinggemma');
const LLAMA = join(import.meta.dirname, '../../../test/fixtures/golden/llama/model');
const config = (dir: string) => JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;

test('Gemma3TextModel with use_bidirectional_attention: a Gemma 3 decoder, bidirectional, its window halved plus one, no lm_head', () => {
  const spec = readModelSpec(GEMMA);
  assert.equal(spec.architecture, 'gemma3');
  assert.equal(spec.bidirectional, true);
  assert.equal(spec.baseModel, true);
  assert.equal(spec.tieEmbeddings, true, 'the lm_head the shards need reads the embedding');
  assert.equal(spec.slidingWindow, 4, 'config.json says 6: transformers sees |i - j| < 6 // 2 + 1');
  assert.deepEqual(spec.layerSliding, [true, false, true]);
  const causal = parseModelSpec({ ...config(GEMMA), architectures: ['Gemma3ForCausalLM'], use_bidirectional_attention: false });
  assert.equal(causal.bidirectional, undefined);
  assert.equal(causal.slidingWindow, 6, 'a causal Gemma 3 keeps its window');
  assert.throws(() => parseModelSpec({ ...config(GEMMA), architectures: ['Gemma2ForCausalLM'] }), /use_bidirectional_attention=true is a Gemma 3 setting/);
});

test('a base-model checkpoint (LlamaModel) is its family\'s decoder without an lm_head; unknown ones are refused by name', () => {
  const spec = parseModelSpec({ ...config(LLAMA), architectures: ['LlamaModel'] });
  assert.deepEqual([spec.architecture, spec.baseModel, spec.tieEmbeddings, spec.bidirectional], ['llama', true, true, undefined]);
  assert.equal(parseModelSpec(config(LLAMA)).baseModel, undefined);
  for (const arch of ['GPT2Model', 'BertModel']) {
    assert.throws(() => parseModelSpec({ ...config(LLAMA), architectures: [arch] }),
      (e: Error) => e instanceof UnsupportedModelError && e.message.includes(`architecture '${arch}' is not supported`));
  }
});

test('the launcher: a bidirectional model only embeds, whole prompts; a base model only embeds; a causal LM generates', () => {
  const log = pino({ level: 'silent' });
  const gemma = embeddingWiring({ poolingType: null }, GEMMA, readModelSpec(GEMMA), log);
  assert.deepEqual(gemma.engine, { embeddingOnly: 'its attention is bidirectional: use_bidirectional_attention', bidirectional: true });
  assert.deepEqual([gemma.pipeline.pooling, gemma.pipeline.dimension], ['mean', 32]);
  const base = embeddingWiring({ poolingType: 'max' }, LLAMA, parseModelSpec({ ...config(LLAMA), architectures: ['LlamaModel'] }), log);
  assert.deepEqual(base.engine, { embeddingOnly: 'a base-model checkpoint without a language-model head' });
  assert.equal(base.pipeline.pooling, 'max');
  assert.deepEqual(embeddingWiring({ poolingType: null }, LLAMA, readModelSpec(LLAMA), log).engine, {});
});
