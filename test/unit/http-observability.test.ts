// Metrics exposition, log redaction, OpenTelemetry spans (and their context reaching the engine), and
// client disconnect → engine abort over a real socket.
import assert from 'node:assert/strict';
import { AsyncLocalStorage } from 'node:async_hooks';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import {
  ROOT_CONTEXT,
  SpanStatusCode,
  context,
  trace,
  type Context,
  type ContextManager,
  type Span,
  type SpanAttributeValue,
  type SpanContext,
  type SpanOptions,
  type SpanStatus,
  type Tracer,
} from '@opentelemetry/api';
import { Metrics, TRACER_NAME } from '../../coordinator/http/index.js';
import { PRIVATE_TOKEN, post, testServer, type TestServer } from './http-engine-double.test.js';

// --- a minimal in-memory OpenTelemetry SDK (the API package has no recording implementation) -------

class RecordedSpan implements Span {
  readonly attributes: Record<string, SpanAttributeValue> = {};
  status: SpanStatus = { code: SpanStatusCode.UNSET };
  ended = false;
  private readonly ctx: SpanContext;
  constructor(public name: string, readonly tracerName: string, options: SpanOptions | undefined, readonly parent: Span | undefined, n: number) {
    this.ctx = { traceId: 'a'.repeat(32), spanId: n.toString(16).padStart(16, '0'), traceFlags: 1 };
    Object.assign(this.attributes, options?.attributes ?? {});
  }
  spanContext(): SpanContext { return this.ctx; }
  setAttribute(key: string, value: SpanAttributeValue): this { this.attributes[key] = value; return this; }
  setAttributes(attrs: Record<string, SpanAttributeValue>): this { Object.assign(this.attributes, attrs); return this; }
  addEvent(): this { return this; }
  addLink(): this { return this; }
  addLinks(): this { return this; }
  setStatus(status: SpanStatus): this { this.status = status; return this; }
  updateName(name: string): this { this.name = name; return this; }
  end(): void { this.ended = true; }
  isRecording(): boolean { return !this.ended; }
  recordException(): void {}
}

const spans: RecordedSpan[] = [];

function recordingTracer(tracerName: string): Tracer {
  const startSpan = (name: string, options?: SpanOptions, ctx?: Context): Span => {
    const span = new RecordedSpan(name, tracerName, options, trace.getSpan(ctx ?? context.active()), spans.length + 1);
    spans.push(span);
    return span;
  };
  const startActiveSpan = (name: string, ...rest: unknown[]): unknown => {
    const fn = rest.pop() as (span: Span) => unknown;
    const span = startSpan(name, rest[0] as SpanOptions | undefined);
    return context.with(trace.setSpan(context.active(), span), () => fn(span));
  };
  return { startSpan, startActiveSpan } as Tracer;
}

class AlsContextManager implements ContextManager {
  private readonly als = new AsyncLocalStorage<Context>();
  active(): Context { return this.als.getStore() ?? ROOT_CONTEXT; }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    return this.als.run(ctx, () => fn.apply(thisArg, args));
  }
  bind<T>(_ctx: Context, target: T): T { return target; }
  enable(): this { return this; }
  disable(): this { this.als.disable(); return this; }
}

context.setGlobalContextManager(new AlsContextManager());
trace.setGlobalTracerProvider({ getTracer: (name: string) => recordingTracer(name) });

let s: TestServer;
before(async () => { s = await testServer(); });
after(async () => { await s.app.close(); });

const serverSpans = (name: string) => spans.filter((sp) => sp.tracerName === TRACER_NAME && sp.name === name);

