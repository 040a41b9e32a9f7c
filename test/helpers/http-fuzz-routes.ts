// The fuzz catalogue of test/integration/http-fuzz.test.ts: for every route its valid seed body, the hand-made odd
// bodies and values (schemas, regexes, grammars, tools, messages, numeric edges, adapter ids) and the seeded
// generators that mutate them. Data and generators only; the test sends them and judges the answers.
import { join } from 'node:path';
import {
  COUNTS, HUGE_STRING, LONG, RAW_KEY, REALS, Rng, WEIRD, clone, deepObject, encode, jsonRequest, mutateOnce, raw,
  wholeBodyMutation, type Sent,
} from './json-fuzz.js';

/** A long text cut for a failure message. */
export const clip = (s: string, n = 400) => (s.length > n ? `${s.slice(0, n)}… (${s.length} chars)` : s);

/** The server's --adapter-root (set by the test once it has made the adapters there). */
let adapterRoot = '';
export function setFuzzAdapterRoot(dir: string): void {
  adapterRoot = dir;
}

// --- odd structured-output inputs ----------------------------------------------------------------------------

const deepSchema = (depth: number) => raw('{"type":"array","items":'.repeat(depth) + '{"type":"integer"}' + '}'.repeat(depth));
const ODD_SCHEMAS: readonly unknown[] = [
  {}, true, false, { type: 'nothing' }, { type: [] }, { type: ['string', 'null', 'integer', 'object', 'array'] }, { enum: [] },
  { enum: [1, 'a', null, {}, [], 1e308] }, { const: { a: [1, { b: null }] } }, { type: 'integer', minimum: 1e308 },
  { type: 'integer', minimum: 9007199254740993, maximum: 9007199254740999 }, { type: 'number', minimum: 5, maximum: 1 },
  { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 0 }, { type: 'number', minimum: -1e-300, maximum: 1e-300 },
  { type: 'integer', exclusiveMinimum: true }, { type: 'string', minLength: 5, maxLength: 1 }, { type: 'string', maxLength: 100000 },
  { type: 'string', minLength: 1e9 }, { type: 'string', pattern: '(' }, { type: 'string', pattern: '^(a|b)*c{1000}$' },
  { type: 'string', pattern: '\\p{L}+' }, { type: 'string', pattern: '[\\uD800-\\uDFFF]' }, { type: 'string', format: 'unknown-format' },
  { type: 'string', format: 'date-time' }, { type: 'array', minItems: 1000 }, { type: 'array', minItems: 3, maxItems: 1 },
  { type: 'array', items: false }, { type: 'array', prefixItems: [{ type: 'integer' }, false], items: false },
  { type: 'array', uniqueItems: true, maxItems: 50 }, { anyOf: [] }, { oneOf: [{}, {}] }, { allOf: [{ type: 'string' }, { type: 'integer' }] },
  { $ref: '#/$defs/missing' }, { $ref: '#' }, { $ref: 'http://example.com/schema.json' }, { $ref: '#/definitions/%25%00' },
  { $defs: { a: { $ref: '#/$defs/b' }, b: { $ref: '#/$defs/a' } }, $ref: '#/$defs/a' },
  { type: 'object', properties: { a: { $ref: '#' } }, required: ['a'] },
  { type: 'object', properties: { [`${RAW_KEY}"__proto__"`]: { type: 'string' } }, required: ['__proto__'] },
  { type: 'object', required: ['missing'], properties: {}, additionalProperties: false },
  { type: 'object', patternProperties: { '(': {} } }, { type: 'object', propertyNames: { pattern: '^a+$' }, minProperties: 3, maxProperties: 1 },
  { type: 'object', additionalProperties: { type: 'object', additionalProperties: { $ref: '#' } } },
  { type: 'integer', multipleOf: 3 }, { if: {}, then: {}, else: {} }, { not: {} }, { type: 'object', properties: 5 },
  { type: 'object', properties: { a: 5 } }, { type: 'object', required: 'a' }, { items: { type: 'string' }, type: 'array', maxItems: 1e9 },
  deepSchema(40), deepSchema(3000), deepObject(3000, 'not', {}),
  raw(`{"anyOf":[${Array.from({ length: 300 }, (_, i) => `{"const":"v${i}"}`).join(',')}]}`),
  { type: 'object', properties: Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`p${i}`, { type: 'string', maxLength: 50 }])) },
];
const ODD_REGEXES: readonly unknown[] = [
  '', '(', ')', '[z-a]', 'a**', '\\', '(?<n>a)\\k<n>', '(?=a)a', '\\ba\\b', '(a|)*', '(a*)*b', '.{0,1000}', 'x{1000}{1000}', '[^\\s\\S]',
  '\\p{L}', 'a{2,1}', '\\u{110000}', '\\uD800', '[\\uD800-\\uDFFF]+', '\\x', '[', '(?i)abc', '$^', 'a{,5}', '(((((((((((a)))))))))))',
  '('.repeat(5000) + 'a' + ')'.repeat(5000), '(a|b|c|d|e|f|g|h)'.repeat(400), '[\\x00-\\x1f"\\\\]+', '.*', '\u0000', 5, null, ['a'],
];
const ODD_GRAMMARS: readonly unknown[] = [
  '', ' ', 'root ::= ', 'root ::= "a" | ', 'root ::= x', 'root ::= [', 'root ::= "\\uD800"', 'start: start', 'start: "a"*',
  'root ::= ("a"*)*', 'root ::= ""', 'root ::= a\na ::= root', '%import common.FOO', 'start: /(/', 'root ::= [^]', 'root ::= "a"{99999}',
  `root ::= ${'('.repeat(3000)}"a"${')'.repeat(3000)}`, 'root ::= "a" root | "b"', 'root ::= root "a" | "b"', 'start: a\na: b\nb: a',
  '%declare X\nstart: X', 'start: "a"~1000000', 'start: "a"~5..2', `root ::= ${Array.from({ length: 2000 }, (_, i) => `r${i}`).join(' | ')}`,
  `root ::= r0\n${Array.from({ length: 1500 }, (_, i) => `r${i} ::= r${i + 1}`).join('\n')}\nr1500 ::= "z"`, '::=', 'root ::= ::=', 5, {},
];
const ODD_CHOICES: readonly unknown[] = [[], [''], ['a'], ['a'.repeat(20_000)], [1], ['\u0000'], Array.from({ length: 5000 }, (_, i) => `c${i}`), 'a', null, [['a']]];

