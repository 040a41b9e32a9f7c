// The CUDA runtime layer of the native addon, typed: is there a usable GPU (and why not), the NCCL unique id that
// rank 0 makes for a tensor-parallel group, the measured copy bandwidth. Loads the same addon file as index.ts
// (node caches it, so this is the same instance). Works on any build: an addon built without nvcc says
// compiled: false, and every call that needs CUDA throws an Error that says why.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface CudaDeviceInfo {
  index: number;
  name: string;
  /** Bytes of device memory. */
  totalMemory: number;
  /** "major.minor", e.g. "9.0" for H100. */
  computeCapability: string;
  multiProcessors: number;
  memoryBusWidth: number;
  /** Datasheet memory bandwidth in bytes/s (2 × memory clock × bus width); see cudaCopyBandwidth for a measured one. */
  nominalBandwidth: number;
}

export interface CudaInfo {
  /** The addon was built with nvcc (the CUDA backend is in it). */
  compiled: boolean;
  /** compiled, and the CUDA runtime reaches at least one device. */
  available: boolean;
  /** Why available is false ('' when it is true). */
  reason: string;
  devices: CudaDeviceInfo[];
}

interface CudaAddon {
  cudaInfo?: () => CudaInfo;
  ncclUniqueId?: () => Uint8Array;
  cudaCopyBandwidth?: (device?: number, bytes?: number) => number;
  cudaGemmRate?: (device: number, dtype: string, m: number, n: number, k: number) => number;
  cudaLoraKernelTime?: (spec: LoraKernelTimeSpec) => number;
}

/** Bytes in an NCCL unique id (NCCL_UNIQUE_ID_BYTES). */
export const NCCL_UNIQUE_ID_BYTES = 128;

const addonPath = fileURLToPath(new URL('../../kernels/build/Release/weft_kernels.node', import.meta.url));
const STALE = 'the native addon predates its CUDA runtime layer: rebuild it with npm run build:native';

let cached: CudaAddon | undefined;
function addon(): CudaAddon {
  if (!cached) {
    if (!existsSync(addonPath)) {
      throw new Error(`native addon not built: ${addonPath} is missing. Run 'npm run build' (needs cmake and g++).`);
    }
    cached = createRequire(import.meta.url)(addonPath) as CudaAddon;
  }
  return cached;
}

/** What the addon was built with and what this machine offers. Never throws for a missing GPU or driver. */
export function cudaInfo(): CudaInfo {
  const a = addon();
  if (!a.cudaInfo) return { compiled: false, available: false, reason: STALE, devices: [] };
  return a.cudaInfo();
}

/**
 * A fresh NCCL unique id (128 bytes), made by rank 0 and sent to every rank over NATS for ncclCommInitRank.
 * Throws an Error naming libnccl.so.2 when NCCL is not installed, or when the addon has no CUDA backend.
 */
export function ncclUniqueId(): Uint8Array {
  const a = addon();
  if (!a.ncclUniqueId) throw new Error(`ncclUniqueId: NCCL (libnccl.so.2) is not usable: ${STALE}`);
  const id = a.ncclUniqueId();
  if (id.length !== NCCL_UNIQUE_ID_BYTES) {
    throw new Error(`ncclUniqueId: expected ${NCCL_UNIQUE_ID_BYTES} bytes, got ${id.length}`);
  }
  return id;
}

/**
 * Measured device-to-device copy rate of `device` in bytes/s, bytes read + bytes written (blocks for a few tens
 * of milliseconds). `bytes`: size of the copied buffer (default 256 MiB; larger buffers get closer to the peak).
 */
export function cudaCopyBandwidth(device = 0, bytes = 256 * 2 ** 20): number {
  if (!Number.isInteger(device) || device < 0) throw new TypeError(`device must be an integer >= 0, got ${device}`);
  if (!Number.isInteger(bytes) || bytes <= 0) throw new TypeError(`bytes must be an integer > 0, got ${bytes}`);
  const a = addon();
  if (!a.cudaCopyBandwidth) throw new Error(`cudaCopyBandwidth: ${STALE}`);
  return a.cudaCopyBandwidth(device, bytes);
}

