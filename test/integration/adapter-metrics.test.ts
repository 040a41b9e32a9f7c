// Per-adapter usage in /metrics: requests, prompt and generated tokens by adapter ("" the base model), and past
// --metrics-adapter-labels distinct adapters the rest under "_other" (bounded series with many adapters).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGoldenServer, textOf, type GoldenServer } from '../helpers/golden-server.js';

let g: GoldenServer;
before(async () => { g = await startGoldenServer({}, { flags: ['--metrics-adapter-labels', '2'] }); });
after(async () => { await g.close(); });

/** metric{adapter="a"} values of one scrape, by adapter label. */
async function byAdapter(name: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${g.url}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(new RegExp(`^${name}\\{adapter="([^"]*)"\\} (\\S+)$`, 'gm'))) out[m[1]!] = Number(m[2]);
  return out;
}

test('requests and tokens are counted per adapter; adapters past the label limit count as _other', async () => {
  // Sequentially, so the first two adapters seen are all_r8 and qv_r4.
  const plan: [string | null, number][] = [[null, 0], ['all_r8', 0], ['qv_r4', 1], [null, 2], ['qv_r4', 0], ['rslora_r16', 1]];
  const want = { requests: {} as Record<string, number>, prompt: {} as Record<string, number>, generated: {} as Record<string, number> };
  for (const [k, [adapter, s]] of plan.entries()) {
    const tokens = g.c.sequences[s]!;
    const parameters = { max_new_tokens: 2 + k, ignore_eos_token: true, ...(adapter ? { adapter_id: adapter, adapter_source: 'local' } : {}) };
    const r = await g.post('/generate', { inputs: textOf(tokens), parameters });
    assert.equal(r.status, 200, r.text);
    const label = adapter === null ? '' : adapter === 'rslora_r16' ? '_other' : adapter;
    want.requests[label] = (want.requests[label] ?? 0) + 1;
    want.prompt[label] = (want.prompt[label] ?? 0) + tokens.length;
    want.generated[label] = (want.generated[label] ?? 0) + 2 + k;
  }
  assert.deepEqual(await byAdapter('weft_adapter_requests_total'), want.requests);
  assert.deepEqual(await byAdapter('weft_adapter_prompt_tokens_total'), want.prompt);
  assert.deepEqual(await byAdapter('weft_adapter_generated_tokens_total'), want.generated);
});
