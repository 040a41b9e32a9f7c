// `parameters.merged_adapters` (LoRAX): the mapping to GenerateRequest.merge, every validation rule,
// and the request through the real server.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { MergeSpec } from '../../coordinator/engine/types.js';
import { HttpError, validateGenerateBody } from '../../coordinator/http/index.js';
import { post, testServer, type TestServer } from './http-engine-double.test.js';

const LIMITS = { maxTotalTokens: 64 };

function valid(parameters: Record<string, unknown>, auth?: string) {
  return validateGenerateBody({ inputs: 'hello', parameters }, LIMITS, 'generate', auth, () => 1).request;
}

function rejects(parameters: Record<string, unknown>, message: string): void {
  assert.throws(
    () => validateGenerateBody({ inputs: 'hello', parameters }, LIMITS, 'generate', undefined, () => 1),
    (e: unknown) => {
      assert.ok(e instanceof HttpError, `HttpError expected, got ${String(e)}`);
      assert.equal(e.status, 422);
      assert.equal(e.errorType, 'validation');
      assert.equal(e.message, message);
      return true;
    },
  );
}

const merged = (m: Record<string, unknown>) => ({ merged_adapters: { ids: ['org/a', 'org/b'], weights: [0.7, 0.3], ...m } });

describe('merged_adapters → GenerateRequest.merge', () => {
  test('linear by default: every id gets the request source and token; no single adapter', () => {
    const req = valid({ ...merged({}), adapter_source: 's3', api_token: 'tok' });
    assert.equal(req.adapter, null);
    const expected: MergeSpec = {
      adapters: [{ id: 'org/a', source: 's3', apiToken: 'tok' }, { id: 'org/b', source: 's3', apiToken: 'tok' }],
      weights: [0.7, 0.3],
      strategy: 'linear',
      density: null,
      majoritySignMethod: 'total',
    };
    assert.deepEqual(req.merge, expected);
  });

  test('the Authorization bearer token is the fallback; source defaults to hub', () => {
    const req = valid(merged({}), 'Bearer tok-b');
    assert.deepEqual(req.merge?.adapters, [{ id: 'org/a', source: 'hub', apiToken: 'tok-b' }, { id: 'org/b', source: 'hub', apiToken: 'tok-b' }]);
  });

  test('ties / dare_ties carry density and majority_sign_method', () => {
    const ties = valid(merged({ merge_strategy: 'ties', density: 0.2, majority_sign_method: 'frequency' })).merge;
    assert.deepEqual([ties?.strategy, ties?.density, ties?.majoritySignMethod], ['ties', 0.2, 'frequency']);
    const dare = valid(merged({ merge_strategy: 'dare_ties', density: 1 })).merge;
    assert.deepEqual([dare?.strategy, dare?.density, dare?.majoritySignMethod], ['dare_ties', 1, 'total']);
    assert.equal(valid(merged({ merge_strategy: 'dare_linear', density: 0.5 })).merge?.density, 0.5);
  });

  test('linear and cat ignore density (dropped, so it does not split the merge cache)', () => {
    assert.equal(valid(merged({ density: 0.4 })).merge?.density, null);
    const cat = valid(merged({ merge_strategy: 'cat', density: 0.4, majority_sign_method: null })).merge;
    assert.deepEqual([cat?.strategy, cat?.density, cat?.majoritySignMethod], ['cat', null, 'total']);
  });

  test('negative and zero weights are allowed (task negation); nulls are absent keys', () => {
    assert.deepEqual(valid(merged({ weights: [1, -0.5], merge_strategy: null, density: null })).merge?.weights, [1, -0.5]);
    assert.deepEqual(valid(merged({ weights: [0, 1] })).merge?.weights, [0, 1]);
  });

  test('one id is that adapter alone (as LoRAX: its weight is not applied)', () => {
    const req = valid({ merged_adapters: { ids: ['org/a'], weights: [0.5] }, adapter_source: 'local' });
    assert.deepEqual(req.adapter, { id: 'org/a', source: 'local' });
    assert.equal(req.merge, null);
  });

  test('merged_adapters null → no merge; adapter_id alone → merge null', () => {
    assert.equal(valid({ merged_adapters: null }).merge, null);
    const req = valid({ adapter_id: 'org/a' });
    assert.equal(req.merge, null);
    assert.deepEqual(req.adapter, { id: 'org/a', source: 'hub' });
  });
});

