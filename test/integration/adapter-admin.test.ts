// Bad adapters, preloaded names, the admin API and merging through the real server.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prefillMatchesGolden, startGoldenServer, textOf, type GoldenServer } from '../helpers/golden-server.js';
import { loadGoldenCase, GOLDEN_ROOT } from '../helpers/golden.js';

const c = loadGoldenCase('llama');
const seq = c.sequences[1];
const ADMIN = 'admin-secret-7f3k';
const root = mkdtempSync(join(tmpdir(), 'weft-bad-adapters-'));

function makeBadAdapters(): void {
  const good = join(c.dir, 'adapters', 'all_r8');
  const copy = (name: string) => {
    cpSync(good, join(root, name), { recursive: true });
    return join(root, name);
  };
  cpSync(join(GOLDEN_ROOT, 'gpt2', 'adapters', 'attn_mlp_r8'), join(root, 'wrong_base'), { recursive: true });
  const trunc = copy('truncated');
  const bytes = readFileSync(join(good, 'adapter_model.safetensors'));
  writeFileSync(join(trunc, 'adapter_model.safetensors'), bytes.subarray(0, bytes.length - 100));
  const corrupt = copy('corrupt');
  const header = Buffer.from(bytes);
  header.write('{{{{', 8);
  writeFileSync(join(corrupt, 'adapter_model.safetensors'), header);
  mkdirSync(join(root, 'no_config'));
  copyFileSync(join(good, 'adapter_model.safetensors'), join(root, 'no_config', 'adapter_model.safetensors'));
  const mal = join(root, 'malicious');
  mkdirSync(mal);
  copyFileSync(join(good, 'adapter_config.json'), join(mal, 'adapter_config.json'));
  copyFileSync(join(import.meta.dirname, '../../../test/fixtures/torch-bin/malicious_os_system.bin'), join(mal, 'adapter_model.bin'));
  cpSync(join(c.dir, 'adapters', 'qv_r4'), join(root, 'good_qv'), { recursive: true });
}

