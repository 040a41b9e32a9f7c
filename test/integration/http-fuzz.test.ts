// A seeded, deterministic fuzz of the HTTP API on the demo model (real tokenizer, chat template, local adapters):
// for every route, bodies mutated from a valid one (wrong types, missing and unknown fields, extreme numbers, odd
// strings, out-of-vocabulary token ids, odd schemas / regexes / grammars / tools / messages, bodies that are not
// JSON or not declared as JSON), plus a systematic sweep (every field missing and given two wrong values, every numeric sampling
// field at float32 / int32 / 2^53 edges, every odd schema, regex, grammar, choice list, tool and message), sent eight
// at a time, some abandoned mid-flight by the client. Every answer must be < 500 (a bad request is the client's
// fault: a clear 4xx with a JSON error message; a 200 stream must not end in an internal error), and afterwards the
// server must be whole: /health 200, no shard restarted, no KV block or adapter reference left behind, nothing
// running or queued, an ordinary request still answered, and nothing logged at error level.
//
// WEFT_FUZZ_SEED, WEFT_FUZZ_N (random bodies per route, default 60) and WEFT_FUZZ_ABANDON (share abandoned, default
// 0.07) change the run; the same values send the same bodies. A failure lists the route, what was mutated, the
// status and the start of the body and of the answer.
//
// The other tests replay, one at a time, the minimised requests this fuzzer found: each must get a 4xx while an
// ordinary streamed generation runs beside it unharmed and an ordinary request right after is answered; clients
// that go away must not be logged as server errors; two valid requests once refused with a misleading 4xx; and on two
// shards, a request that breaks one rank's sampling must not put the ranks out of step.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { launch, type Launched } from '../../deploy/launch.js';
import { parseArgs } from '../../deploy/config/index.js';
import { ensureDemoAdapter } from '../../deploy/demo-model/index.js';
import { Rng, encode, jsonRequest, pool, problemWith, raw, type Sent } from '../helpers/json-fuzz.js';
import { ROUTES, catalogue, clip, responsesSeed, routeRequests, setFuzzAdapterRoot, urlRequests } from '../helpers/http-fuzz-routes.js';

const SEED = Number(process.env.WEFT_FUZZ_SEED ?? 20261124);
const PER_ROUTE = Number(process.env.WEFT_FUZZ_N ?? 60);
const CONCURRENCY = 8;
/** Share of requests the client abandons mid-flight (WEFT_FUZZ_ABANDON). */
const ABANDON_RATE = Number(process.env.WEFT_FUZZ_ABANDON ?? 0.07);
const REQUEST_TIMEOUT_MS = 30_000;

/** Every log line of the coordinator and the shards at warn or above. */
class LogCapture extends Writable {
  lines: string[] = [];
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    for (const line of chunk.toString().split('\n')) if (line.trim() !== '') this.lines.push(line);
    cb();
  }
  /** Lines at error / fatal level (the server logs a 5xx, a failed stream, a crashed step loop or a lost shard so). */
  errors(): string[] {
    return this.lines.filter((l) => /"level":\s*"(error|fatal)"|"level":\s*(50|60)\b/.test(l) || /uncaught|unhandled/i.test(l));
  }
}

let server: Launched;
let adapterRoot: string;
const logs = new LogCapture();

