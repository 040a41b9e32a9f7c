// `weft bench --scenario baseline`: runs deploy/bench/peft_baseline.py (PyTorch + transformers + PEFT,
// mixed-adapter generate) on the same model shape and grid as the decode scenario. It needs python3 with
// torch, transformers and peft, which the GPU machine has; elsewhere it says so and measures nothing.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatTable, hostDevice, type Column, type Report } from './report.js';
import { llamaConfigJson, type ModelShape } from './shapes.js';

export interface BaselineOptions {
  shape: ModelShape;
  /** A model directory whose config.json describes the shape, or null to write one for `shape`. */
  modelDir: string | null;
  modelLabel: string;
  device: 'cpu' | 'cuda';
  batch: readonly number[];
  adapters: readonly number[];
  rank: readonly number[];
  context: readonly number[];
  newTokens?: number;
  log?: (msg: string) => void;
}

export interface BaselineRow {
  batch: number;
  adapters: number;
  rank: number;
  context: number;
  new_tokens: number;
  prefill_ms: number;
  generate_ms: number;
  step_ms: number;
  tok_per_s: number;
}

/** The script's path in the source tree (from dist/deploy/bench or from deploy/bench). */
export function baselineScriptPath(): string {
  const candidates = ['../../../deploy/bench/peft_baseline.py', './peft_baseline.py']
    .map((rel) => fileURLToPath(new URL(rel, import.meta.url)));
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`peft_baseline.py not found (looked at ${candidates.join(', ')})`);
  return found;
}

/** null when python3 can import torch, transformers and peft; else why not. */
export function pythonStackMissing(): string | null {
  const r = spawnSync('python3', ['-c', 'import torch, transformers, peft'], { encoding: 'utf8' });
  if (r.error) return `python3 cannot run (${r.error.message})`;
  if (r.status === 0) return null;
  const lines = (r.stderr || '').trim().split('\n');
  return lines[lines.length - 1] || `python3 exited with ${r.status}`;
}

export function baselineArgs(script: string, configPath: string, o: BaselineOptions, output: string): string[] {
  return [script, '--config', configPath, '--batch', o.batch.join(','), '--adapters', [...new Set([0, ...o.adapters])].join(','),
    '--rank', o.rank.join(','), '--context', o.context.join(','), '--new-tokens', String(o.newTokens ?? 64),
    '--dtype', o.shape.dtype, '--device', o.device, '--output', output];
}

export async function runBaseline(o: BaselineOptions): Promise<Report<BaselineRow>> {
  const log = o.log ?? (() => {});
  const script = baselineScriptPath();
  const tmp = mkdtempSync(join(tmpdir(), 'weft-baseline-'));
  try {
    const configPath = o.modelDir ? join(o.modelDir, 'config.json') : join(tmp, 'config.json');
    if (!o.modelDir) writeFileSync(configPath, JSON.stringify(llamaConfigJson(o.shape), null, 2));
    const output = join(tmp, 'baseline.json');
    const args = baselineArgs(script, configPath, o, output);
    const missing = pythonStackMissing();
    const setup = { model: o.modelLabel, shape: o.shape, script, command: ['python3', ...args.map((a) => (a === output ? 'OUT.json' : a))].join(' ') };
    if (missing) {
      const message = `the PyTorch + PEFT baseline needs python3 with torch, transformers and peft, as on the GPU machine ` +
        `(torch 2.11, transformers 5.17, PEFT 0.21); here: ${missing}. Nothing was measured. The script is ${script}; ` +
        `on the GPU machine run: weft bench --scenario baseline --device cuda …, or python3 ${script} --help`;
      log(message);
      return { scenario: 'baseline', date: new Date().toISOString(), device: hostDevice(o.device), setup: { ...setup, skipped: message }, rows: [], notes: [message] };
    }
    await new Promise<void>((resolve, reject) => {
      const child = spawn('python3', args, { stdio: ['ignore', 'inherit', 'inherit'] });
      child.on('error', reject);
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`peft_baseline.py exited with ${code}`))));
    });
    const result = JSON.parse(readFileSync(output, 'utf8')) as { device: string; versions: unknown; setup: unknown; rows: BaselineRow[] };
    return {
      scenario: 'baseline', date: new Date().toISOString(), device: { ...hostDevice(o.device), description: result.device },
      setup: { ...setup, versions: result.versions, python: result.setup }, rows: result.rows,
      notes: ['PeftModel.generate(adapter_names=[per-row adapter]) greedy; step_ms = (t(new_tokens) − t(1)) / (new_tokens − 1), median of 3 after a warm-up; new_tokens is 64, or fewer (≥ 3) where a 3-token probe shows a call would exceed 6 s; adapters=0 rows run on the plain transformers model'],
    };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

export const BASELINE_COLUMNS: Column<BaselineRow>[] = [
  { header: 'batch', value: (r) => r.batch, digits: 0 },
  { header: 'adapters', value: (r) => r.adapters, digits: 0 },
  { header: 'rank', value: (r) => (r.adapters ? r.rank : null), digits: 0 },
  { header: 'context', value: (r) => r.context, digits: 0 },
  { header: 'step ms', value: (r) => r.step_ms, digits: 2 },
  { header: 'tok/s', value: (r) => r.tok_per_s, digits: 1 },
];

export function formatBaseline(report: Report<BaselineRow>): string {
  return report.rows.length ? formatTable(report.rows, BASELINE_COLUMNS) : '(baseline not run: see above)';
}
