// validateGenerateBody / validateTokenizeBody: every rule, its TGI message, and the mapping to the
// engine's GenerateRequest (sampling semantics, seed, adapter, token fallback).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  HttpError,
  MAX_STOP_SEQUENCES,
  bearerToken,
  validateGenerateBody,
  validateTokenizeBody,
} from '../../coordinator/http/index.js';

const LIMITS = { maxTotalTokens: 64 };
const SEED = 4242;

function valid(parameters: Record<string, unknown> = {}, route: 'generate' | 'generate_stream' | 'compat' = 'generate', auth?: string) {
  return validateGenerateBody({ inputs: 'hello', parameters }, LIMITS, route, auth, () => SEED);
}

function rejects(body: unknown, status: number, message: string | RegExp, route: 'generate' | 'generate_stream' = 'generate') {
  assert.throws(
    () => validateGenerateBody(body, LIMITS, route, undefined, () => SEED),
    (e: unknown) => {
      assert.ok(e instanceof HttpError, `HttpError expected, got ${String(e)}`);
      assert.equal(e.status, status);
      assert.equal(e.errorType, 'validation');
      if (typeof message === 'string') assert.equal(e.message, message);
      else assert.match(e.message, message);
      return true;
    },
  );
}

const withParams = (parameters: Record<string, unknown>) => ({ inputs: 'hello', parameters });

describe('generate body: shape', () => {
  test('body must be an object with a non-empty string `inputs`', () => {
    rejects('just a string', 422, 'request body must be a JSON object');
    rejects([1, 2], 422, 'request body must be a JSON object');
    rejects(null, 422, 'request body must be a JSON object');
    rejects({}, 422, 'missing field `inputs`');
    rejects({ inputs: null }, 422, 'missing field `inputs`');
    rejects({ inputs: 42 }, 422, '`inputs` must be a string');
    rejects({ inputs: ['a'] }, 422, '`inputs` must be a string');
    rejects({ inputs: '' }, 422, '`inputs` cannot be empty');
  });

  test('unknown keys are refused by name, at the top level and in parameters', () => {
    rejects({ inputs: 'x', prompt: 'y' }, 422, 'unknown field `prompt`');
    rejects(withParams({ max_tokens: 5 }), 422, 'unknown parameter `max_tokens`');
    rejects(withParams({ temperature: 0.5, TopK: 3 }), 422, 'unknown parameter `TopK`');
    rejects({ inputs: 'x', parameters: 'max_new_tokens=5' }, 422, '`parameters` must be a JSON object');
  });

  test('null means absent; `stream` is accepted (clients send it) and reported', () => {
    const v = validateGenerateBody({ inputs: 'x', parameters: null, stream: true }, LIMITS, 'compat');
    assert.equal(v.stream, true);
    const all = valid({ temperature: null, top_k: null, top_p: null, seed: null, stop: null, adapter_id: null, details: null });
    assert.equal(all.request.sampling.doSample, false);
    assert.deepEqual(all.request.stop, []);
    assert.equal(all.request.adapter, null);
  });
});