describe('adapters: failures, names, admin, merging', () => {
  let g: GoldenServer;
  before(async () => {
    makeBadAdapters();
    g = await startGoldenServer({ adapterRoots: [root, join(c.dir, 'adapters')] }, {
      flags: ['--preload-adapter', `support=${join(c.dir, 'adapters', 'rslora_r16')}`, '--preload-adapter',
        `tiny=${join(c.dir, 'adapters', 'qv_r4')}`, '--admin-token', ADMIN, '--max-lora-rank', '32'],
    });
  });
  after(async () => { await g.close(); });
  const gen = (params: Record<string, unknown>) => g.post('/generate', { inputs: textOf(seq),
    parameters: { max_new_tokens: 2, details: true, decoder_input_details: true, ...params } });
  const admin = (path: string, b: unknown, token = ADMIN) => g.post(path, b, { authorization: `Bearer ${token}` });

  test('bad adapters fail with 424 and a reason; the next request (good adapter) still works', async () => {
    const cases: [string, RegExp][] = [
      ['wrong_base', /not a supported linear module|different base model/],
      ['truncated', /safetensors|truncat/i],
      ['corrupt', /safetensors|JSON|header/i],
      ['no_config', /adapter_config\.json/],
      ['malicious', /os\.system|not allowed|unsafe/i],
    ];
    for (const [name, reason] of cases) {
      const r = await gen({ adapter_id: name, adapter_source: 'local' });
      assert.equal(r.status, 424, `${name}: ${r.text}`);
      assert.match(r.json.error, reason, name);
      const ok = await gen({ adapter_id: 'good_qv', adapter_source: 'local' });
      assert.equal(ok.status, 200, ok.text);
    }
    assert.equal((await gen({ adapter_id: 'missing_dir', adapter_source: 'local' })).status, 404);
    const stats = g.server.engine.stats();
    assert.equal(stats.usedBlocks, 0);
    assert.equal(stats.adapterRefs, 0);
    // The shards timed their successful loads (read beside the steps, install between them); failures count apart.
    const metrics = await fetch(`${g.url}/metrics`).then((r) => r.text());
    const count = (phase: string) => Number(new RegExp(`^weft_adapter_load_seconds_count\\{phase="${phase}"\\} (\\d+)$`, 'm').exec(metrics)?.[1]);
    const ok = Number(/^weft_adapter_loads_total\{result="ok"\} (\d+)$/m.exec(metrics)?.[1]);
    assert.ok(ok >= 3, `successful loads: ${ok}`);  // the preloaded names and good_qv
    assert.equal(count('read'), ok);
    assert.equal(count('install'), ok);
    assert.match(metrics, /^weft_adapter_loads_total\{result="failed"\} 5$/m);
  });

  test('a rank above --max-lora-rank is refused (424) and a retry tries again', async () => {
    const g8 = await startGoldenServer({ adapterRoots: [join(c.dir, 'adapters')], maxLoraRank: 8 });
    try {
      for (let i = 0; i < 2; i++) {
        const r = await g8.post('/generate', { inputs: textOf(seq), parameters: { adapter_id: 'rslora_r16', adapter_source: 'local' } });
        assert.equal(r.status, 424, r.text);
        assert.match(r.json.error, /rank 16, above --max-lora-rank 8/);
      }
    } finally {
      await g8.close();
    }
  });

  test('preloaded names work as adapter_id and as the OpenAI model', async () => {
    const r = await gen({ adapter_id: 'support' });
    assert.equal(r.status, 200, r.text);
    prefillMatchesGolden(c, r.json, 'adapter/rslora_r16/seq1', seq);
    const o = await g.post('/v1/completions', { model: 'tiny', prompt: textOf(seq), max_tokens: 3, temperature: 0 });
    assert.equal(o.status, 200, o.text);
    const alone = await gen({ adapter_id: 'good_qv', adapter_source: 'local', max_new_tokens: 3 });
    assert.equal(o.json.choices[0].text, alone.json.generated_text);
    assert.equal(o.json.usage.prompt_tokens, seq.length);
    assert.equal(o.json.usage.completion_tokens, 3);
    assert.equal(o.json.choices[0].finish_reason, 'length');
  });

  test('admin API: token required; list shows tiers; load, pin, unload', async () => {
    assert.equal((await fetch(`${g.url}/v1/adapters`)).status, 401);
    assert.equal((await fetch(`${g.url}/v1/adapters`, { headers: { authorization: 'Bearer nope' } })).status, 403);
    const load = await admin('/v1/adapters/load', { adapter_id: 'all_r8', adapter_source: 'local' });
    assert.equal(load.status, 200, load.text);
    assert.equal(load.json.adapter.tier, 'device');
    assert.equal(load.json.adapter.rank, 8);
    const pin = await admin('/v1/adapters/pin', { adapter_id: 'all_r8', adapter_source: 'local' });
    assert.equal(pin.json.adapter.pinned, true);
    const unload = await admin('/v1/adapters/unload', { adapter_id: 'all_r8', adapter_source: 'local' });
    assert.equal(unload.status, 200, unload.text);
    assert.equal(unload.json.adapter.pinned, false);
    assert.ok(['host', 'disk'].includes(unload.json.adapter.tier), unload.json.adapter.tier);
    const list = await fetch(`${g.url}/v1/adapters`, { headers: { authorization: `Bearer ${ADMIN}` } }).then((r) => r.json());
    const names = list.adapters.flatMap((a: { names: string[] }) => a.names);
    assert.ok(names.includes('support') && names.includes('tiny'), JSON.stringify(names));
    for (const a of list.adapters) assert.ok(['device', 'host', 'disk', 'loading'].includes(a.tier));
  });

  test('an adapter saved over its own directory is served as the new adapter, not its resident old copy', async () => {
    const dir = join(root, 'evolving');
    cpSync(join(c.dir, 'adapters', 'all_r8'), dir, { recursive: true });
    const before = await gen({ adapter_id: 'evolving', adapter_source: 'local' });
    assert.equal(before.status, 200, before.text);
    prefillMatchesGolden(c, before.json, 'adapter/all_r8/seq1', seq);
    // Retrained and saved in place (different rank and modules): the directory's files are new.
    rmSync(dir, { recursive: true });
    cpSync(join(c.dir, 'adapters', 'qv_r4'), dir, { recursive: true });
    const after = await gen({ adapter_id: 'evolving', adapter_source: 'local' });
    assert.equal(after.status, 200, after.text);
    prefillMatchesGolden(c, after.json, 'adapter/qv_r4/seq1', seq);
    const listed = await g.post('/v1/adapters/load', { adapter_id: 'evolving', adapter_source: 'local' },
      { authorization: `Bearer ${ADMIN}` });
    assert.equal(listed.status, 200, listed.text);
    assert.match(listed.json.adapter.revision, /^local-[0-9a-f]{16}$/);
    assert.equal(listed.json.adapter.rank, 4);
  });

  test("vLLM's run-time LoRA API: a name loaded, used, replaced in place and dropped; failed loads leave no name", async () => {
    const models = async () => (await fetch(`${g.url}/v1/models`).then((r) => r.json())).data.map((m: { id: string }) => m.id);
    const load = (b: unknown, token = ADMIN) => admin('/v1/load_lora_adapter', b, token);
    const unload = (b: unknown) => admin('/v1/unload_lora_adapter', b);
    const noToken = await g.post('/v1/load_lora_adapter', { lora_name: 'sql', lora_path: join(c.dir, 'adapters', 'all_r8') });
    assert.equal(noToken.status, 401, noToken.text);
    assert.equal(noToken.json.error.code, 'unauthorized');
    const ok = await load({ lora_name: 'sql', lora_path: join(c.dir, 'adapters', 'all_r8') });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.text, "Success: LoRA adapter 'sql' added successfully.");
    assert.ok((await models()).includes('sql'));
    prefillMatchesGolden(c, (await gen({ adapter_id: 'sql' })).json, 'adapter/all_r8/seq1', seq);
    const viaModel = await g.post('/v1/completions', { model: 'sql', prompt: textOf(seq), max_tokens: 2, temperature: 0 });
    assert.equal(viaModel.status, 200, viaModel.text);
    const again = await load({ lora_name: 'sql', lora_path: join(c.dir, 'adapters', 'qv_r4') });
    assert.equal(again.status, 400, again.text);
    assert.match(again.json.error.message, /'sql' has already been loaded.*load_inplace/);
    const inPlace = await load({ lora_name: 'sql', lora_path: join(c.dir, 'adapters', 'qv_r4'), load_inplace: true });
    assert.equal(inPlace.status, 200, inPlace.text);
    prefillMatchesGolden(c, (await gen({ adapter_id: 'sql' })).json, 'adapter/qv_r4/seq1', seq);
    // Refused before a name exists: outside --adapter-root (403), missing (404), the base model's name, bad bodies.
    for (const [b, status, why] of [
      [{ lora_name: 'etc', lora_path: '/etc' }, 403, /adapter-root|not under|outside/],
      [{ lora_name: 'gone', lora_path: join(root, 'no_such_adapter') }, 404, /not found|does not exist|no such/i],
      [{ lora_name: 'bad', lora_path: join(root, 'corrupt') }, 424, /safetensors|JSON|header/i],
      [{ lora_name: g.server.engine.info.modelId, lora_path: join(c.dir, 'adapters', 'qv_r4') }, 400, /base model's name/],
      [{ lora_name: 'x', lora_path: join(c.dir, 'adapters', 'qv_r4'), rank: 8 }, 422, /unknown field `rank`/],
      [{ lora_name: '', lora_path: 'x' }, 422, /lora_name/],
    ] as [unknown, number, RegExp][]) {
      const r = await load(b);
      assert.equal(r.status, status, `${JSON.stringify(b)}: ${r.text}`);
      assert.match(r.json.error.message, why);
    }
    assert.deepEqual((await models()).filter((m: string) => ['etc', 'gone', 'bad', 'x'].includes(m)), []);
    const dropped = await unload({ lora_name: 'sql' });
    assert.equal(dropped.status, 200, dropped.text);
    assert.equal(dropped.text, "Success: LoRA adapter 'sql' removed successfully.");
    assert.ok(!(await models()).includes('sql'));
    const after = await gen({ adapter_id: 'sql' });  // now an ordinary local id, which does not exist
    assert.equal(after.status, 404, after.text);
    assert.equal((await unload({ lora_name: 'sql' })).status, 404);
    // A preloaded name can be dropped too.
    assert.equal((await unload({ lora_name: 'tiny' })).status, 200);
    assert.ok(!(await models()).includes('tiny'));
    assert.equal(g.server.engine.stats().adapterRefs, 0);
  });

  test('merged_adapters: cat with weights [1, 0] equals the first adapter alone; [0.5, 0.5] of one adapter too', async () => {
    const merged = (ids: string[], weights: number[]) => gen({ adapter_source: 'local',
      merged_adapters: { ids, weights, merge_strategy: 'cat' } });
    const a = await merged(['all_r8', 'qv_r4'], [1, 0]);
    assert.equal(a.status, 200, a.text);
    prefillMatchesGolden(c, a.json, 'adapter/all_r8/seq1', seq);
    const b = await merged(['rslora_r16', 'good_qv'], [0, 1]);
    assert.equal(b.status, 200, b.text);
    prefillMatchesGolden(c, b.json, 'adapter/qv_r4/seq1', seq);
    const lin1 = await gen({ adapter_source: 'local', merged_adapters: { ids: ['qv_r4', 'good_qv'], weights: [0.3, 0.7],
      merge_strategy: 'dare_linear', density: 0.5 } });
    const lin2 = await gen({ adapter_source: 'local', merged_adapters: { ids: ['qv_r4', 'good_qv'], weights: [0.3, 0.7],
      merge_strategy: 'dare_linear', density: 0.5 } });
    assert.equal(lin1.status, 200, lin1.text);
    assert.deepEqual(lin1.json.details.prefill, lin2.json.details.prefill);
    const noDensity = await gen({ adapter_source: 'local', merged_adapters: { ids: ['qv_r4', 'good_qv'], weights: [0.5, 0.5],
      merge_strategy: 'ties' } });
    assert.equal(noDensity.status, 422, noDensity.text);
  });
});
