// The deployment manifests stay in step with the CLI: every container's `args` in deploy/k8s/*.yaml parse as
// `weft launch` flags (an unknown or renamed flag would crash-loop the pod), and the GPU manifest asks for as
// many GPUs as it starts shards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from '../../deploy/config/index.js';

const dir = join(process.cwd(), 'deploy', 'k8s');

function containerArgs(yaml: string): string[][] {
  // The manifests write args as one flow sequence of double-quoted strings, which is JSON.
  return [...yaml.matchAll(/^\s*args:\s*(\[[\s\S]*?\])/gm)].map((m) => JSON.parse(m[1]!) as string[]);
}

test('every k8s manifest\'s weft args parse as `weft launch` flags', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.length >= 2, `manifests in ${dir}: ${files.join(', ')}`);
  for (const f of files) {
    const all = containerArgs(readFileSync(join(dir, f), 'utf8'));
    assert.ok(all.length >= 1, `${f}: no container args found`);
    for (const args of all) assert.doesNotThrow(() => parseArgs('launch', args, {}), `${f}: ${args.join(' ')}`);
  }
});

test('the GPU manifest requests one GPU per shard and runs the CUDA backend', () => {
  const yaml = readFileSync(join(dir, 'weft-gpu.yaml'), 'utf8');
  const config = parseArgs('launch', containerArgs(yaml)[0]!, {});
  assert.equal(config.device, 'cuda');
  const gpus = Number(/nvidia\.com\/gpu:\s*(\d+)/.exec(yaml)?.[1]);
  assert.equal(gpus, config.numShard);
});
