// `weft launch` as a user runs it: a child process, JSON logs on stdout, SIGTERM drains in-flight requests
// and exits 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadGoldenCase } from '../helpers/golden.js';
import { textOf, tokenizedGoldenModel } from '../helpers/golden-server.js';

const CLI = fileURLToPath(new URL('../../deploy/cli.js', import.meta.url));

test('weft launch serves, and SIGTERM lets the in-flight request finish before exiting 0', async () => {
  const model = tokenizedGoldenModel(loadGoldenCase('llama'));
  const child = spawn(process.execPath, [CLI, 'launch', '--model-id', model, '--port', '0', '--hostname', '127.0.0.1',
    '--num-shard', '2', '--max-total-tokens', '256', '--max-input-length', '64'],
    { env: { ...process.env, HOME: mkdtempSync(join(tmpdir(), 'weft-home-')) }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const t = setInterval(() => {
      const m = /"url":"(http:\/\/[^"]+)".*weft is serving/.exec(out);
      if (m) { clearInterval(t); resolve(m[1]); }
      if (child.exitCode !== null) { clearInterval(t); reject(new Error(`launch exited: ${out}`)); }
    }, 50);
  });
  try {
    for (const line of out.trim().split('\n')) assert.doesNotThrow(() => JSON.parse(line), `not a JSON log line: ${line}`);
    const health = await fetch(`${url}/health`);
    assert.equal(health.status, 200);
    const pending = fetch(`${url}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: textOf([7, 8, 9]), parameters: { max_new_tokens: 200, details: true } }) });
    await new Promise((r) => setTimeout(r, 100));
    child.kill('SIGTERM');
    const r = await pending;
    assert.equal(r.status, 200);
    const j = await r.json();
    assert.ok(j.details.generated_tokens >= 1);
    assert.equal(await exited, 0, out.slice(-2000));
    // Every line, to the last one written while draining, is a JSON log line (no stray warnings).
    for (const line of out.trim().split('\n')) assert.doesNotThrow(() => JSON.parse(line), `not a JSON log line: ${line}`);
    assert.match(out, /"route":"\/generate","status":200,.*"generated_tokens":\d+.*"msg":"request completed"/);
  } finally {
    // A failed check must not leave the server (and its shards) running and the test waiting on them.
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

test('--device cuda fails at start with the reason when no GPU is usable (checked where there is none)', async (t) => {
  const { cudaInfo } = await import('../../kernels/cuda.js');
  if (cudaInfo().available) {
    t.skip(`a GPU is usable here (${cudaInfo().devices[0]?.name}); this checks the no-GPU path`);
    return;
  }
  const { spawnSync } = await import('node:child_process');
  const model = loadGoldenCase('llama').modelDir;
  for (const args of [['score', '--model', model, '--ids', '1,2', '--device', 'cuda'],
    ['launch', '--model-id', model, '--device', 'cuda', '--port', '0']]) {
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, HOME: mkdtempSync(join(tmpdir(), 'weft-home-')) } });
    assert.equal(r.status, 1, `${args[0]}: ${r.stdout} ${r.stderr}`);
    assert.match(r.stderr, /--device cuda: .*Use --device cpu/);
  }
});
