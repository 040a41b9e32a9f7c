// Dequantization of one linear weight [out, in] (PyTorch's layout) from the layouts quantized checkpoints store,
// for a window of it (this rank's rows or columns), in float32: value = (code − zero point) × scale.
// Packed layouts (32-bit words little-endian, field k at bits [bits·k, bits·(k+1))):
//  - AWQ "gemm": qweight [in, out/8] packs 8 output columns per word, column 8c + j in field AWQ_FIELD[j] (AutoAWQ
//    packs columns in the order 0,2,4,6,1,3,5,7); qzeros [groups, out/8] the same way; scales [groups, out].
//  - GPTQ: qweight [in/pack, out] packs `pack` consecutive input rows per word (field j: row pack·r + j); qzeros
//    [groups, out/pack] packs output columns; the "gptq" (v1) format stores zero − 1 (zeroOffset 1); a row's group
//    is g_idx[row] under act-order (desc_act), else row / group_size.
//  - compressed-tensors pack-quantized: weight_packed [out, ceil(in/pack)] packs input columns (field k: column
//    pack·c + k) as code + 2^(bits−1) (signed codes made unsigned); weight_zero_point [ceil(out/pack), groups] packs
//    output rows the same way; weight_scale [out, groups].
//  - compressed-tensors NVFP4 / MXFP4 (nvfp4- / mxfp4-pack-quantized): weight_packed uint8 [out, in/2], two FP4 E2M1
//    codes a byte along the row (column 2k in the low nibble, 2k + 1 in the high one; the nibble's bit 3 is the
//    sign, bits 0–2 index 0, 0.5, 1, 1.5, 2, 3, 4, 6), times weight_scale [out, groups] — NVFP4: FP8 E4M3 per 16
//    columns divided by the float32 weight_global_scale (value = code × (scale / global_scale)); MXFP4: E8M0
//    exponents per 32 columns, 2^(e − 127).
// Unpacked layouts (FP8/int8 weight [out, in]) are scaled through a grid of scales (per tensor, channel, group or
// block), as are the FP8 block scales (weight_scale_inv, which despite its name multiplies).

import { cpuOps, type DequantGrid, type DequantWindow } from '../../../kernels/index.js';

/** A window [o0, o1) × [i0, i1) of a weight [out, in]. */
export type Window = DequantWindow;

/** Scales (or zero points) laid over a weight: the value for (o, i) is data[⌊o / rowsPer⌋ · cols + ⌊i / colsPer⌋]. */
export type Grid<T extends Float32Array | Int32Array = Float32Array> = DequantGrid<T>;

/** int8 codes read as bytes: byte b is the integer (b << 24) >> 24. */
export const INT8_TABLE = Float32Array.from({ length: 256 }, (_, b) => (b << 24) >> 24);

// Every layout runs in the native addon on the CPU pool's threads (kernels/src/cpu/dequant.cc: ~10 ns a weight
// in a JS loop is a minute for a 7B model); each takes the whole packed tensors and returns the window.

/** AWQ gemm, 4-bit. `scales` [groups, out] as float32; groupSize the input columns per group. */
export function dequantAwq(qweight: Int32Array, qzeros: Int32Array, scales: Float32Array, outDim: number, inDim: number, groupSize: number, w: Window): Float32Array {
  return cpuOps.dequantAwq(qweight, qzeros, scales, outDim, inDim, groupSize, w);
}

export interface GptqTensors { qweight: Int32Array; qzeros: Int32Array; scales: Float32Array; gIdx: Int32Array | null }

/** GPTQ with `bits` ∈ {2, 4, 8}; gIdx (act-order) or groupSize maps input rows to groups. */
export function dequantGptq(t: GptqTensors, outDim: number, inDim: number, bits: number, groupSize: number, zeroOffset: number, w: Window): Float32Array {
  return cpuOps.dequantGptq(t.qweight, t.qzeros, t.scales, t.gIdx, outDim, inDim, bits, groupSize, zeroOffset, w);
}

/** weight_packed; weight_scale [out, groups] of `colsPerGroup` columns each (or gIdx: each column's group); zero points. */
export interface PackedTensors { packed: Int32Array; scales: Float32Array; groups: number; colsPerGroup: number; gIdx: Int32Array | null; zeroPoint: Int32Array | null }

/** compressed-tensors pack-quantized: signed `bits`-bit codes, scale grid per (row, group), packed zero points. */
export function dequantPacked(t: PackedTensors, outDim: number, inDim: number, bits: number, w: Window): Float32Array {
  return cpuOps.dequantPacked(t.packed, t.scales, t.groups, t.colsPerGroup, t.gIdx, t.zeroPoint, outDim, inDim, bits, w);
}

/**
 * bitsandbytes 4-bit: codes two per byte over the flattened weight (high nibble first), each `code[q]` (NF4 or
 * FP4 table) times the absmax of its block of `blocksize` flat positions.
 */
export function dequantBnb4(packed: Uint8Array, absmax: Float32Array, code: Float32Array, outDim: number, inDim: number, blocksize: number, w: Window): Float32Array {
  return cpuOps.dequantBnb4(packed, absmax, code, outDim, inDim, blocksize, w);
}

/** bitsandbytes' double quantization: each absmax an 8-bit code times its block's absmax, plus the offset. */
export function nestedAbsmax(codes: Uint8Array, code: Float32Array, absmax: Float32Array, blocksize: number, offset: number): Float32Array {
  return Float32Array.from(codes, (q, j) => Math.fround(code[q]! * absmax[Math.floor(j / blocksize)]!) + offset);
}

/** NVFP4 / MXFP4: `scales` [out, groups] as float32 (NVFP4's already divided by the global scale), groupSize columns each. */
export function dequantFp4(packed: Uint8Array, scales: Float32Array, groups: number, groupSize: number, outDim: number, inDim: number, w: Window): Float32Array {
  return cpuOps.dequantFp4(packed, scales, groups, groupSize, outDim, inDim, w);
}

/**
 * Unpacked weights for the window's rows — `values` [o1 − o0, in]: one-byte codes (FP8, int8) decoded through
 * `table`, or float32 values with a null table — ((value − zero point) × scale) × post, through the scale grid and
 * the zero-point grid (null when symmetric).
 */
export function dequantUnpacked(values: Uint8Array | Float32Array, table: Float32Array | null, inDim: number, scale: Grid,
  zeroPoint: Grid<Int32Array> | null, post: number, outDim: number, w: Window): Float32Array {
  return cpuOps.dequantUnpacked(values, table, inDim, scale, zeroPoint, post, outDim, w);
}
