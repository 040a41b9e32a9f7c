// `weft bench --scenario lora-kernels`: the LoRA shrink (x·Aᵀ → r) and expand (·Bᵀ → out) kernels alone,
// over tokens × distinct adapters (contiguous segments, SGMV-style) × rank × module shape, in µs and GB/s.
// The CPU backend fuses shrink and expand in one call (cpuOps.lora); each is isolated by making the other
// trivial: shrink with a 1-wide B, expand from a 1-wide input (so the rank-r intermediate is nearly free).
// --device cuda times the CUDA kernels themselves (lora.cu, bf16, through cudaLoraKernelTime): shrink and
// expand are separate launches there, SGMV for every case and BGMV as well for decode-sized batches.
import { cpuOps } from '../../kernels/index.js';
import { cudaInfo, cudaLoraKernelTime } from '../../kernels/cuda.js';
import type { Backend } from './model-source.js';
import { GB, formatTable, hostDevice, type Column, type Report } from './report.js';
import type { ModelShape } from './shapes.js';
import { randomTensor, prng } from './synthetic.js';
import { measureCudaCopyBandwidth, timeMedian } from './measure.js';
import { median } from './stats.js';

export type LoraOp = 'shrink' | 'expand';
/** fused: the CPU's one-call cpuOps.lora; sgmv / bgmv: the CUDA launcher that was timed. */
export type LoraKernelKind = 'fused' | 'sgmv' | 'bgmv';

export interface LoraKernelCase {
  op: LoraOp;
  /** hidden→hidden (q, o), hidden→intermediate (gate, up), intermediate→hidden (down). */
  module: string;
  inDim: number;
  outDim: number;
  tokens: number;
  adapters: number;
  rank: number;
}

export interface LoraKernelRow extends LoraKernelCase {
  kind: LoraKernelKind;
  us: number;
  bytes: number;
  gbPerS: number;
  flops: number;
  gflopPerS: number;
  /** GPU rows: GB/s as a percentage of the device-to-device copy rate measured in the same run; null on the CPU. */
  pctOfCopy: number | null;
}

const F32 = 4;
const BF16 = 2;
/** The GPU path also times BGMV (one row per block, per-token adapter table) up to this many tokens. */
const BGMV_MAX_TOKENS = 256;
/** GPU: runs per case (each its own allocation, GPU_LAUNCHES timed launches after 10 warm-up ones); the median is kept. */
const GPU_RUNS = 5;
const GPU_LAUNCHES = 200;

/**
 * Bytes a kernel call moves: each distinct adapter's matrix once, plus the activations. Shrink reads
 * A [r, in] per adapter and x [T, in]; expand reads B [out, r] per adapter and y [T, out], and writes y.
 */
export function loraKernelBytes(c: LoraKernelCase, elemBytes = F32): number {
  return c.op === 'shrink'
    ? (c.adapters * c.rank * c.inDim + c.tokens * c.inDim) * elemBytes
    : (c.adapters * c.outDim * c.rank + 2 * c.tokens * c.outDim) * elemBytes;
}

export function loraKernelFlops(c: LoraKernelCase): number {
  return 2 * c.tokens * c.rank * (c.op === 'shrink' ? c.inDim : c.outDim);
}

export function loraKernelCases(shape: ModelShape, tokens: readonly number[], adapters: readonly number[], ranks: readonly number[]): LoraKernelCase[] {
  const modules: [string, number, number][] = [
    ['h→h', shape.hidden, shape.heads * shape.headDim],
    ['h→i', shape.hidden, shape.intermediate],
    ['i→h', shape.intermediate, shape.hidden],
  ];
  const cases: LoraKernelCase[] = [];
  for (const rank of ranks) {
    for (const t of tokens) {
      for (const a of adapters) {
        if (a < 1 || a > t) continue;
        for (const [module, inDim, outDim] of modules) {
          for (const op of ['shrink', 'expand'] as const) cases.push({ op, module, inDim, outDim, tokens: t, adapters: a, rank });
        }
      }
    }
  }
  return cases;
}

