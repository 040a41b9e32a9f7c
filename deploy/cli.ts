#!/usr/bin/env node
// `weft <command> [flags]` — launch | shard | score | bench. Flags and env vars: see README or `--help`.
import { parseCommandLine } from './cli-args.js';

async function main(argv: string[]): Promise<void> {
  const { command, flags } = parseCommandLine(argv);
  switch (command) {
    case 'score': {
      const { score, formatLogits } = await import('./score.js');
      const logits = await score(flags.score());
      process.stdout.write(formatLogits(logits) + '\n');
      return;
    }
    case 'shard': {
      const { runShard } = await import('./shard-main.js');
      await runShard(flags.shard());
      return;
    }
    case 'launch': {
      const { launch } = await import('./launch.js');
      const server = await launch(flags.launch());
      for (const sig of ['SIGTERM', 'SIGINT'] as const) {
        process.once(sig, () => { void server.close().then(() => process.exit(0)); });
      }
      return;
    }
    default:
      throw new Error(`unknown command '${command}'. Commands: launch, shard, score, bench`);
  }
}

main(process.argv.slice(2)).catch((e: Error) => {
  process.stderr.write(`weft: ${e.message}\n`);
  process.exit(1);
});
