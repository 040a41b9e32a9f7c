// `weft --help` and `weft <command> --help`, rendered from the flag table.
import { ENV_ONLY } from './env.js';
import { flagsFor, type FlagSpec } from './flags.js';
import { COMMANDS, type Command } from './types.js';

const SUMMARY: Record<Command, string> = {
  launch: 'Start a local nats-server (unless --nats-url), N shard processes and the coordinator with its HTTP API.',
  shard: 'Run one shard actor (one tensor-parallel rank). Started by weft launch; not usually run by hand.',
  score: 'Print {"logits": [[...], ...]}: full-vocabulary logits for every input position (conformance entry point).',
  bench: 'Run a benchmark scenario and report measured times next to the memory/compute bound.',
  batch: 'Run an OpenAI batch file (JSONL) through a server started for it with the launch flags (or a running one, --url) and write one result line per request.',
  router: 'Route requests over several weft replicas: each adapter\'s requests to one replica (rendezvous hashing), base-model requests to the least busy, admin requests to all.',
  'check-adapter': 'Check that a PEFT adapter loads on a model (without starting a server) and print what it holds and the bytes it takes per shard; exit 1 with the reason when it would be refused.',
};

function valueHint(f: FlagSpec): string {
  switch (f.type) {
    case 'bool':
      return '';
    case 'string':
      return f.choices !== undefined ? ` <${f.choices.join('|')}>` : ' <string>';
    case 'int':
    case 'float':
      return ` <${f.type}>`;
    case 'list':
      return f.of === 'name=id' ? ' <name=SOURCE_ID>' : f.split !== undefined ? ` <${f.of}${f.split}…>` : ` <${f.of}>`;
    default: {
      const unhandled: never = f;
      throw new Error(`unhandled flag ${JSON.stringify(unhandled)}`);
    }
  }
}

function defaultText(f: FlagSpec): string | undefined {
  if (f.required === true) return undefined;
  if (f.defaultLabel !== undefined) return f.defaultLabel;
  if (f.type === 'list') return f.default.length === 0 ? 'none' : f.default.join(f.split ?? ',');
  return f.default === undefined ? 'none' : String(f.default);
}

function flagBlock(f: FlagSpec): string {
  const notes: string[] = [];
  if (f.required === true) notes.push('required');
  const d = defaultText(f);
  if (d !== undefined) notes.push(`default: ${d}`);
  if (f.type === 'list') notes.push('repeatable');
  if (f.env !== undefined) {
    const sep = f.type === 'list' ? ` (${(f.envSplit ?? ',') === ':' ? 'colon' : 'comma'}-separated)` : '';
    notes.push(`env: ${f.env.join(', ')}${sep}`);
  }
  if (f.secret === true) notes.push('secret');
  if (f.aliases !== undefined) notes.push(`also ${f.aliases.map((a) => `--${a}`).join(', ')}`);
  return `  --${f.name}${valueHint(f)}\n      ${f.help} [${notes.join('; ')}]`;
}

/** Help for one command: usage, summary, every flag it accepts, environment-only variables. */
export function renderHelp(command: Command, table?: readonly FlagSpec[]): string {
  const lines = [`Usage: weft ${command} [flags]`, '', SUMMARY[command], '', 'Flags:'];
  for (const f of flagsFor(command, table)) lines.push(flagBlock(f));
  lines.push('  --help, -h\n      Print this help.');
  if (command === 'launch') {
    lines.push('', 'Environment only (no flag):');
    for (const [names, meaning] of ENV_ONLY) lines.push(`  ${names}\n      ${meaning}`);
    lines.push('', 'A flag beats its environment variable; an empty variable counts as unset. Logs are JSON lines.');
  }
  return lines.join('\n') + '\n';
}

/** Help for `weft` itself: the commands. */
export function renderUsage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.length));
  const lines = ['Usage: weft <command> [flags]', '', 'Commands:'];
  for (const c of COMMANDS) lines.push(`  ${c.padEnd(width)}  ${SUMMARY[c]}`);
  lines.push('', 'Run weft <command> --help for its flags.');
  return lines.join('\n') + '\n';
}