/** A TCP port nothing listens on (the Hub and S3 endpoints the server is given: adapter downloads fail fast). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

before(async () => {
  const cacheDir = mkdtempSync(join(tmpdir(), 'weft-http-fuzz-'));
  adapterRoot = join(cacheDir, 'adapters');
  setFuzzAdapterRoot(adapterRoot);
  const dead = `http://127.0.0.1:${await closedPort()}`;
  server = await launch(parseArgs('launch', ['--port', '0', '--hostname', '127.0.0.1', '--log-level', 'warn', '--cluster', `fuzz${process.pid}`,
    '--adapter-root', adapterRoot, '--max-input-length', '200', '--max-total-tokens', '256', '--max-adapter-slots', '2',
    '--shard-heartbeat-ms', '200', '--shard-timeout-ms', '5000', '--step-timeout-ms', '30000'],
  { HF_ENDPOINT: dead, S3_ENDPOINT_URL: dead, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'fuzz-access-key-id',
    AWS_SECRET_ACCESS_KEY: 'fuzz-secret-access-key' }), { cacheDir, logs });
  const model = join(cacheDir, 'demo-model');
  await ensureDemoAdapter(model, adapterRoot, 'style', 3);
  await ensureDemoAdapter(model, adapterRoot, 'style2', 5);
  // Directories under the adapter root that are not adapters, or broken ones: a request naming one must get a 4xx.
  const cfg = readFileSync(join(adapterRoot, 'style', 'adapter_config.json'), 'utf8');
  const weights = readFileSync(join(adapterRoot, 'style', 'adapter_model.safetensors'));
  const dir = (name: string, files: Record<string, string | Buffer>) => {
    mkdirSync(join(adapterRoot, name), { recursive: true });
    for (const [f, data] of Object.entries(files)) writeFileSync(join(adapterRoot, name, f), data);
  };
  dir('empty', {});
  dir('badconfig', { 'adapter_config.json': '{"r": 8, "peft_type": "LORA", ', 'adapter_model.safetensors': weights });
  dir('truncated', { 'adapter_config.json': cfg, 'adapter_model.safetensors': weights.subarray(0, 1000) });
  dir('badheader', { 'adapter_config.json': cfg, 'adapter_model.safetensors': Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]), weights.subarray(8)]) });
  dir('rank999', { 'adapter_config.json': cfg.replace('"r": 8', '"r": 999'), 'adapter_model.safetensors': weights });
  dir('notlora', { 'adapter_config.json': cfg.replace('"LORA"', '"IA3"'), 'adapter_model.safetensors': weights });
}, { timeout: 120_000 });
after(async () => { await server?.close(); }, { timeout: 60_000 });

interface Failure { route: string; label: string; problem: string; status: number; body: string; answer: string }


interface Answer { status: number; contentType: string; text: string }

/**
 * One request on a connection of its own (no pool: a request given up on is a destroyed socket, never a pooled
 * connection the server keeps waiting on). Rejects after `timeoutMs` with Error('timeout'); `onText` sees the answer
 * so far as it streams in.
 */
function call(url: string, req: Pick<Sent, 'method' | 'path' | 'headers' | 'payload'>, timeoutMs = REQUEST_TIMEOUT_MS,
  onText?: (text: string) => void): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const u = new URL(url + req.path);
    const payload = req.payload === undefined || req.method === 'GET' ? undefined : typeof req.payload === 'string' ? Buffer.from(req.payload) : req.payload;
    const cr = httpRequest({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: req.method, agent: false,
      headers: { ...req.headers, ...(payload ? { 'content-length': String(payload.length) } : {}) } });
    const timer = setTimeout(() => { cr.destroy(); reject(new Error('timeout')); }, timeoutMs);
    cr.on('error', (e) => { clearTimeout(timer); reject(e); });
    cr.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => { chunks.push(c); if (onText) onText(Buffer.concat(chunks).toString('utf8')); });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), text: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', (e) => { clearTimeout(timer); reject(e); });
    });
    cr.end(payload);
  });
}

/** Sends one request; a problem with the answer becomes a Failure. */
async function send(req: Sent, route: string): Promise<Failure | null> {
  const body = typeof req.payload === 'string' ? req.payload : req.payload ? req.payload.toString('latin1') : '';
  try {
    const a = await call(server.url, req);
    const problem = problemWith(a.status, a.contentType, a.text);
    return problem ? { route, label: req.label, problem, status: a.status, body: clip(body), answer: clip(a.text) } : null;
  } catch (e) {
    const why = (e as Error).message === 'timeout' ? `no answer within ${REQUEST_TIMEOUT_MS} ms (hang)` : `request error: ${(e as Error).message}`;
    return { route, label: req.label, problem: why, status: 0, body: clip(body), answer: '' };
  }
}

