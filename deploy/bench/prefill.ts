// `weft bench --scenario prefill`: prompt tokens per second for one sequence at each prompt length,
// base model and with one LoRA adapter, next to the compute bound (FLOPs ÷ GEMM rate measured in the same run).
import { paramCounts, prefillBound, prefillFlops } from './bounds.js';
import { EngineDriver } from './engine-steps.js';
import { measureCopyBandwidth, measureCudaCopyBandwidth, measureCudaGemmRate, measureGemmRate } from './measure.js';
import { checkFits, ensureAdapters, type Backend, type BenchModel } from './model-source.js';
import { formatTable, hostDevice, type Column, type Report } from './report.js';
import { profileSteps, withOpBounds, withOpBreakdown, type OpShare } from './op-breakdown.js';
import { prefillOpMs } from './op-bounds.js';
import { median } from './stats.js';

export interface PrefillOptions {
  model: BenchModel;
  backend: Backend;
  /** Prompt lengths. */
  tokens: readonly number[];
  /** Adapter counts to run: 0 (base) and/or 1 (one adapter on the whole prompt). */
  adapters: readonly (0 | 1)[];
  rank: number;
  warmup?: number;
  runs?: number;
  /** After each case's timed runs, one more with the executor's op profile on. */
  opProfile?: boolean;
  /** The adapter is a DoRA adapter. */
  dora?: boolean;
  log?: (msg: string) => void;
}

export interface PrefillRow {
  tokens: number;
  adapters: 0 | 1;
  rank: number;
  runs: number;
  ms: number;
  tokPerS: number;
  flops: number;
  boundMs: number;
  boundTokPerS: number;
  pctOfBound: number;
  /** flops ÷ measured time. */
  achievedFlopsPerS: number;
  /** Where the step's time goes (--op-profile), largest first. */
  ops?: OpShare[];
}

/** The default prompt lengths of the GPU issue (512 and 2048) unless --context names others. */
export function prefillLengths(context: readonly number[]): number[] {
  return context.length === 1 && context[0] === 512 ? [512, 2048] : [...context];
}