const oddParameters = (r: Rng): unknown => r.pick([...ODD_SCHEMAS, { type: 'object', properties: { a: r.pick(ODD_SCHEMAS) } }]);
const oddTool = (r: Rng): unknown => r.pick([
  { type: 'function', function: { name: 'f', parameters: oddParameters(r) } },
  { type: 'function', function: { name: r.pick(['', 'a b', 'x'.repeat(65), 'é', '<|end|>', '{"']), parameters: { type: 'object' } } },
  { type: 'function', function: { name: 'f', description: r.pick(WEIRD)(), parameters: r.pick(WEIRD)() } },
  { type: 'function', function: null }, { type: 'code_interpreter' }, { type: 'function', name: 'flat' }, r.pick(WEIRD)(),
]);
const oddMessage = (r: Rng): unknown => r.pick([
  { role: r.pick(['tool', 'function', 'ipython', '', 'SYSTEM', 'developer', 'assistant', 'alien', 5]), content: 'x' },
  { role: 'tool', content: 'result', tool_call_id: r.pick(['c1', '', 5, null]) },
  { role: 'function', content: 'result' }, { role: 'function', name: 'f', content: { a: 1 } },
  { role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://x/y.png' } }] },
  // image parts (the fuzz server's model is text-only: each is a 422, never a fetch), odd shapes and URLs
  { role: 'user', content: [{ type: 'text', text: 'what is this?' }, { type: 'image_url', image_url: r.pick(['data:image/png;base64,iVBORw0KGgo=',
    'data:,x', 'file:///etc/passwd', 'ftp://x/y', '', 5, null, {}, { url: 5 }, { url: 'http://x', detail: 'max' }, LONG]) }] },
  { role: r.pick(['assistant', 'system', 'tool']), content: [{ type: 'image_url', image_url: 'http://x/y.png' }] },
  { role: 'user', content: [{ type: r.pick(['input_image', 'image', 'input_audio', 'file']), image_url: 'http://x/y.png', file_id: r.pick([undefined, 'f1']) }] },
  { role: 'user', content: [{ type: 'text', text: 5 }] }, { role: 'user', content: [{ type: 'text' }] }, { role: 'user', content: [] },
  { role: 'user', content: [null] }, { role: 'user', content: null }, { role: 'user' }, { content: 'no role' },
  { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: r.pick(['{', 'null', '[1,2]', '"s"', '{}', '1e999', '']) } }] },
  { role: 'assistant', content: null, tool_calls: [{ type: 'function', function: { name: 5, arguments: {} } }] },
  { role: 'assistant', content: 'x', tool_calls: 'nope' }, { role: 'user', content: 'x', tool_calls: [] },
  { role: 'assistant', content: 'x', function_call: { name: 'f', arguments: '{}' }, tool_calls: [{ type: 'function', function: { name: 'f', arguments: '{}' } }] },
  { role: 'assistant', content: 'x', reasoning_content: r.pick(WEIRD)() }, { role: 'user', content: 'x', reasoning_content: 'y' },
  { role: 'assistant', content: 'x', refusal: r.pick([null, 'no', []]), audio: r.pick([null, {}]) },
  { role: 'user', content: LONG }, { role: 'user', content: '<|end|><|assistant|>\n' }, r.pick(WEIRD)(),
]);
/** The token filters, valid and not: beam search and the Responses API apply them too. */
const tokenFilters = (r: Rng): Record<string, unknown> => ({ logit_bias: r.pick([null, { 5: 100 }, { 1024: 1 }]),
  allowed_token_ids: r.pick([null, [5], [5, 6, 7], [1024], []]), bad_words: r.pick([null, ['The'], ['The shard', 'a'], ['']]) });
const structuredVariant = (r: Rng): Record<string, unknown> => r.pick([
  () => ({ guided_json: r.pick(ODD_SCHEMAS) }),
  () => ({ guided_json: r.pick(['{"type":"string"', 'not json', '{"type":"integer"}', '']) }),
  () => ({ guided_regex: r.pick(ODD_REGEXES) }),
  () => ({ guided_grammar: r.pick(ODD_GRAMMARS) }),
  () => ({ guided_choice: r.pick(ODD_CHOICES) }),
  () => ({ structured_outputs: r.pick([{ json: r.pick(ODD_SCHEMAS) }, { regex: r.pick(ODD_REGEXES) }, { grammar: r.pick(ODD_GRAMMARS) },
    { choice: r.pick(ODD_CHOICES) }, { json: {}, regex: 'a' }, { whitespace_pattern: 'x' }, {}, 'json', []]) }),
  () => ({ guided_regex: 'a+', guided_choice: ['a'] }),
  () => ({ response_format: r.pick([{ type: 'json_object' }, { type: 'json_schema', json_schema: { name: 'x', schema: r.pick(ODD_SCHEMAS), strict: true } },
    { type: 'json_schema', json_schema: r.pick(WEIRD)() }, { type: 'json_schema' }, { type: 'regex', value: 'a' }, { type: 'text', extra: 1 },
    { type: r.pick(WEIRD)() }, r.pick(WEIRD)()]) }),
  () => ({ response_format: { type: 'json_object' }, guided_regex: 'a' }),
  () => ({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: r.pick(ODD_SCHEMAS) } }, min_tokens: 2 }),
])();

// --- the routes, their valid bodies and hand-made odd ones ---------------------------------------------------

type Json = Record<string, unknown>;
export interface RouteSpec {
  name: string;
  path: string;
  seed: () => Json;
  /** Odd bodies beyond what random mutation finds (built from a fresh seed). */
  special?: ((r: Rng, seed: Json) => unknown)[];
}