/**
 * Sends one request on a connection of its own and drops the connection after `ms` (the client went away: the server
 * must cancel what it started). Its own socket, destroyed, so no half-used pooled connection outlives the test.
 */
function abandon(req: Sent, ms: number): Promise<void> {
  return call(server.url, req, ms).then(() => undefined, () => undefined);
}

/** Error log lines grouped by what they say (ids and numbers blanked): "count × message (first line)". */
function summarise(lines: readonly string[]): string[] {
  const groups = new Map<string, { n: number; first: string }>();
  for (const line of lines) {
    let key = line;
    try {
      const j = JSON.parse(line) as Record<string, any>;
      key = `${j.name ?? ''} ${j.msg ?? ''}: ${String(j.err?.message ?? j.err ?? j.message ?? j.msg_text ?? '')}`;
    } catch { /* not JSON */ }
    key = key.replace(/[0-9a-f]{8}-[0-9a-f-]{27,}(\.\d+)?(#\d+)?/g, '<id>').replace(/\d+/g, 'N').slice(0, 200);
    const g = groups.get(key);
    if (g) g.n++;
    else groups.set(key, { n: 1, first: clip(line, 500) });
  }
  return [...groups.entries()].map(([key, g]) => `${g.n} × ${key}\n      e.g. ${g.first}`);
}

/** Waits until nothing runs, waits or holds a KV block or an adapter reference (or `ms` pass); the last stats. */
async function settled(ms: number) {
  const deadline = Date.now() + ms;
  for (;;) {
    const st = server.engine.stats();
    if ((st.usedBlocks === 0 && st.adapterRefs === 0 && st.running === 0 && st.waiting === 0) || Date.now() > deadline) return st;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const post = (path: string, body: unknown) => postTo(server.url, path, body);
const postTo = (url: string, path: string, body: unknown, timeoutMs = REQUEST_TIMEOUT_MS) =>
  call(url, { method: 'POST', path, headers: { 'content-type': 'application/json' }, payload: encode(body) }, timeoutMs);
const getStatus = async (url: string, path: string) => (await call(url, { method: 'GET', path, headers: {} }, 5_000).catch(() => ({ status: 0 }))).status;

test(`fuzzed bodies on every route (seed ${SEED}, ${PER_ROUTE} per route): never a 5xx, and the server stays whole`, { timeout: 300_000 }, async () => {
  // A stored response, so GET /v1/responses/{id} and previous_response_id reach a real one.
  const stored = await post('/v1/responses', { input: 'Hi', max_output_tokens: 2 });
  assert.equal(stored.status, 200, stored.text);
  const responseId = JSON.parse(stored.text).id as string;

  const r = new Rng(SEED);
  const jobs: { req: Sent; route: string; abandon: number | null }[] = [];
  for (const spec of ROUTES) for (const req of routeRequests(r, spec, PER_ROUTE)) jobs.push({ req, route: spec.name, abandon: null });
  for (const req of urlRequests(r, PER_ROUTE, responseId)) jobs.push({ req, route: 'url', abandon: null });
  for (const { req, route } of catalogue(r)) jobs.push({ req, route, abandon: null });
  // continue the stored response with fuzzed bodies too
  for (const req of routeRequests(r, { ...ROUTES.find((x) => x.name === 'responses')!, seed: () => ({ ...responsesSeed(), previous_response_id: responseId }) }, 10)) {
    jobs.push({ req, route: 'responses+previous', abandon: null });
  }
  // Shuffled (deterministically), so routes interleave; some requests are abandoned by the client mid-flight.
  for (let i = jobs.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [jobs[i], jobs[j]] = [jobs[j]!, jobs[i]!];
  }
  for (const job of jobs) if (r.chance(ABANDON_RATE)) job.abandon = r.int(150);

  const failures: Failure[] = [];
  const started = Date.now();
  await pool(jobs, CONCURRENCY, async (job) => {
    if (job.abandon !== null) return abandon(job.req, job.abandon);
    const f = await send(job.req, job.route);
    if (f) failures.push(f);
  });
  const elapsed = Date.now() - started;

  const st = await settled(15_000);
  const health = { status: await getStatus(server.url, '/health') };
  const normal = await post('/generate', { inputs: 'The shard batches adapters', parameters: { max_new_tokens: 4 } });
  const withAdapter = await post('/v1/chat/completions', { model: 'style', adapter_source: 'local', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 });
  const after = await settled(10_000);
  const errors = logs.errors();

  const report = [
    `${jobs.length} requests in ${(elapsed / 1000).toFixed(1)} s; ${failures.length} failed:`,
    ...failures.map((f) => `- ${f.route} (${f.label}): ${f.problem}\n    body: ${f.body}\n    answer: ${f.answer}`),
    `stats after: ${JSON.stringify(st)}`,
    `shard restarts: ${server.supervisor.restartCount}`,
    `error log lines (${errors.length}), by kind:`, ...summarise(errors).map((l) => `  ${l}`),
  ].join('\n');
  assert.equal(health.status, 200, `GET /health after the fuzz\n${report}`);
  assert.equal(normal.status, 200, `an ordinary /generate after the fuzz: ${normal.text}\n${report}`);
  assert.equal(withAdapter.status, 200, `a chat completion with the adapter after the fuzz: ${withAdapter.text}\n${report}`);
  assert.equal(server.supervisor.restartCount, 0, `no shard may have died\n${report}`);
  assert.equal(st.usedBlocks, 0, `KV blocks still held after the fuzz\n${report}`);
  assert.equal(st.adapterRefs, 0, `adapter references still held after the fuzz\n${report}`);
  assert.equal(st.running + st.waiting, 0, `requests still running or waiting after the fuzz\n${report}`);
  assert.equal(after.usedBlocks + after.adapterRefs, 0, `blocks or adapter refs held after the final requests\n${report}`);
  assert.deepEqual(failures.map((f) => `${f.route}: ${f.problem}`), [], report);
  assert.deepEqual(errors.map((l) => clip(l, 300)), [], `the server logged errors\n${report}`);
});

// --- the minimised failures ----------------------------------------------------------------------------------

/** A JSON text nesting `open` … `close` `depth` times around `leaf`. */
const nest = (open: string, leaf: string, close: string, depth: number) => raw(open.repeat(depth) + leaf + close.repeat(depth));
const arraysNested = (depth: number) => nest('{"type":"array","items":', '{}', '}', depth);
/** A GBNF grammar whose rules call one another in a chain `n` long. */
const ruleChain = (n: number) => `root ::= r0\n${Array.from({ length: n }, (_, i) => `r${i} ::= r${i + 1}`).join('\n')}\nr${n} ::= "z"`;
const hi = [{ role: 'user', content: 'Hi' }];

interface KnownCase {
  name: string;
  path: string;
  body: unknown;
  /** Where it went wrong when the fuzzer found it (for the report; the assertions do not read it). */
  where: string;
  /** Run a streamed generation beside it, in the same steps: it must finish unharmed. */
  bystander?: boolean;
  /** The answer must come within this many ms, and a /tokenize sent meanwhile within 500 ms. */
  withinMs?: number;
}

/** The requests this fuzzer found breaking the server (fixed since), each minimised (see the file header). */
const KNOWN: KnownCase[] = [
  { name: 'top_k above 2^53 on /generate (was: 500, and every request in the same step fails with it)', path: '/generate', bystander: true,
    body: { inputs: 'The shard', parameters: { max_new_tokens: 2, top_k: 9007199254740992 } },
    where: 'validate.ts samplingParams takes any integer top_k; the coordinator\'s own step message then fails to encode (protocol/validate.ts sampling.topK: safe integers) and engine.ts complete() takes that for a lost shard group: failAll, every request in flight gets a 500 shard_lost' },
  { name: 'top_k 1e21 on /v1/completions (was: 500, bystanders fail)', path: '/v1/completions', bystander: true,
    body: { prompt: 'The shard', max_tokens: 2, top_k: 1e21 }, where: 'openai-validate.ts samplingParams (same as above)' },
  { name: 'temperature 1e-45 on /generate (was: NaN log-prob, the whole step fails (424 for every request in it))', path: '/generate', bystander: true,
    body: { inputs: 'The shard', parameters: { max_new_tokens: 2, temperature: 1e-45 } },
    where: 'validate.ts samplingParams accepts any temperature > 0; in float32 the sampled log-prob is NaN; shard/actor.ts onStep publishes the step.result inside the step\'s try, so its encoding failure (protocol/codec.ts encode -> validate.ts logprob) counts as a failed step: runner.reset() drops every sequence of the batch, and the next step fails again ("running sequence … is unknown on rank 0")' },
  { name: 'temperature 1e-45 on /v1/chat/completions (was: the same)', path: '/v1/chat/completions', bystander: true,
    body: { messages: hi, max_tokens: 2, temperature: 1e-45 }, where: 'openai-validate.ts samplingParams (temperature in [0, 2])' },
  { name: 'repetition_penalty 1e-45 (was: the same)', path: '/generate', bystander: true,
    body: { inputs: 'The shard', parameters: { max_new_tokens: 2, repetition_penalty: 1e-45 } },
    where: 'validate.ts samplingParams (repetition_penalty > 0): 1e-45 is 0 or denormal in float32' },
  { name: 'merged_adapters weights 1e308 (was: the same)', path: '/generate', bystander: true,
    body: { inputs: 'The shard', parameters: { max_new_tokens: 2, merged_adapters: { ids: ['style', 'style2'], weights: [1e308, 1e308] } } },
    where: 'validate.ts mergeSpec accepts any finite weight; the merged LoRA overflows float32 (inf, then NaN logits)' },
  { name: 'guided_json of arrays nested 20 deep (was: 500 (Invalid string length))', path: '/v1/completions',
    body: { prompt: 'x', max_tokens: 1, guided_json: arraysNested(20) },
    where: 'coordinator/constraints/json-schema.ts listOf/arrayOf: the pattern doubles per level and is built before the 1,000,000-character limit is checked' },
  { name: 'tool parameters with arrays nested 20 deep (was: 500)', path: '/v1/chat/completions',
    body: { messages: hi, max_tokens: 1, tool_choice: 'required', tools: [{ type: 'function', function: { name: 'f',
      parameters: { type: 'object', properties: { a: arraysNested(20) } } } }] },
    where: 'openai-tools.ts callPattern -> jsonSchemaRegex (same growth; only ConstraintError is mapped to 422)' },
  { name: 'response_format schema of anyOf nested 2000 deep (was: 500 (stack overflow))', path: '/v1/chat/completions',
    body: { messages: hi, max_tokens: 1, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: nest('{"anyOf":[', '{"type":"integer"}', ']}', 2000) } } },
    where: 'json-schema.ts SchemaCompiler.value recurses per level; RangeError is not a ConstraintError (structured-output.ts schemaPattern rethrows it)' },
  { name: 'grammar.json of arrays nested 3000 deep on /generate (was: 500 (stack overflow))', path: '/generate',
    body: { inputs: 'x', parameters: { max_new_tokens: 1, grammar: { type: 'json', value: nest('{"type":"array","items":', '{"type":"integer"}', '}', 3000) } } },
    where: 'json-schema.ts SchemaCompiler.value / typed' },
  { name: 'guided_regex of 20000 nested groups (was: 500)', path: '/v1/completions',
    body: { prompt: 'x', max_tokens: 1, guided_regex: `${'('.repeat(20_000)}a${')'.repeat(20_000)}` },
    where: 'tokenizer-worker.ts checkConstraint: compileConstraint (protocol/constraint/regex.ts) overflows the stack; only ConstraintError becomes a 422' },
  { name: 'GBNF grammar of 20000 nested groups (was: 500)', path: '/generate',
    body: { inputs: 'x', parameters: { max_new_tokens: 1, grammar: { type: 'grammar', value: `root ::= ${'('.repeat(20_000)}"a"${')'.repeat(20_000)}` } } },
    where: 'protocol/constraint/gbnf.ts (recursive descent), via tokenizer-worker.ts checkConstraint' },
  { name: 'guided_regex of 8000 nested groups (was: passes the coordinator, overflows the shard; the step fails for every request in it)', path: '/v1/completions',
    bystander: true, body: { prompt: 'x', max_tokens: 1, guided_regex: `${'('.repeat(8000)}a${')'.repeat(8000)}` },
    where: 'the shard compiles the constraint with less stack than the coordinator\'s tokenizer worker checked it with ("new sequence …: Maximum call stack size exceeded")' },
  { name: 'GBNF chain of 5000 rules (was: the same on the shard)', path: '/v1/completions', bystander: true,
    body: { prompt: 'x', max_tokens: 1, guided_grammar: ruleChain(5000) }, where: 'protocol/constraint/grammar.ts on the shard' },
  { name: 'GBNF chain of 8000 rules (134 KB) (was: seconds of a tokenizer worker, tokenizing stalls for everyone)', path: '/v1/completions', withinMs: 2000,
    body: { prompt: 'x', max_tokens: 1, guided_grammar: ruleChain(8000) },
    where: 'compileConstraint in tokenizer-worker.ts is quadratic in the rule chain (3 s at 8000 rules, 13 s at 20000, > 60 s at 50000 — 1 MB, under the body limit)' },
  { name: '/v1/responses metadata nested 10000 deep (was: 500 when the answer is serialised (and the response is stored))', path: '/v1/responses',
    body: { input: 'x', max_output_tokens: 1, metadata: nest('{"a":', '1', '}', 10_000) },
    where: 'responses-api-request.ts takes any object as metadata and echoes it; fastify reply serialisation (JSON.stringify) overflows the stack' },
  { name: 'an assistant tool call whose arguments nest 10000 deep (was: 500)', path: '/v1/chat/completions',
    body: { messages: [{ role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000) } }] }, ...hi], max_tokens: 1 },
    where: 'openai-tools.ts functionCallAt parses the arguments, callText re-stringifies them (RangeError)' },
];