export async function runPrefill(o: PrefillOptions): Promise<Report<PrefillRow>> {
  const log = o.log ?? (() => {});
  const warmup = o.warmup ?? 1, runs = o.runs ?? 3;
  checkFits(o.model, o.backend);
  const withAdapter = o.adapters.includes(1);
  const dirs = withAdapter ? ensureAdapters(o.model, o.rank, 1, o.dora) : [];
  const maxTokens = Math.max(...o.tokens);
  const driver = EngineDriver.open(o.model.dir, { maxSeqs: 1, maxTokens, adapterSlots: 1, maxRank: o.rank }, o.backend.device);
  if (withAdapter) driver.loadAdapter(0, dirs[0]!);
  const gemm = o.backend.device === 'cuda' ? measureCudaGemmRate()
    : measureGemmRate(256, Math.min(o.model.shape.hidden, 2048), Math.min(o.model.shape.hidden, 2048));
  log(`GEMM rate ${(gemm.value / 1e9).toFixed(1)} GFLOP/s (${gemm.what})`);
  // The op profile's bounds of the ops that move bytes rather than do FLOPs (op-bounds.ts).
  const bandwidth = o.opProfile ? (o.backend.device === 'cuda' ? measureCudaCopyBandwidth() : measureCopyBandwidth()) : undefined;
  const rows: PrefillRow[] = [];
  try {
    for (const tokens of o.tokens) {
      for (const adapters of o.adapters) {
        const times: number[] = [];
        for (let i = 0; i < warmup + runs; i++) {
          const t0 = performance.now();
          const out = await driver.admit([{ prompt: driver.prompt(tokens, o.model.shape.vocab), adapterSlot: adapters ? 0 : -1 }], `prefill-${i}`);
          const ms = performance.now() - t0;
          await driver.free(out.keys());
          if (i >= warmup) times.push(ms);
        }
        const ms = median(times);
        const profiled = o.opProfile ? await profileSteps(driver.profiler, 1, async () => {
          const out = await driver.admit([{ prompt: driver.prompt(tokens, o.model.shape.vocab), adapterSlot: adapters ? 0 : -1 }], 'prefill-ops');
          await driver.free(out.keys());
        }) : undefined;
        const ops = profiled && withOpBounds(profiled, (op) =>
          prefillOpMs(op, o.model.shape, tokens, o.backend.weightBytes, gemm.value, bandwidth?.value ?? 0));
        const flops = prefillFlops(o.model.shape, tokens, adapters ? o.rank : 0);
        const bound = prefillBound(flops, gemm.value, tokens);
        rows.push({ tokens, adapters, rank: adapters ? o.rank : 0, runs, ms, tokPerS: (tokens / ms) * 1e3, flops,
          boundMs: bound.ms, boundTokPerS: bound.tokPerS, pctOfBound: (bound.ms / ms) * 100, achievedFlopsPerS: flops / (ms / 1e3),
          ...(ops ? { ops } : {}) });
        log(`prefill tokens=${tokens} adapters=${adapters}: ${ms.toFixed(1)} ms`);
      }
    }
  } finally {
    driver.dispose();
  }
  return {
    scenario: 'prefill', date: new Date().toISOString(), device: hostDevice(o.backend.device),
    setup: { model: o.model.label, shape: o.model.shape, params: paramCounts(o.model.shape), gemmFlopsPerS: gemm.value,
      gemmMethod: gemm.what, warmupRuns: warmup, measuredRuns: runs, dora: o.dora ?? false,
      ...(bandwidth ? { copyBandwidthBytesPerS: bandwidth.value, copyBandwidthMethod: bandwidth.what } : {}) },
    rows,
    notes: [
      'ms: median wall time of one step admitting one sequence with the whole prompt (forward + sampling the first token)',
      'flops: 2·(layer linear weights)·tokens + 2·vocab·hidden (lm_head, last position) + causal attention 2·layers·heads·head_dim·T·(T+1) (+ LoRA 2·r·Σ(in+out)·layers·tokens)',
      'boundMs: flops ÷ measured GEMM rate; pctOfBound = boundMs ÷ ms',
      ...(o.opProfile ? ['ops: one more run per case after the timed ones, with the executor\'s op profile on ' +
        '(CPU: host clock per op; GPU: CUDA events between ops); the free step that follows is not counted; an op\'s ' +
        'boundMs (deploy/bench/op-bounds.ts): GEMMs and attention by FLOPs at the GEMM rate (or bytes, if longer), ' +
        'the other ops by bytes at the copy bandwidth; LoRA ops and sampling have no model'] : []),
    ],
  };
}

export const PREFILL_COLUMNS: Column<PrefillRow>[] = [
  { header: 'prompt tokens', value: (r) => r.tokens, digits: 0 },
  { header: 'adapter', value: (r) => (r.adapters ? `r${r.rank}` : 'base') },
  { header: 'ms', value: (r) => r.ms, digits: 1 },
  { header: 'tok/s', value: (r) => r.tokPerS, digits: 0 },
  { header: 'GFLOP', value: (r) => r.flops / 1e9, digits: 1 },
  { header: 'bound ms', value: (r) => r.boundMs, digits: 1 },
  { header: '% of bound', value: (r) => r.pctOfBound, digits: 1 },
];

/** The table, then with --op-profile where each case's step time goes. */
export function formatPrefill(report: Report<PrefillRow>): string {
  const cases = report.rows.filter((r) => r.ops).map((r) => ({
    label: `${r.tokens} tokens, ${r.adapters ? `r${r.rank} adapter` : 'base'}`, ops: r.ops! }));
  return withOpBreakdown(formatTable(report.rows, PREFILL_COLUMNS), cases);
}