const generateParameters = (): Json => ({
  max_new_tokens: 3, temperature: 0.8, top_k: 20, top_p: 0.9, typical_p: 0.95, min_p: 0.05, seed: 7, stop: ['\n\n'], details: true,
  decoder_input_details: true, top_n_tokens: 2, return_k_alternatives: 1, adapter_id: 'style', adapter_source: 'local',
  repetition_penalty: 1.1, frequency_penalty: 0.2, presence_penalty: 0.1, truncate: 64, return_full_text: false, min_new_tokens: 1,
  do_sample: true, ignore_eos_token: false, watermark: false,
});
const ADAPTER_IDS = ['style', 'style2', 'empty', 'badconfig', 'truncated', 'badheader', 'rank999', 'notlora', 'style/adapter_config.json', '.',
  'missing', '../style', '/etc', 'org/name', 'org/name@', 'org/name@main', '@', 's3://bucket/prefix', 'x'.repeat(5000), 'style\u0000'];
const ADAPTER_SOURCES = ['local', 'hub', 's3', 'LOCAL', '', null, 5];

const generateSpecial = (stream: boolean): RouteSpec['special'] => [
  (r, s) => ({ ...s, parameters: { ...(s.parameters as Json), grammar: r.pick([
    { type: 'json', value: r.pick(ODD_SCHEMAS) }, { type: 'json', value: JSON.stringify(r.pick(ODD_SCHEMAS)) }, { type: 'json', value: 'not json' },
    { type: 'regex', value: r.pick(ODD_REGEXES) }, { type: 'grammar', value: r.pick(ODD_GRAMMARS) }, { type: 'json' }, { type: 'xml', value: 'a' },
    { type: 'regex', value: 'a', extra: 1 }, r.pick(WEIRD)()]), min_new_tokens: r.pick([null, 0, 1]) } }),
  (r, s) => ({ ...s, parameters: { ...(s.parameters as Json), response_format: r.pick([{ type: 'json_object', schema: r.pick(ODD_SCHEMAS) },
    { type: 'json_object' }, { type: 'json', value: r.pick(ODD_SCHEMAS) }, { type: 'json_schema' }, { type: 'text' }, r.pick(WEIRD)()]),
    min_new_tokens: null, grammar: r.chance(0.2) ? { type: 'regex', value: 'a' } : null } }),
  (r, s) => ({ ...s, parameters: { ...(s.parameters as Json), best_of: r.pick(COUNTS), seed: r.pick([null, 1]), do_sample: r.pick([true, false, null]),
    details: r.pick([true, false]), temperature: r.pick([null, 0.5]) } }),
  (r, s) => ({ ...s, parameters: { ...(s.parameters as Json), adapter_id: null, merged_adapters: r.pick([
    { ids: ['style', 'style2'], weights: [1, 1], merge_strategy: r.pick(['linear', 'ties', 'dare_linear', 'dare_ties', 'cat', 'magnitude_prune', 5]),
      density: r.pick([null, 0, 0.5, 1, 1e-300, 2, -1]), majority_sign_method: r.pick(['total', 'frequency', 'x', null]) },
    { ids: ['style', 'style'], weights: [1, 1] }, { ids: ['style', r.pick(ADAPTER_IDS)], weights: [1, r.pick(REALS)] },
    { ids: ['style', 'style2'], weights: [1e308, 1e308] }, { ids: [], weights: [] }, { ids: ['style'], weights: [0] },
    { ids: Array.from({ length: 40 }, (_, i) => `missing${i}`), weights: new Array(40).fill(1) }, { ids: ['style', 'style2'], weights: [1] },
    { ids: 'style', weights: 1 }, r.pick(WEIRD)()]) } }),
  (r, s) => ({ ...s, parameters: { ...(s.parameters as Json), adapter_id: r.pick(ADAPTER_IDS), adapter_source: r.pick(ADAPTER_SOURCES),
    api_token: r.pick([null, 'hf_token', '\u0000\n', 'tok en', 'x'.repeat(10_000)]) } }),
  (r, s) => ({ ...s, inputs: r.pick(['[{"role":"user","content":"hi"}]', '[]', '[{"role":"alien","content":"x"}]', '"str"',
    '[{"role":"user","content":5}]', '[{"role":"user"}]', 'not json', '[{"role":"user","content":"' + 'x'.repeat(5000) + '"}]', '[null]', '{}']),
  parameters: { ...(s.parameters as Json), apply_chat_template: true } }),
  (r, s) => ({ ...s, parameters: { ...(s.parameters as Json), stop: r.pick([[''], ['a', ''], ['a', 'b', 'c', 'd', 'e'], ['x'.repeat(20_000)],
    ['\ud800'], ['<|end|>'], 'a', [5], [null], []]) } }),
  (r, s) => ({ ...s, inputs: r.pick([LONG, HUGE_STRING, '\u0000', ' ', '\ud800\udc00\ud800', '<|endoftext|>'.repeat(300), '🙂'.repeat(150)]),
    parameters: { ...(s.parameters as Json), truncate: r.pick([null, 1, 199, 200, 201, 1e9]), max_new_tokens: r.pick([1, 56, 255, 256]),
      ...(stream ? { decoder_input_details: false } : {}) } }),
  (r, s) => ({ ...s, parameters: { ...(s.parameters as Json), max_new_tokens: r.pick([200, 250, 253, 256]), ignore_eos_token: true, stop: null,
    min_new_tokens: r.pick([0, 200, 256, 257]), details: true } }),
];