describe('tracing', () => {
  test('one server span per request, ended, with route, status and adapter — never the token', async () => {
    await post(s.app, '/generate', { inputs: 'a', parameters: { max_new_tokens: 1, adapter_id: 'private', api_token: PRIVATE_TOKEN } },
      { 'x-request-id': 'trace-1' });
    const span = serverSpans('POST /generate').find((sp) => sp.attributes['weft.request_id'] === 'trace-1');
    assert.ok(span, 'span recorded');
    assert.equal(span.ended, true);
    assert.equal(span.attributes['http.route'], '/generate');
    assert.equal(span.attributes['http.request.method'], 'POST');
    assert.equal(span.attributes['http.response.status_code'], 200);
    assert.equal(span.attributes['weft.adapter_id'], 'private');
    assert.equal(span.attributes['weft.finish_reason'], 'length');
    assert.ok(!JSON.stringify(span.attributes).includes(PRIVATE_TOKEN));
  });

  test('the span is active while engine.generate runs, so engine spans become its children', async () => {
    await post(s.app, '/generate_stream', { inputs: 'a', parameters: { max_new_tokens: 2 } }, { 'x-request-id': 'trace-2' });
    const span = serverSpans('POST /generate_stream').find((sp) => sp.attributes['weft.request_id'] === 'trace-2');
    assert.ok(span);
    assert.equal(s.engine.activeSpans.get('trace-2'), span);
  });

  test('5xx responses mark the span as an error; unmatched routes share one name', async () => {
    const original = s.engine.tokenize;
    s.engine.tokenize = async () => { throw new Error('boom'); };
    try {
      await post(s.app, '/tokenize', { inputs: 'a' }, { 'x-request-id': 'trace-3' });
    } finally {
      s.engine.tokenize = original;
    }
    const span = serverSpans('POST /tokenize').find((sp) => sp.attributes['weft.request_id'] === 'trace-3');
    assert.equal(span?.status.code, SpanStatusCode.ERROR);
    await s.app.inject({ method: 'GET', url: '/no/such/route' });
    assert.ok(serverSpans('GET unmatched').length >= 1);
  });
});

describe('metrics', () => {
  test('request counters by route/status, duration histogram, gauges read from engine.stats()', async () => {
    await post(s.app, '/generate', { inputs: 'a', parameters: { max_new_tokens: 1 } });
    await post(s.app, '/generate', { inputs: '' });
    await s.app.inject({ method: 'GET', url: '/nowhere' });
    const res = await s.app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const text = res.body;
    assert.match(text, /^weft_requests_total\{route="\/generate",status="200"\} \d+$/m);
    assert.match(text, /^weft_requests_total\{route="\/generate",status="422"\} \d+$/m);
    assert.match(text, /^weft_requests_total\{route="unmatched",status="404"\} \d+$/m);
    assert.match(text, /^weft_request_duration_seconds_bucket\{le="\+Inf",route="\/generate"\} \d+$/m);
    assert.match(text, /^weft_queue_waiting 1$/m);
    assert.match(text, /^weft_running_sequences 0$/m);
    assert.match(text, /^weft_kv_blocks_used 5$/m);
    assert.match(text, /^weft_kv_blocks_free 27$/m);
    assert.match(text, /^weft_adapters_loaded 2$/m);
    for (const name of ['weft_batch_size', 'weft_step_duration_seconds', 'weft_generated_tokens_total',
      'weft_prompt_tokens_total', 'weft_adapter_loads_total']) {
      assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'));
    }
  });

  test('the engine observer feeds step, batch, token and adapter-load metrics', async () => {
    const observer = s.metrics.engineObserver();
    observer.step(12, 4, 10, 3);
    observer.tokens(7, 0);
    observer.tokens(0, 1);
    observer.adapterLoad('failed');
    observer.adapterLoad('ok', { readMs: 130, installMs: 4 });
    observer.adapterLoad('ok');  // a loader that does not time its loads: counted, not observed
    const text = await s.metrics.expose();
    assert.match(text, /^weft_step_duration_seconds_count 1$/m);
    assert.match(text, /^weft_step_duration_seconds_sum 0\.012$/m);
    assert.match(text, /^weft_batch_size_sum 4$/m);
    assert.match(text, /^weft_prompt_tokens_total 7$/m);
    assert.match(text, /^weft_generated_tokens_total 1$/m);
    assert.match(text, /^weft_adapter_loads_total\{result="failed"\} 1$/m);
    assert.match(text, /^weft_adapter_loads_total\{result="ok"\} 2$/m);
    assert.match(text, /^weft_adapter_load_seconds_count\{phase="read"\} 1$/m);
    assert.match(text, /^weft_adapter_load_seconds_sum\{phase="read"\} 0\.13$/m);
    assert.match(text, /^weft_adapter_load_seconds_bucket\{le="0\.005",phase="install"\} 1$/m);
    assert.match(text, /^weft_adapter_load_seconds_bucket\{le="0\.0025",phase="install"\} 0$/m);
  });

  test('the engine observer feeds per-request latency, finish and length metrics', async () => {
    const observer = s.metrics.engineObserver();
    observer.firstToken(0.2);
    observer.interToken(0.012);
    observer.interToken(0.03);
    observer.finished('length', 3);
    observer.finished('cancelled', 0);
    observer.finished('length', 40);
    const text = await s.metrics.expose();
    assert.match(text, /^weft_time_to_first_token_seconds_count 1$/m);
    assert.match(text, /^weft_time_to_first_token_seconds_bucket\{le="0\.25"\} 1$/m);
    assert.match(text, /^weft_time_to_first_token_seconds_bucket\{le="0\.1"\} 0$/m);
    assert.match(text, /^weft_time_per_output_token_seconds_count 2$/m);
    assert.match(text, /^weft_time_per_output_token_seconds_bucket\{le="0\.015"\} 1$/m);
    assert.ok(Math.abs(Number(/^weft_time_per_output_token_seconds_sum (\S+)$/m.exec(text)?.[1]) - 0.042) < 1e-12);
    assert.match(text, /^weft_requests_finished_total\{reason="length"\} 2$/m);
    assert.match(text, /^weft_requests_finished_total\{reason="cancelled"\} 1$/m);
    assert.match(text, /^weft_request_generated_tokens_sum 43$/m);
    assert.match(text, /^weft_request_generated_tokens_bucket\{le="2"\} 1$/m);
  });

  test('weft_preemptions_total follows the scheduler\'s cumulative count, and survives its restart', async () => {
    let preemptions = 2;
    const engine = { stats: () => ({ ...s.engine.stats(), preemptions }) };
    const m = new Metrics({ engine });
    const read = async () => Number(/^weft_preemptions_total (\d+)$/m.exec(await m.expose())?.[1]);
    assert.equal(await read(), 2);
    preemptions = 5;
    assert.equal(await read(), 5);
    preemptions = 0; // the step loop made a new scheduler
    assert.equal(await read(), 5);
    preemptions = 1;
    assert.equal(await read(), 6);
  });

  test('a scrape still succeeds when engine.stats() throws', async () => {
    const original = s.engine.stats;
    s.engine.stats = () => { throw new Error('shutting down'); };
    try {
      assert.equal((await s.app.inject({ method: 'GET', url: '/metrics' })).statusCode, 200);
    } finally {
      s.engine.stats = original;
    }
  });
});