describe('merged_adapters validation → 422', () => {
  const cases: [string, Record<string, unknown>, string][] = [
    ['with adapter_id', { adapter_id: 'org/c', ...merged({}) }, 'at most one of `adapter_id` or `merged_adapters` may be provided'],
    ['with an empty adapter_id (LoRAX: any adapter_id)', { adapter_id: '', ...merged({}) },
      'at most one of `adapter_id` or `merged_adapters` may be provided'],
    ['not an object', { merged_adapters: ['org/a'] }, '`merged_adapters` must be a JSON object'],
    ['unknown key', merged({ weight: [1] }), 'unknown field `merged_adapters.weight`'],
    ['ids missing', { merged_adapters: { weights: [1] } }, '`merged_adapters.ids` must be an array of strings'],
    ['ids not strings', merged({ ids: ['a', 2] }), '`merged_adapters.ids` must be an array of strings'],
    ['ids empty', merged({ ids: [], weights: [] }), 'at least one adapter id must be provided in `merged_adapters.ids`'],
    ['an empty id', merged({ ids: ['org/a', ''] }), '`merged_adapters.ids` cannot contain an empty id (the base model cannot be merged)'],
    ['duplicate ids', merged({ ids: ['org/a', 'org/a'] }), '`merged_adapters.ids` must be distinct'],
    ['weights missing', { merged_adapters: { ids: ['org/a', 'org/b'] } }, '`merged_adapters.weights` must be an array of numbers from -100 to 100'],
    ['weights not numbers', merged({ weights: ['1', 1] }), '`merged_adapters.weights` must be an array of numbers from -100 to 100'],
    ['a null weight', merged({ weights: [null, 1] }), '`merged_adapters.weights` must be an array of numbers from -100 to 100'],
    ['weights length mismatch', merged({ weights: [1] }), 'number of adapter ids must match number of adapter weights in `merged_adapters`'],
    ['bad merge_strategy', merged({ merge_strategy: 'slerp' }), '`merged_adapters.merge_strategy` must be one of linear, ties, dare_linear, dare_ties, cat'],
    ['merge_strategy not a string', merged({ merge_strategy: 1 }), '`merged_adapters.merge_strategy` must be a string'],
    ['bad majority_sign_method', merged({ merge_strategy: 'ties', density: 0.5, majority_sign_method: 'mean' }),
      '`merged_adapters.majority_sign_method` must be one of total, frequency'],
    ['ties without density', merged({ merge_strategy: 'ties' }), '`merged_adapters.density` is required for merge_strategy ties'],
    ['dare_linear without density', merged({ merge_strategy: 'dare_linear', density: null }),
      '`merged_adapters.density` is required for merge_strategy dare_linear'],
    ['dare_ties with density 0', merged({ merge_strategy: 'dare_ties', density: 0 }), '`merged_adapters.density` must be > 0.0 for merge_strategy dare_ties'],
    ['density above 1', merged({ merge_strategy: 'ties', density: 1.5 }), '`merged_adapters.density` must be >= 0.0 and <= 1.0'],
    ['negative density, even for linear', merged({ density: -0.1 }), '`merged_adapters.density` must be >= 0.0 and <= 1.0'],
    ['density not a number', merged({ merge_strategy: 'ties', density: '0.5' }), '`merged_adapters.density` must be a number'],
  ];
  for (const [name, parameters, message] of cases) {
    test(name, () => rejects(parameters, message));
  }
});

describe('merged_adapters through the server', () => {
  let s: TestServer;
  before(async () => { s = await testServer(); });
  after(async () => { await s.app.close(); });

  test('/generate and /generate_stream pass the merge to the engine', async () => {
    const body = { inputs: 'a b', parameters: { max_new_tokens: 2, ...merged({ merge_strategy: 'ties', density: 0.3 }) } };
    const res = await post(s.app, '/generate', body, { authorization: 'Bearer tok' });
    assert.deepEqual(res.json(), { generated_text: ' w1 w2' });
    const req = s.engine.requests.at(-1)!;
    assert.equal(req.adapter, null);
    assert.deepEqual(req.merge, {
      adapters: [{ id: 'org/a', source: 'hub', apiToken: 'tok' }, { id: 'org/b', source: 'hub', apiToken: 'tok' }],
      weights: [0.7, 0.3], strategy: 'ties', density: 0.3, majoritySignMethod: 'total',
    });
    const streamed = await post(s.app, '/generate_stream', body);
    assert.equal(streamed.statusCode, 200);
    assert.equal(s.engine.requests.at(-1)?.merge?.strategy, 'ties');
  });

  test('an unknown adapter among the merged ones → 404 from the engine', async () => {
    const res = await post(s.app, '/generate', { inputs: 'a', parameters: merged({ ids: ['org/a', 'missing'] }) });
    assert.equal(res.statusCode, 404);
    assert.deepEqual(res.json(), { error: "adapter 'missing' not found", error_type: 'adapter_not_found' });
  });

  test('validation errors answer 422 in the TGI shape', async () => {
    const res = await post(s.app, '/generate', { inputs: 'a', parameters: merged({ ids: [] , weights: [] }) });
    assert.equal(res.statusCode, 422);
    assert.deepEqual(res.json(), { error: 'at least one adapter id must be provided in `merged_adapters.ids`', error_type: 'validation' });
  });
});
