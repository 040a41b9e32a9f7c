// --served-model-name (vLLM's flag): the base model answers to the names given — the first reported everywhere,
// each accepted as OpenAI `model` — and no longer to its model id (which is then an adapter id like any other).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startGoldenServer, textOf } from '../helpers/golden-server.js';

test('served model names: listed, accepted as model, echoed; the model id is then not the base model', async () => {
  const g = await startGoldenServer({}, { flags: ['--served-model-name', 'team-llama', '--served-model-name', 'llama-latest'] });
  try {
    const prompt = textOf(g.c.sequences[0]!);
    const models = await fetch(`${g.url}/v1/models`).then((r) => r.json()) as { data: { id: string; parent?: string }[] };
    assert.deepEqual(models.data.filter((m) => !m.parent).map((m) => m.id), ['team-llama', 'llama-latest']);
    const info = await fetch(`${g.url}/info`).then((r) => r.json()) as { model_id: string };
    assert.equal(info.model_id, 'team-llama');
    const texts: string[] = [];
    for (const model of ['team-llama', 'llama-latest', undefined]) {
      const r = await g.post('/v1/completions', { prompt, max_tokens: 3, temperature: 0, ...(model ? { model } : {}) });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.model, model ?? 'team-llama');
      texts.push(r.json.choices[0].text);
    }
    assert.equal(new Set(texts).size, 1, 'every name is the same base model');
    const old = await g.post('/v1/completions', { prompt, max_tokens: 3, model: g.modelDir });
    assert.equal(old.status, 403, `the model id is looked up as an adapter now (a local path outside --adapter-root): ${old.text}`);
    const clash = await g.post('/v1/load_lora_adapter', { lora_name: 'llama-latest', lora_path: 'all_r8' });
    assert.equal(clash.status, 400, clash.text);
    assert.match(clash.text, /base model's name/);
  } finally {
    await g.close();
  }
});
