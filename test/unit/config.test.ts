import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  COMMANDS, ConfigError, FLAGS, configSecrets, flagsFor, parseArgs, parseFlags, readCommandLine, redactedConfig,
  renderHelp, type ConfigErrorCode, type FlagSpec,
} from '../../deploy/config/index.js';

function fails(code: ConfigErrorCode, check?: (e: ConfigError) => void): (e: unknown) => boolean {
  return (e) => {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    check?.(e);
    return true;
  };
}

const SHARD_ARGS = ['--model-dir', '/m', '--rank', '0', '--world-size', '2', '--nats-url', 'nats://127.0.0.1:4222',
  '--shm-name', '/weft-1'];

test('launch defaults', () => {
  const c = parseArgs('launch', [], {});
  assert.equal(c.command, 'launch');
  assert.equal(c.modelId, null);
  assert.equal(c.numShard, 1);
  assert.equal(c.device, 'cpu');
  assert.equal(c.dtype, 'float32');
  assert.equal(c.port, 3000);
  assert.equal(c.hostname, '0.0.0.0');
  assert.equal(c.natsUrl, null);
  assert.equal(c.cluster, 'weft');
  assert.deepEqual([c.maxConcurrentRequests, c.maxInputLength, c.maxTotalTokens, c.maxBatchPrefillTokens, c.maxBatchSize],
    [128, 1024, 2048, 4096, 64]);
  assert.deepEqual([c.kvCacheBlocks, c.blockSize], [0, 16]);
  assert.deepEqual(c.adapterRoots, []);
  assert.equal(c.adapterSource, 'local');
  assert.deepEqual([c.maxAdapterSlots, c.maxActiveAdapters, c.adapterCycleTimeS, c.maxLoraRank], [8, 8, 2, 64]);
  assert.equal(c.adapterHostCacheBytes, 2 * 1024 ** 3);
  assert.deepEqual(c.preloadAdapters, []);
  assert.equal(c.adminToken, null);
  assert.equal(c.otlpEndpoint, null);
  assert.equal(c.logLevel, 'info');
  assert.deepEqual([c.shardHeartbeatMs, c.shardTimeoutMs, c.stepTimeoutMs], [1000, 10_000, 120_000]);
  assert.deepEqual(c.env, { hfToken: null, hfEndpoint: null, useGlobalHfToken: false, s3EndpointUrl: null,
    aws: { accessKeyId: null, secretAccessKey: null, sessionToken: null, region: null, profile: null }, loraAdapters: [] });
});

test('defaults of shard, score and bench; dtype follows the device', () => {
  assert.equal(parseArgs('launch', ['--device', 'cuda'], {}).dtype, 'bfloat16');
  assert.equal(parseArgs('launch', ['--device', 'cuda', '--dtype', 'float16'], {}).dtype, 'float16');
  const s = parseArgs('shard', SHARD_ARGS, {});
  assert.deepEqual([s.rank, s.worldSize, s.shmName, s.kvCacheBlocks, s.adapterSlots, s.heartbeatMs, s.otlpEndpoint],
    [0, 2, '/weft-1', 0, 8, 1000, null]);
  const sc = parseArgs('score', ['--model', '/m', '--ids', '1,2,3'], {});
  assert.deepEqual([sc.model, sc.adapter, sc.numShard, sc.device, sc.ids], ['/m', null, 1, 'cpu', [1, 2, 3]]);
  const b = parseArgs('bench', ['--scenario', 'decode'], {});
  assert.deepEqual([b.batch, b.adapters, b.rank, b.context, b.url, b.requests, b.rate, b.output],
    [[1, 8, 32], [1, 8, 32], [16], [512], null, 256, 0, null]);
});

test('environment variables fill absent flags; empty ones count as unset', () => {
  const c = parseArgs('launch', [], {
    NUM_SHARD: '4', WEFT_DEVICE: 'cuda', PORT: '8080', WEFT_HOSTNAME: '127.0.0.1', HOSTNAME: 'my-laptop',
    ADAPTER_ROOTS: '/a:/b::', MAX_LORA_RANK: '', ADAPTER_CYCLE_TIME_S: '0.5', LOG_LEVEL: 'debug',
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', NATS_URL: 'nats://n1:4222,nats://n2:4222',
  });
  assert.deepEqual([c.numShard, c.device, c.port, c.hostname], [4, 'cuda', 8080, '127.0.0.1']);
  assert.deepEqual(c.adapterRoots, ['/a', '/b']);
  assert.equal(c.maxLoraRank, 64);
  assert.equal(c.adapterCycleTimeS, 0.5);
  assert.equal(c.logLevel, 'debug');
  assert.equal(c.otlpEndpoint, 'http://collector:4318');
  assert.equal(c.natsUrl, 'nats://n1:4222,nats://n2:4222');
  // score and bench read their command line only
  assert.equal(parseArgs('score', ['--model', 'm', '--ids', '0'], { NUM_SHARD: '4', WEFT_DEVICE: 'cuda' }).numShard, 1);
});

