// `weft bench --scenario decode`: step time of batched decode over batch × distinct adapters × rank ×
// context, next to the memory bound (bytes read ÷ copy bandwidth measured in the same run) and next
// to the base-model-only step at the same batch and context.
import { decodeBound, decodeBytes, paramCounts, type DecodeBytes, type DecodeCase } from './bounds.js';
import { EngineDriver, slotFor } from './engine-steps.js';
import { measureCopyBandwidth, measureCudaCopyBandwidth } from './measure.js';
import { checkFits, ensureAdapters, type Backend, type BenchModel } from './model-source.js';
import { GB, formatTable, hostDevice, type Column, type Report } from './report.js';
import { profileSteps, withOpBounds, withOpBreakdown, type OpShare } from './op-breakdown.js';
import { decodeOpMs } from './op-bounds.js';
import { median, percentile } from './stats.js';

export interface DecodeOptions {
  model: BenchModel;
  backend: Backend;
  batch: readonly number[];
  adapters: readonly number[];
  rank: readonly number[];
  context: readonly number[];
  warmup?: number;
  steps?: number;
  /** After each case's timed steps, this many more with the executor's op profile on (0: none). */
  opProfileSteps?: number;
  /** The adapters are DoRA adapters (magnitude vectors on every module). */
  dora?: boolean;
  log?: (msg: string) => void;
}

export interface DecodeRow extends DecodeCase {
  /** Mean KV length read by the measured steps (context + warm-up steps + half the measured ones). */
  kvContext: number;
  steps: number;
  stepMs: number;
  stepMsP90: number;
  /**
   * Median CPU time of this process per step (all threads, user + system), ms. On the CPU backend it is the
   * engine's own compute time, unaffected by other load on the machine; on a GPU it is only host overhead.
   */
  stepCpuMs: number;
  tokPerS: number;
  bytes: DecodeBytes;
  boundMs: number;
  boundTokPerS: number;
  /** bound ÷ measured, in percent: 100 means the step ran at copy bandwidth. */
  pctOfBound: number;
  /** Step time over the base-only step at the same batch and context, in percent (0 for the base row). */
  overheadVsBasePct: number;
  /** The overhead the bound predicts: adapter bytes ÷ (base + KV bytes), in percent. */
  boundOverheadPct: number;
  prefillMs: number;
  /** Where a step's time goes (--op-profile), largest first. */
  ops?: OpShare[];
}

/** The cases in run order: per (context, batch), the base-only case first, then each rank × adapters ≤ batch. */
export function decodeCases(o: Pick<DecodeOptions, 'batch' | 'adapters' | 'rank' | 'context'>): DecodeCase[] {
  const cases: DecodeCase[] = [];
  for (const context of o.context) {
    for (const batch of o.batch) {
      cases.push({ batch, adapters: 0, rank: 0, context });
      for (const rank of o.rank) {
        for (const adapters of o.adapters) if (adapters > 0 && adapters <= batch) cases.push({ batch, adapters, rank, context });
      }
    }
  }
  return cases;
}