describe('log redaction', () => {
  test('api tokens never appear in any log line, whatever the outcome', async () => {
    const bearer = 'hf_BEARER_secret_777';
    await post(s.app, '/generate', { inputs: 'a', parameters: { adapter_id: 'private', api_token: PRIVATE_TOKEN, max_new_tokens: 1 } });
    await post(s.app, '/generate', { inputs: 'leak', parameters: { adapter_id: 'private' } }, { authorization: `Bearer ${bearer}` });
    await post(s.app, '/generate', { inputs: 'a', parameters: { api_token: bearer, bogus: 1 } }, { authorization: `Bearer ${bearer}` });
    await post(s.app, '/generate_stream', { inputs: 'a', parameters: { adapter_id: 'flaky', api_token: PRIVATE_TOKEN, max_new_tokens: 4 } });
    // Anything that logs a request's headers or body goes through the same redaction.
    s.app.log.info({ req: { headers: { authorization: `Bearer ${bearer}` } } }, 'headers');
    s.app.log.info({ body: { parameters: { api_token: bearer } }, api_token: bearer }, 'body');
    const all = s.logs.join('');
    assert.ok(all.length > 0);
    assert.ok(!all.includes(PRIVATE_TOKEN), 'parameter token leaked into logs');
    assert.ok(!all.includes(bearer), 'bearer token leaked into logs');
    assert.match(all, /\[REDACTED\]/);
  });
});