test('environment-only settings land in config.env', () => {
  const c = parseArgs('launch', [], {
    HUGGING_FACE_HUB_TOKEN: 'hf_fallback', HF_ENDPOINT: 'https://mirror.example', LORAX_USE_GLOBAL_HF_TOKEN: 'TRUE',
    S3_ENDPOINT_URL: 'http://minio:9000', AWS_ACCESS_KEY_ID: 'AKIA1', AWS_SECRET_ACCESS_KEY: 'sk1',
    AWS_DEFAULT_REGION: 'eu-west-1', LORA_ADAPTERS: 'org/a, sql=org/sql-lora,,',
  });
  assert.equal(c.env.hfToken, 'hf_fallback');
  assert.equal(c.env.hfEndpoint, 'https://mirror.example');
  assert.equal(c.env.useGlobalHfToken, true);
  assert.equal(c.env.s3EndpointUrl, 'http://minio:9000');
  assert.deepEqual(c.env.aws, { accessKeyId: 'AKIA1', secretAccessKey: 'sk1', sessionToken: null, region: 'eu-west-1',
    profile: null });
  assert.deepEqual(c.env.loraAdapters, [{ name: 'org/a', id: 'org/a' }, { name: 'sql', id: 'org/sql-lora' }]);
  assert.equal(parseArgs('launch', [], { HF_TOKEN: 'hf_main', HUGGING_FACE_HUB_TOKEN: 'hf_fallback' }).env.hfToken,
    'hf_main');
  assert.throws(() => parseArgs('launch', [], { WEFT_USE_GLOBAL_HF_TOKEN: 'maybe' }),
    fails('INVALID_VALUE', (e) => assert.equal(e.source, 'WEFT_USE_GLOBAL_HF_TOKEN')));
  assert.throws(() => parseArgs('launch', [], { LORA_ADAPTERS: 'a,=b' }), fails('INVALID_VALUE'));
});

test('a flag beats its environment variable, in both --flag value and --flag=value forms', () => {
  const env = { PORT: '8080', ADAPTER_ROOTS: '/env-a:/env-b', MODEL_ID: '/env-model' };
  const c = parseArgs('launch', ['--port=9090', '--adapter-root', '/flag', '--model-id', '/flag-model'], env);
  assert.equal(c.port, 9090);
  assert.deepEqual(c.adapterRoots, ['/flag']);
  assert.equal(c.modelId, '/flag-model');
  assert.equal(parseArgs('launch', ['--port', '9090'], env).port, 9090);
});

test('unknown flags fail with a did-you-mean suggestion', () => {
  assert.throws(() => parseArgs('launch', ['--prot', '80'], {}), fails('UNKNOWN_FLAG', (e) => {
    assert.equal(e.suggestion, '--port');
    assert.match(e.message, /did you mean --port\?/);
  }));
  assert.throws(() => parseArgs('launch', ['--max-batch-szie=8'], {}),
    fails('UNKNOWN_FLAG', (e) => assert.equal(e.suggestion, '--max-batch-size')));
  assert.throws(() => parseArgs('launch', ['--max-input', '8'], {}),
    fails('UNKNOWN_FLAG', (e) => assert.equal(e.suggestion, '--max-input-length')));
  assert.throws(() => parseArgs('launch', ['--completely-different'], {}),
    fails('UNKNOWN_FLAG', (e) => assert.equal(e.suggestion, undefined)));
  assert.throws(() => parseArgs('launch', ['--ids', '1'], {}),
    fails('UNKNOWN_FLAG', (e) => assert.match(e.message, /belongs to weft score/)));
  assert.throws(() => readCommandLine(['lanch'], {}), fails('UNKNOWN_COMMAND', (e) => assert.equal(e.suggestion, 'launch')));
});

