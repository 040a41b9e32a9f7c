// Prefetch through real shards: with one adapter slot held by a running request, a request for another adapter
// waits — and meanwhile the shards read its files into their host-RAM tier (adapter.prefetch), so its load,
// once the slot frees, comes from host RAM (fromHost) instead of disk. Both answers are the ones served alone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { startGoldenServer, textOf, type GoldenServer } from '../helpers/golden-server.js';

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

const logs = new Capture();
let g: GoldenServer;

before(async () => {
  g = await startGoldenServer({ logLevel: 'debug', maxAdapterSlots: 1, maxActiveAdapters: 1 }, { logs });
});
after(async () => { await g?.close(); });

const body = (adapter: string, maxNew: number) => ({ inputs: textOf([3, 156, 429]),
  parameters: { adapter_id: adapter, max_new_tokens: maxNew, ignore_eos_token: true, details: true } });

test('an adapter waiting for the only slot is read ahead and then loads from host RAM', async () => {
  // A long request holds the slot (all_r8); once it streams, a request for qv_r4 has to wait for the slot.
  const long = await fetch(`${g.url}/generate_stream`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body('all_r8', 200)) });
  assert.equal(long.status, 200);
  const reader = long.body!.getReader();
  const first = await reader.read();
  assert.ok(!first.done, 'the long request streams');
  const waiting = g.post('/generate', body('qv_r4', 4));
  let rest = '';
  for (let r = await reader.read(); !r.done; r = await reader.read()) rest += Buffer.from(r.value).toString();
  assert.match(rest, /"finish_reason":"length"/);
  const later = await waiting;
  assert.equal(later.status, 200, later.text);
  const alone = await g.post('/generate', body('qv_r4', 4));
  assert.equal(alone.status, 200, alone.text);
  assert.deepEqual(later.json, alone.json, 'the same answer as served alone');

  const lines = logs.text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  const qv = (l: Record<string, unknown>) => typeof l.adapter === 'string' && l.adapter.includes(join('adapters', 'qv_r4'));
  assert.ok(lines.some((l) => l.msg === 'adapter prefetched' && qv(l) && l.ok === true), 'qv_r4 was read ahead');
  const loads = lines.filter((l) => l.msg === 'adapter loaded' && qv(l));
  assert.deepEqual(loads.map((l) => l.fromHost), [true], 'its first load came from host RAM (and it stayed resident)');
  const metrics = await (await fetch(`${g.url}/metrics`)).text();
  assert.match(metrics, /^weft_adapter_loads_from_host_total 1$/m, 'counted as a host-RAM load (all_r8 read the disk)');
  assert.match(metrics, /^weft_adapter_prefetches_total 1$/m);
});
