import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import {
  createLogger, extractTraceContext, initTracing, injectTraceHeaders, otlpTracesUrl, redactSecrets, withSpan,
} from '../../coordinator/telemetry/index.js';

function capture(): { lines: string[]; stream: { write(s: string): void } } {
  const lines: string[] = [];
  return { lines, stream: { write: (s: string) => { lines.push(s); } } };
}

test('a token logged in many places never reaches the output', () => {
  const TOKEN = 'hf_VerySecret123';
  const out = capture();
  const log = createLogger({ level: 'info', name: 'coordinator', destination: out.stream, secrets: [TOKEN] });
  log.info({ apiToken: TOKEN, api_token: TOKEN }, 'top level fields');
  log.info({ parameters: { api_token: TOKEN, adapter_id: 'a' } }, 'nested request parameters');
  log.info({ req: { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, host: 'x' } } }, 'request');
  log.info({ config: { adminToken: TOKEN, env: { hfToken: TOKEN } } }, 'effective config');
  log.info(`downloading with token ${TOKEN}`);
  log.error(new Error(`hub said 401 for token=${TOKEN}`), 'adapter load failed');
  log.error({ err: new Error(`quoted "${TOKEN}"`) }, 'wrapped');
  log.child({ token: TOKEN, adapter: 'a' }).warn('child bindings');
  log.info({ note: 'x' }, 'Authorization: Bearer some-other-token');

  assert.equal(out.lines.length, 9);
  const text = out.lines.join('');
  assert.ok(!text.includes(TOKEN), text);
  assert.ok(!text.includes('some-other-token'));
  const first = JSON.parse(out.lines[0]) as Record<string, unknown>;
  assert.equal(first.apiToken, '***');
  assert.equal(first.name, 'coordinator');
  assert.equal(first.level, 'info');
  assert.match(String(first.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  const request = JSON.parse(out.lines[2]) as { req: { headers: Record<string, string> } };
  assert.equal(request.req.headers.authorization, '***');
  assert.equal(request.req.headers.host, 'x', 'other fields stay');
  const err = JSON.parse(out.lines[5]) as { err: { message: string; type: string } };
  assert.equal(err.err.message, 'hub said 401 for token=***');
});

test('field paths are redacted even when the logger knows no secret values', () => {
  const out = capture();
  const log = createLogger({ level: 'debug', name: 'shard-3', destination: out.stream });
  log.debug({ apiToken: 'tok-A', parameters: { api_token: 'tok-B' }, req: { headers: { authorization: 'Bearer tok-C' } },
    cfg: { env: { hfToken: 'tok-D' } }, adminToken: 'tok-E' }, 'x');
  assert.doesNotMatch(out.lines.join(''), /tok-[A-E]/);
  assert.equal((JSON.parse(out.lines[0]) as { name: string }).name, 'shard-3');
});

test('redactSecrets masks each secret, longest first, and bearer credentials', () => {
  assert.equal(redactSecrets('a=abc123 b=abc123456', ['abc123', 'abc123456']), 'a=*** b=***');
  assert.equal(redactSecrets('nothing here', ['', 'zzz']), 'nothing here');
  assert.equal(redactSecrets('{"msg":"tok \\"q\\""}', ['tok "q"']), '{"msg":"***"}');
  assert.equal(redactSecrets('header Bearer eyJhbGc.x-y_z', []), 'header Bearer ***');
});

test('trace context crosses a process boundary through message headers', async () => {
  // "process" A: the coordinator publishes a step inside its span
  const exporterA = new InMemorySpanExporter();
  const a = initTracing({ serviceName: 'weft-coordinator', exporter: exporterA });
  let wire = '';
  await withSpan('coordinator.step', { 'weft.step_id': 7 }, async () => {
    wire = JSON.stringify(injectTraceHeaders());
  });
  const [sent] = exporterA.getFinishedSpans(); // (shutdown empties an InMemorySpanExporter)
  await a.shutdown();

  // "process" B: a shard receives the headers and works in a child span
  const exporterB = new InMemorySpanExporter();
  const b = initTracing({ serviceName: 'weft-shard-0', exporter: exporterB });
  const headers = JSON.parse(wire) as Record<string, string>;
  assert.match(headers.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  const parent = extractTraceContext({ TraceParent: headers.traceparent });
  await withSpan('shard.step', { 'weft.rank': 0 }, async () => {
    await withSpan('shard.forward', {}, async () => undefined);
  }, parent);
  const received = exporterB.getFinishedSpans();
  await b.shutdown();

  assert.equal(received.length, 2);
  const step = received.find((s) => s.name === 'shard.step')!;
  const forward = received.find((s) => s.name === 'shard.forward')!;
  assert.equal(step.spanContext().traceId, sent.spanContext().traceId);
  assert.equal(step.parentSpanContext?.spanId, sent.spanContext().spanId);
  assert.equal(step.parentSpanContext?.isRemote, true);
  assert.equal(forward.parentSpanContext?.spanId, step.spanContext().spanId, 'nested spans use the active context');
  assert.equal(step.attributes['weft.rank'], 0);
  assert.equal(sent.resource.attributes['service.name'], 'weft-coordinator');
  assert.equal(step.resource.attributes['service.name'], 'weft-shard-0');
});

test('withSpan records a failure and rethrows it', async () => {
  const exporter = new InMemorySpanExporter();
  const t = initTracing({ serviceName: 'test', exporter });
  await assert.rejects(withSpan('failing', {}, async () => { throw new Error('boom'); }), /boom/);
  const value = await withSpan('ok', {}, async (span) => {
    span.setAttribute('k', 'v');
    return 42;
  });
  assert.equal(value, 42);
  const [failed, ok] = exporter.getFinishedSpans();
  await t.shutdown();
  assert.equal(failed.status.code, SpanStatusCode.ERROR);
  assert.equal(failed.status.message, 'boom');
  assert.equal(failed.events[0]?.name, 'exception');
  assert.equal(ok.status.code, SpanStatusCode.UNSET);
  assert.equal(ok.attributes.k, 'v');
  assert.equal(ok.kind, SpanKind.INTERNAL);
});

test('without an exporter nothing is recorded, but trace context still passes through', async () => {
  const t = initTracing({ serviceName: 'quiet' });
  assert.throws(() => initTracing({ serviceName: 'twice' }), /already set up/);
  const incoming = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tracestate: 'vendor=x' };
  const out = await withSpan('noop', {}, async (span) => {
    assert.equal(span.isRecording(), false);
    return injectTraceHeaders();
  }, extractTraceContext(incoming));
  assert.deepEqual(out, incoming);
  assert.deepEqual(injectTraceHeaders(), {}, 'no active span outside withSpan');
  await t.shutdown();
  await t.shutdown();
  assert.equal(trace.getSpan(context.active()), undefined);
});

test('the OTLP exporter POSTs spans to <endpoint>/v1/traces', async () => {
  const requests: { method: string; url: string; type: string; body: string }[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', type: String(req.headers['content-type']),
        body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const t = initTracing({ serviceName: 'weft-otlp-test', otlpEndpoint: `http://127.0.0.1:${port}/` });
    await withSpan('exported.span', { 'weft.adapter': 'sql' }, async () => undefined);
    await t.shutdown(); // flushes the batch processor
    assert.equal(requests.length, 1);
    const [r] = requests;
    assert.equal(r.method, 'POST');
    assert.equal(r.url, '/v1/traces');
    assert.match(r.type, /^application\/json/);
    assert.match(r.body, /"exported\.span"/);
    assert.match(r.body, /"weft-otlp-test"/);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  assert.equal(otlpTracesUrl('http://c:4318'), 'http://c:4318/v1/traces');
  assert.equal(otlpTracesUrl('http://c:4318/v1/traces/'), 'http://c:4318/v1/traces');
});