/** One streamed generation (120 tokens); `started` once its first token is out. */
function streamOnce(url: string, started: () => void): Promise<{ status: number; text: string }> {
  return call(url, { method: 'POST', path: '/generate_stream', headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ inputs: 'The shard batches adapters', parameters: { max_new_tokens: 120, ignore_eos_token: true } }) },
  REQUEST_TIMEOUT_MS, (text) => { if (text.includes('data:')) started(); }).then((a) => a, (e: Error) => ({ status: 0, text: `no answer: ${e.message}` }));
}

/**
 * Ordinary streamed generations, one after another until `stop()` says the request under test has its answer, so
 * that one of them shares its steps: what is wrong with any of them (none may fail because of someone else's request).
 */
function bystanders(url: string, stop: () => boolean): { started: Promise<void>; problems: Promise<string[]> } {
  let started!: () => void;
  const startedP = new Promise<void>((r) => { started = r; });
  const problems = (async () => {
    const out: string[] = [];
    do {
      const b = await streamOnce(url, started);
      started();
      const p = problemWith(b.status, 'text/event-stream', b.text) ??
        (/"error"/.test(b.text) ? `a request beside it failed: ${clip(b.text.slice(Math.max(0, b.text.indexOf('"error"') - 2)), 300)}`
          : b.status === 200 ? null : `status ${b.status}: ${clip(b.text, 300)}`);
      if (p) out.push(p);
    } while (!stop());
    return out;
  })();
  return { started: startedP, problems };
}