const completionSeed = (): Json => ({
  model: 'style', adapter_source: 'local', prompt: 'The shard batches', max_tokens: 3, temperature: 0.7, top_p: 0.9, top_k: 20, min_p: 0.01, n: 2, best_of: 3,
  logprobs: 2, echo: true, stop: ['\n\n'], seed: 3, presence_penalty: 0.1, frequency_penalty: 0.1, repetition_penalty: 1.05,
  logit_bias: { 10: 5, 1023: -100 }, stop_token_ids: [1021], min_tokens: 1, truncate_prompt_tokens: 64, ignore_eos: false,
  include_stop_str_in_output: true, skip_special_tokens: true, user: 'fuzz', stream: false,
});
const chatSeed = (): Json => ({
  model: 'style', adapter_source: 'local',
  messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi there' }, { role: 'assistant', content: [{ type: 'text', text: 'Hello' }] },
    { role: 'user', content: 'What is a shard?', name: 'bob' }],
  max_tokens: 3, max_completion_tokens: 3, temperature: 0.7, top_p: 0.95, n: 2, logprobs: true, top_logprobs: 2, seed: 5, stop: ['\n\n'],
  presence_penalty: 0.1, logit_bias: { 20: 1 }, response_format: { type: 'text' }, chat_template_kwargs: { enable_thinking: false },
  add_generation_prompt: true, include_reasoning: true, stream: false, user: 'fuzz', store: false, metadata: {}, service_tier: 'auto', modalities: ['text'],
});
const TOOL = { type: 'function', function: { name: 'get_weather', description: 'weather', parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 20 } }, required: ['city'] } } };
export const responsesSeed = (): Json => ({
  model: 'style', adapter_source: 'local', instructions: 'Be brief.', max_output_tokens: 3, temperature: 0.7, top_p: 0.9, seed: 1,
  input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hi' }] },
    { type: 'function_call', call_id: 'c1', name: 'get_weather', arguments: '{"city":"Oslo"}' },
    { type: 'function_call_output', call_id: 'c1', output: 'rain' }, { type: 'message', role: 'user', content: 'And now?' }],
  tools: [{ type: 'function', name: 'get_weather', description: 'weather', parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 20 } } } }],
  tool_choice: 'none', text: { format: { type: 'text' } }, reasoning: { effort: 'low' }, metadata: { k: 'v' }, store: true, stream: false,
});