/** Measured FLOP/s of y[m,n] = x[m,k]·W[n,k]ᵀ in `dtype` through the executor's cuBLASLt path (fp32 accumulate). */
export function cudaGemmRate(m: number, n: number, k: number, dtype: 'float32' | 'float16' | 'bfloat16' = 'bfloat16', device = 0): number {
  for (const [name, v] of [['m', m], ['n', n], ['k', k]] as const) {
    if (!Number.isInteger(v) || v <= 0) throw new TypeError(`${name} must be an integer > 0, got ${v}`);
  }
  const a = addon();
  if (!a.cudaGemmRate) throw new Error(`cudaGemmRate: ${STALE}`);
  return a.cudaGemmRate(device, dtype, m, n, k);
}

/** One CUDA LoRA launcher (kernels/src/cuda/kernels/lora.cu) on synthetic operands of one module shape. */
export interface LoraKernelTimeSpec {
  /** shrink: h = x·Aᵀ (fp32 h); expand: y += h·Bᵀ. */
  op: 'shrink' | 'expand';
  /** sgmv: contiguous segments of rows sharing an adapter; bgmv: one row per block, adapter from a per-token table. */
  kind: 'sgmv' | 'bgmv';
  dtype: 'bfloat16' | 'float16' | 'float32';
  /** Rows of x and y, split evenly into `adapters` contiguous runs (one per adapter). */
  tokens: number;
  adapters: number;
  /** 1…1024. */
  rank: number;
  /** A is [rank, inDim], B is [outDim, rank]. */
  inDim: number;
  outDim: number;
  /** Timed calls (default 200), after 10 warm-up calls. */
  iterations?: number;
  /**
   * Default true: the calls rotate over enough copies of every operand that 4× the L2 cache is read between two
   * uses of one copy (weights come from memory, as in a model where each layer has its own adapters). false: the
   * same operands every call, so small cases run from L2.
   */
  coldL2?: boolean;
}

/**
 * Microseconds per call of one CUDA LoRA kernel on GPU 0 (CUDA events around back-to-back launches on one stream,
 * after warm-up); blocks while it allocates, times and frees. Throws where the addon has no CUDA backend or no GPU
 * is usable.
 */
export function cudaLoraKernelTime(spec: LoraKernelTimeSpec): number {
  if (spec.op !== 'shrink' && spec.op !== 'expand') throw new TypeError(`op must be 'shrink' or 'expand', got ${String(spec.op)}`);
  if (spec.kind !== 'sgmv' && spec.kind !== 'bgmv') throw new TypeError(`kind must be 'sgmv' or 'bgmv', got ${String(spec.kind)}`);
  if (!['bfloat16', 'float16', 'float32'].includes(spec.dtype)) {
    throw new TypeError(`dtype must be 'bfloat16', 'float16' or 'float32', got ${String(spec.dtype)}`);
  }
  for (const name of ['tokens', 'adapters', 'rank', 'inDim', 'outDim'] as const) {
    const v = spec[name];
    if (!Number.isInteger(v) || v <= 0) throw new TypeError(`${name} must be an integer > 0, got ${v}`);
  }
  if (spec.rank > 1024) throw new RangeError(`rank must be <= 1024 (the CUDA LoRA kernels' limit), got ${spec.rank}`);
  const iterations = spec.iterations ?? 200;
  if (!Number.isInteger(iterations) || iterations <= 0) throw new TypeError(`iterations must be an integer > 0, got ${iterations}`);
  if (spec.coldL2 !== undefined && typeof spec.coldL2 !== 'boolean') throw new TypeError(`coldL2 must be a boolean, got ${String(spec.coldL2)}`);
  const a = addon();
  if (!a.cudaLoraKernelTime) throw new Error(`cudaLoraKernelTime: ${STALE}`);
  return a.cudaLoraKernelTime({
    op: spec.op, kind: spec.kind, dtype: spec.dtype, tokens: spec.tokens, adapters: spec.adapters, rank: spec.rank,
    inDim: spec.inDim, outDim: spec.outDim, iterations, coldL2: spec.coldL2 ?? true,
  });
}

/** The check behind `--device cuda`: returns when a GPU is usable, else throws with the reason and the way out. */
export function assertCudaUsable(): void {
  const info = cudaInfo();
  if (!info.available) {
    throw new Error(`--device cuda: ${info.reason}. Use --device cpu, or run on a machine with an NVIDIA GPU and driver`);
  }
}