/** An ordinary request right after: it must be answered (200) within `ms` (a wedged shard group answers nothing). */
async function followUp(url: string, ms = 5_000): Promise<string | null> {
  try {
    const a = await postTo(url, '/generate', { inputs: 'The shard', parameters: { max_new_tokens: 2 } }, ms);
    return a.status === 200 ? null : `an ordinary request afterwards: ${a.status} ${clip(a.text, 300)}`;
  } catch (e) {
    return `an ordinary request afterwards got no answer within ${ms} ms (${(e as Error).message})`;
  }
}

/** Error-level log lines written since `from` (after a moment for the shards' lines to arrive). */
async function newErrors(from: number): Promise<string[]> {
  await new Promise((r) => setTimeout(r, 300));
  return logs.lines.slice(from).filter((l) => /"level":\s*"(error|fatal)"/.test(l)).map((l) => clip(l, 400));
}

test('minimised failures: each answered with a 4xx, nothing beside it harmed, nothing logged as an error', { timeout: 180_000 }, async (t) => {
  for (const k of KNOWN) {
    await t.test(k.name, async () => {
      await settled(5_000);
      const from = logs.lines.length;
      let answered = false;
      const side = k.bystander ? bystanders(server.url, () => answered) : null;
      if (side) await side.started;
      const t0 = Date.now();
      const answer = post(k.path, k.body).then((a) => ({ ...a, ms: Date.now() - t0 }), (e: Error) => ({ status: 0, text: `no answer: ${e.message}`, ms: Date.now() - t0 }))
        .finally(() => { answered = true; });
      const tokenize = k.withinMs !== undefined
        ? new Promise((r) => setTimeout(r, 200)).then(async () => { const t1 = Date.now(); await post('/tokenize', { inputs: 'abc' }); return Date.now() - t1; })
        : null;
      const a = await answer;
      const problems: string[] = [];
      if (a.status === 0) problems.push(a.text);
      const p = problemWith(a.status, a.status >= 400 ? 'application/json' : '', a.text);
      if (p) problems.push(`${p}: ${clip(a.text, 300)}`);
      if (k.withinMs !== undefined && a.ms > k.withinMs) problems.push(`answered after ${a.ms} ms (limit ${k.withinMs})`);
      if (tokenize) {
        const ms = await tokenize;
        if (ms > 500) problems.push(`a /tokenize sent meanwhile took ${ms} ms`);
      }
      if (side) for (const bp of await side.problems) problems.push(`bystander: ${bp}`);
      const after = await followUp(server.url);
      if (after) problems.push(after);
      const errors = await newErrors(from);
      if (errors.length > 0) problems.push(`error log lines:\n${errors.join('\n')}`);
      assert.deepEqual(problems, [], `${k.path} ${clip(encode(k.body), 300)}\nwhere: ${k.where}`);
    });
  }
});

