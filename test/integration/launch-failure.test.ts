// `weft launch` on a model directory whose weights do not fit its config.json: the shard fails while loading and
// launch fails with that shard's own reason (sent over the supervisor's IPC channel) — not after a 3-minute wait
// for a group that restarts and fails the same way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch } from '../../deploy/launch.js';
import { parseArgs } from '../../deploy/config/index.js';
import { loadGoldenCase } from '../helpers/golden.js';
import { tokenizedGoldenModel } from '../helpers/golden-server.js';

test('a shard that cannot load the weights stops launch with its reason', async () => {
  const llama = loadGoldenCase('llama');
  const dir = tokenizedGoldenModel(llama);
  rmSync(join(dir, 'model.safetensors'));
  symlinkSync(join(loadGoldenCase('qwen2').modelDir, 'model.safetensors'), join(dir, 'model.safetensors'));  // other shapes
  const config = parseArgs('launch', ['--model-id', dir, '--port', '0', '--hostname', '127.0.0.1', '--cluster', `lf${process.pid}`,
    '--log-level', 'silent', '--num-shard', '2'], {});
  await assert.rejects(launch(config, { cacheDir: mkdtempSync(join(tmpdir(), 'weft-cache-')) }),
    /a shard failed to start: shard [01] \(pid \d+\) exited \(code 1\): .*(weight|tensor) '[^']+' (is missing|shape \[)/);
});
