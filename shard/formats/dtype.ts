// Element types shared by the weight formats, and float conversions: IEEE binary16 and bfloat16 to and from
// float32, both rounding to nearest even, with subnormals, infinities and NaN handled. Bulk decoders read
// little-endian bytes through typed-array views, so the host must be little-endian (checked at load).
import { decodeFp8, type Fp8DType } from './fp8.js';

export type DType = 'F32' | 'F16' | 'BF16' | 'F64' | 'F8_E4M3' | 'F8_E5M2' | 'F8_E8M0' | 'I64' | 'I32' | 'I16' | 'I8'
  | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';
/** The dtypes readF32 decodes (8-bit floats: quantized checkpoints' weights and scales, shard/formats/fp8.ts). */
export type FloatDType = 'F32' | 'F16' | 'BF16' | 'F64' | Fp8DType;

export const DTYPE_SIZE: Readonly<Record<DType, number>> = {
  F64: 8, I64: 8, U64: 8, F32: 4, I32: 4, U32: 4, F16: 2, BF16: 2, I16: 2, U16: 2, I8: 1, U8: 1, BOOL: 1,
  F8_E4M3: 1, F8_E5M2: 1, F8_E8M0: 1,
};
export const FLOAT_DTYPES: ReadonlySet<string> = new Set<FloatDType>(['F32', 'F16', 'BF16', 'F64', 'F8_E4M3', 'F8_E5M2', 'F8_E8M0']);

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('weft reads little-endian tensor data through typed-array views and needs a little-endian host');
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE binary16 bits → number (subnormals, ±inf and NaN included). */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** bfloat16 bits → number. */
export function bf16ToF32(h: number): number {
  u32Scratch[0] = (h & 0xffff) << 16;
  return f32Scratch[0]!;
}

/** number → bfloat16 bits, rounding the float32 value to nearest even; NaN becomes a quiet NaN. */
export function f32ToBf16(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0]!;
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return ((bits >>> 16) & 0x8000) | 0x7fc0;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** number → IEEE binary16 bits, rounding the float32 value to nearest even (overflow → ±inf, underflow → subnormal/±0). */
export function f32ToF16(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | (mant !== 0 ? 0x7e00 : 0x7c00);
  const e = exp - 112; // rebias 127 → 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // f16 subnormal: value = m · 2^(e-14) in units of 2^-24
    const shift = 14 - e;
    if (shift > 24) return sign;
    const m = mant | 0x800000;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // a carry into the exponent is still correct
  return sign | h;
}

let f16Table: Float32Array | undefined;
function f16Lookup(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h);
  }
  return f16Table;
}

/** Converts fp16 (bf16 false) or bf16 bit patterns to float32 into out[outOffset …]. */
export type HalfDecoder = (src: Uint16Array, bf16: boolean, out: Float32Array, outOffset: number) => void;
let bulkHalf: HalfDecoder | null = null;
const BULK_MIN_ELEMENTS = 1 << 16;

/**
 * Hands large fp16/bf16 conversions to `fn` (the weight loader registers the native addon's threaded one,
 * cpuOps.decodeHalf; this module stays free of the addon). Results are identical: both are exact.
 */
export function useBulkHalfDecoder(fn: HalfDecoder | null): void {
  bulkHalf = fn;
}

/** Decodes little-endian elements of a float dtype from `src` into `out` starting at `outOffset`. */
export function decodeFloats(dtype: FloatDType, src: Uint8Array, out: Float32Array, outOffset = 0): void {
  if (dtype === 'F8_E4M3' || dtype === 'F8_E5M2' || dtype === 'F8_E8M0') {
    decodeFp8(dtype, src, out, outOffset);
    return;
  }
  const size = DTYPE_SIZE[dtype];
  const n = Math.floor(src.byteLength / size);
  const aligned = src.byteOffset % size === 0 ? src : src.slice(0, n * size);
  const buf = aligned.buffer;
  const off = aligned.byteOffset;
  if ((dtype === 'F16' || dtype === 'BF16') && bulkHalf && n >= BULK_MIN_ELEMENTS) {
    bulkHalf(new Uint16Array(buf, off, n), dtype === 'BF16', out, outOffset);
  } else if (dtype === 'F32') {
    out.set(new Float32Array(buf, off, n), outOffset);
  } else if (dtype === 'F64') {
    out.set(new Float64Array(buf, off, n), outOffset);
  } else if (dtype === 'F16') {
    const u16 = new Uint16Array(buf, off, n);
    const t = f16Lookup();
    for (let i = 0; i < n; i++) out[outOffset + i] = t[u16[i]!]!;
  } else {
    const u16 = new Uint16Array(buf, off, n);
    const o32 = new Uint32Array(out.buffer, out.byteOffset + outOffset * 4, n);
    for (let i = 0; i < n; i++) o32[i] = u16[i]! << 16;
  }
}

/** Encodes float32 values as little-endian F32/F16/BF16 bytes. */
export function encodeFloats(dtype: 'F32' | 'F16' | 'BF16', data: Float32Array): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  const u16 = new Uint16Array(data.length);
  const conv = dtype === 'F16' ? f32ToF16 : f32ToBf16;
  for (let i = 0; i < data.length; i++) u16[i] = conv(data[i]!);
  return new Uint8Array(u16.buffer);
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
