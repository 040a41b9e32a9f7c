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
// Unpacked layouts (FP8/int8 weight [out, in]) are scaled through a grid of scales (per tensor, channel, group or
// block), as are the FP8 block scales (weight_scale_inv, which despite its name multiplies).

/** A window [o0, o1) × [i0, i1) of a weight [out, in]. */
export interface Window { o0: number; o1: number; i0: number; i1: number }

/** Scales (or zero points) laid over a weight: the value for (o, i) is data[⌊o / rowsPer⌋ · cols + group(i)]. */
export interface Grid {
  data: Float32Array | Int32Array;
  rowsPer: number;
  cols: number;
  /** Input columns per group (contiguous groups), unless gIdx gives each column's group. */
  colsPer: number;
  gIdx?: Int32Array | null;
}

const AWQ_FIELD = [0, 4, 1, 5, 2, 6, 3, 7];

const groupOf = (g: Grid, i: number): number => (g.gIdx ? g.gIdx[i]! : Math.floor(i / g.colsPer));
const at = (g: Grid, o: number, i: number): number => g.data[Math.floor(o / g.rowsPer) * g.cols + groupOf(g, i)]!;

function output(w: Window): { out: Float32Array; cols: number } {
  const cols = w.i1 - w.i0;
  return { out: new Float32Array((w.o1 - w.o0) * cols), cols };
}

/** AWQ gemm, 4-bit. `scales` [groups, out] as float32; groupSize the input columns per group. */
export function dequantAwq(qweight: Int32Array, qzeros: Int32Array, scales: Float32Array, outDim: number, groupSize: number, w: Window): Float32Array {
  const words = outDim / 8, { out, cols } = output(w);
  for (let o = w.o0; o < w.o1; o++) {
    const c = o >> 3, shift = 4 * AWQ_FIELD[o & 7]!, row = (o - w.o0) * cols;
    for (let i = w.i0; i < w.i1; i++) {
      const g = Math.floor(i / groupSize);
      const q = (qweight[i * words + c]! >>> shift) & 15, z = (qzeros[g * words + c]! >>> shift) & 15;
      out[row + i - w.i0] = (q - z) * scales[g * outDim + o]!;
    }
  }
  return out;
}

export interface GptqTensors { qweight: Int32Array; qzeros: Int32Array; scales: Float32Array; gIdx: Int32Array | null }

/** GPTQ with `bits` ∈ {2, 4, 8}; gIdx (act-order) or groupSize maps input rows to groups. */
export function dequantGptq(t: GptqTensors, outDim: number, bits: number, groupSize: number, zeroOffset: number, w: Window): Float32Array {
  const pack = 32 / bits, mask = (1 << bits) - 1, zWords = Math.ceil(outDim / pack), { out, cols } = output(w);
  for (let o = w.o0; o < w.o1; o++) {
    const zShift = bits * (o % pack), zc = Math.floor(o / pack), row = (o - w.o0) * cols;
    for (let i = w.i0; i < w.i1; i++) {
      const g = t.gIdx ? t.gIdx[i]! : Math.floor(i / groupSize);
      const q = (t.qweight[Math.floor(i / pack) * outDim + o]! >>> (bits * (i % pack))) & mask;
      const z = ((t.qzeros[g * zWords + zc]! >>> zShift) & mask) + zeroOffset;
      out[row + i - w.i0] = (q - z) * t.scales[g * outDim + o]!;
    }
  }
  return out;
}

export interface PackedTensors { packed: Int32Array; scale: Grid; zeroPoint: Int32Array | null }

/** compressed-tensors pack-quantized: signed `bits`-bit codes, scale grid per (row, group), packed zero points. */
export function dequantPacked(t: PackedTensors, inDim: number, bits: number, w: Window): Float32Array {
  const pack = 32 / bits, mask = (1 << bits) - 1, offset = 1 << (bits - 1), words = Math.ceil(inDim / pack);
  const { out, cols } = output(w);
  for (let o = w.o0; o < w.o1; o++) {
    const row = (o - w.o0) * cols, zRow = Math.floor(o / pack) * t.scale.cols, zShift = bits * (o % pack);
    for (let i = w.i0; i < w.i1; i++) {
      const g = groupOf(t.scale, i);
      const q = ((t.packed[o * words + Math.floor(i / pack)]! >>> (bits * (i % pack))) & mask) - offset;
      const z = t.zeroPoint ? ((t.zeroPoint[zRow + g]! >>> zShift) & mask) - offset : 0;
      out[row + i - w.i0] = (q - z) * t.scale.data[o * t.scale.cols + g]!;
    }
  }
  return out;
}

/**
 * bitsandbytes 4-bit: codes two per byte over the flattened weight (high nibble first), each `code[q]` (NF4 or
 * FP4 table) times the absmax of its block of `blocksize` flat positions.
 */
export function dequantBnb4(packed: Uint8Array, absmax: Float32Array, code: Float32Array, inDim: number, blocksize: number, w: Window): Float32Array {
  const { out, cols } = output(w);
  for (let o = w.o0; o < w.o1; o++) {
    const row = (o - w.o0) * cols;
    for (let i = w.i0; i < w.i1; i++) {
      const f = o * inDim + i, byte = packed[f >> 1]!;
      out[row + i - w.i0] = code[f & 1 ? byte & 15 : byte >> 4]! * absmax[Math.floor(f / blocksize)]!;
    }
  }
  return out;
}

/** bitsandbytes' double quantization: each absmax an 8-bit code times its block's absmax, plus the offset. */
export function nestedAbsmax(codes: Uint8Array, code: Float32Array, absmax: Float32Array, blocksize: number, offset: number): Float32Array {
  return Float32Array.from(codes, (q, j) => Math.fround(code[q]! * absmax[Math.floor(j / blocksize)]!) + offset);
}

/**
 * Unpacked codes (FP8 values already decoded, or int8) for the window's rows — `values` [o1 − o0, in] — times the
 * scale grid, minus a zero-point grid when the scheme is asymmetric.
 */
export function dequantUnpacked(values: Float32Array, inDim: number, scale: Grid, zeroPoint: Grid | null, w: Window): Float32Array {
  const { out, cols } = output(w);
  for (let o = w.o0; o < w.o1; o++) {
    const src = (o - w.o0) * inDim, row = (o - w.o0) * cols;
    for (let i = w.i0; i < w.i1; i++) {
      const z = zeroPoint ? at(zeroPoint, o, i) : 0;
      out[row + i - w.i0] = (values[src + i]! - z) * at(scale, o, i);
    }
  }
  return out;
}
