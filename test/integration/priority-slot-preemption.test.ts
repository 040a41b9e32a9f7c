// --scheduling-policy priority with one device adapter slot (--max-adapter-slots 1), through the real server: a better
// request for an adapter that is not resident, while a worse request's adapter holds the only slot, preempts that
// request (by recompute), the registry evicts its adapter and loads the better one's — not that of an even worse request
// that has waited longer — which then finishes while the worse request is still generating; the worse one's output is
// exactly what it is alone (greedy: recompute is exact), and the even worse one runs last.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startGoldenServer, textOf } from '../helpers/golden-server.js';

test('priority: a better request for a non-resident adapter preempts the worse adapter holding the only device slot', async () => {
  const g = await startGoldenServer({ maxAdapterSlots: 1 }, { flags: ['--scheduling-policy', 'priority'] });
  try {
    const prompt = textOf(g.c.sequences[0]!);
    const long = { model: 'all_r8', adapter_source: 'local', prompt, max_tokens: 150, temperature: 0, ignore_eos: true };
    const short = { model: 'qv_r4', adapter_source: 'local', prompt, max_tokens: 4, temperature: 0, ignore_eos: true };
    const alone = await g.post('/v1/completions', long);
    assert.equal(alone.status, 200, alone.text);
    const shortAlone = await g.post('/v1/completions', short);  // qv_r4 takes the slot; all_r8 is loaded again below
    assert.equal(shortAlone.status, 200, shortAlone.text);
    const metric = async (name: string): Promise<number> =>
      Number(new RegExp(`^${name} (\\d+)`, 'm').exec(await fetch(`${g.url}/metrics`).then((r) => r.text()))![1]);
    const before = await metric('weft_preemptions_total');
    const busy = await fetch(`${g.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...long, priority: 3, stream: true }) });
    assert.equal(busy.status, 200);
    const reader = busy.body!.getReader();
    let streamed = new TextDecoder().decode((await reader.read()).value);  // its first token: all_r8 holds the slot
    const done: string[] = [];
    const worst = g.post('/v1/completions', { ...short, model: 'rslora_r16', priority: 5 }).then((r) => { done.push('worst'); return r; });
    await new Promise((r) => setTimeout(r, 20));  // rslora_r16 has been waiting for the slot longer
    const better = g.post('/v1/completions', { ...short, priority: -1 }).then((r) => { done.push('better'); return r; });
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) streamed += new TextDecoder().decode(chunk.value);
    done.push('busy');
    const [b, w] = await Promise.all([better, worst]);
    assert.equal(b.status, 200, b.text);
    assert.equal(w.status, 200, w.text);
    assert.deepEqual(done, ['better', 'busy', 'worst'], 'the better request did not wait for the worse one to finish');
    assert.equal(b.json.choices[0].text, shortAlone.json.choices[0].text);
    assert.equal(await metric('weft_preemptions_total'), before + 1, 'the worse request was preempted once');
    const text = streamed.split('\n').filter((l) => l.startsWith('data: ') && l !== 'data: [DONE]')
      .map((l) => (JSON.parse(l.slice(6)) as { choices: { text: string }[] }).choices[0]?.text ?? '').join('');
    assert.equal(text, alone.json.choices[0].text, 'recomputed after preemption: exactly the text it has alone');
  } finally {
    await g.close();
  }
});