describe('generate body: numeric rules', () => {
  test('max_new_tokens must be an integer in [1, max_total_tokens]', () => {
    rejects(withParams({ max_new_tokens: 0 }), 422, '`max_new_tokens` must be strictly positive');
    rejects(withParams({ max_new_tokens: -3 }), 422, '`max_new_tokens` must be strictly positive');
    rejects(withParams({ max_new_tokens: 2.5 }), 422, '`max_new_tokens` must be an integer');
    rejects(withParams({ max_new_tokens: '10' }), 422, '`max_new_tokens` must be a number');
    rejects(withParams({ max_new_tokens: 65 }), 422, '`max_new_tokens` must be <= 64. Given: 65');
    rejects(withParams({ max_new_tokens: 1e300 }), 422, /`max_new_tokens` must be <= 64/);
    assert.equal(valid({ max_new_tokens: 64 }).request.maxNewTokens, 64);
    assert.equal(valid({}).request.maxNewTokens, 63, 'default is capped below the model limit');
  });

  test('sampling parameter ranges follow TGI', () => {
    rejects(withParams({ temperature: 0 }), 422, '`temperature` must be at least 0.00001 (for greedy decoding leave do_sample false)');
    rejects(withParams({ temperature: -1 }), 422, '`temperature` must be at least 0.00001 (for greedy decoding leave do_sample false)');
    rejects(withParams({ temperature: 'hot' }), 422, '`temperature` must be a number');
    rejects(withParams({ top_p: 0 }), 422, '`top_p` must be > 0.0 and < 1.0');
    rejects(withParams({ top_p: 1 }), 422, '`top_p` must be > 0.0 and < 1.0');
    rejects(withParams({ top_p: 1.5 }), 422, '`top_p` must be > 0.0 and < 1.0');
    rejects(withParams({ typical_p: 1 }), 422, '`typical_p` must be > 0.0 and < 1.0');
    rejects(withParams({ top_k: 0 }), 422, '`top_k` must be strictly positive and at most 2147483647');
    rejects(withParams({ top_k: 2.5 }), 422, '`top_k` must be an integer');
    rejects(withParams({ repetition_penalty: 0 }), 422, '`repetition_penalty` must be >= 0.01 and <= 100 (1: off)');
    rejects(withParams({ seed: -1 }), 422, '`seed` must be an integer >= 0 and <= 2^53 - 1');
    rejects(withParams({ seed: 2 ** 53 }), 422, '`seed` must be an integer >= 0 and <= 2^53 - 1');
    rejects(withParams({ seed: 1.5 }), 422, '`seed` must be an integer');
    rejects(withParams({ top_n_tokens: 6 }), 422, '`top_n_tokens` must be >= 0 and <= 5. Given: 6');
    rejects(withParams({ top_n_tokens: -1 }), 422, '`top_n_tokens` must be >= 0 and <= 5. Given: -1');
    rejects(withParams({ do_sample: 'yes' }), 422, '`do_sample` must be a boolean');
    rejects(withParams({ details: 1 }), 422, '`details` must be a boolean');
    rejects(withParams({ min_p: 1.5 }), 422, '`min_p` must be >= 0 and <= 1');
    rejects(withParams({ min_new_tokens: -1 }), 422, /^`min_new_tokens` must be >= 0 and <= the maximum new tokens \(\d+\)\. Given: -1$/);
    rejects(withParams({ max_new_tokens: 5, min_new_tokens: 6 }), 422, '`min_new_tokens` must be >= 0 and <= the maximum new tokens (5). Given: 6');
    rejects(withParams({ min_p: -0.1 }), 422, '`min_p` must be >= 0 and <= 1');
  });

  test('stop: at most MAX_STOP_SEQUENCES non-empty strings', () => {
    assert.equal(MAX_STOP_SEQUENCES, 4);
    rejects(withParams({ stop: ['a', 'b', 'c', 'd', 'e'] }), 422, '`stop` supports up to 4 stop sequences. Given: 5');
    rejects(withParams({ stop: 'a' }), 422, '`stop` must be an array of strings');
    rejects(withParams({ stop: ['a', 3] }), 422, '`stop` must be an array of strings');
    rejects(withParams({ stop: [''] }), 422, '`stop` sequences cannot be empty strings');
    assert.deepEqual(valid({ stop: ['\n', 'END'] }).request.stop, ['\n', 'END']);
  });
});