test('a client that goes away is not a server error: no 5xx logged when a stream or an embedding is abandoned', { timeout: 60_000 }, async (t) => {
  // The client leaves after 0 to 19 ms, at every stage of the request, twice over.
  const cases: [string, string, unknown][] = [
    ['/generate_stream abandoned mid-stream', '/generate_stream', { inputs: 'The shard', parameters: { max_new_tokens: 40 } }],
    ['/v1/completions stream abandoned mid-stream', '/v1/completions', { prompt: 'The shard', max_tokens: 40, stream: true }],
    ['/v1/embeddings abandoned before the answer', '/v1/embeddings', { input: ['a b c', 'd e f'] }],
    ['/score abandoned before the answer', '/score', { text_1: 'a b c', text_2: ['d e f', 'g h i'] }],
  ];
  for (const [name, path, body] of cases) {
    await t.test(name, async () => {
      await settled(5_000);
      const from = logs.lines.length;
      for (let i = 0; i < 40; i++) await abandon(jsonRequest(path, body, name), i % 20);
      await settled(5_000);
      assert.deepEqual(await newErrors(from), []);
    });
  }
});

test('valid requests once refused with a misleading 4xx are answered', { timeout: 60_000 }, async (t) => {
  await t.test('beam search whose prompt + beam outgrows --max-input-length but not --max-total-tokens (was: 422 after all the work)', async () => {
    // 2 prompt tokens + 230 new = 232 <= --max-total-tokens 256; each beam step's request is prompt + beam so far,
    // checked against --max-input-length 200 (openai-routes.ts beamAnswer -> beam-search.ts stepRequest -> engine checkLengths).
    const r = await post('/v1/completions', { prompt: 'The shard', max_tokens: 230, use_beam_search: true, n: 2, ignore_eos: true });
    assert.equal(r.status, 200, r.text);
  });
  await t.test('/v1/embeddings with 129 inputs (documented limit 2048) on an idle server (was: 429 "overloaded")', async () => {
    // embeddings-routes.ts MAX_EMBEDDING_INPUTS 2048, but each input is one engine request against --max-concurrent-requests 128
    await settled(5_000);
    const r = await post('/v1/embeddings', { input: new Array(129).fill('a') });
    assert.equal(r.status, 200, r.text);
  });
});