export async function runDecode(o: DecodeOptions): Promise<Report<DecodeRow>> {
  const log = o.log ?? (() => {});
  const warmup = o.warmup ?? 3, steps = o.steps ?? 20, opSteps = o.opProfileSteps ?? 0;
  const cases = decodeCases(o);
  const groups = groupCases(cases);
  const maxContext = Math.max(...o.context);
  const maxAdapters = Math.max(0, ...cases.map((c) => c.adapters));
  const { shape } = o.model;
  checkFits(o.model, o.backend);
  // Slot of adapter j of rank index ri: ri·maxAdapters + j. Every case reuses the same loaded adapters.
  // The cases of a group share one KV block range (see measureGroup), so the cache holds max(batch) sequences.
  const driver = EngineDriver.open(o.model.dir, { maxSeqs: Math.max(...groups.map((g) => g[0]!.batch)),
    maxTokens: maxContext + warmup + steps + opSteps + 1, adapterSlots: o.rank.length * maxAdapters, maxRank: Math.max(...o.rank) }, o.backend.device);
  const rows: DecodeRow[] = [];
  try {
    if (maxAdapters > 0) {
      o.rank.forEach((r, ri) => ensureAdapters(o.model, r, maxAdapters, o.dora).forEach((dir, j) => driver.loadAdapter(ri * maxAdapters + j, dir)));
    }
    const bandwidth = o.backend.device === 'cuda' ? measureCudaCopyBandwidth() : measureCopyBandwidth();
    log(`copy bandwidth ${(bandwidth.value / GB).toFixed(1)} GB/s (${bandwidth.what})`);
    const kvContextOf = (c: DecodeCase) => c.context + warmup + (steps + 1) / 2;
    for (const group of groups) {
      const slotBase = (c: DecodeCase) => o.rank.indexOf(c.rank) * maxAdapters;
      const measured = await measureGroup(driver, group, slotBase, shape.vocab, warmup, steps, opSteps);
      group.forEach((c, k) => {
        const m = measured[k]!;
        const kvContext = kvContextOf(c);
        const bytes = decodeBytes(shape, { ...c, context: kvContext }, o.backend.weightBytes, o.backend.kvBytes);
        const bound = decodeBound(bytes.total, bandwidth.value, c.batch);
        const baseMs = measured[0]!.stepMs; // group[0] is the base-only case
        rows.push({
          ...c, kvContext, steps, stepMs: m.stepMs, stepMsP90: m.stepMsP90, stepCpuMs: m.stepCpuMs, tokPerS: (c.batch / m.stepMs) * 1e3, bytes,
          boundMs: bound.ms, boundTokPerS: bound.tokPerS, pctOfBound: (bound.ms / m.stepMs) * 100,
          overheadVsBasePct: (m.stepMs / baseMs - 1) * 100,
          boundOverheadPct: (bytes.adapters / (bytes.base + bytes.kv)) * 100, prefillMs: m.prefillMs,
          ...(m.ops ? { ops: withOpBounds(m.ops, (op) => decodeOpMs(op, shape, { batch: c.batch, kvContext },
            o.backend.weightBytes, o.backend.kvBytes, bandwidth.value)) } : {}),
        });
        log(`decode batch=${c.batch} adapters=${c.adapters} rank=${c.rank} context=${c.context}: ${m.stepMs.toFixed(2)} ms/step`);
      });
    }
    return {
      scenario: 'decode', date: new Date().toISOString(), device: hostDevice(o.backend.device),
      setup: {
        model: o.model.label, shape, params: paramCounts(shape), engineWeightBytes: o.backend.weightBytes,
        engineKvBytes: o.backend.kvBytes, copyBandwidthBytesPerS: bandwidth.value, copyBandwidthMethod: bandwidth.what,
        warmupSteps: warmup, measuredSteps: steps, dora: o.dora ?? false,
      },
      rows,
      notes: [
        'stepMs: median wall time of one engine step (forward + sampling) over the measured steps, after the warm-up steps; ' +
          'the cases of one (batch, context) are decoded in turn, step by step, so load on the machine affects them alike',
        'bytes: base weights (layers, norms, lm_head) + distinct adapters A/B (rank r, 7 modules) + KV read (kvContext × layers × 2 × kv_heads × head_dim × bytes × batch)',
        'boundMs: bytes.total ÷ copy bandwidth; pctOfBound = boundMs ÷ stepMs; overheadVsBasePct against the base-only case of the same batch and context',
        ...(opSteps > 0 ? [`ops: ${opSteps} more steps per case after the timed ones, with the executor's op profile on ` +
          '(CPU: host clock per op; GPU: CUDA events between ops, steps without decode graphs); an op\'s boundMs: the ' +
          'bytes it must move per step (deploy/bench/op-bounds.ts: weights once, activations once, fp32 residual, each ' +
          'row\'s K and V) ÷ copy bandwidth; LoRA ops and sampling have no byte model'] : []),
      ],
    };
  } finally {
    driver.dispose();
  }
}

/** Cases sharing (context, batch), base-only first (decodeCases' order). */
function groupCases(cases: DecodeCase[]): DecodeCase[][] {
  const groups = new Map<string, DecodeCase[]>();
  for (const c of cases) {
    const key = `${c.context}/${c.batch}`;
    groups.set(key, [...(groups.get(key) ?? []), c]);
  }
  return [...groups.values()];
}

