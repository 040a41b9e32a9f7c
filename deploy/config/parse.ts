// `weft <command> [flags]` + environment → one checked, deep-frozen config. Pure: argv and env are arguments.
// Precedence per flag: the command line, then its environment variables, then its default.
import { readEnvConfig, firstEnv, type Env } from './env.js';
import { FLAGS, flagKey, flagsFor, type FlagSpec } from './flags.js';
import { closest, parseList, parseScalar, type FlagValue } from './values.js';
import { COMMANDS, ConfigError, type Command, type Config, type ConfigFor, type Dtype } from './types.js';

/** Parses and checks the flags of `command` (argv without the command word). Throws ConfigError. */
export function parseArgs<C extends Command>(command: C, argv: readonly string[], env: Env): Readonly<ConfigFor<C>> {
  if (!COMMANDS.includes(command)) throw unknownCommand(command);
  const values = parseFlags(FLAGS, command, argv, env);
  const config = { command, ...values, env: readEnvConfig(env) } as unknown as Config;
  return deepFreeze(finish(config) as ConfigFor<C>);
}

/** The command word: one of launch, shard, score, bench (with a suggestion for a typo). */
export function parseCommand(word: string | undefined): Command {
  if (word === undefined || word.startsWith('-')) {
    throw new ConfigError(`missing command: weft <${COMMANDS.join('|')}> [flags]`, 'UNKNOWN_COMMAND');
  }
  const c = COMMANDS.find((x) => x === word);
  if (c === undefined) throw unknownCommand(word);
  return c;
}

/** True when argv asks for help (`--help` or `-h` anywhere): print help instead of parsing. */
export function wantsHelp(argv: readonly string[]): boolean {
  return argv.some((a) => a === '--help' || a === '-h' || a === '--help=true');
}

/**
 * The flag values of `command` by `table`, keyed by config field (flagKey), before cross-field checks.
 * Exported so the parsing rules can be tested on a table of their own.
 */
export function parseFlags(table: readonly FlagSpec[], command: Command, argv: readonly string[], env: Env):
  Record<string, FlagValue> {
  const specs = flagsFor(command, table);
  const given = scanArgv(table, specs, command, argv);
  const out: Record<string, FlagValue> = {};
  for (const f of specs) {
    const flag = `--${f.name}`;
    const texts = given.get(f.name);
    const fromEnv = texts === undefined && f.env !== undefined ? firstEnv(env, f.env) : undefined;
    let value: FlagValue;
    if (texts !== undefined) {
      value = f.type === 'list' ? parseList(f, texts, flag, false) : parseScalar(f, texts[0], flag);
    } else if (fromEnv !== undefined) {
      const source = `${fromEnv.name} (environment, for ${flag})`;
      value = f.type === 'list' ? parseList(f, [fromEnv.value], source, true) : parseScalar(f, fromEnv.value, source);
    } else {
      value = f.default ?? null;
    }
    const missing = value === null || (Array.isArray(value) && value.length === 0);
    if (f.required === true && missing) {
      throw new ConfigError(`weft ${command} needs ${flag} (${f.help.replace(/\.$/, '')})`, 'MISSING_REQUIRED',
        { source: flag });
    }
    out[flagKey(f)] = value;
  }
  return out;
}

/** argv → raw texts per flag name, in order. Rejects positionals, unknown flags, missing values, repeats. */
function scanArgv(table: readonly FlagSpec[], specs: readonly FlagSpec[], command: Command, argv: readonly string[]):
  Map<string, string[]> {
  const byName = new Map(specs.flatMap((f) => [f.name, ...(f.aliases ?? [])].map((n) => [n, f] as const)));
  const given = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    // SageMaker starts a container as `docker run <image> serve`: after the image's `weft launch` entrypoint.
    if (command === 'launch' && i === 0 && arg === 'serve') continue;
    if (!arg.startsWith('--') || arg === '--') {
      throw new ConfigError(`unexpected argument '${arg}': weft ${command} takes only --flags ` +
        `(weft ${command} --help lists them)`, 'UNEXPECTED_ARGUMENT', { source: arg });
    }
    const eq = arg.indexOf('=');
    const written = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    const f = byName.get(written);
    if (f === undefined) throw unknownFlag(table, specs, command, written);
    let text: string;
    if (eq >= 0) text = arg.slice(eq + 1);
    else if (f.type === 'bool') text = 'true';
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) text = argv[++i];
    else throw new ConfigError(`--${written} needs a value`, 'MISSING_VALUE', { source: `--${written}` });
    // An alias is its flag: given under both names, it is a repeat.
    const seen = given.get(f.name);
    if (seen !== undefined && f.type !== 'list') {
      throw new ConfigError(`--${written} given more than once ('${seen[0]}', then '${text}')${written === f.name ? '' : ` (it is --${f.name})`}`,
        'DUPLICATE_FLAG', { source: `--${written}` });
    }
    given.set(f.name, [...(seen ?? []), text]);
  }
  return given;
}

