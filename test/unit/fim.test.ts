// Fill-in-the-middle formats: found from the tokenizer's special tokens; each lays out prefix and suffix its way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { detectFimFormat, fimPrompt } from '../../coordinator/engine/fim.js';

test('each format is found from its tokens and writes its layout', () => {
  const has = (tokens: string[]) => (t: string) => tokens.includes(t);
  assert.equal(detectFimFormat(has(['<fim_prefix>', '<fim_suffix>', '<fim_middle>', '<|endoftext|>'])), 'starcoder');
  assert.equal(detectFimFormat(has(['<|fim_prefix|>', '<|fim_suffix|>', '<|fim_middle|>'])), 'qwen');
  assert.equal(detectFimFormat(has(['<｜fim▁begin｜>', '<｜fim▁hole｜>', '<｜fim▁end｜>'])), 'deepseek');
  assert.equal(detectFimFormat(has(['[SUFFIX]', '[PREFIX]', '[INST]'])), 'mistral');
  assert.equal(detectFimFormat(has(['<fim_prefix>', '<fim_suffix>'])), null, 'all of a format\'s tokens');
  assert.equal(fimPrompt('starcoder', 'def f(', '):'), '<fim_prefix>def f(<fim_suffix>):<fim_middle>');
  assert.equal(fimPrompt('qwen', 'a', 'b'), '<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>');
  assert.equal(fimPrompt('deepseek', 'a', 'b'), '<｜fim▁begin｜>a<｜fim▁hole｜>b<｜fim▁end｜>');
  assert.equal(fimPrompt('mistral', 'a', 'b'), '[SUFFIX]b[PREFIX]a', 'Codestral: the suffix first');
});
