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
  cudaCopyBandwidth?: (device?: number) => number;
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

/** Measured device-to-device copy rate of `device` in bytes/s (blocks for a few tens of milliseconds). */
export function cudaCopyBandwidth(device = 0): number {
  if (!Number.isInteger(device) || device < 0) throw new TypeError(`device must be an integer >= 0, got ${device}`);
  const a = addon();
  if (!a.cudaCopyBandwidth) throw new Error(`cudaCopyBandwidth: ${STALE}`);
  return a.cudaCopyBandwidth(device);
}

/** The check behind `--device cuda`: returns when a GPU is usable, else throws with the reason and the way out. */
export function assertCudaUsable(): void {
  const info = cudaInfo();
  if (!info.available) {
    throw new Error(`--device cuda: ${info.reason}. Use --device cpu, or run on a machine with an NVIDIA GPU and driver`);
  }
}
