// Machine rates measured in the same process as the benchmark they bound: copy bandwidth (the memory
// bound of decode) and GEMM throughput (the compute bound of prefill), plus a small timing helper.
import { cpuOps } from '../../kernels/index.js';
import { cudaCopyBandwidth, cudaGemmRate } from '../../kernels/cuda.js';
import { median } from './stats.js';

export interface Rate {
  /** Bytes/s for a bandwidth, FLOP/s for a GEMM rate: the best of `runs`. */
  value: number;
  runs: number;
  what: string;
}

/**
 * Copy bandwidth of one large buffer: a memcpy split over the CPU pool's threads (cpuOps.parallelCopy, the
 * threads the CPU engine computes with, so open the engine first). Counted as bytes read + bytes written, like
 * a GPU copy-kernel figure; best of `runs`.
 */
export function measureCopyBandwidth(bytes = 256 * 2 ** 20, runs = 7): Rate {
  const src = new Uint8Array(bytes), dst = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i += 4096) src[i] = i & 0xff; // touch every page before timing
  cpuOps.parallelCopy(dst, src);
  let best = Infinity;
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    cpuOps.parallelCopy(dst, src);
    best = Math.min(best, performance.now() - t0);
  }
  const threads = cpuOps.cpuThreads();
  return { value: (2 * bytes) / (best / 1e3), runs, what: `memcpy of ${bytes / 2 ** 20} MiB on ${threads} thread${threads > 1 ? 's' : ''} (read + write)` };
}

/** The CPU backend's GEMM rate (cpuOps.gemm, y = x Wᵀ) on a [tokens, k] × [n, k]ᵀ product; best of `runs`. */
export function measureGemmRate(tokens = 256, k = 1024, n = 1024, runs = 3): Rate {
  const x = new Float32Array(tokens * k).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const w = new Float32Array(n * k).map((_, i) => ((i * 104729) % 1000) / 1000 - 0.5);
  cpuOps.gemm(x, tokens, k, w, n, null);
  let best = Infinity;
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    cpuOps.gemm(x, tokens, k, w, n, null);
    best = Math.min(best, performance.now() - t0);
  }
  return { value: (2 * tokens * k * n) / (best / 1e3), runs, what: `cpuOps.gemm [${tokens}×${k}]·[${n}×${k}]ᵀ fp32` };
}

/** GPU 0's device-to-device copy rate (1 GiB buffer, read + write): the decode bound's bandwidth on `--device cuda`. */
export function measureCudaCopyBandwidth(runs = 3): Rate {
  let best = 0;
  for (let r = 0; r < runs; r++) best = Math.max(best, cudaCopyBandwidth(0, 2 ** 30));
  return { value: best, runs, what: 'cudaMemcpy device-to-device of 1 GiB (read + write)' };
}

/** GPU 0's bf16 GEMM rate (cuBLASLt, fp32 accumulate, the executor's path) at m = n = k = `size`: the prefill bound. */
export function measureCudaGemmRate(size = 8192, runs = 3): Rate {
  let best = 0;
  for (let r = 0; r < runs; r++) best = Math.max(best, cudaGemmRate(size, size, size, 'bfloat16'));
  return { value: best, runs, what: `cuBLASLt bf16 GEMM ${size}×${size}×${size}, fp32 accumulate` };
}

/**
 * Median milliseconds of one call of `fn` after `warmup` calls. Short calls are looped so one timed
 * sample lasts at least `minSampleMs`; the per-call time is that sample divided by the loop count.
 */
export async function timeMedian(fn: () => unknown, o: { warmup: number; samples: number; minSampleMs?: number }): Promise<{ ms: number; samples: number[] }> {
  // Synchronous calls are not awaited: a microtask per call would show in microsecond kernels.
  const call = async (): Promise<void> => {
    const r = fn();
    if (r instanceof Promise) await r;
  };
  for (let i = 0; i < o.warmup; i++) await call();
  let loops = 1;
  const min = o.minSampleMs ?? 0;
  if (min > 0) {
    const t0 = performance.now();
    await call();
    const one = Math.max(performance.now() - t0, 1e-3);
    loops = Math.max(1, Math.ceil(min / one));
  }
  const samples: number[] = [];
  for (let s = 0; s < o.samples; s++) {
    const t0 = performance.now();
    for (let i = 0; i < loops; i++) {
      const r = fn();
      if (r instanceof Promise) await r;
    }
    samples.push((performance.now() - t0) / loops);
  }
  return { ms: median(samples), samples };
}
