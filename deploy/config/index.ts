// The one module that reads the command line and environment variables; everything else receives the
// typed, frozen config it returns.
import { renderHelp, renderUsage } from './help.js';
import { parseArgs, parseCommand, wantsHelp } from './parse.js';
import type { Config } from './types.js';

export { FLAGS, flagKey, flagsFor } from './flags.js';
export type { BoolFlag, FlagSpec, FlagType, ListFlag, NumberFlag, StringFlag } from './flags.js';
export { ENV_ONLY, readEnvConfig, type Env } from './env.js';
export { deepFreeze, parseArgs, parseCommand, parseFlags, wantsHelp } from './parse.js';
export { renderHelp, renderUsage } from './help.js';
export { REDACTED, configSecrets, redactedConfig } from './redact.js';
export { imageLimitsOf } from './image-limits.js';
export { COMMANDS, ConfigError } from './types.js';
export type {
  AdapterSource, AwsEnv, BatchConfig, BenchConfig, BenchScenario, Command, Config, ConfigErrorCode, ConfigFor, Device, Dtype,
  CheckAdapterConfig, EnvConfig, LaunchConfig, LogLevel, PreloadAdapter, ScoreConfig, ShardConfig,
} from './types.js';

export type CommandLine =
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'run'; readonly config: Readonly<Config> };

/**
 * `weft <command> [flags]` from this process (or the given argv without node and script, and env):
 * help text when asked for (or no command given), else the checked config. Throws ConfigError.
 */
export function readCommandLine(
  argv: readonly string[] = process.argv.slice(2),
  env: Readonly<Record<string, string | undefined>> = process.env,
): CommandLine {
  const [word, ...rest] = argv;
  if (word === undefined || word === '--help' || word === '-h' || word === 'help') {
    return { kind: 'help', text: renderUsage() };
  }
  const command = parseCommand(word);
  if (wantsHelp(rest)) return { kind: 'help', text: renderHelp(command) };
  return { kind: 'run', config: parseArgs(command, rest, env) };
}