export const ROUTES: RouteSpec[] = [
  { name: 'generate', path: '/generate', seed: () => ({ inputs: 'The shard batches adapters', parameters: generateParameters() }), special: generateSpecial(false) },
  { name: 'generate_stream', path: '/generate_stream',
    seed: () => ({ inputs: 'The shard batches adapters', parameters: { ...generateParameters(), decoder_input_details: false } }), special: generateSpecial(true) },
  { name: 'compat', path: '/', seed: () => ({ inputs: 'The shard', stream: true, parameters: { ...generateParameters(), decoder_input_details: false } }),
    special: [...generateSpecial(false)!, (r, s) => ({ ...s, stream: r.pick([true, false]), parameters: { ...(s.parameters as Json), decoder_input_details: true, best_of: r.pick([1, 2]) } })] },
  { name: 'completions', path: '/v1/completions', seed: completionSeed, special: [
    (r, s) => ({ ...s, prompt: r.pick([[1024], [-1], [2 ** 53], [0.5], [1, 2, raw('1e999')], [[1, 2], [3]], [[1024]], [[]], ['a', [1]], [],
      new Array(64).fill('a'), new Array(65).fill('a'), new Array(300).fill(5), [[0]], [1023, 1022, 1021, 1020], '', [''], [null], LONG]) }),
    (r, s) => ({ ...s, echo: true, max_tokens: r.pick([0, 1]), logprobs: r.pick([0, 5, 6, null]), n: r.pick([1, 2]), best_of: null,
      prompt: r.pick(['x', [5], [1020], ['a', 'b']]) }),
    (r, s) => ({ ...s, stream: true, n: r.pick([1, 2, 16]), best_of: r.pick([null, 2, 3]), stream_options: r.pick([{ include_usage: true },
      { include_usage: 5 }, { include_obfuscation: true }, { other: 1 }, 'x', null]), echo: r.pick([true, false]) }),
    (r, s) => ({ ...s, suffix: r.pick(['def f():', '', null, 5]), echo: r.pick([false, true]) }),
    (r, s) => ({ ...s, use_beam_search: r.pick([true, true, false, 'yes']), n: r.pick([1, 2, 3, 17, 0]), best_of: null, logprobs: null, echo: false,
      stop: null, min_tokens: null, max_tokens: r.pick([1, 2, 4]), length_penalty: r.pick([1, 0, -1, 1e308, -1e308, raw('1e999'), 'x']),
      early_stopping: r.pick([false, true, null, 'never']), prompt: r.pick(['The shard', [5, 6], [1024], ['a', 'b']]), ...tokenFilters(r) }),
    (r, s) => ({ ...s, ...structuredVariant(r), min_tokens: r.pick([null, 0, 1]) }),
    (r, s) => ({ ...s, logit_bias: r.pick([{ 1024: 1 }, { '-1': 1 }, { '01': 1 }, { 1: 101 }, { 1: -1e308 }, { 1: 'x' }, { 1: null }, [1],
      Object.fromEntries(Array.from({ length: 1025 }, (_, i) => [String(i), 1])), { [String(2 ** 53)]: 1 }, { '1e3': 1 }, { ' 1': 1 }]) }),
    (r, s) => ({ ...s, bad_words: r.pick([['t1'], ['The shard', 'batches'], [''], [' '], [5], 'x', null, new Array(129).fill('a'),
      ['a'.repeat(257)], ['\u0000'], Array.from({ length: 128 }, (_, i) => `w${i} x${i}`)]) }),
    (r, s) => ({ ...s, allowed_token_ids: r.pick([[1024], [], [-1], [0.5], [2 ** 53], ['1'], 5, null, [7], [1020, 1021, 1022, 1023],
      new Array(65_537).fill(1), Array.from({ length: 1024 }, (_, i) => i)]), ...structuredVariant(r) }),
    (r, s) => ({ ...s, stop_token_ids: r.pick([[1024], [-1], [0.5], new Array(65).fill(1), [2 ** 53], ['1'], 5, [1020, 1021, 1022, 1023]]),
      ignore_eos: r.pick([true, false]), min_tokens: r.pick([0, 3]) }),
    (r, s) => ({ ...s, max_tokens: r.pick([250, 254, 255, 256]), ignore_eos: true, stop: null, stop_token_ids: null, n: r.pick([1, 16]),
      best_of: null, echo: false, logprobs: r.pick([null, 5]) }),
    (r, s) => ({ ...s, model: r.pick([...ADAPTER_IDS, '', 'weft-demo', null]), adapter_source: r.pick(ADAPTER_SOURCES), api_token: r.pick([null, 'tok', 'x y']) }),
    (r, s) => ({ ...s, ...Object.fromEntries([r.pick([['store', true], ['metadata', { a: 1 }], ['service_tier', 'flex'], ['modalities', ['audio']],
      ['spaces_between_special_tokens', false], ['return_tokens_as_token_ids', true], ['priority', 5], ['priority', raw('-0')]])]) }),
  ] },
  { name: 'chat', path: '/v1/chat/completions', seed: chatSeed, special: [
    (r, s) => ({ ...s, tools: r.pick([[TOOL], [oddTool(r)], [TOOL, TOOL], new Array(129).fill(TOOL), Array.from({ length: 128 }, (_, i) => ({ type: 'function',
      function: { name: `f${i}`, parameters: r.pick(ODD_SCHEMAS) } })), [], {}, 'x']),
    tool_choice: r.pick(['auto', 'required', 'none', { type: 'function', function: { name: 'get_weather' } }, { type: 'function', function: { name: 'nope' } },
      { type: 'function' }, 'any', null, 5]), parallel_tool_calls: r.pick([true, false, null, 'yes']), response_format: null, logprobs: r.pick([true, false]),
    top_logprobs: null, stream: r.pick([true, false]) }),
    (r, s) => ({ ...s, functions: r.pick([[TOOL.function], [(oddTool(r) as Json)?.function ?? null], [], null, 'x']),
      function_call: r.pick(['auto', 'none', { name: 'get_weather' }, { name: 'nope' }, { name: 'get_weather', extra: 1 }, 'required', 5]),
      tools: r.chance(0.2) ? [TOOL] : null, response_format: null, stream: r.pick([true, false]) }),
    (r, s) => ({ ...s, messages: r.pick([[oddMessage(r)], [...(s.messages as unknown[]), oddMessage(r)], [oddMessage(r), oddMessage(r)], [], 'hi',
      null, new Array(3000).fill({ role: 'user', content: 'x' })]) }),
    (r, s) => ({ ...s, add_generation_prompt: r.pick([false, true]), continue_final_message: r.pick([true, false, 'yes']),
      messages: r.pick([[{ role: 'user', content: 'hi' }], [{ role: 'assistant', content: '' }], [{ role: 'system', content: 'x' }],
        [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'The sh' }], [{ role: 'assistant', content: '<|end|>' }]]) }),
    (r, s) => ({ ...s, chat_template: r.pick(['{{ messages }}', '', '{% for %}', 5]), chat_template_kwargs: r.pick([{ tools: [] }, { messages: [] },
      { bos_token: 'x' }, { add_generation_prompt: false }, { raise_exception: 1 }, { range: 'x' }, deepObject(2000), [], 'x', { x: LONG }]) }),
    (r, s) => ({ ...s, ...structuredVariant(r), tools: r.chance(0.2) ? [TOOL] : null }),
    (r, s) => ({ ...s, reasoning_effort: r.pick(['low', 'max', '', null, 5]), include_reasoning: r.pick([false, 'no']),
      skip_special_tokens: r.pick([false, true, 'no']) }),
    (r, s) => ({ ...s, stream: true, n: r.pick([1, 3, 16, 17]), stream_options: r.pick([{ include_usage: true }, { include_usage: false }, {}, 5]),
      logprobs: r.pick([true, false]), top_logprobs: r.pick([null, 0, 5, 6]) }),
    (r, s) => ({ ...s, use_beam_search: true, n: r.pick([1, 2, 4]), max_tokens: r.pick([1, 3]), max_completion_tokens: null, logprobs: null,
      top_logprobs: null, stop: null, response_format: r.pick([null, { type: 'text' }, { type: 'json_object' }]), tools: r.pick([null, [], [TOOL]]),
      length_penalty: r.pick([1, 0.5, 1e308]) }),
    (r, s) => ({ ...s, max_tokens: r.pick([1, 200, 256, 257]), max_completion_tokens: r.pick([null, 2, 256]), min_tokens: r.pick([null, 2, 300]) }),
    (r, s) => ({ ...s, prediction: r.pick([{ type: 'content', content: 'The shard batches adapters' }, { type: 'content', content: HUGE_STRING },
      { type: 'content', content: [{ type: 'text', text: 'a' }, { type: 'image' }] }, { type: 'content', content: '' }, { type: 'text' }, 'x', null,
      { type: 'content', content: '\ud800' }]), n: r.pick([1, 3]), stream: r.pick([true, false]) }),
  ] },
  { name: 'responses', path: '/v1/responses', seed: responsesSeed, special: [
    (r, s) => ({ ...s, metadata: r.pick([deepObject(20), deepObject(5000), { a: LONG }, [], 'x', { [`${RAW_KEY}"__proto__"`]: { x: 1 } }]) }),
    (r, s) => ({ ...s, previous_response_id: r.pick(['resp_missing', '', 5, 'x'.repeat(5000), '../', '\u0000', 'resp_%00']) }),
    (r, s) => ({ ...s, text: r.pick([{ format: { type: 'json_schema', name: 'x', schema: r.pick(ODD_SCHEMAS), strict: true } }, { format: { type: 'json_schema' } },
      { format: { type: 'json_object' } }, { format: { type: 'regex' } }, { format: null, verbosity: 'low' }, { other: 1 }, 'json', deepObject(4000)]),
    tool_choice: 'none' }),
    (r, s) => ({ ...s, tools: r.pick([[{ type: 'function', name: 'f', parameters: r.pick(ODD_SCHEMAS) }], [{ type: 'web_search' }], [{ type: 'function' }],
      [{ type: 'function', name: 'f', function: { name: 'g' } }], 'x', [null], [{ type: 'function', name: 'f', parameters: deepObject(3000, 'properties', {}) }]]),
    tool_choice: r.pick(['auto', 'required', { type: 'function', name: 'f' }, { type: 'function' }, { type: 'custom', name: 'f' }, 'none', 5]) }),
    (r, s) => ({ ...s, input: r.pick(['', [], [{}], [{ type: 'reasoning', summary: [] }], [{ type: 'function_call_output', call_id: 'zz', output: { a: 1 } }],
      [{ type: 'function_call', call_id: 5, name: 'f', arguments: '{' }], [{ type: 'message', role: 'alien', content: 'x' }],
      [{ type: 'message', role: 'user', content: [{ type: 'input_image', image_url: 'x' }] }], [{ type: 'computer_call' }], [null], 5, LONG,
      [{ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'The sh' }] }], [{ type: 'function_call_output', output: 'x' }]]) }),
    (r, s) => ({ ...s, stream: true, max_output_tokens: r.pick([1, 3, 0, -1, 257]), tool_choice: r.pick(['auto', 'none', 'required']) }),
    (r, s) => ({ ...s, ...tokenFilters(r), stream: r.pick([true, false]), tool_choice: 'none' }),
    (r, s) => ({ ...s, include: r.pick([['message.output_text.logprobs'], ['message.output_text.logprobs', 'x'], null]),
      top_logprobs: r.pick([0, 20, 21, -1, 1.5, 'x', null]), stream: r.pick([true, false]) }),
    (r, s) => ({ ...s, background: r.pick([true, false, 'x']), truncation: r.pick(['auto', 'disabled', 5]), include: r.pick([['reasoning.encrypted_content'], [], 'x']),
      reasoning: r.pick([{ effort: 'max' }, { summary: 'auto' }, { other: 1 }, 'low', []]), store: r.pick([false, 'yes', null]) }),
  ] },
  { name: 'embeddings', path: '/v1/embeddings', seed: () => ({ model: 'style', adapter_source: 'local', input: ['The shard', 'batches'], encoding_format: 'float',
    dimensions: 16, normalize: true, truncate_prompt_tokens: 32, user: 'fuzz' }), special: [
    (r, s) => ({ ...s, input: r.pick([[[1024]], [[-1]], [], [''], [[]], [1, 2, 1024], new Array(129).fill('a'), new Array(2048).fill('a'), new Array(2049).fill('a'),
      [[1, 2], 'a'], LONG, [LONG, LONG], HUGE_STRING, [raw('1e999')]]) }),
    (r, s) => ({ ...s, input: undefined, messages: r.pick([[{ role: 'user', content: 'hi' }], [{ role: 'alien', content: 'x' }], [], [{ role: 'user', content: 5 }]]),
      add_generation_prompt: r.pick([true, false, 'x']), continue_final_message: r.pick([true, false]), add_special_tokens: r.pick([true, false, 5]),
      chat_template_kwargs: r.pick([{}, { messages: 5 }, 'x', null]) }),
    (r, s) => ({ ...s, encoding_format: r.pick(['base64', 'binary', null, 5]), dimensions: r.pick(COUNTS), truncate_prompt_tokens: r.pick(COUNTS) }),
  ] },
  { name: 'embed', path: '/embed', seed: () => ({ inputs: ['The shard', 'batches'], normalize: true, truncate: true, truncation_direction: 'Left', dimensions: 8,
    adapter_id: 'style', adapter_source: 'local' }), special: [
    (r, s) => ({ ...s, inputs: r.pick([[[1, 2]], [1, 2], [], [''], LONG, [LONG], new Array(200).fill('x'), 'single']), truncate: r.pick([true, false, 1, null]),
      truncation_direction: r.pick(['Right', 'left', 'LEFT', null]), prompt_name: r.pick([null, 'query', 5]) }),
    (r, s) => ({ ...s, adapter_id: r.pick(ADAPTER_IDS), adapter_source: r.pick(ADAPTER_SOURCES) }),
  ] },
  { name: 'score', path: '/score', seed: () => ({ model: 'style', adapter_source: 'local', text_1: 'The shard', text_2: ['batches', 'adapters'], truncate_prompt_tokens: 16 }),
    special: [(r, s) => ({ ...s, text_1: r.pick(['a', ['a', 'b'], ['a', 'b', 'c'], [], [''], LONG, new Array(70).fill('a')]),
      text_2: r.pick(['b', ['a', 'b'], [], [''], [5], new Array(200).fill('q'), new Array(2048).fill('z')]) })] },
  { name: 'rerank', path: '/rerank', seed: () => ({ model: 'style', adapter_source: 'local', query: 'shard', documents: ['a doc', { text: 'another doc' }], top_n: 1,
    return_documents: true, truncate_prompt_tokens: 16 }), special: [
    (r, s) => ({ ...s, documents: r.pick([[], [''], [{ text: 5 }], [{ text: 'a', title: 'b' }], [{}], new Array(300).fill('d'), [LONG], 'doc', [null]]),
      top_n: r.pick([...COUNTS, null]), query: r.pick(['q', '', LONG, 5]) }),
  ] },
  { name: 'classify', path: '/classify', seed: () => ({ model: 'style', adapter_source: 'local', input: ['The shard'], use_activation: true, truncate_prompt_tokens: 16, user: 'fuzz' }),
    special: [(r, s) => ({ ...s, model: r.pick([...ADAPTER_IDS, null, '']), adapter_source: r.pick(ADAPTER_SOURCES), input: r.pick([[[1024]], 'x', [], ['']]) })] },
  { name: 'tokenize-tgi', path: '/tokenize', seed: () => ({ inputs: 'The shard batches', add_special_tokens: true,
    parameters: { max_new_tokens: 3, adapter_id: 'style', adapter_source: 'local', apply_chat_template: false } }), special: [
    (r, s) => ({ ...s, inputs: r.pick(['[{"role":"user","content":"hi"}]', '[]', 'x', '[{"role":"alien","content":"x"}]', HUGE_STRING]),
      parameters: { apply_chat_template: true }, add_special_tokens: r.pick([true, false, null]) }),
  ] },
  { name: 'tokenize-vllm', path: '/tokenize', seed: () => ({ model: 'weft-demo', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo' }],
    add_generation_prompt: false, continue_final_message: true, chat_template_kwargs: { x: 1 }, return_token_strs: true, add_special_tokens: false }), special: [
    (r, s) => ({ model: s.model, prompt: r.pick(['The shard', '', HUGE_STRING, 5, null, '\ud800']), add_special_tokens: r.pick([true, false, 'x']),
      return_token_strs: r.pick([true, false]) }),
    (r, s) => ({ ...s, messages: r.pick([[oddMessage(r)], [], 'x', [{ role: 'tool', content: 'x' }]]) }),
  ] },
  { name: 'chat_tokenize', path: '/chat_tokenize', seed: chatSeed, special: [
    (r, s) => ({ ...s, messages: r.pick([[oddMessage(r)], [], 'x', null]), tools: r.pick([null, [TOOL], [oddTool(r)]]) }),
  ] },
  { name: 'invocations', path: '/invocations', seed: chatSeed, special: [
    (r) => r.pick([{ inputs: 'The shard', parameters: generateParameters() }, { inputs: 'x', stream: true }, { prompt: 'The shard', max_tokens: 3 },
      { input: ['The shard'] }, { text_1: 'a', text_2: ['b'] }, { query: 'a', documents: ['b'] }, { nothing: 1 }, [], 'x', { messages: 5 },
      { inputs: 'a', messages: [], prompt: 'b' }]),
  ] },
  { name: 'detokenize', path: '/detokenize', seed: () => ({ model: 'weft-demo', tokens: [10, 20, 1020, 1023, 0] }), special: [
    (r) => ({ tokens: r.pick([[1024], [-1], [0.5], [], new Array(200_000).fill(65), [raw('1e999')], ['1'], [2 ** 53], [raw('-0')]]) }),
  ] },
  { name: 'adapters-load', path: '/v1/adapters/load', seed: () => ({ adapter_id: 'style', adapter_source: 'local', api_token: 'fuzz-token' }), special: [
    (r) => ({ adapter_id: r.pick(ADAPTER_IDS), adapter_source: r.pick(ADAPTER_SOURCES), api_token: r.pick([null, 'tok', '\n']) }),
  ] },
  { name: 'adapters-unload', path: '/v1/adapters/unload', seed: () => ({ adapter_id: 'style2', adapter_source: 'local' }), special: [
    (r) => ({ adapter_id: r.pick(ADAPTER_IDS), adapter_source: r.pick(ADAPTER_SOURCES) }),
  ] },
  { name: 'adapters-pin', path: '/v1/adapters/pin', seed: () => ({ adapter_id: 'style2', adapter_source: 'local', pinned: false }), special: [
    (r) => ({ adapter_id: r.pick(ADAPTER_IDS), adapter_source: r.pick(ADAPTER_SOURCES), pinned: r.pick([true, false, 'yes', null]) }),
  ] },
  { name: 'load_lora_adapter', path: '/v1/load_lora_adapter', seed: () => ({ lora_name: 'fuzz-style', lora_path: join(adapterRoot, 'style'), load_inplace: true }),
    special: [(r) => ({ lora_name: r.pick(['n1', 'weft-demo', '', 'x'.repeat(257), 'style', '\u0000', 5]),
      lora_path: r.pick([...ADAPTER_IDS, join(adapterRoot, r.pick(ADAPTER_IDS)), `./${r.pick(ADAPTER_IDS)}`]), load_inplace: r.pick([true, false, 'yes']),
      adapter_source: r.pick([...ADAPTER_SOURCES, undefined]) })] },
  { name: 'unload_lora_adapter', path: '/v1/unload_lora_adapter', seed: () => ({ lora_name: 'fuzz-style', lora_int_id: 1 }), special: [
    (r) => ({ lora_name: r.pick(['n1', 'nope', 'weft-demo', '', 5, 'fuzz-style']) }),
  ] },
];

