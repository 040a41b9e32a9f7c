// The base model's classification head at launch: a *ForSequenceClassification checkpoint's own, or one built from
// --classifier-from-tokens (refused clearly when the tokens or the model do not allow it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { baseClassifierHeadOf } from '../../deploy/classifier-wiring.js';
import { readModelSpec } from '../../shard/index.js';
import { loadGoldenCase } from '../helpers/golden.js';

const llama = loadGoldenCase('llama');
const spec = readModelSpec(llama.modelDir);
const tokenId = (t: string): number | null => (/^t\d+$/.test(t) ? Number(t.slice(1)) : null);
const BASE = join(import.meta.dirname, '../../../test/fixtures/classify/base-llama');

test('no flag: a causal LM has no head, a *ForSequenceClassification checkpoint its own', () => {
  assert.equal(baseClassifierHeadOf({ classifierFromTokens: [] }, llama.modelDir, spec, tokenId), null);
  const own = baseClassifierHeadOf({ classifierFromTokens: [] }, BASE, readModelSpec(BASE), tokenId)!;
  assert.deepEqual([own.labels, own.hidden, own.weight.length], [['rejected', 'chosen'], 64, 128]);
});

test('two tokens: one row, the difference of their lm_head rows; one token: its row', () => {
  const two = baseClassifierHeadOf({ classifierFromTokens: ['t5', 't9'] }, llama.modelDir, spec, tokenId)!;
  const one = baseClassifierHeadOf({ classifierFromTokens: ['t9'] }, llama.modelDir, spec, tokenId)!;
  const other = baseClassifierHeadOf({ classifierFromTokens: ['t5'] }, llama.modelDir, spec, tokenId)!;
  assert.deepEqual([two.labels, one.labels, two.weight.length], [['t9'], ['t9'], 64]);
  for (let j = 0; j < 64; j++) assert.ok(Math.abs(two.weight[j]! - (one.weight[j]! - other.weight[j]!)) < 1e-6);
  assert.ok(one.weight.some((x) => x !== 0));
});

test('refusals say what is wrong', () => {
  assert.throws(() => baseClassifierHeadOf({ classifierFromTokens: ['t5', 'nope'] }, llama.modelDir, spec, tokenId), /'nope' is not one token/);
  assert.throws(() => baseClassifierHeadOf({ classifierFromTokens: ['t1', 't2', 't3'] }, llama.modelDir, spec, tokenId), /one token .* or two/);
  assert.throws(() => baseClassifierHeadOf({ classifierFromTokens: ['t1'] }, BASE, readModelSpec(BASE), tokenId), /with its own head; drop the flag/);
  assert.throws(() => baseClassifierHeadOf({ classifierFromTokens: ['t1'] }, llama.modelDir, { ...spec, finalSoftcap: 30 }, tokenId), /soft-caps/);
});
