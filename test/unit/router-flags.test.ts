// `weft router --load-factor` (WEFT_LOAD_FACTOR): the c of bounded-load placement, 1.25 unless given, at least 1
// (below 1 no replica may be below the bound), any larger value accepted (a large one turns bounding off).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, parseArgs } from '../../deploy/config/index.js';

const B = ['--backend', 'http://h:1'];

test('router --load-factor: default 1.25; from the flag or WEFT_LOAD_FACTOR (the flag wins)', () => {
  assert.equal(parseArgs('router', B, {}).loadFactor, 1.25);
  assert.equal(parseArgs('router', [...B, '--load-factor', '1'], {}).loadFactor, 1);
  assert.equal(parseArgs('router', [...B, '--load-factor', '1e9'], {}).loadFactor, 1e9);
  assert.equal(parseArgs('router', B, { WEFT_LOAD_FACTOR: '2.5' }).loadFactor, 2.5);
  assert.equal(parseArgs('router', [...B, '--load-factor', '1.5'], { WEFT_LOAD_FACTOR: '2.5' }).loadFactor, 1.5);
});

test('router --load-factor below 1, or not a number, is refused', () => {
  for (const v of ['0', '0.99', '-1', 'many']) {
    assert.throws(() => parseArgs('router', [...B, '--load-factor', v], {}), (e: unknown) => e instanceof ConfigError, v);
  }
  assert.throws(() => parseArgs('router', B, { WEFT_LOAD_FACTOR: '0.5' }), (e: unknown) => e instanceof ConfigError);
  assert.throws(() => parseArgs('launch', ['--model-id', 'm', '--load-factor', '2'], {}), (e: unknown) => e instanceof ConfigError && e.code === 'UNKNOWN_FLAG');
});