/** Requests by URL (GET/DELETE): odd model and response ids, odd list parameters. */
export function urlRequests(r: Rng, n: number, responseId: string): Sent[] {
  const id = () => encodeURIComponent(String(r.pick([responseId, responseId, 'resp_missing', '', ' ', '..', '%', 'x'.repeat(3000), '\u0000', 'é🙂', 'style', 'weft-demo'])));
  const q = () => String(r.pick(['', '0', '1', '100', '101', '-1', '1.5', 'abc', '1e999', '%00', ' ', '20', 'asc', 'desc', 'msg_x']));
  const makers: (() => Sent)[] = [
    () => ({ method: 'GET', path: `/v1/models/${id()}`, headers: {}, label: 'GET model' }),
    () => ({ method: 'GET', path: `/v1/responses/${id()}`, headers: {}, label: 'GET response' }),
    () => ({ method: 'GET', path: `/v1/responses/${id()}/input_items?limit=${encodeURIComponent(q())}&order=${encodeURIComponent(q())}&after=${encodeURIComponent(q())}`,
      headers: {}, label: 'GET input_items' }),
    () => ({ method: 'GET', path: `/v1/responses/${id()}/input_items?limit=1&limit=2&order=asc&order=desc`, headers: {}, label: 'GET input_items repeated' }),
    () => ({ method: 'DELETE', path: `/v1/responses/${r.chance(0.2) ? responseId : id()}`, headers: {}, label: 'DELETE response' }),
    () => ({ method: 'GET', path: r.pick(['/health', '/ping', '/version', '/info', '/metrics', '/v1/models', '/v1/adapters', '/v1/models/%E0%A4%A', '/v1/responses/%ZZ',
      '/nope', '/generate', '//generate', '/generate/', '/v1/responses/', '/v1/responses//input_items']), headers: {}, label: 'GET other' }),
  ];
  return Array.from({ length: n }, () => r.pick(makers)());
}

