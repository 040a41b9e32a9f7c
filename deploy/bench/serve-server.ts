// The server the serve scenario loads when no --url is given: `weft launch` in this process on a free
// loopback port, with the bench adapters (`bench-<i>`) under its --adapter-root.
import { dirname } from 'node:path';
import { parseArgs, type Device } from '../config/index.js';
import { ensureAdapters, type BenchModel } from './model-source.js';

export interface BenchServer {
  url: URL;
  adapterIds: string[];
  close(): Promise<void>;
}

export async function startBenchServer(model: BenchModel, adapters: number, rank: number, maxBatch: number,
  device: Device = 'cpu', prefixCaching = true, speculate = 0, speculativeModel: string | null = null): Promise<BenchServer> {
  const dirs = adapters > 0 ? ensureAdapters(model, rank, adapters) : [];
  const argv = ['--model-id', model.dir, '--port', '0', '--hostname', '127.0.0.1', '--log-level', 'warn',
    '--max-batch-size', String(Math.max(1, maxBatch)), '--max-lora-rank', String(Math.max(rank, 1)), '--device', device,
    `--prefix-caching=${prefixCaching}`, '--speculate', String(speculate), ...(speculativeModel ? ['--speculative-model', speculativeModel] : [])];
  if (dirs.length) {
    argv.push('--adapter-root', dirname(dirs[0]!), '--adapter-source', 'local',
      '--max-adapter-slots', String(Math.max(8, adapters)), '--max-active-adapters', String(Math.max(8, Math.min(adapters, maxBatch))));
  }
  const { launch } = await import('../launch.js');
  const server = await launch(parseArgs('launch', argv, {}), { logs: process.stderr });
  return {
    url: new URL(server.url.replace('0.0.0.0', '127.0.0.1')),
    adapterIds: dirs.map((_, i) => `bench-${i}`),
    close: () => server.close(),
  };
}
