// gpt-oss's (and Llama 4's) experts as their checkpoints store them, made this rank's plan weights. gpt-oss's two layouts:
//  - bf16 / fp32 (transformers' GptOssExperts parameters, e.g. the bf16 conversions): mlp.experts.gate_up_proj
//    [E, hidden, 2I] and down_proj [E, I, hidden] — (in, out) per expert, the transpose of a linear weight;
//  - OpenAI's published MXFP4: gate_up_proj_blocks [E, 2I, hidden/32, 16] + _scales [E, 2I, hidden/32] and
//    down_proj_blocks [E, hidden, I/32, 16] + _scales — (out, in) rows of 32-value blocks, each value a 4-bit E2M1
//    number (low nibble first) times the block's power of two 2^(scale − 127), as transformers' mxfp4 integration
//    dequantizes them (_convert_moe_packed_tensors; exact in float32).
// Either way gate_up's outputs alternate gate, up (columns 2i, 2i+1: GptOssExperts._apply_gate); the plan wants this
// rank's [gate rows | up rows], so they are de-interleaved here, biases (gate_up_proj_bias [E, 2I], down_proj_bias
// [E, hidden]) alike. Llama 4's Llama4TextExperts are the first layout with [gate | up] columns and no biases.
import type { TensorSource } from '../formats/index.js';
import { UnsupportedModelError } from './errors.js';
import { dequantFp4 } from './quantized/dequantize.js';
import { concat, transpose } from './f32-matrix.js';
import { rangeLen, type Partition } from './partition.js';
import type { ModelSpec } from './spec.js';

/** One expert's MXFP4 matrix [rows, cols] in float32 from its blocks [rows, cols/32, 16] and scales [rows, cols/32]:
 * E2M1 codes, low nibble first, times 2^(scale − 127) — the compressed-tensors FP4 packing, dequantized natively. */
export function dequantizeMxfp4(blocks: Uint8Array, scales: Uint8Array, rows: number, cols: number): Float32Array {
  const groups = cols / 32;
  if (!Number.isInteger(groups) || blocks.length !== rows * groups * 16 || scales.length !== rows * groups) {
    throw new UnsupportedModelError(`MXFP4 blocks of ${blocks.length} bytes and ${scales.length} scales do not make a ` +
      `[${rows}, ${cols}] matrix (32 values a block, 16 bytes and one scale each)`);
  }
  const powers = Float32Array.from(scales, (e) => 2 ** (e - 127));
  return dequantFp4(blocks, powers, groups, 32, rows, cols, { o0: 0, o1: rows, i0: 0, i1: cols });
}

function need(store: TensorSource, name: string): string {
  if (!store.has(name)) throw new UnsupportedModelError(`weight '${name}' is missing from the checkpoint`);
  return name;
}

/** Expert e's gate_up [2I, hidden] and down [hidden, I] as (out, in) matrices, from either layout. */
function expertMatrices(store: TensorSource, spec: ModelSpec, prefix: string, e: number, H: number, I: number): { gateUp: Float32Array; down: Float32Array } {
  const one = { dim: 0, start: e, end: e + 1 };
  const read = (name: string, rows: number, cols: number): Float32Array => {
    if (store.has(`${prefix}${name}_blocks`)) {
      const blocks = `${prefix}${name}_blocks`, scales = need(store, `${prefix}${name}_scales`);
      const [, r, g, b] = store.info(blocks).shape;
      if (r !== rows || g !== cols / 32 || b !== 16) {
        throw new UnsupportedModelError(`'${blocks}' has shape [${store.info(blocks).shape.join(', ')}], expected ` +
          `[E, ${rows}, ${cols / 32}, 16]`);
      }
      return dequantizeMxfp4(store.readBytes(blocks, one), store.readBytes(scales, one), rows, cols);
    }
    const full = need(store, `${prefix}${name}`);
    const [, inDim, outDim] = store.info(full).shape;
    if (inDim !== cols || outDim !== rows) {
      throw new UnsupportedModelError(`'${full}' has shape [${store.info(full).shape.join(', ')}], expected [E, ${cols}, ${rows}] ` +
        `(${spec.architecture} stores each expert as (in, out))`);
    }
    return transpose(store.readF32(full, one), cols, rows);  // [cols, rows] -> [rows, cols]
  };
  return { gateUp: read('gate_up_proj', 2 * I, H), down: read('down_proj', H, I) };
}

/** The rows of an interleaved [gate0, up0, gate1, up1, …] (each `cols` wide) this rank holds, as [gate rows | up rows]. */
export function deinterleaveGateUp(m: Float32Array, cols: number, start: number, end: number): Float32Array {
  const w = end - start, out = new Float32Array(2 * w * cols);
  for (let i = 0; i < w; i++) {
    out.set(m.subarray((2 * (start + i)) * cols, (2 * (start + i) + 1) * cols), i * cols);
    out.set(m.subarray((2 * (start + i) + 1) * cols, (2 * (start + i) + 2) * cols), (w + i) * cols);
  }
  return out;
}