/** The fuzzed requests of one route: mutated seeds, hand-made odd bodies, whole-body mutations. */
export function routeRequests(r: Rng, spec: RouteSpec, n: number): Sent[] {
  const out: Sent[] = [];
  for (let i = 0; i < n; i++) {
    const roll = r.next();
    if (i === 0) {
      out.push(jsonRequest(spec.path, spec.seed(), 'valid seed'));
    } else if (roll < 0.08) {
      out.push(wholeBodyMutation(r, spec.path, spec.seed()));
    } else if (roll < 0.4 && spec.special && spec.special.length > 0) {
      const k = r.int(spec.special.length);
      const body = spec.special[k]!(r, spec.seed());
      if (r.chance(0.3) && body !== null && typeof body === 'object') mutateOnce(r, body as Json);
      out.push(jsonRequest(spec.path, body, `special #${k}`));
    } else {
      const body = clone(spec.seed());
      const times = 1 + r.int(3);
      for (let t = 0; t < times; t++) mutateOnce(r, body);
      out.push(jsonRequest(spec.path, body, `${times} random mutation(s)`));
    }
  }
  return out;
}

/** Values at the edges of what a float32 shard or an int32 kernel can hold, for every numeric field. */
const NUMERIC_EDGES: readonly unknown[] = [5e-324, 1e-45, 1e-39, 0.9999999999999999, 1.0000000000000002, 2 ** 31, 2 ** 53, 2 ** 53 + 2, 1e21, 1e308,
  3.5e38, raw('1e999'), raw('-0'), -1e-300];

