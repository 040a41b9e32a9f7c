// `weft bench --scenario decode`: step time of batched decode over batch × distinct adapters × rank ×
// context, next to the memory bound (bytes read ÷ copy bandwidth measured in the same run) and next
// to the base-model-only step at the same batch and context.
import { decodeBound, decodeBytes, type DecodeBytes, type DecodeCase } from './bounds.js';
import { EngineDriver, slotFor } from './engine-steps.js';
import { measureCopyBandwidth } from './measure.js';
import { checkFits, ensureAdapters, type Backend, type BenchModel } from './model-source.js';
import { GB, formatTable, hostDevice, type Column, type Report } from './report.js';
import { median, percentile } from './stats.js';
import { paramCounts } from './bounds.js';

export interface DecodeOptions {
  model: BenchModel;
  backend: Backend;
  batch: readonly number[];
  adapters: readonly number[];
  rank: readonly number[];
  context: readonly number[];
  warmup?: number;
  steps?: number;
  log?: (msg: string) => void;
}

export interface DecodeRow extends DecodeCase {
  /** Mean KV length read by the measured steps (context + warm-up steps + half the measured ones). */
  kvContext: number;
  steps: number;
  stepMs: number;
  stepMsP90: number;
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
  const warmup = o.warmup ?? 3, steps = o.steps ?? 10;
  const cases = decodeCases(o);
  const maxBatch = Math.max(...o.batch), maxContext = Math.max(...o.context);
  const maxAdapters = Math.max(0, ...cases.map((c) => c.adapters));
  const { shape } = o.model;
  checkFits(o.model, o.backend);
  const adapterDirs = new Map(o.rank.map((r) => [r, maxAdapters > 0 ? ensureAdapters(o.model, r, maxAdapters) : []]));
  const driver = EngineDriver.open(o.model.dir, { maxSeqs: maxBatch, maxTokens: maxContext + warmup + steps + 1,
    adapterSlots: maxAdapters, maxRank: Math.max(...o.rank) });
  const bandwidth = measureCopyBandwidth();
  log(`copy bandwidth ${(bandwidth.value / GB).toFixed(1)} GB/s (${bandwidth.what})`);
  const rows: DecodeRow[] = [];
  try {
    for (const c of cases) {
      const m = await measureCase(driver, c, adapterDirs.get(c.rank) ?? [], shape.vocab, warmup, steps);
      const kvContext = c.context + warmup + (steps + 1) / 2;
      const bytes = decodeBytes(shape, { ...c, context: kvContext }, o.backend.weightBytes, o.backend.kvBytes);
      const bound = decodeBound(bytes.total, bandwidth.value, c.batch);
      const base = rows.find((r) => r.adapters === 0 && r.batch === c.batch && r.context === c.context);
      rows.push({
        ...c, kvContext, steps, stepMs: m.stepMs, stepMsP90: m.stepMsP90, tokPerS: (c.batch / m.stepMs) * 1e3, bytes,
        boundMs: bound.ms, boundTokPerS: bound.tokPerS, pctOfBound: (bound.ms / m.stepMs) * 100,
        overheadVsBasePct: base ? (m.stepMs / base.stepMs - 1) * 100 : 0,
        boundOverheadPct: (bytes.adapters / (bytes.base + bytes.kv)) * 100, prefillMs: m.prefillMs,
      });
      log(`decode batch=${c.batch} adapters=${c.adapters} rank=${c.rank} context=${c.context}: ${m.stepMs.toFixed(2)} ms/step`);
    }
  } finally {
    driver.dispose();
  }
  return {
    scenario: 'decode', date: new Date().toISOString(), device: hostDevice(o.backend.device),
    setup: {
      model: o.model.label, shape, params: paramCounts(shape), engineWeightBytes: o.backend.weightBytes,
      engineKvBytes: o.backend.kvBytes, copyBandwidthBytesPerS: bandwidth.value, copyBandwidthMethod: bandwidth.what,
      warmupSteps: warmup, measuredSteps: steps,
    },
    rows,
    notes: [
      'stepMs: median wall time of one engine step (forward + sampling) over the measured steps, after the warm-up steps',
      'bytes: base weights (layers, norms, lm_head) + distinct adapters A/B (rank r, 7 modules) + KV read (kvContext × layers × 2 × kv_heads × head_dim × bytes × batch)',
      'boundMs: bytes.total ÷ copy bandwidth; pctOfBound = boundMs ÷ stepMs',
    ],
  };
}

async function measureCase(d: EngineDriver, c: DecodeCase, adapterDirs: string[], vocab: number, warmup: number, steps: number) {
  for (let slot = 0; slot < c.adapters; slot++) d.loadAdapter(slot, adapterDirs[slot]!);
  const seqs = Array.from({ length: c.batch }, (_, i) => ({ prompt: d.prompt(c.context, vocab), adapterSlot: slotFor(i, c.batch, c.adapters) }));
  const t0 = performance.now();
  const last = await d.admit(seqs, `decode-${c.batch}-${c.adapters}-${c.rank}-${c.context}`);
  const prefillMs = performance.now() - t0;
  const times: number[] = [];
  try {
    for (let s = 0; s < warmup + steps; s++) {
      const t = performance.now();
      await d.decode(last);
      if (s >= warmup) times.push(performance.now() - t);
    }
  } finally {
    await d.free(last.keys());
  }
  return { stepMs: median(times), stepMsP90: percentile(times, 90), prefillMs };
}

export const DECODE_COLUMNS: Column<DecodeRow>[] = [
  { header: 'batch', value: (r) => r.batch, digits: 0 },
  { header: 'adapters', value: (r) => r.adapters, digits: 0 },
  { header: 'rank', value: (r) => (r.adapters ? r.rank : null), digits: 0 },
  { header: 'context', value: (r) => r.context, digits: 0 },
  { header: 'step ms', value: (r) => r.stepMs, digits: 2 },
  { header: 'tok/s', value: (r) => r.tokPerS, digits: 1 },
  { header: 'GB read', value: (r) => r.bytes.total / GB, digits: 3 },
  { header: 'bound ms', value: (r) => r.boundMs, digits: 2 },
  { header: '% of bound', value: (r) => r.pctOfBound, digits: 1 },
  { header: 'vs base %', value: (r) => (r.adapters ? r.overheadVsBasePct : null), digits: 1 },
  { header: 'bound vs base %', value: (r) => (r.adapters ? r.boundOverheadPct : null), digits: 2 },
];

export function formatDecode(report: Report<DecodeRow>): string {
  return formatTable(report.rows, DECODE_COLUMNS);
}