/**
 * Every expert of one layer stored (in, out) per expert (`prefix`: the layer's `…experts.`) as this rank's plan weights:
 * gpt-oss's (gate/up interleaved, with biases, maybe MXFP4) or Llama 4's (Llama4TextExperts: [gate | up], no biases).
 */
export function loadInOutExperts(store: TensorSource, spec: ModelSpec, part: Partition, prefix: string, layer: number,
  set: (name: string, data: Float32Array) => void): void {
  const H = spec.hidden, I = spec.moe!.intermediate, E = spec.moe!.experts, rows = part.expertIntermediate, w = rangeLen(rows);
  const interleaved = spec.moe!.gateUpInterleaved === true, biases = spec.moe!.expertBias === true;
  const gateUpBias = biases ? store.readF32(need(store, `${prefix}gate_up_proj_bias`)) : new Float32Array(E * 2 * I);
  const downBias = biases ? store.readF32(need(store, `${prefix}down_proj_bias`)) : new Float32Array(E * H);
  if (gateUpBias.length !== E * 2 * I || downBias.length !== E * H) {
    throw new UnsupportedModelError(`'${prefix}gate_up_proj_bias' / 'down_proj_bias' have ${gateUpBias.length} / ` +
      `${downBias.length} values, expected ${E * 2 * I} / ${E * H}`);
  }
  for (let e = 0; e < E; e++) {
    const { gateUp, down } = expertMatrices(store, spec, prefix, e, H, I);
    const x = `layers.${layer}.experts.${e}.`;
    const split = (m: Float32Array, cols: number) => (interleaved ? deinterleaveGateUp(m, cols, rows.start, rows.end)
      : concat([m.subarray(rows.start * cols, rows.end * cols), m.subarray((I + rows.start) * cols, (I + rows.end) * cols)]));
    set(`${x}up.weight`, split(gateUp, H));
    const mine = new Float32Array(H * w);
    for (let r = 0; r < H; r++) mine.set(down.subarray(r * I + rows.start, r * I + rows.end), r * w);
    set(`${x}down.weight`, mine);
    if (!biases) continue;
    set(`${x}up.bias`, split(gateUpBias.subarray(e * 2 * I, (e + 1) * 2 * I), 1));
    set(`${x}down.bias`, downBias.slice(e * H, (e + 1) * H));
  }
}

/**
 * Qwen3-VL-MoE's fused experts (`prefix`: the layer's `…mlp.experts.`): gate_up_proj and down_proj as the Hub publishes
 * them, (in, out) per expert — [E, hidden, 2I] and [E, I, hidden] — or as transformers 5 holds and saves them, (out, in):
 * [E, 2I, hidden] and [E, hidden, I]. Each tensor's orientation is read from its shape as transformers' conversion does
 * (Transpose(1, 2, check_dims=True): kept when it already has the (out, in) shape, so a square one is (out, in)).
 * gate_up's rows are [gate | up]; this rank's rows of each as the plan wants them.
 */
export function loadEitherWayExperts(store: TensorSource, spec: ModelSpec, part: Partition, prefix: string, layer: number,
  set: (name: string, data: Float32Array) => void): void {
  const H = spec.hidden, I = spec.moe!.intermediate, E = spec.moe!.experts, rows = part.expertIntermediate, w = rangeLen(rows);
  // expert e's (out, in) matrix [out, inDim] of the tensor `name`, either way round
  const reader = (name: string, out: number, inDim: number): ((e: number) => Float32Array) => {
    const full = need(store, `${prefix}${name}`), shape = store.info(full).shape;
    const is = (a: number, b: number): boolean => shape.length === 3 && shape[0] === E && shape[1] === a && shape[2] === b;
    if (!is(out, inDim) && !is(inDim, out)) {
      throw new UnsupportedModelError(`'${full}' has shape [${shape.join(', ')}], expected [${E}, ${inDim}, ${out}] (as ` +
        `published) or [${E}, ${out}, ${inDim}] (as transformers 5 saves it)`);
    }
    const transposed = !is(out, inDim);
    return (e) => {
      const m = store.readF32(full, { dim: 0, start: e, end: e + 1 });
      return transposed ? transpose(m, inDim, out) : m;
    };
  };
  const gateUpOf = reader('gate_up_proj', 2 * I, H), downOf = reader('down_proj', H, I);
  for (let e = 0; e < E; e++) {
    const gateUp = gateUpOf(e), down = downOf(e), x = `layers.${layer}.experts.${e}.`;
    set(`${x}up.weight`, concat([gateUp.subarray(rows.start * H, rows.end * H), gateUp.subarray((I + rows.start) * H, (I + rows.end) * H)]));
    const mine = new Float32Array(H * w);
    for (let r = 0; r < H; r++) mine.set(down.subarray(r * I + rows.start, r * I + rows.end), r * w);
    set(`${x}down.weight`, mine);
  }
}
