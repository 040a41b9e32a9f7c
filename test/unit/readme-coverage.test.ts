// The README is the user's manual: every flag of the user-facing commands (launch, score, bench; `shard` is started
// by launch), every environment variable those flags fall back to, and every WEFT_* switch the code reads (engine
// switches of the native kernels and the shard) must appear in it. A new flag or switch without a line there fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FLAGS, type FlagSpec } from '../../deploy/config/flags.js';

const readme = readFileSync('README.md', 'utf8');

function sourceFiles(dir: string, exts: string[]): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p, exts));
    else if (exts.some((e) => name.endsWith(e))) out.push(p);
  }
  return out;
}

test('every flag of launch, score and bench, and every environment variable they read, is in the README', () => {
  const missing: string[] = [];
  for (const f of FLAGS as readonly FlagSpec[]) {
    if (!f.commands.some((c) => c !== 'shard')) continue;
    if (!readme.includes(`--${f.name}`)) missing.push(`--${f.name}`);
    for (const e of f.env ?? []) if (!readme.includes(e)) missing.push(e);
  }
  assert.deepEqual(missing, [], 'document these in README.md');
});

test('every WEFT_* switch the code reads is in the README', () => {
  const files = [
    ...sourceFiles('kernels/src', ['.cc', '.cu', '.cuh', '.h']),
    ...['shard', 'coordinator', 'deploy', 'protocol'].flatMap((d) => sourceFiles(d, ['.ts'])),
  ];
  const names = new Set<string>();
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    // env_equals("WEFT_X", ...), getenv("WEFT_X"), process.env.WEFT_X, env.WEFT_X, env['WEFT_X']
    for (const m of text.matchAll(/(?:env_equals\(|getenv\()\s*"(WEFT_[A-Z0-9_]+)"|env(?:\.|\[')(WEFT_[A-Z0-9_]+)/g)) {
      names.add(m[1] ?? m[2]!);
    }
  }
  assert.ok(names.size >= 15, `found the switches (${names.size}): the patterns above still match the code`);
  const missing = [...names].filter((n) => !readme.includes(n)).sort();
  assert.deepEqual(missing, [], 'document these in README.md');
});
