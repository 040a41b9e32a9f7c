// --scheduling-policy priority through the real server: with one sequence per step, a request with a better
// (lower) `priority` that arrives later is served before a worse one that waited longer, and preempts a running
// request of a worse priority, which then finishes with the same text — on TGI's and the OpenAI routes; with
// --max-active-adapters 1, a better request for another adapter preempts the running one's adapter for its place;
// without the policy a non-zero priority is a 422.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startGoldenServer, textOf } from '../helpers/golden-server.js';

test('priority: the better request is admitted first and preempts a worse running one; refused without the policy', async () => {
  const g = await startGoldenServer({}, { flags: ['--scheduling-policy', 'priority', '--max-batch-size', '1'] });
  try {
    const info = await fetch(`${g.url}/info`).then((r) => r.json()) as { scheduling_policy: string };
    assert.equal(info.scheduling_policy, 'priority');
    const prompt = textOf(g.c.sequences[0]!);
    const long = { inputs: prompt, parameters: { max_new_tokens: 150, ignore_eos_token: true } };
    const alone = await g.post('/generate', long);
    assert.equal(alone.status, 200, alone.text);
    const preemptions = async (): Promise<number> =>
      Number(/^weft_preemptions_total (\d+)/m.exec(await fetch(`${g.url}/metrics`).then((r) => r.text()))![1]);
    const before = await preemptions();
    // A long request holds the only batch slot; two more queue behind it.
    const busy = await fetch(`${g.url}/generate_stream`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify(long) });
    const reader = busy.body!.getReader();
    await reader.read();  // its first token: it is running
    const done: string[] = [];
    const worse = g.post('/generate', { inputs: prompt, parameters: { max_new_tokens: 4, priority: 5 } }).then((r) => { done.push('worse'); return r; });
    await new Promise((r) => setTimeout(r, 20));  // the worse one has been waiting longer
    const better = g.post('/v1/completions', { prompt, max_tokens: 4, priority: -5 }).then((r) => { done.push('better'); return r; });
    let streamed = '';
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) streamed += new TextDecoder().decode(chunk.value);
    done.push('busy');
    const [w, b] = await Promise.all([worse, better]);
    assert.equal(w.status, 200, w.text);
    assert.equal(b.status, 200, b.text);
    assert.deepEqual(done, ['better', 'busy', 'worse'], 'the better one preempted the running one (priority 0); the worse one waited for both');
    assert.equal(await preemptions(), before + 1);
    const last = streamed.trim().split('\n').filter((l) => l.startsWith('data:')).at(-1)!;
    const final = JSON.parse(last.slice(5)) as { generated_text: string };
    assert.equal(final.generated_text, alone.json.generated_text, 'recomputed after preemption: the same text');
    const bad = await g.post('/generate', { inputs: prompt, parameters: { priority: 1.5 } });
    assert.equal(bad.status, 422);
    assert.match(bad.json.error, /`priority` must be an integer/);
  } finally {
    await g.close();
  }
  const fcfs = await startGoldenServer({}, { chatTemplate: '{% for m in messages %}{{ m.content }}{% endfor %}' });
  try {
    const r = await fcfs.post('/v1/completions', { prompt: textOf(fcfs.c.sequences[0]!), max_tokens: 2, priority: 1 });
    assert.equal(r.status, 422, r.text);
    assert.match(r.json.error.message, /--scheduling-policy priority/);
    assert.equal((await fcfs.post('/v1/completions', { prompt: textOf(fcfs.c.sequences[0]!), max_tokens: 2, priority: 0 })).status, 200);
    const beams = await fcfs.post('/v1/completions', { prompt: textOf(fcfs.c.sequences[0]!), max_tokens: 2, n: 2, use_beam_search: true, priority: 1 });
    assert.equal(beams.status, 422, `beam search passes priority on to its steps: ${beams.text}`);
    // The Responses API takes vLLM's `priority` as chat does.
    const resp = await fcfs.post('/v1/responses', { input: textOf(fcfs.c.sequences[0]!), max_output_tokens: 2, priority: 1 });
    assert.equal(resp.status, 422, resp.text);
    assert.match(resp.text, /--scheduling-policy priority/);
    assert.equal((await fcfs.post('/v1/responses', { input: textOf(fcfs.c.sequences[0]!), max_output_tokens: 2, priority: 0 })).status, 200);
  } finally {
    await fcfs.close();
  }
});

test('priority: a better request for an adapter not in the batch preempts the worse adapter\'s request for its place under --max-active-adapters', async () => {
  const g = await startGoldenServer({ maxActiveAdapters: 1 }, { flags: ['--scheduling-policy', 'priority'] });
  try {
    const prompt = textOf(g.c.sequences[0]!);
    const adapter = (id: string) => ({ adapter_id: id, adapter_source: 'local' });
    const long = { inputs: prompt, parameters: { max_new_tokens: 150, ignore_eos_token: true, ...adapter('all_r8') } };
    const alone = await g.post('/generate', long);
    assert.equal(alone.status, 200, alone.text);
    // Both adapters resident (4 device slots), one active at a time.
    assert.equal((await g.post('/generate', { inputs: prompt, parameters: { max_new_tokens: 1, ...adapter('qv_r4') } })).status, 200);
    const preemptions = async (): Promise<number> =>
      Number(/^weft_preemptions_total (\d+)/m.exec(await fetch(`${g.url}/metrics`).then((r) => r.text()))![1]);
    const before = await preemptions();
    const busy = await fetch(`${g.url}/generate_stream`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...long, parameters: { ...long.parameters, priority: 3 } }) });
    const reader = busy.body!.getReader();
    await reader.read();  // its first token: it is running, its adapter holds the only place
    const done: string[] = [];
    const tie = g.post('/generate', { inputs: prompt, parameters: { max_new_tokens: 4, priority: 3, ...adapter('rslora_r16') } })
      .then((r) => { done.push('tie'); return r; });
    await new Promise((r) => setTimeout(r, 20));
    const better = g.post('/generate', { inputs: prompt, parameters: { max_new_tokens: 4, priority: -1, ...adapter('qv_r4') } })
      .then((r) => { done.push('better'); return r; });
    let streamed = '';
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) streamed += new TextDecoder().decode(chunk.value);
    done.push('busy');
    const [t, b] = await Promise.all([tie, better]);
    assert.equal(t.status, 200, t.text);
    assert.equal(b.status, 200, b.text);
    assert.deepEqual(done, ['better', 'busy', 'tie'], 'the better one took the adapter place; the equal one waited for the running one');
    assert.equal(await preemptions(), before + 1);
    const final = JSON.parse(streamed.trim().split('\n').filter((l) => l.startsWith('data:')).at(-1)!.slice(5)) as { generated_text: string };
    assert.equal(final.generated_text, alone.json.generated_text, 'recomputed after preemption: the same text');
  } finally {
    await g.close();
  }
});
