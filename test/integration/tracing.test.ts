// One request is one trace across processes: the coordinator's spans and every shard's step span share
// a trace id (context carried in NATS headers), exported over OTLP/HTTP to a local receiver.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { startGoldenServer, textOf } from '../helpers/golden-server.js';

interface OtlpSpan { traceId: string; name: string }

test('a request traces through the coordinator and both shards (OTLP)', async () => {
  const spans: OtlpSpan[] = [];
  const receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      try {
        const j = JSON.parse(body.toString('utf8'));
        for (const rs of j.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) for (const s of ss.spans ?? []) spans.push(s);
      } catch { /* not JSON: ignored */ }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const endpoint = `http://127.0.0.1:${(receiver.address() as { port: number }).port}`;
  const g = await startGoldenServer({ numShard: 2, otlpEndpoint: endpoint });
  try {
    const r = await g.post('/generate', { inputs: textOf([5, 6, 7]), parameters: { max_new_tokens: 2 } });
    assert.equal(r.status, 200, r.text);
  } finally {
    await g.close(); // shards flush their spans on SIGTERM
  }
  const deadline = Date.now() + 15_000;
  const hasAll = () => {
    const req = spans.find((s) => s.name === 'engine.request');
    return req && spans.filter((s) => s.name === 'shard.step' && s.traceId === req.traceId).length >= 2 ? req : null;
  };
  while (!hasAll() && Date.now() < deadline) await new Promise((res) => setTimeout(res, 200));
  receiver.close();
  const req = hasAll();
  assert.ok(req, `spans received: ${JSON.stringify(spans.map((s) => s.name))}`);
  const names = new Set(spans.filter((s) => s.traceId === req.traceId).map((s) => s.name));
  for (const n of ['POST /generate', 'engine.tokenize', 'engine.request', 'engine.queue', 'coordinator.step', 'shard.step']) assert.ok(names.has(n), `missing span ${n}: ${[...names]}`);
});
