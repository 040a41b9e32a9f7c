// Maps the parsed command line onto each command's typed options.
// (Interim parser: replaced by deploy/config once it lands.)
import type { LaunchOptions } from './launch.js';
import type { ScoreOptions } from './score.js';
import type { ShardMainOptions } from './shard-main.js';

type Raw = Map<string, string[]>;

function parse(argv: string[]): Raw {
  const m: Raw = new Map();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument '${a}'`);
    const eq = a.indexOf('=');
    const key = eq > 0 ? a.slice(2, eq) : a.slice(2);
    const val = eq > 0 ? a.slice(eq + 1) : argv[i + 1] !== undefined && !argv[i + 1].startsWith('--') ? argv[++i] : 'true';
    m.set(key, [...(m.get(key) ?? []), val]);
  }
  return m;
}

function reader(raw: Raw, allowed: string[]) {
  for (const k of raw.keys()) if (!allowed.includes(k)) throw new Error(`unknown flag --${k}`);
  const str = (k: string, d?: string): string | undefined => raw.get(k)?.at(-1) ?? d;
  const int = (k: string, d: number): number => {
    const v = str(k);
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isInteger(n)) throw new Error(`--${k} must be an integer, got '${v}'`);
    return n;
  };
  return { str, int, list: (k: string) => raw.get(k) ?? [] };
}

export function parseCommandLine(argv: string[]) {
  const [command = 'launch', ...rest] = argv;
  const raw = parse(rest);
  return {
    command,
    flags: {
      score(): ScoreOptions {
        const r = reader(raw, ['model', 'adapter', 'num-shard', 'device', 'ids']);
        const model = r.str('model');
        const ids = r.str('ids');
        if (!model) throw new Error('score needs --model DIR');
        if (!ids) throw new Error('score needs --ids 1,2,3');
        return { model, adapter: r.str('adapter'), numShard: r.int('num-shard', 1), device: r.str('device', 'cpu') as 'cpu',
          ids: ids.split(',').map((s) => {
            const n = Number(s.trim());
            if (!Number.isInteger(n) || n < 0) throw new Error(`--ids: '${s}' is not a non-negative integer`);
            return n;
          }) };
      },
      shard(): ShardMainOptions {
        const r = reader(raw, ['model-dir', 'rank', 'world-size', 'nats-url', 'cluster', 'shm-name', 'kv-cache-blocks', 'block-size',
          'adapter-slots', 'max-lora-rank', 'heartbeat-ms', 'log-level', 'otlp-endpoint', 'device']);
        return { modelDir: r.str('model-dir')!, rank: r.int('rank', 0), worldSize: r.int('world-size', 1), natsUrl: r.str('nats-url')!,
          cluster: r.str('cluster', 'weft')!, shmName: r.str('shm-name', '/weft')!, kvBlocks: r.int('kv-cache-blocks', 256),
          blockSize: r.int('block-size', 16), adapterSlots: r.int('adapter-slots', 8), maxLoraRank: r.int('max-lora-rank', 64),
          heartbeatMs: r.int('heartbeat-ms', 1000), logLevel: r.str('log-level', 'info')! };
      },
      launch(): LaunchOptions {
        const r = reader(raw, ['model-id', 'num-shard', 'device', 'port', 'hostname', 'nats-url', 'cluster', 'max-concurrent-requests',
          'max-input-length', 'max-total-tokens', 'max-batch-prefill-tokens', 'max-batch-size', 'kv-cache-blocks', 'block-size',
          'adapter-root', 'max-adapter-slots', 'max-active-adapters', 'adapter-cycle-time-s', 'max-lora-rank', 'log-level',
          'otlp-endpoint', 'shard-heartbeat-ms', 'shard-timeout-ms', 'step-timeout-ms']);
        return { modelId: r.str('model-id'), numShard: r.int('num-shard', 1), device: r.str('device', 'cpu') as 'cpu',
          port: r.int('port', 3000), hostname: r.str('hostname', '0.0.0.0')!, natsUrl: r.str('nats-url'), cluster: r.str('cluster', 'weft')!,
          maxConcurrentRequests: r.int('max-concurrent-requests', 128), maxInputLength: r.int('max-input-length', 1024),
          maxTotalTokens: r.int('max-total-tokens', 2048), maxBatchPrefillTokens: r.int('max-batch-prefill-tokens', 4096),
          maxBatchSize: r.int('max-batch-size', 64), kvCacheBlocks: r.int('kv-cache-blocks', 0), blockSize: r.int('block-size', 16),
          adapterRoots: r.list('adapter-root'), maxAdapterSlots: r.int('max-adapter-slots', 8), maxActiveAdapters: r.int('max-active-adapters', 8),
          adapterCycleTimeS: r.int('adapter-cycle-time-s', 2), maxLoraRank: r.int('max-lora-rank', 64), logLevel: r.str('log-level', 'info')!,
          otlpEndpoint: r.str('otlp-endpoint'), heartbeatMs: r.int('shard-heartbeat-ms', 1000), shardTimeoutMs: r.int('shard-timeout-ms', 10000),
          stepTimeoutMs: r.int('step-timeout-ms', 120000) };
      },
    },
  };
}