/** One call of the kernel over every segment, with the operands of `c` (op-isolated as described above). */
function kernelCall(c: LoraKernelCase): () => void {
  const rnd = prng(99);
  const xIn = c.op === 'shrink' ? c.inDim : 1, yOut = c.op === 'shrink' ? 1 : c.outDim;
  const x = randomTensor(c.tokens * xIn, 1, rnd), y = new Float32Array(c.tokens * yOut);
  const mats = Array.from({ length: c.adapters }, () => ({
    a: randomTensor(c.rank * xIn, 0.1, rnd), b: randomTensor(yOut * c.rank, 0.1, rnd),
  }));
  const bounds = Array.from({ length: c.adapters + 1 }, (_, s) => Math.floor((s * c.tokens) / c.adapters));
  return () => {
    for (let s = 0; s < c.adapters; s++) {
      const t0 = bounds[s]!, t1 = bounds[s + 1]!;
      const m = mats[s]!;
      cpuOps.lora(x.subarray(t0 * xIn, t1 * xIn), m.a, m.b, 1, y.subarray(t0 * yOut, t1 * yOut), yOut, 0, c.rank);
    }
  };
}

export async function runLoraKernels(shape: ModelShape, shapeLabel: string, backend: Backend, grid: {
  tokens: readonly number[]; adapters: readonly number[]; rank: readonly number[];
}, log: (msg: string) => void = () => {}): Promise<Report<LoraKernelRow>> {
  const cases = loraKernelCases(shape, grid.tokens, grid.adapters, grid.rank);
  if (backend.device === 'cuda') return runLoraKernelsCuda(shape, shapeLabel, backend, cases, log);
  const rows: LoraKernelRow[] = [];
  // Bring the core to its steady clock before the first (microsecond-sized) case is timed.
  if (cases.length) await timeMedian(kernelCall(cases[cases.length - 1]!), { warmup: 0, samples: 1, minSampleMs: 300 });
  for (const c of cases) {
    const { ms } = await timeMedian(kernelCall(c), { warmup: 5, samples: 11, minSampleMs: 10 });
    const bytes = loraKernelBytes(c), flops = loraKernelFlops(c), s = ms / 1e3;
    rows.push({ ...c, kind: 'fused', us: ms * 1e3, bytes, gbPerS: bytes / s / GB, flops, gflopPerS: flops / s / 1e9, pctOfCopy: null });
  }
  log(`lora-kernels: ${rows.length} cases`);
  return {
    scenario: 'lora-kernels', date: new Date().toISOString(), device: hostDevice(backend.device),
    setup: { shape: shapeLabel, dims: shape, dtype: 'float32 (CPU backend)' },
    rows,
    notes: [
      'us: median over 11 samples of one call over all segments (each sample loops the call for at least 10 ms), after 5 warm-up calls',
      'shrink bytes: adapters·r·in + T·in (fp32); expand bytes: adapters·out·r + 2·T·out (y read and written)',
      'CPU: shrink and expand are one fused call (cpuOps.lora); each is timed with the other made trivial (1-wide B, or 1-wide input)',
    ],
  };
}