describe('generate body: sampling semantics (TGI: sampling = do_sample || any warper)', () => {
  test('defaults are greedy with every processor off and no seed', () => {
    assert.deepEqual(valid().request.sampling, {
      temperature: 1, topK: 0, topP: 1, typicalP: 1, repetitionPenalty: 1, doSample: false, seed: 0,
    });
  });

  test('temperature != 1, top_k, top_p or typical_p turn sampling on even with do_sample false', () => {
    for (const p of [{ temperature: 0.7 }, { top_k: 5 }, { top_p: 0.9 }, { typical_p: 0.5 }, { min_p: 0.05 }]) {
      const s = valid({ ...p, do_sample: false }).request.sampling;
      assert.equal(s.doSample, true, JSON.stringify(p));
      assert.equal(s.seed, SEED, 'a seed is chosen when sampling without one');
    }
    assert.equal(valid({ temperature: 1 }).request.sampling.doSample, false);
    assert.equal(valid({ repetition_penalty: 1.2 }).request.sampling.doSample, false);
    assert.equal(valid({ do_sample: true }).request.sampling.doSample, true);
    assert.equal(valid({ min_p: 0.05 }).request.sampling.minP, 0.05);
    assert.equal('minP' in valid({ min_p: 0 }).request.sampling, false, 'min_p 0 is off');
    assert.equal(valid({ min_p: 0 }).request.sampling.doSample, false);
  });

  test('a given seed is kept; the random seed is a safe integer', () => {
    assert.equal(valid({ do_sample: true, seed: 7 }).request.sampling.seed, 7);
    const s = validateGenerateBody(withParams({ do_sample: true }), LIMITS, 'generate').request.sampling.seed;
    assert.ok(Number.isSafeInteger(s) && s >= 0);
  });
});