test('two shards: a request that breaks one rank\'s sampling must not put the ranks out of step', { timeout: 120_000 }, async (t) => {
  const cacheDir = mkdtempSync(join(tmpdir(), 'weft-http-fuzz-tp-'));
  const two = await launch(parseArgs('launch', ['--port', '0', '--hostname', '127.0.0.1', '--log-level', 'warn', '--cluster', `fuzz2x${process.pid}`,
    '--num-shard', '2', '--max-input-length', '200', '--max-total-tokens', '256', '--shard-heartbeat-ms', '200', '--shard-timeout-ms', '5000',
    '--step-timeout-ms', '10000'], {}), { cacheDir, logs });
  try {
    const cases: [string, unknown, string][] = [
      ['top_k 2^53 (was: 500; the step message was refused by both ranks alike)', { inputs: 'The shard', parameters: { max_new_tokens: 2, top_k: 2 ** 53 } },
        'as on one shard'],
      ['temperature 1e-45 (was: rank 0 dropped the step on a NaN log-prob, rank 1 ran the next one and waited at the collective: every request ' +
        'hung until the step timeout, then the group restarted)', { inputs: 'The shard', parameters: { max_new_tokens: 2, temperature: 1e-45 } },
        'only rank 0 returns outputs (step-runner.ts), so only its step.result fails to encode; shard/actor.ts onStep resets rank 0 alone, the next step fails on rank 0 before any collective while rank 1 waits in one (120 s collective timeout, then exit 70 and a group restart)'],
    ];
    for (const [name, body, where] of cases) {
      await t.test(name, async () => {
        for (const deadline = Date.now() + 30_000; Date.now() < deadline && (await getStatus(two.url, '/health')) !== 200;) {
          await new Promise((r) => setTimeout(r, 200));
        }
        const restarts = two.supervisor.restartCount;
        const from = logs.lines.length;
        let answered = false;
        const side = bystanders(two.url, () => answered);
        await side.started;
        const a = await postTo(two.url, '/generate', body).catch((e: Error) => ({ status: 0, text: `no answer: ${e.message}` })).finally(() => { answered = true; });
        const problems: string[] = [];
        const p = a.status === 0 ? a.text : problemWith(a.status, 'application/json', a.text);
        if (p) problems.push(`${p}: ${clip(a.text, 300)}`);
        for (const bp of await side.problems) problems.push(`bystander: ${bp}`);
        const after = await followUp(two.url);
        if (after) problems.push(after);
        const health = await getStatus(two.url, '/health');
        if (health !== 200) problems.push(`/health ${health} afterwards`);
        if (two.supervisor.restartCount !== restarts) problems.push('the shard group restarted');
        const errors = await newErrors(from);
        if (errors.length > 0) problems.push(`error log lines:\n${errors.slice(0, 6).join('\n')}`);
        assert.deepEqual(problems, [], `/generate ${encode(body)}\nwhere: ${where}`);
      });
    }
  } finally {
    await two.close();
  }
});
