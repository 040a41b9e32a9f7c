// `weft bench --op-profile`: where a decode or prefill step's time goes, op by op, from the executor's op
// profile (NativeModel.setOpProfile: host clock on the CPU, CUDA events between ops on a GPU). It runs as an
// extra pass after a case's timed steps, so the step times in the main table are unaffected; on a GPU the
// profiled steps run without decode graphs (an event between every two kernels), which the shares reflect.
import type { OpTime } from '../../kernels/index.js';
import { formatTable, type Column } from './report.js';

export interface OpShare {
  op: string;
  /** Mean per profiled step. */
  msPerStep: number;
  /** Launches (or calls) per step: per-layer ops once per layer. */
  callsPerStep: number;
  /** Share of the profiled step's op time, percent. */
  pct: number;
  /** The op's bound per step (op-bounds.ts: its bytes at the copy bandwidth, or its FLOPs at the GEMM rate), and
   *  that ÷ its time, percent. */
  boundMs?: number;
  pctOfBound?: number;
}

/** The shares with each op's bound where `boundMsPerCall` has a model for it. */
export function withOpBounds(ops: readonly OpShare[], boundMsPerCall: (op: string) => number | undefined): OpShare[] {
  return ops.map((o) => {
    const perCall = boundMsPerCall(o.op);
    if (perCall === undefined || !Number.isFinite(perCall)) return o;
    const boundMs = perCall * o.callsPerStep;
    return { ...o, boundMs, pctOfBound: o.msPerStep > 0 ? (boundMs / o.msPerStep) * 100 : 0 };
  });
}

/** Totals over `steps` profiled steps → per-step shares, largest first. */
export function opShares(ops: readonly OpTime[], steps: number): OpShare[] {
  const total = ops.reduce((n, o) => n + o.ms, 0);
  return ops.map((o) => ({ op: o.op, msPerStep: o.ms / steps, callsPerStep: o.calls / steps, pct: total > 0 ? (o.ms / total) * 100 : 0 }))
    .sort((a, b) => b.msPerStep - a.msPerStep);
}

/** What profiles a case: turn the profile on, run the steps, take the totals, turn it off (also on failure). */
export interface OpProfiler {
  setOpProfile(on: boolean): void;
  takeOpProfile(): OpTime[];
}

export async function profileSteps(p: OpProfiler, steps: number, step: () => Promise<void>): Promise<OpShare[]> {
  p.takeOpProfile();  // nothing from before counts
  p.setOpProfile(true);
  try {
    for (let i = 0; i < steps; i++) await step();
    return opShares(p.takeOpProfile(), steps);
  } finally {
    p.setOpProfile(false);
  }
}

const OP_COLUMNS: Column<OpShare & { case: string }>[] = [
  { header: 'case', value: (r) => r.case },
  { header: 'op', value: (r) => r.op },
  { header: 'ms / step', value: (r) => r.msPerStep, digits: 3 },
  { header: 'calls / step', value: (r) => r.callsPerStep, digits: 0 },
  { header: '% of step', value: (r) => r.pct, digits: 1 },
  { header: 'bound ms', value: (r) => r.boundMs ?? null, digits: 3 },
  { header: '% of bound', value: (r) => r.pctOfBound ?? null, digits: 1 },
];

/** A scenario's table, then (when any case was profiled) the op breakdown under it. */
export function withOpBreakdown(table: string, cases: readonly { label: string; ops: readonly OpShare[] }[]): string {
  return cases.length ? `${table}\n\nWhere a step's time goes (op profile):\n${formatOpBreakdown(cases)}` : table;
}

/** One table: per case its `top` largest ops, the rest summed as "(other ops)". */
export function formatOpBreakdown(cases: readonly { label: string; ops: readonly OpShare[] }[], top = 12): string {
  const rows = cases.flatMap(({ label, ops }) => {
    const head = ops.slice(0, top), rest = ops.slice(top);
    const other = rest.length === 0 ? [] : [{ op: `(${rest.length} other ops)`, msPerStep: rest.reduce((n, o) => n + o.msPerStep, 0),
      callsPerStep: rest.reduce((n, o) => n + o.callsPerStep, 0), pct: rest.reduce((n, o) => n + o.pct, 0) }];
    return [...head, ...other].map((o) => ({ ...o, case: label }));
  });
  return formatTable(rows, OP_COLUMNS);
}
