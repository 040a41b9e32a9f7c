// How every scenario reports: a plain-text table on stdout, and one JSON document (stdout when no
// --output, else the file) holding the same rows with full precision plus what the bounds were measured from.
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import type { BenchScenario } from '../config/index.js';
import { cudaInfo } from '../../kernels/cuda.js';

export interface Column<R> {
  header: string;
  value: (row: R) => string | number | null;
  /** Digits after the point for numbers (default 1). */
  digits?: number;
}

function cell(v: string | number | null, digits: number): string {
  if (v === null) return '—';
  if (typeof v === 'string') return v;
  if (!Number.isFinite(v)) return '—';
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A GitHub-flavoured Markdown table (also readable as plain text). */
export function formatTable<R>(rows: readonly R[], columns: readonly Column<R>[]): string {
  const cells = rows.map((r) => columns.map((c) => cell(c.value(r), c.digits ?? 1)));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((row) => row[i]!.length)));
  const line = (vals: string[]) => `| ${vals.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(columns.map((c) => c.header)), rule, ...cells.map(line)].join('\n');
}

export interface DeviceInfo {
  backend: string;
  description: string;
  cpuCores: number;
  memoryBytes: number;
  host?: string;  // the CPU, where description names a GPU
}

/**
 * The machine a report was measured on. With `--device cuda` the description names the GPU (what the figures are
 * about: "NVIDIA H100 80GB HBM3, 79.6 GiB, cc 9.0, 132 SMs"); the host's CPU stays in `host`.
 */
export function hostDevice(backend: string): DeviceInfo {
  const c = cpus();
  const host = `${c.length}-core ${c[0]?.model.trim() ?? 'CPU'}`;
  const base = { backend, description: host, cpuCores: c.length, memoryBytes: totalmem() };
  if (backend !== 'cuda') return base;
  const gpu = cudaInfo().devices[0];
  if (!gpu) return base;
  const gib = (gpu.totalMemory / 2 ** 30).toFixed(1);
  return { ...base, description: `${gpu.name}, ${gib} GiB, cc ${gpu.computeCapability}, ${gpu.multiProcessors} SMs`, host };
}

export interface Report<R> {
  scenario: BenchScenario;
  date: string;
  device: DeviceInfo;
  /** Scenario-specific: the model, the measured bandwidth / GEMM rate, the settings. */
  setup: Record<string, unknown>;
  rows: R[];
  notes: string[];
}

/** Writes the JSON report to `output`, or to stdout when there is none. NaN and Infinity become null. */
export function emitReport<R>(report: Report<R>, output: string | null, out: (text: string) => void): void {
  const json = JSON.stringify(report, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2);
  if (output) {
    writeFileSync(output, json + '\n');
    out(`wrote ${output}`);
  } else {
    out(json);
  }
}

export const GB = 1e9;