test('bad numbers name the flag (or the variable) and the bad value', () => {
  const bad: [string[], RegExp][] = [
    [['--port', 'abc'], /--port: expected an integer, got 'abc'/],
    [['--port', '80.5'], /--port: expected an integer, got '80.5'/],
    [['--port', '1e3'], /--port: expected an integer/],
    [['--port', '70000'], /--port: must be between 0 and 65535, got '70000'/],
    [['--num-shard', '0'], /--num-shard: must be >= 1, got '0'/],
    [['--max-batch-size', '-3'], /--max-batch-size: must be >= 1/],
    [['--adapter-host-cache-bytes', '99999999999999999999'], /too large/],
    [['--adapter-cycle-time-s', 'soon'], /--adapter-cycle-time-s: expected a number, got 'soon'/],
    [['--device', 'cdua'], /--device: expected one of cpu, cuda, got 'cdua'; did you mean 'cuda'\?/],
    [['--cluster', 'a.b'], /--cluster: expected letters, digits/],
    [['--otlp-endpoint', 'collector:4318'], /--otlp-endpoint: expected an http/],
    [['--nats-url', 'http://x:4222'], /--nats-url: expected nats:\/\//],
    [['--model-id='], /--model-id: empty value/],
  ];
  for (const [argv, message] of bad) {
    assert.throws(() => parseArgs('launch', argv, {}), fails('INVALID_VALUE', (e) => assert.match(e.message, message)));
  }
  assert.throws(() => parseArgs('launch', [], { MAX_BATCH_SIZE: 'lots' }), fails('INVALID_VALUE', (e) => {
    assert.equal(e.source, 'MAX_BATCH_SIZE (environment, for --max-batch-size)');
    assert.match(e.message, /got 'lots'/);
  }));
});

test('list flags: repeatable, split where declared, typed items', () => {
  const c = parseArgs('launch', ['--adapter-root', '/a', '--adapter-root=/b,c', '--preload-adapter', 'sql=org/sql',
    '--preload-adapter', 'chat = /adapters/chat'], {});
  assert.deepEqual(c.adapterRoots, ['/a', '/b,c']);
  assert.deepEqual(c.preloadAdapters, [{ name: 'sql', id: 'org/sql' }, { name: 'chat', id: '/adapters/chat' }]);
  assert.throws(() => parseArgs('launch', ['--preload-adapter', 'org/sql'], {}),
    fails('INVALID_VALUE', (e) => assert.match(e.message, /--preload-adapter: expected name=SOURCE_ID/)));
  const s = parseArgs('score', ['--model', 'm', '--ids', '5, 6', '--ids=7'], {});
  assert.deepEqual(s.ids, [5, 6, 7]);
  assert.throws(() => parseArgs('score', ['--model', 'm', '--ids', '1,-2'], {}),
    fails('INVALID_VALUE', (e) => assert.match(e.message, /--ids: must be >= 0, got '-2'/)));
  assert.throws(() => parseArgs('score', ['--model', 'm', '--ids', '1,,2'], {}), fails('INVALID_VALUE'));
  assert.throws(() => parseArgs('score', ['--model', 'm', '--ids='], {}), fails('MISSING_REQUIRED'));
  const b = parseArgs('bench', ['--scenario', 'lora-kernels', '--batch', '1,4', '--batch', '16', '--rank', '8,64'], {});
  assert.deepEqual([b.batch, b.rank], [[1, 4, 16], [8, 64]]);
});

test('vLLM and TGI names of launch flags set the same settings; given under two names, a flag is a repeat', () => {
  const c = parseArgs('launch', ['--tensor-parallel-size', '2', '--max-model-len', '4096', '--max-input-tokens', '2048', '--host', '127.0.0.1',
    '--max-num-seqs', '64', '--max-loras', '8', '--lora-modules', 'sql=org/sql-lora', '--enable-prefix-caching', '--gpu-memory-utilization', '0.8',
    '--max-num-batched-tokens=8192'], {});
  assert.deepEqual([c.numShard, c.maxTotalTokens, c.maxInputLength, c.hostname, c.maxBatchSize, c.maxAdapterSlots, c.preloadAdapters,
    c.prefixCaching, c.cudaMemoryFraction, c.maxBatchPrefillTokens],
  [2, 4096, 2048, '127.0.0.1', 64, 8, [{ name: 'sql', id: 'org/sql-lora' }], true, 0.8, 8192]);
  assert.throws(() => parseArgs('launch', ['--num-shard', '2', '--tensor-parallel-size', '4'], {}), /--tensor-parallel-size given more than once .*\(it is --num-shard\)/);
  assert.throws(() => parseArgs('launch', ['--max-model-len'], {}), fails('MISSING_VALUE'));
  assert.throws(() => parseArgs('score', ['--tensor-parallel-size', '2'], {}), fails('UNKNOWN_FLAG'), 'aliases are launch\'s');
});

test('shape errors: positionals, missing values, repeats, required flags, conflicts', () => {
  // SageMaker's `docker run <image> serve`: a leading `serve` after the entrypoint's `launch`, nothing else.
  assert.equal(parseArgs('launch', ['serve', '--port', '8080'], {}).port, 8080);
  assert.throws(() => parseArgs('launch', ['--port', '8080', 'serve'], {}), fails('UNEXPECTED_ARGUMENT'));
  assert.throws(() => parseArgs('score', ['serve'], {}), fails('UNEXPECTED_ARGUMENT'));
  assert.throws(() => parseArgs('launch', ['run'], {}), fails('UNEXPECTED_ARGUMENT'));
  assert.throws(() => parseArgs('launch', ['-p', '80'], {}), fails('UNEXPECTED_ARGUMENT'));
  assert.throws(() => parseArgs('launch', ['--port'], {}), fails('MISSING_VALUE'));
  assert.throws(() => parseArgs('launch', ['--model-id', '--port', '80'], {}), fails('MISSING_VALUE'));
  assert.throws(() => parseArgs('launch', ['--port', '80', '--port=81'], {}), fails('DUPLICATE_FLAG'));
  assert.throws(() => parseArgs('score', ['--ids', '1'], {}),
    fails('MISSING_REQUIRED', (e) => assert.equal(e.source, '--model')));
  assert.throws(() => parseArgs('bench', [], {}), fails('MISSING_REQUIRED'));
  assert.throws(() => parseArgs('launch', ['--max-input-length', '2048'], {}), fails('CONFLICT'));
  assert.throws(() => parseArgs('launch', ['--shard-timeout-ms', '500'], {}), fails('CONFLICT'));
  assert.throws(() => parseArgs('shard', [...SHARD_ARGS.slice(0, 2), '--rank', '2', ...SHARD_ARGS.slice(4)], {}),
    fails('CONFLICT', (e) => assert.match(e.message, /--rank \(2\) must be less than --world-size \(2\)/)));
});

test('booleans: --flag, --flag=false, environment values', () => {
  const table: FlagSpec[] = [
    { name: 'dry-run', type: 'bool', default: false, commands: ['bench'], env: ['DRY_RUN'], help: 'Do nothing.' },
    { name: 'scenario', type: 'string', commands: ['bench'], help: 'What.' },
  ];
  assert.deepEqual(parseFlags(table, 'bench', [], {}), { dryRun: false, scenario: null });
  assert.equal(parseFlags(table, 'bench', ['--dry-run'], {}).dryRun, true);
  assert.equal(parseFlags(table, 'bench', ['--dry-run', '--scenario', 'x'], {}).scenario, 'x');
  assert.equal(parseFlags(table, 'bench', ['--dry-run=false'], { DRY_RUN: 'yes' }).dryRun, false);
  assert.equal(parseFlags(table, 'bench', [], { DRY_RUN: 'yes' }).dryRun, true);
  assert.throws(() => parseFlags(table, 'bench', ['--dry-run=perhaps'], {}), fails('INVALID_VALUE'));
  // a bool never takes the next word as its value
  assert.throws(() => parseFlags(table, 'bench', ['--dry-run', 'false'], {}), fails('UNEXPECTED_ARGUMENT'));
});

test('the config is deep-frozen', () => {
  const c = parseArgs('launch', ['--preload-adapter', 'a=b'], { AWS_REGION: 'us-east-1' });
  for (const o of [c, c.env, c.env.aws, c.adapterRoots, c.preloadAdapters, c.preloadAdapters[0], c.env.loraAdapters]) {
    assert.ok(Object.isFrozen(o));
  }
  assert.throws(() => { (c as { port: number }).port = 1; }, TypeError);
  assert.throws(() => { (c.preloadAdapters as unknown as unknown[]).push({ name: 'x', id: 'y' }); }, TypeError);
  assert.throws(() => { (c.env.aws as { region: string }).region = 'x'; }, TypeError);
});

test('redactedConfig hides every secret; configSecrets lists them', () => {
  const c = parseArgs('launch', ['--admin-token', 'adm-SECRET-1', '--nats-url', 'nats://weft:pw-SECRET-2@nats:4222'], {
    HF_TOKEN: 'hf_SECRET_3', AWS_ACCESS_KEY_ID: 'AKIA-SECRET-4', AWS_SECRET_ACCESS_KEY: 'aws-SECRET-5',
    AWS_SESSION_TOKEN: 'sess-SECRET-6', AWS_REGION: 'us-east-1',
  });
  const r = redactedConfig(c);
  const text = JSON.stringify(r);
  assert.doesNotMatch(text, /SECRET/);
  assert.equal(r.adminToken, '***');
  assert.equal(r.natsUrl, 'nats://weft:***@nats:4222');
  assert.deepEqual(r.env, { ...c.env, hfToken: '***', aws: { accessKeyId: '***', secretAccessKey: '***',
    sessionToken: '***', region: 'us-east-1', profile: null } });
  assert.equal(c.adminToken, 'adm-SECRET-1', 'the config itself is untouched');
  assert.deepEqual(configSecrets(c).sort(),
    ['AKIA-SECRET-4', 'adm-SECRET-1', 'aws-SECRET-5', 'hf_SECRET_3', 'pw-SECRET-2', 'sess-SECRET-6']);
  const plain = redactedConfig(parseArgs('launch', [], {}));
  assert.equal(plain.adminToken, null, 'an unset secret stays visibly unset');
});

test('help lists every flag of each command, with defaults and environment variables', () => {
  for (const command of COMMANDS) {
    const help = renderHelp(command);
    assert.match(help, new RegExp(`^Usage: weft ${command} \\[flags\\]`));
    for (const f of flagsFor(command)) {
      assert.ok(help.includes(`--${f.name}`), `weft ${command} --help lacks --${f.name}`);
      for (const v of f.env ?? []) assert.ok(help.includes(v), `weft ${command} --help lacks ${v}`);
    }
  }
  const launch = renderHelp('launch');
  assert.match(launch, /--port <int>\n\s+HTTP port.*default: 3000; env: PORT/);
  assert.match(launch, /HF_TOKEN/);
  assert.match(renderHelp('score'), /--ids <int,…>\n.*required/);
  assert.deepEqual(readCommandLine(['launch', '--port', 'oops', '--help'], {}), { kind: 'help', text: launch });
  assert.equal(readCommandLine([], {}).kind, 'help');
  const run = readCommandLine(['score', '--model', 'm', '--ids', '3'], {});
  assert.ok(run.kind === 'run' && run.config.command === 'score');
});

test('the flag table is well-formed', () => {
  for (const command of COMMANDS) {
    const names = flagsFor(command).map((f) => f.name);
    assert.deepEqual(names, [...new Set(names)], `a flag is declared twice for weft ${command}`);
  }
  for (const f of FLAGS) {
    assert.match(f.name, /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/);
    assert.ok(f.help.length > 0);
  }
});

test('router: backends from --backend (repeatable, comma lists) or WEFT_BACKENDS; at least one; listens like launch', () => {
  const c = parseArgs('router', ['--backend', 'a=http://h1:3000', '--backend', 'http://h2:3000,b=http://h3:3000', '--port', '8080'], {});
  assert.deepEqual(c.backends, ['a=http://h1:3000', 'http://h2:3000', 'b=http://h3:3000']);
  assert.deepEqual([c.port, c.hostname, c.healthIntervalMs, c.logLevel], [8080, '0.0.0.0', 2000, 'info']);
  assert.deepEqual(parseArgs('router', [], { WEFT_BACKENDS: 'http://x:1,http://y:2' }).backends, ['http://x:1', 'http://y:2']);
  assert.throws(() => parseArgs('router', [], {}), (e: unknown) => e instanceof ConfigError && e.code === 'MISSING_REQUIRED' && /at least one --backend/.test(e.message));
  assert.throws(() => parseArgs('router', ['--backend', 'http://x:1', '--model-id', 'm'], {}), (e: unknown) => e instanceof ConfigError && e.code === 'UNKNOWN_FLAG');
});