/** The CUDA kernels (lora.cu) in bf16: SGMV for every case, BGMV too where tokens ≤ BGMV_MAX_TOKENS. */
async function runLoraKernelsCuda(shape: ModelShape, shapeLabel: string, backend: Backend, cases: readonly LoraKernelCase[],
  log: (msg: string) => void): Promise<Report<LoraKernelRow>> {
  const copy = measureCudaCopyBandwidth();
  log(`copy bandwidth ${(copy.value / GB).toFixed(1)} GB/s (${copy.what})`);
  const time = (c: LoraKernelCase, kind: 'sgmv' | 'bgmv', iterations = GPU_LAUNCHES) => cudaLoraKernelTime({
    op: c.op, kind, dtype: 'bfloat16', tokens: c.tokens, adapters: c.adapters, rank: c.rank, inDim: c.inDim, outDim: c.outDim,
    iterations,
  });
  // Clocks up before the first (microsecond-sized) case is timed.
  if (cases.length) time(cases[cases.length - 1]!, 'sgmv', 2000);
  const rows: LoraKernelRow[] = [];
  for (const c of cases) {
    const kinds = c.tokens <= BGMV_MAX_TOKENS ? (['sgmv', 'bgmv'] as const) : (['sgmv'] as const);
    for (const kind of kinds) {
      const us = median(Array.from({ length: GPU_RUNS }, () => time(c, kind)));
      const bytes = loraKernelBytes(c, BF16), flops = loraKernelFlops(c), s = us / 1e6;
      const bytesPerS = bytes / s;
      rows.push({ ...c, kind, us, bytes, gbPerS: bytesPerS / GB, flops, gflopPerS: flops / s / 1e9, pctOfCopy: (bytesPerS / copy.value) * 100 });
    }
  }
  log(`lora-kernels: ${rows.length} cases`);
  return {
    scenario: 'lora-kernels', date: new Date().toISOString(), device: hostDevice(backend.device),
    setup: { shape: shapeLabel, dims: shape, dtype: 'bfloat16 (CUDA kernels lora.cu; fp32 h between shrink and expand)',
      gpu: cudaInfo().devices[0]?.name ?? null, copyBandwidth: copy },
    rows,
    notes: [
      `us: median of ${GPU_RUNS} runs; a run times ${GPU_LAUNCHES} back-to-back launches on one stream with CUDA events, after 10 warm-up launches`,
      'operands (x, y, h, every adapter\'s A and B, the tables) rotate over copies spanning ≥ 4× the L2 cache, so each call reads them from memory as a model whose layers have their own adapters would',
      `sgmv: lora_sgmv_shrink/expand (segments of rows sharing an adapter) for every case; bgmv: lora_bgmv_shrink/expand (one row per block, adapter from a per-token table) too for tokens ≤ ${BGMV_MAX_TOKENS}`,
      'one slice, every adapter of rank r and scale 1; tokens split evenly into `adapters` contiguous runs (SGMV segments; BGMV maps those rows to the same adapters); shrink writes fp32 h [T, r], expand reads it and adds into y',
      'shrink bytes: adapters·r·in + T·in; expand bytes: adapters·out·r + 2·T·out (y read and written); bf16, 2 bytes per element; the fp32 h is not counted',
      '% copy: GB/s ÷ the device-to-device copy rate measured in this run (read + write); a few µs per call is launch latency, not bandwidth',
    ],
  };
}

export const LORA_COLUMNS: Column<LoraKernelRow>[] = [
  { header: 'op', value: (r) => r.op },
  { header: 'kind', value: (r) => r.kind },
  { header: 'module', value: (r) => `${r.module} ${r.inDim}→${r.outDim}` },
  { header: 'tokens', value: (r) => r.tokens, digits: 0 },
  { header: 'adapters', value: (r) => r.adapters, digits: 0 },
  { header: 'rank', value: (r) => r.rank, digits: 0 },
  { header: 'µs', value: (r) => r.us, digits: 1 },
  { header: 'GB/s', value: (r) => r.gbPerS, digits: 2 },
  { header: 'GFLOP/s', value: (r) => r.gflopPerS, digits: 2 },
];

/** GPU rows add the percentage of the measured copy bandwidth. */
export const LORA_COLUMNS_CUDA: Column<LoraKernelRow>[] = [...LORA_COLUMNS, { header: '% copy', value: (r) => r.pctOfCopy, digits: 1 }];

export function formatLoraKernels(report: Report<LoraKernelRow>): string {
  return formatTable(report.rows, report.rows.some((r) => r.pctOfCopy !== null) ? LORA_COLUMNS_CUDA : LORA_COLUMNS);
}