/** The fields of a body that hold a number (top level and TGI's `parameters`), as [container path, key]. */
function numericFields(seed: Json): [string | null, string][] {
  const out: [string | null, string][] = [];
  for (const [k, v] of Object.entries(seed)) if (typeof v === 'number') out.push([null, k]);
  const p = seed.parameters;
  if (p !== null && typeof p === 'object') for (const [k, v] of Object.entries(p as Json)) if (typeof v === 'number') out.push(['parameters', k]);
  return out;
}

/**
 * The systematic part, beside the random one: every field of every route's valid body once missing and with a few
 * wrong values, every numeric field of the generating routes at each edge value, and every odd schema, regular
 * expression, grammar, choice list, tool and message through the routes that take them.
 */
export function catalogue(r: Rng): { req: Sent; route: string }[] {
  const out: { req: Sent; route: string }[] = [];
  const add = (route: string, path: string, body: unknown, label: string) => out.push({ req: jsonRequest(path, body, label), route });
  for (const spec of ROUTES) {
    const seed = spec.seed();
    const fields: [string | null, string][] = [...Object.keys(seed).map((k): [null, string] => [null, k]),
      ...(seed.parameters !== null && typeof seed.parameters === 'object' ? Object.keys(seed.parameters as Json).map((k): [string, string] => ['parameters', k]) : [])];
    for (const [inside, key] of fields) {
      const at = (v: unknown, drop = false) => {
        const b = clone(seed);
        const target = (inside ? b[inside] : b) as Json;
        if (drop) delete target[key];
        else target[key] = v;
        return b;
      };
      const where = inside ? `${inside}.${key}` : key;
      add(spec.name, spec.path, at(undefined, true), `field ${where} missing`);
      for (let i = 0; i < 2; i++) {
        const v = i === 1 && typeof (inside ? (seed[inside] as Json)[key] : seed[key]) === 'number' ? r.pick([...COUNTS, ...REALS]) : r.pick(WEIRD)();
        add(spec.name, spec.path, at(v), `field ${where} = ${clip(encode(v), 60)}`);
      }
    }
  }
  for (const name of ['generate', 'completions', 'chat']) {
    const spec = ROUTES.find((x) => x.name === name)!;
    const seed = spec.seed();
    for (const [inside, key] of numericFields(seed)) {
      for (const v of NUMERIC_EDGES) {
        const b = clone(seed);
        ((inside ? b[inside] : b) as Json)[key] = v;
        add(name, spec.path, b, `${inside ? `${inside}.` : ''}${key} = ${encode(v)}`);
      }
    }
  }
  const completion = (extra: Json) => ({ prompt: 'The shard', max_tokens: 3, ...extra });
  const chat = (extra: Json) => ({ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, ...extra });
  const generate = (parameters: Json) => ({ inputs: 'The shard', parameters: { max_new_tokens: 3, ...parameters } });
  ODD_SCHEMAS.forEach((schema, i) => {
    const via: [string, string, unknown][] = [
      ['completions', '/v1/completions', completion({ guided_json: schema })],
      ['chat', '/v1/chat/completions', chat({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema } } })],
      ['generate', '/generate', generate({ grammar: { type: 'json', value: schema } })],
      ['generate', '/generate', generate({ response_format: { type: 'json_object', schema } })],
      ['responses', '/v1/responses', { input: 'Hi', max_output_tokens: 3, text: { format: { type: 'json_schema', name: 'x', schema } } }],
      ['chat', '/v1/chat/completions', chat({ tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { a: schema } } } }],
        tool_choice: 'required' })],
    ];
    const [route, path, body] = via[i % via.length]!;
    add(route, path, body, `odd schema #${i}`);
  });
  ODD_REGEXES.forEach((regex, i) => {
    const via: [string, string, unknown][] = [['completions', '/v1/completions', completion({ guided_regex: regex })],
      ['generate', '/generate', generate({ grammar: { type: 'regex', value: regex } })], ['chat', '/v1/chat/completions', chat({ structured_outputs: { regex } })]];
    const [route, path, body] = via[i % via.length]!;
    add(route, path, body, `odd regex #${i}`);
  });
  ODD_GRAMMARS.forEach((grammar, i) => {
    const via: [string, string, unknown][] = [['completions', '/v1/completions', completion({ guided_grammar: grammar })],
      ['generate_stream', '/generate_stream', generate({ grammar: { type: 'grammar', value: grammar } })]];
    const [route, path, body] = via[i % via.length]!;
    add(route, path, body, `odd grammar #${i}`);
  });
  ODD_CHOICES.forEach((choice, i) => add('chat', '/v1/chat/completions', chat({ guided_choice: choice, stream: i % 2 === 0 }), `odd choice #${i}`));
  for (let i = 0; i < 30; i++) {
    add('chat', '/v1/chat/completions', chat({ tools: [oddTool(r)], tool_choice: r.pick(['auto', 'required']) }), `odd tool #${i}`);
    add('chat', '/v1/chat/completions', chat({ messages: [{ role: 'user', content: 'Hi' }, oddMessage(r)], stream: r.chance(0.3) }), `odd message #${i}`);
  }
  return out;
}