describe('client disconnect', () => {
  let url = '';
  before(async () => { url = await s.app.listen({ port: 0, host: '127.0.0.1' }); });

  async function disconnectAfter(path: string, requestId: string, when: 'first-byte' | number): Promise<void> {
    s.engine.tokenDelayMs = 20;
    try {
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest(`${url}${path}`, {
          method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': requestId },
        }, (res) => {
          res.once('data', () => { if (when === 'first-byte') req.destroy(); });
          res.on('error', () => undefined);
        });
        req.on('error', () => undefined);
        req.on('close', () => resolve());
        req.end(JSON.stringify({ inputs: 'a', parameters: { max_new_tokens: 60 } }));
        if (typeof when === 'number') setTimeout(() => req.destroy(), when);
        setTimeout(() => reject(new Error('request did not close')), 5000);
      });
      const deadline = Date.now() + 3000;
      while (!s.engine.aborted.includes(requestId) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    } finally {
      s.engine.tokenDelayMs = 0;
    }
  }

  test('closing a stream mid-way aborts the engine request', async () => {
    await disconnectAfter('/generate_stream', 'gone-stream', 'first-byte');
    assert.ok(s.engine.aborted.includes('gone-stream'), 'engine saw the abort');
    assert.equal(s.engine.inFlight, 0);
  });

  test('closing a pending /generate aborts the engine request', async () => {
    await disconnectAfter('/generate', 'gone-plain', 100);
    assert.ok(s.engine.aborted.includes('gone-plain'), 'engine saw the abort');
    const span = serverSpans('POST /generate').find((sp) => sp.attributes['weft.request_id'] === 'gone-plain');
    assert.equal(span?.attributes['weft.client_disconnected'], true);
    assert.equal(span?.ended, true);
  });
});

describe('access log', () => {
  let s2: TestServer;
  before(async () => { s2 = await testServer(); });
  after(async () => { await s2.app.close(); });

  const completed = () => s2.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'request completed');

  test('one line per generation: adapter, tokens, finish reason, TTFT and time per token; no fastify pair', async () => {
    s2.logs.length = 0;
    s2.engine.tokenDelayMs = 5;
    try {
      const res = await post(s2.app, '/generate', { inputs: 'one two three four', parameters: { adapter_id: 'org/a', max_new_tokens: 4 } });
      assert.equal(res.statusCode, 200);
    } finally {
      s2.engine.tokenDelayMs = 0;
    }
    const lines = completed();
    assert.equal(lines.length, 1, JSON.stringify(s2.logs));
    const l = lines[0]!;
    assert.equal(l.level, 30);
    assert.equal(l.route, '/generate');
    assert.equal(l.status, 200);
    assert.equal(l.adapter, 'org/a');
    assert.equal(l.prompt_tokens, 4);
    assert.equal(l.cached_tokens, 2);
    assert.equal(l.generated_tokens, 4);
    assert.equal(l.finish_reason, 'length');
    assert.ok(typeof l.ttft_ms === 'number' && l.ttft_ms >= 4 && l.ttft_ms <= (l.ms as number), JSON.stringify(l));
    assert.ok(typeof l.tpot_ms === 'number' && l.tpot_ms >= 4, JSON.stringify(l));
    assert.ok(!s2.logs.some((x) => x.includes('incoming request')));
  });

  test('n > 1 sums its sequences; a failed stream names the error; probes log at debug only', async () => {
    s2.logs.length = 0;
    await post(s2.app, '/v1/completions', { model: '', prompt: 'a b', max_tokens: 3, n: 2 });
    await post(s2.app, '/generate_stream', { inputs: 'a', parameters: { adapter_id: 'flaky', api_token: PRIVATE_TOKEN, max_new_tokens: 4 } });
    await s2.app.inject({ method: 'GET', url: '/health' });
    const [openai, flaky, health] = completed();
    assert.equal(openai!.sequences, 2);
    assert.equal(openai!.generated_tokens, 6);
    assert.deepEqual(openai!.finish_reason, ['length', 'length']);
    assert.equal(openai!.tpot_ms, undefined, 'side-by-side sequences have no single time per token');
    assert.equal(flaky!.finish_reason, 'error:generation');
    assert.equal(flaky!.generated_tokens, 2);
    assert.equal(health!.route, '/health');
    assert.equal(health!.level, 20);
  });
});
