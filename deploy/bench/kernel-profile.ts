// Where a GPU step's time goes: reads what Nsight Compute prints with `--csv --page raw --metrics
// gpu__time_duration.sum` (one row per kernel launch, after whatever the profiled program printed first) and
// sums it per kernel, most time first. `bash test/gpu/suite.sh profile` runs it on the GPU machine:
//   node dist/deploy/bench/kernel-profile.js ncu.csv [--top N]
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { formatTable, type Column } from './report.js';

export interface KernelTime {
  /** The kernel's name up to its argument list, template arguments kept: `weft::<unnamed>::rope_kernel<__nv_bfloat16>`. */
  kernel: string;
  launches: number;
  totalUs: number;
  meanUs: number;
  /** Share of all profiled kernel time, percent. */
  share: number;
  /** The grid of its first launch, as ncu prints it: "(4, 22, 1)". */
  grid: string;
}

/** One CSV line into fields: commas inside double quotes stay, "" is a quote. */
export function csvFields(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

/** ncu's "void ns::name<T>(args) [launch]" -> "ns::name<T>". */
export function kernelName(full: string): string {
  let depth = 0;
  let end = full.length;
  for (let i = 0; i < full.length; i++) {
    const ch = full[i];
    if (ch === '<') depth++;
    else if (ch === '>') depth--;
    else if (ch === '(' && depth === 0) {
      end = i;
      break;
    }
  }
  return full.slice(0, end).replace(/^void\s+/, '').trim();
}

/**
 * Per-kernel totals from ncu's raw CSV. Durations are in the unit of the metric's unit row (ncu prints
 * "nsecond", "usecond" or "msecond" in the line after the header). Throws when the CSV has no ncu header.
 */
export function summarizeNcuCsv(text: string): KernelTime[] {
  const lines = text.split(/\r?\n/);
  const head = lines.findIndex((l) => l.startsWith('"ID",'));
  if (head < 0) throw new Error('no Nsight Compute CSV header ("ID",...) found: was ncu run with --csv --page raw?');
  const header = csvFields(lines[head]!);
  const nameCol = header.indexOf('Kernel Name');
  const timeCol = header.indexOf('gpu__time_duration.sum');
  const gridCol = header.indexOf('Grid Size');
  if (nameCol < 0 || timeCol < 0) throw new Error('the CSV lacks "Kernel Name" or gpu__time_duration.sum: run ncu with --metrics gpu__time_duration.sum');
  const unit = csvFields(lines[head + 1] ?? '')[timeCol] ?? '';
  const toUs = unit.startsWith('msecond') ? 1e3 : unit.startsWith('usecond') ? 1 : 1e-3;
  const byName = new Map<string, { launches: number; total: number; grid: string }>();
  for (const line of lines.slice(head + 2)) {
    if (!line.startsWith('"')) continue;
    const f = csvFields(line);
    if (f.length !== header.length) continue;
    const us = Number(f[timeCol]!.replace(/,/g, '')) * toUs;
    if (!Number.isFinite(us)) continue;
    const name = kernelName(f[nameCol]!);
    const e = byName.get(name) ?? { launches: 0, total: 0, grid: gridCol >= 0 ? f[gridCol]! : '' };
    e.launches++;
    e.total += us;
    byName.set(name, e);
  }
  const all = [...byName.values()].reduce((s, e) => s + e.total, 0);
  return [...byName.entries()]
    .map(([kernel, e]) => ({ kernel, launches: e.launches, totalUs: e.total, meanUs: e.total / e.launches,
      share: all > 0 ? (100 * e.total) / all : 0, grid: e.grid }))
    .sort((a, b) => b.totalUs - a.totalUs);
}

const COLUMNS: Column<KernelTime>[] = [
  { header: 'kernel', value: (r) => (r.kernel.length > 90 ? `${r.kernel.slice(0, 87)}...` : r.kernel) },
  { header: 'launches', value: (r) => r.launches, digits: 0 },
  { header: 'mean µs', value: (r) => r.meanUs, digits: 2 },
  { header: 'total µs', value: (r) => r.totalUs, digits: 0 },
  { header: '% of time', value: (r) => r.share, digits: 1 },
  { header: 'grid', value: (r) => r.grid },
];

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [file, flag, n] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node dist/deploy/bench/kernel-profile.js NCU_CSV [--top N]');
    process.exit(2);
  }
  const rows = summarizeNcuCsv(readFileSync(file, 'utf8'));
  console.log(formatTable(flag === '--top' ? rows.slice(0, Number(n)) : rows, COLUMNS));
}