function unknownFlag(table: readonly FlagSpec[], specs: readonly FlagSpec[], command: Command, name: string): ConfigError {
  const source = `--${name}`;
  const owners = [...new Set(table.filter((f) => f.name === name).flatMap((f) => f.commands))];
  if (owners.length > 0) {
    return new ConfigError(`${source} is not a flag of weft ${command} (it belongs to weft ${owners.join(', weft ')})`,
      'UNKNOWN_FLAG', { source });
  }
  const suggestion = closest(name, specs.map((f) => f.name));
  const hint = suggestion === undefined ? '' : `; did you mean --${suggestion}?`;
  return new ConfigError(`unknown flag ${source} for weft ${command}${hint} (weft ${command} --help lists the flags)`,
    'UNKNOWN_FLAG', { source, suggestion: suggestion === undefined ? undefined : `--${suggestion}` });
}

function unknownCommand(word: string): ConfigError {
  const suggestion = closest(word, COMMANDS);
  const hint = suggestion === undefined ? '' : `; did you mean '${suggestion}'?`;
  return new ConfigError(`unknown command '${word}'${hint} (commands: ${COMMANDS.join(', ')})`, 'UNKNOWN_COMMAND',
    { source: word, suggestion });
}

function conflict(message: string, source: string): ConfigError {
  return new ConfigError(message, 'CONFLICT', { source });
}

/** Defaults that depend on other values, and rules that span two flags. */
function finish(c: Config): Config {
  switch (c.command) {
    case 'launch':
    case 'batch': {
      const dtype: Dtype = (c.dtype as Dtype | null) ?? (c.device === 'cuda' ? 'bfloat16' : 'float32');
      if (c.maxInputLength >= c.maxTotalTokens) {
        throw conflict(`--max-input-length (${c.maxInputLength}) must be less than --max-total-tokens ` +
          `(${c.maxTotalTokens}): a request needs room for at least one generated token`, '--max-input-length');
      }
      if (c.shardTimeoutMs <= c.shardHeartbeatMs) {
        throw conflict(`--shard-timeout-ms (${c.shardTimeoutMs}) must exceed --shard-heartbeat-ms ` +
          `(${c.shardHeartbeatMs}), or every shard looks lost`, '--shard-timeout-ms');
      }
      if (c.collective === 'nccl' && c.device !== 'cuda') {
        throw conflict('--collective nccl needs --device cuda (NCCL moves GPU tensors); use --collective shm on cpu', '--collective');
      }
      // A draft model drafts 4 tokens a step unless told otherwise.
      const speculate = c.speculativeModel !== null && c.speculate === 0 ? 4 : c.speculate;
      return { ...c, dtype, speculate };
    }
    case 'shard': {
      if (c.rank >= c.worldSize) {
        throw conflict(`--rank (${c.rank}) must be less than --world-size (${c.worldSize})`, '--rank');
      }
      const dtype: Dtype = (c.dtype as Dtype | null) ?? (c.device === 'cuda' ? 'bfloat16' : 'float32');
      return { ...c, dtype };
    }
    case 'score':
    case 'bench':
    case 'check-adapter':
      return c;
    case 'router':
      if (c.backends.length === 0) throw new ConfigError('weft router needs at least one --backend [NAME=]http://host:port (or WEFT_BACKENDS)', 'MISSING_REQUIRED', { source: '--backend' });
      return c;
    default: {
      const unhandled: never = c;
      throw new Error(`unhandled command ${JSON.stringify(unhandled)}`);
    }
  }
}

/** Freezes `value` and everything reachable from it; returns it. */
export function deepFreeze<T>(value: T): Readonly<T> {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