describe('generate body: adapters, tokens and unsupported parameters', () => {
  test('adapter: hub by default; empty id means the base model; unknown sources refused', () => {
    assert.deepEqual(valid({ adapter_id: 'org/a' }).request.adapter, { id: 'org/a', source: 'hub' });
    assert.deepEqual(valid({ adapter_id: 'a', adapter_source: 'local' }).request.adapter, { id: 'a', source: 'local' });
    assert.equal(valid({ adapter_id: '' }).request.adapter, null);
    rejects(withParams({ adapter_id: 'a', adapter_source: 'pbase' }), 422, '`adapter_source` must be one of hub, s3, local');
  });

  test('api_token wins over the Authorization bearer token, which is the fallback', () => {
    assert.equal(valid({ adapter_id: 'a', api_token: 'tok1' }, 'generate', 'Bearer tok2').request.adapter?.apiToken, 'tok1');
    assert.equal(valid({ adapter_id: 'a' }, 'generate', 'Bearer tok2').request.adapter?.apiToken, 'tok2');
    assert.equal(valid({ adapter_id: 'a' }, 'generate', 'Basic abc').request.adapter?.apiToken, undefined);
    assert.equal(bearerToken('bearer  xyz '), 'xyz');
    assert.equal(bearerToken(undefined), undefined);
  });

  test('apply_chat_template (LoRAX): inputs is a JSON list of {role, content} messages', () => {
    const messages = [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }];
    const body = (inputs: string) => ({ inputs, parameters: { apply_chat_template: true } });
    assert.deepEqual(validateGenerateBody(body(JSON.stringify(messages)), LIMITS, 'generate').chatMessages, messages);
    const what = 'with `apply_chat_template` true, `inputs` must be a JSON-encoded list of messages [{"role": ..., "content": ...}]';
    rejects(body('hello'), 422, `${what}; it is not JSON`);
    rejects(body('{"role": "user"}'), 422, `${what}; got object`);
    rejects(body('[]'), 422, `${what}; got an empty list`);
    rejects(body('[{"role": "user", "content": "a"}, {"role": "user"}]'), 422, `${what}; message 1 is not {"role": string, "content": string}`);
    rejects(withParams({ apply_chat_template: 'yes' }), 422, '`apply_chat_template` must be a boolean');
  });

  test('known TGI/LoRAX keys are accepted at their neutral value and refused otherwise', () => {
    const neutral = valid({ best_of: 1, watermark: false, truncate: null, merged_adapters: null, ignore_eos_token: false,
      frequency_penalty: 0, return_k_alternatives: null, response_format: null, apply_chat_template: false });
    assert.equal(neutral.request.inputs, 'hello');
    rejects(withParams({ merged_adapters: { ids: ['a', 'b'], weights: [0.5] } }), 422, 'number of adapter ids must match number of adapter weights in `merged_adapters`');
    rejects(withParams({ watermark: true }), 422, '`watermark` is not supported yet');
    assert.equal(neutral.chatMessages, undefined, 'apply_chat_template false: inputs used as given');
    rejects(withParams({ best_of: 2 }), 422, 'you must use sampling when `best_of` is > 1');
    rejects(withParams({ best_of: 2, do_sample: true, seed: 4 }), 422, '`seed` must not be set when `best_of` > 1');
    rejects(withParams({ best_of: 2, do_sample: true }), 422, '`best_of` != 1 is not allowed for this endpoint', 'generate_stream');
    rejects(withParams({ best_of: 17, do_sample: true }), 422, '`best_of` must be > 0 and <= 16. Given: 17');
    assert.equal(valid({ best_of: 3, do_sample: true }).bestOf, 3);
  });

  test('truncate keeps the last N prompt tokens (1 to the input limit); ignore_eos_token generates past EOS', () => {
    const v = valid({ truncate: 10, ignore_eos_token: true });
    assert.equal(v.request.truncate, 10);
    assert.equal(v.request.ignoreEos, true);
    assert.equal(valid({}).request.truncate, undefined);
    assert.equal(valid({}).request.ignoreEos, false);
    rejects(withParams({ truncate: 0 }), 422, '`truncate` must be strictly positive and less than 64. Given: 0');
    rejects(withParams({ truncate: 64 }), 422, '`truncate` must be strictly positive and less than 64. Given: 64');
    rejects(withParams({ truncate: 2.5 }), 422, '`truncate` must be an integer');
    rejects(withParams({ ignore_eos_token: 'yes' }), 422, '`ignore_eos_token` must be a boolean');
    assert.equal(valid({ frequency_penalty: 0.7 }).request.sampling.frequencyPenalty, 0.7);
    assert.equal(valid({ frequency_penalty: 0.7 }).request.sampling.doSample, false, 'a penalty alone does not turn sampling on');
    rejects(withParams({ frequency_penalty: 2.5 }), 422, '`frequency_penalty` must be >= -2.0 and <= 2.0');
    assert.equal(valid({ presence_penalty: -1 }).request.sampling.presencePenalty, -1);
  });

  test('decoder_input_details is refused when streaming (TGI)', () => {
    rejects(withParams({ decoder_input_details: true }), 422,
      '`decoder_input_details` == true is not supported when streaming tokens', 'generate_stream');
    const v = valid({ decoder_input_details: true, details: true, top_n_tokens: 3, return_full_text: true });
    assert.equal(v.request.promptLogprobs, true);
    assert.equal(v.request.topN, 3);
    assert.equal(v.details, true);
    assert.equal(v.returnFullText, true);
  });
});

describe('tokenize body', () => {
  test('inputs required; parameters checked like generate; add_special_tokens=false refused', () => {
    assert.deepEqual(validateTokenizeBody({ inputs: 'a b' }, LIMITS), { inputs: 'a b' });
    assert.deepEqual(validateTokenizeBody({ inputs: 'a', parameters: { max_new_tokens: 3 }, add_special_tokens: true }, LIMITS), { inputs: 'a' });
    assert.throws(() => validateTokenizeBody({}, LIMITS), /missing field `inputs`/);
    assert.throws(() => validateTokenizeBody({ inputs: 'a', extra: 1 }, LIMITS), /unknown field `extra`/);
    assert.throws(() => validateTokenizeBody({ inputs: 'a', parameters: { bogus: 1 } }, LIMITS), /unknown parameter `bogus`/);
    assert.throws(() => validateTokenizeBody({ inputs: 'a', add_special_tokens: false }, LIMITS), /`add_special_tokens` is not supported yet/);
  });
});
