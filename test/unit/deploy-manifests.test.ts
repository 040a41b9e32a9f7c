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
  return containers(yaml).map((c) => c.args);
}

/** Each container's args, and the weft command it runs: the image's `launch`, or the last word of its `command`. */
function containers(yaml: string): { command: 'launch' | 'router'; args: string[] }[] {
  // The manifests write command and args as flow sequences of double-quoted strings, which are JSON.
  return [...yaml.matchAll(/^\s*(?:command:\s*(\[[^\]]*\])\s*\n)?\s*args:\s*(\[[\s\S]*?\])/gm)].map((m) => ({
    command: m[1] ? (JSON.parse(m[1]) as string[]).at(-1) as 'launch' | 'router' : 'launch', args: JSON.parse(m[2]!) as string[] }));
}

test('every k8s manifest\'s weft args parse as the flags of the command it runs', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.length >= 3, `manifests in ${dir}: ${files.join(', ')}`);
  const commands = new Set<string>();
  for (const f of files) {
    const all = containers(readFileSync(join(dir, f), 'utf8'));
    assert.ok(all.length >= 1, `${f}: no container args found`);
    for (const { command, args } of all) {
      commands.add(command);
      assert.doesNotThrow(() => parseArgs(command, args, {}), `${f}: weft ${command} ${args.join(' ')}`);
    }
  }
  assert.deepEqual([...commands].sort(), ['launch', 'router']);
});

test('the router manifest routes to every replica of its StatefulSet, by stable pod names', () => {
  const yaml = readFileSync(join(dir, 'weft-gpu-router.yaml'), 'utf8');
  const replicas = Number(/kind: StatefulSet[\s\S]*?replicas:\s*(\d+)/.exec(yaml)?.[1]);
  const router = containers(yaml).find((c) => c.command === 'router')!;
  const config = parseArgs('router', router.args, {});
  assert.deepEqual(config.backends, Array.from({ length: replicas }, (_, i) => `rep-${i}=http://weft-gpu-rep-${i}.weft-gpu-rep:3000`));
});

test('the GPU manifest requests one GPU per shard and runs the CUDA backend', () => {
  const yaml = readFileSync(join(dir, 'weft-gpu.yaml'), 'utf8');
  const config = parseArgs('launch', containerArgs(yaml)[0]!, {});
  assert.equal(config.device, 'cuda');
  const gpus = Number(/nvidia\.com\/gpu:\s*(\d+)/.exec(yaml)?.[1]);
  assert.equal(gpus, config.numShard);
});
