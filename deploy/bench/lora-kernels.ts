// `weft bench --scenario lora-kernels`: the LoRA shrink (x·Aᵀ → r) and expand (·Bᵀ → out) kernels alone,
// over tokens × distinct adapters (contiguous segments, SGMV-style) × rank × module shape, in µs and GB/s.
// The CPU backend fuses shrink and expand in one call (cpuOps.lora); each is isolated by making the other
// trivial: shrink with a 1-wide B, expand from a 1-wide input (so the rank-r intermediate is nearly free).
import { cpuOps } from '../../kernels/index.js';
import type { Backend } from './model-source.js';
import { GB, formatTable, hostDevice, type Column, type Report } from './report.js';
import type { ModelShape } from './shapes.js';
import { randomTensor, prng } from './synthetic.js';
import { timeMedian } from './measure.js';

export type LoraOp = 'shrink' | 'expand';

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
  us: number;
  bytes: number;
  gbPerS: number;
  flops: number;
  gflopPerS: number;
}

const F32 = 4;

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
  const rows: LoraKernelRow[] = [];
  const cases = loraKernelCases(shape, grid.tokens, grid.adapters, grid.rank);
  // Bring the core to its steady clock before the first (microsecond-sized) case is timed.
  if (cases.length) await timeMedian(kernelCall(cases[cases.length - 1]!), { warmup: 0, samples: 1, minSampleMs: 300 });
  for (const c of cases) {
    const { ms } = await timeMedian(kernelCall(c), { warmup: 5, samples: 11, minSampleMs: 10 });
    const bytes = loraKernelBytes(c), flops = loraKernelFlops(c), s = ms / 1e3;
    rows.push({ ...c, us: ms * 1e3, bytes, gbPerS: bytes / s / GB, flops, gflopPerS: flops / s / 1e9 });
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

export const LORA_COLUMNS: Column<LoraKernelRow>[] = [
  { header: 'op', value: (r) => r.op },
  { header: 'module', value: (r) => `${r.module} ${r.inDim}→${r.outDim}` },
  { header: 'tokens', value: (r) => r.tokens, digits: 0 },
  { header: 'adapters', value: (r) => r.adapters, digits: 0 },
  { header: 'rank', value: (r) => r.rank, digits: 0 },
  { header: 'µs', value: (r) => r.us, digits: 1 },
  { header: 'GB/s', value: (r) => r.gbPerS, digits: 2 },
  { header: 'GFLOP/s', value: (r) => r.gflopPerS, digits: 2 },
];

export function formatLoraKernels(report: Report<LoraKernelRow>): string {
  return formatTable(report.rows, LORA_COLUMNS);
}
