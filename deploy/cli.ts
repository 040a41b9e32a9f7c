#!/usr/bin/env node
// `weft <command> [flags]` — launch | shard | score | bench | check-adapter | batch | router. `weft <command> --help` lists every flag.
import { readCommandLine } from './config/index.js';

async function main(): Promise<void> {
  const cl = readCommandLine();
  if (cl.kind === 'help') {
    process.stdout.write(cl.text + '\n');
    return;
  }
  const config = cl.config;
  switch (config.command) {
    case 'score': {
      const { score, formatLogits } = await import('./score.js');
      process.stdout.write(formatLogits(await score(config)) + '\n');
      return;
    }
    case 'shard': {
      const { runShard } = await import('./shard-main.js');
      await runShard(config);
      return;
    }
    case 'launch': {
      const { launch } = await import('./launch.js');
      const server = await launch(config);
      closeOnSignal(server);
      return;
    }
    case 'bench': {
      const { runBench } = await import('./bench/index.js');
      await runBench(config);
      return;
    }
    case 'batch': {
      const { runBatch } = await import('./batch.js');
      const summary = await runBatch(config);
      if (summary.invalid > 0 || summary.failed > 0) process.exitCode = 2;  // every line still has its result line
      return;
    }
    case 'router': {
      const { startRouter } = await import('./router/router.js');
      const router = await startRouter(config);
      closeOnSignal(router);
      return;
    }
    case 'check-adapter': {
      const { checkAdapter } = await import('./check-adapter.js');
      process.stdout.write(JSON.stringify(checkAdapter(config), null, 2) + '\n');
      return;
    }
    default: {
      const _exhaustive: never = config;
      throw new Error(`unhandled command ${String(_exhaustive)}`);
    }
  }
}

/** SIGTERM / SIGINT: close (a server drains its requests), then exit. */
function closeOnSignal(running: { close(): Promise<void> }): void {
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => { void running.close().then(() => process.exit(0)); });
  }
}

main().catch((e: Error) => {
  process.stderr.write(`weft: ${e.message}\n`);
  process.exit(1);
});
