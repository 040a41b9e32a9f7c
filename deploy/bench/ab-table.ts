// Side by side: `weft bench` reports of one scenario (decode or prefill), each run with one engine switch set,
// per grid point, with every variant's time relative to the first report (the reference). What a GPU session
// reads to decide whether an opt-in kernel becomes the default (`bash test/gpu/suite.sh ab-decode|ab-prefill`):
//   node dist/deploy/bench/ab-table.js default=decode-default.json fused-lora=decode-fused.json ...
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { formatTable, type Column } from './report.js';

/** One labelled report: the label names the setting it ran with. */
export interface Variant {
  label: string;
  report: { scenario?: string; rows?: unknown[] };
}

interface Point {
  key: string;
  ms: number;
  pct: number | null;
}

const adaptersText = (n: number): string => `${n} adapter${n === 1 ? '' : 's'}`;

// A row's grid point and time: decode rows are (batch, adapters) with stepMs; prefill rows (tokens, adapters) with ms.
function point(scenario: string, row: Record<string, unknown>): Point | null {
  const num = (k: string) => (typeof row[k] === 'number' ? (row[k] as number) : null);
  const pct = num('pctOfBound');
  if (scenario === 'decode') {
    const batch = num('batch'), adapters = num('adapters'), ms = num('stepMs');
    return batch === null || adapters === null || ms === null ? null : { key: `batch ${batch} × ${adaptersText(adapters)}`, ms, pct };
  }
  if (scenario === 'prefill') {
    const tokens = num('tokens'), adapters = num('adapters'), ms = num('ms');
    return tokens === null || adapters === null || ms === null ? null : { key: `${tokens} tokens × ${adaptersText(adapters)}`, ms, pct };
  }
  return null;
}

export interface AbRow {
  point: string;
  /** Per variant, in the order given: time (ms), % of the bandwidth/compute bound, change vs the first (%). */
  cells: { ms: number | null; pct: number | null; change: number | null }[];
}

/** The table's rows: the grid points of the first report, each variant's figures at that point (null where absent). */
export function abRows(variants: readonly Variant[]): AbRow[] {
  if (variants.length === 0) throw new Error('give at least one label=report.json');
  const scenario = variants[0]!.report.scenario ?? '';
  if (scenario !== 'decode' && scenario !== 'prefill')
    throw new Error(`${variants[0]!.label}: scenario '${scenario}' — A/B tables are for decode or prefill reports`);
  const byVariant = variants.map((v) => {
    if (v.report.scenario !== scenario) throw new Error(`${v.label}: a '${v.report.scenario}' report among '${scenario}' ones`);
    const points = new Map<string, Point>();
    for (const r of v.report.rows ?? []) {
      const p = point(scenario, r as Record<string, unknown>);
      if (p) points.set(p.key, p);
    }
    return points;
  });
  return [...byVariant[0]!.keys()].map((key) => {
    const ref = byVariant[0]!.get(key)!.ms;
    return {
      point: key,
      cells: byVariant.map((points) => {
        const p = points.get(key);
        return p ? { ms: p.ms, pct: p.pct, change: (p.ms / ref - 1) * 100 } : { ms: null, pct: null, change: null };
      }),
    };
  });
}

export function formatAb(variants: readonly Variant[]): string {
  const rows = abRows(variants);
  const columns: Column<AbRow>[] = [{ header: 'point', value: (r) => r.point }];
  variants.forEach((v, i) => {
    columns.push({ header: `${v.label} ms`, value: (r) => r.cells[i]!.ms, digits: 2 });
    columns.push({ header: `${v.label} % bound`, value: (r) => r.cells[i]!.pct, digits: 1 });
    if (i > 0) columns.push({ header: `${v.label} vs ${variants[0]!.label}`, value: (r) => signed(r.cells[i]!.change) });
  });
  return formatTable(rows, columns);
}

function signed(change: number | null): string | null {
  if (change === null) return null;
  return `${change > 0 ? '+' : ''}${change.toFixed(1)} %`;
}

/** `label=path` arguments into variants (the label defaults to the file name). */
export function parseVariantArgs(args: readonly string[], read: (path: string) => string): Variant[] {
  return args.map((arg) => {
    const eq = arg.indexOf('=');
    const [label, path] = eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg.replace(/^.*\//, '').replace(/\.json$/, ''), arg];
    return { label, report: JSON.parse(read(path)) as Variant['report'] };
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  if (args.length === 0) {
    process.stderr.write('usage: ab-table.js label=report.json [label=report.json ...] (the first is the reference)\n');
    process.exit(2);
  }
  process.stdout.write(`${formatAb(parseVariantArgs(args, (p) => readFileSync(p, 'utf8')))}\n`);
}