/**
 * Admits every case's batch (all in sequence ranges [0, batch): see the admit call), then decodes them in
 * turn, one step each per round, the starting case rotating every round. Returns per-case timings.
 */
async function measureGroup(d: EngineDriver, group: DecodeCase[], slotBase: (c: DecodeCase) => number, vocab: number,
  warmup: number, steps: number, opSteps: number,
): Promise<{ stepMs: number; stepMsP90: number; stepCpuMs: number; prefillMs: number; ops?: OpShare[] }[]> {
  const live: Map<string, number>[] = [];
  const prefillMs: number[] = [];
  try {
    for (const [k, c] of group.entries()) {
      const seqs = Array.from({ length: c.batch }, (_, i) => ({
        prompt: d.prompt(c.context, vocab),
        adapterSlot: c.adapters === 0 ? -1 : slotBase(c) + slotFor(i, c.batch, c.adapters),
      }));
      const t0 = performance.now();
      // Every case of the group in the same block range: the cases are decoded in turn, never in one step, and
      // the weights are random, so overwriting another case's KV changes no timing — and Llama-2-7B at batch
      // 128 × 5 cases × 544 tokens would need 182 GB of KV otherwise.
      live.push(await d.admit(seqs, `decode-${c.context}-${c.batch}-${k}`, 0));
      prefillMs.push(performance.now() - t0);
    }
    const times: number[][] = group.map(() => []);
    const cpu: number[][] = group.map(() => []);
    for (let s = 0; s < warmup + steps; s++) {
      for (let j = 0; j < group.length; j++) {
        const k = (s + j) % group.length;
        const c0 = process.cpuUsage();
        const t = performance.now();
        await d.decode(live[k]!);
        const wall = performance.now() - t;
        const c = process.cpuUsage(c0);
        if (s >= warmup) {
          times[k]!.push(wall);
          cpu[k]!.push((c.user + c.system) / 1e3);
        }
      }
    }
    const ops: (OpShare[] | undefined)[] = [];
    for (let k = 0; k < group.length; k++) ops.push(opSteps > 0 ? await profileSteps(d.profiler, opSteps, () => d.decode(live[k]!)) : undefined);
    return group.map((_, k) => ({ stepMs: median(times[k]!), stepMsP90: percentile(times[k]!, 90), stepCpuMs: median(cpu[k]!),
      prefillMs: prefillMs[k]!, ...(ops[k] ? { ops: ops[k] } : {}) }));
  } finally {
    for (const l of live) await d.free(l.keys());
  }
}

export const DECODE_COLUMNS: Column<DecodeRow>[] = [
  { header: 'batch', value: (r) => r.batch, digits: 0 },
  { header: 'adapters', value: (r) => r.adapters, digits: 0 },
  { header: 'rank', value: (r) => (r.adapters ? r.rank : null), digits: 0 },
  { header: 'context', value: (r) => r.context, digits: 0 },
  { header: 'step ms', value: (r) => r.stepMs, digits: 2 },
  { header: 'CPU ms', value: (r) => r.stepCpuMs, digits: 2 },
  { header: 'tok/s', value: (r) => r.tokPerS, digits: 1 },
  { header: 'GB read', value: (r) => r.bytes.total / GB, digits: 3 },
  { header: 'bound ms', value: (r) => r.boundMs, digits: 2 },
  { header: '% of bound', value: (r) => r.pctOfBound, digits: 1 },
  { header: 'vs base %', value: (r) => (r.adapters ? r.overheadVsBasePct : null), digits: 1 },
  { header: 'bound vs base %', value: (r) => (r.adapters ? r.boundOverheadPct : null), digits: 2 },
];

/** The table, then with --op-profile where each case's step time goes. */
export function formatDecode(report: Report<DecodeRow>): string {
  const cases = report.rows.filter((r) => r.ops).map((r) => ({
    label: `batch ${r.batch} × ${r.adapters} adapters${r.adapters ? ` r${r.rank}` : ''}, ctx ${r.context}`, ops: r.ops! }));
  return withOpBreakdown(formatTable(report.rows, DECODE_COLUMNS), cases);
}
