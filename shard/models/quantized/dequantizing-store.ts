// A quantized checkpoint seen as the plain one it stands for: each quantized linear layer `X` (found by the tensors
// its format stores: X.qweight, X.weight_packed, X.weight + X.weight_scale(_inv)) appears as a float32 `X.weight`
// [out, in] that is dequantized when read — only the rows or columns a rank asks for — and the packed tensors
// are hidden, as are its activation quantization parameters (input_scale, input_global_scale, …: activations are
// not quantized). Everything else reads through unchanged, so every architecture's loader, DoRA's base-weight norms
// and the tied-lm_head adapters read a quantized checkpoint with no code of their own.
import { DTYPE_SIZE, FLOAT_DTYPES, FP8_TABLES, type Slice, type TensorInfo, type TensorSource } from '../../formats/index.js';
import { UnsupportedModelError } from '../errors.js';
import { dequantAwq, dequantBnb4, dequantFp4, dequantGptq, dequantPacked, dequantUnpacked, INT8_TABLE, nestedAbsmax, type Window } from './dequantize.js';
import type { QuantScheme } from './quant-config.js';

/** One quantized linear: its float shape, the tensors it consumed, and how to dequantize a window of it. */
interface QuantizedLinear {
  out: number;
  in: number;
  file: string;
  consumed: string[];
  read(w: Window): Float32Array;
}

const RAW_QUANTIZED = new Set(['F8_E4M3', 'F8_E5M2', 'I8']);
/** A quantized linear's activation quantization (W8A8, NVFP4 W4A4): unused, as activations run unquantized. */
const ACTIVATION_PARAMS = ['input_scale', 'input_zero_point', 'input_global_scale'];

/** Where a scale or zero-point grid's values fall over a weight (dequantize.ts's Grid without its data). */
type GridShape = { rowsPer: number; cols: number; colsPer: number };
type CtScheme = Extract<QuantScheme, { method: 'compressed-tensors' }>;

export class DequantizingStore implements TensorSource {
  readonly dir: string;
  private readonly linears = new Map<string, QuantizedLinear>();
  private readonly hidden = new Set<string>();

  constructor(private readonly store: TensorSource, private readonly scheme: QuantScheme) {
    this.dir = store.dir;
    for (const name of store.names()) {
      const prefix = quantizedPrefix(name, scheme);
      if (prefix === null || this.linears.has(`${prefix}.weight`)) continue;
      const linear = this.describe(prefix);
      this.linears.set(`${prefix}.weight`, linear);
      for (const c of linear.consumed) this.hidden.add(c);
      for (const a of ACTIVATION_PARAMS) if (store.has(`${prefix}.${a}`)) this.hidden.add(`${prefix}.${a}`);
    }
  }

  /** How many linear layers the checkpoint stores quantized. */
  get quantizedCount(): number {
    return this.linears.size;
  }

  names(): string[] {
    return [...this.store.names().filter((n) => !this.hidden.has(n) && !this.linears.has(n)), ...this.linears.keys()];
  }

  has(name: string): boolean {
    return this.linears.has(name) || (this.store.has(name) && !this.hidden.has(name));
  }

  info(name: string): TensorInfo {
    const q = this.linears.get(name);
    if (!q) return this.store.info(this.visible(name));
    return { name, dtype: 'F32', shape: [q.out, q.in], file: q.file, byteOffset: 0, byteLength: q.out * q.in * 4 };
  }

  readF32(name: string, slice?: Slice): Float32Array {
    const q = this.linears.get(name);
    if (q) {
      const w = windowOf(q, slice, name);
      try {
        return q.read(w);
      } catch (e) {  // the addon's checks (a group index past the scales, …), with the tensor they concern
        throw new UnsupportedModelError(`${this.dir}: '${name}': ${(e as Error).message}`);
      }
    }
    const info = this.store.info(this.visible(name));
    if (RAW_QUANTIZED.has(info.dtype)) {
      throw new UnsupportedModelError(`${this.dir}: tensor '${name}' is stored quantized (${info.dtype}) without the scales ` +
        `weft knows how to apply for quant_method '${this.scheme.method}'; this checkpoint's layout is not supported`);
    }
    return this.store.readF32(name, slice);
  }

  readBytes(name: string, slice?: Slice): Uint8Array {
    if (!this.linears.has(name)) return this.store.readBytes(this.visible(name), slice);
    const f = this.readF32(name, slice);
    return new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
  }

  close(): void {
    this.store.close();
  }

  private visible(name: string): string {
    if (this.hidden.has(name)) throw new UnsupportedModelError(`${this.dir}: '${name}' is part of a quantized weight; read its '.weight'`);
    return name;
  }

  private need(name: string): string {
    if (!this.store.has(name)) throw new UnsupportedModelError(`${this.dir}: quantized weight needs '${name}', which the checkpoint lacks`);
    return name;
  }

  private shape(name: string): number[] {
    return this.store.info(this.need(name)).shape;
  }

  private expect(name: string, expected: number[]): void {
    const actual = this.shape(name);
    if (actual.length !== expected.length || actual.some((d, k) => d !== expected[k])) {
      throw new UnsupportedModelError(`${this.dir}: '${name}' has shape [${actual.join(', ')}], expected [${expected.join(', ')}] ` +
        `for quant_method '${this.scheme.method}'`);
    }
  }

  private ints(name: string): Int32Array {
    return readInts(this.store, this.need(name));
  }

  private describe(p: string): QuantizedLinear {
    const s = this.scheme;
    if (s.method === 'awq') return this.awq(p, s.groupSize);
    if (s.method === 'gptq') return this.gptq(p, s);
    if (s.method === 'bitsandbytes') return s.bits === 4 ? this.bnb4(p) : this.bnb8(p);
    const ct = s.method === 'compressed-tensors' ? s : null;
    if (this.store.has(`${p}.weight_packed`)) return this.store.info(`${p}.weight_packed`).dtype === 'U8' ? this.fp4(p, ct) : this.packed(p, ct);
    return this.unpacked(p);
  }

  private awq(p: string, groupSize: number): QuantizedLinear {
    const [inDim, words] = this.shape(`${p}.qweight`) as [number, number];
    const out = words * 8, size = groupSize === -1 ? inDim : groupSize, groups = Math.ceil(inDim / size);
    this.expect(`${p}.qzeros`, [groups, words]);
    this.expect(`${p}.scales`, [groups, out]);
    const consumed = [`${p}.qweight`, `${p}.qzeros`, `${p}.scales`];
    return {
      out, in: inDim, file: this.store.info(`${p}.qweight`).file, consumed,
      read: (w) => dequantAwq(this.ints(`${p}.qweight`), this.ints(`${p}.qzeros`), this.store.readF32(`${p}.scales`), out, inDim, size, w),
    };
  }

  private gptq(p: string, s: Extract<QuantScheme, { method: 'gptq' }>): QuantizedLinear {
    const pack = 32 / s.bits;
    const [rows, out] = this.shape(`${p}.qweight`) as [number, number];
    const inDim = rows * pack, size = s.groupSize === -1 ? inDim : s.groupSize;
    const groups = this.shape(`${p}.scales`)[0]!;
    if (!s.actOrder && groups !== Math.ceil(inDim / size)) {
      throw new UnsupportedModelError(`${this.dir}: '${p}.scales' has ${groups} groups; group_size ${s.groupSize} over ${inDim} inputs needs ${Math.ceil(inDim / size)}`);
    }
    this.expect(`${p}.scales`, [groups, out]);
    this.expect(`${p}.qzeros`, [groups, Math.ceil(out / pack)]);
    if (s.actOrder) this.expect(`${p}.g_idx`, [inDim]);
    const consumed = [`${p}.qweight`, `${p}.qzeros`, `${p}.scales`, ...(this.store.has(`${p}.g_idx`) ? [`${p}.g_idx`] : [])];
    return {
      out, in: inDim, file: this.store.info(`${p}.qweight`).file, consumed,
      read: (w) => {
        // Without act-order a g_idx (when saved) is row / group_size, which is what no g_idx means.
        const gIdx = s.actOrder ? this.ints(`${p}.g_idx`) : null;  // each index checked against the groups by the addon
        const t = { qweight: this.ints(`${p}.qweight`), qzeros: this.ints(`${p}.qzeros`), scales: this.store.readF32(`${p}.scales`), gIdx };
        return dequantGptq(t, out, inDim, s.bits, size, s.zeroOffset, w);
      },
    };
  }

  private packed(p: string, s: CtScheme | null): QuantizedLinear {
    const shape = this.ints(`${p}.weight_shape`);
    const out = shape[0]!, inDim = shape[1]!;
    const [rows, words] = this.shape(`${p}.weight_packed`) as [number, number];
    const bits = s?.intBits ?? packedBits(inDim, words, `${this.dir}: '${p}.weight_packed'`);
    if (rows !== out || words !== Math.ceil(inDim / (32 / bits))) {
      throw new UnsupportedModelError(`${this.dir}: '${p}.weight_packed' [${rows}, ${words}] does not hold ${bits}-bit [${out}, ${inDim}]`);
    }
    const [, groups = 1] = this.shape(`${p}.weight_scale`);
    const hasZero = this.store.has(`${p}.weight_zero_point`), hasGIdx = this.store.has(`${p}.weight_g_idx`);
    if (hasZero) this.expect(`${p}.weight_zero_point`, [Math.ceil(out / (32 / bits)), groups]);
    const consumed = [`${p}.weight_packed`, `${p}.weight_shape`, `${p}.weight_scale`,
      ...(hasZero ? [`${p}.weight_zero_point`] : []), ...(hasGIdx ? [`${p}.weight_g_idx`] : [])];
    return {
      out, in: inDim, file: this.store.info(`${p}.weight_packed`).file, consumed,
      read: (w) => {
        return dequantPacked({ packed: this.ints(`${p}.weight_packed`), scales: this.store.readF32(`${p}.weight_scale`), groups,
          colsPerGroup: groupWidth(s?.groupSize ?? null, inDim, groups), gIdx: hasGIdx ? this.ints(`${p}.weight_g_idx`) : null,
          zeroPoint: hasZero ? this.ints(`${p}.weight_zero_point`) : null }, out, inDim, bits, w);
      },
    };
  }

  /** compressed-tensors NVFP4 / MXFP4: weight_packed uint8 [out, in/2] (two FP4 codes a byte), weight_scale [out, groups]
   * (NVFP4: FP8 E4M3, divided by the float32 weight_global_scale; MXFP4: E8M0 exponents as uint8), maybe
   * weight_shape; a weight_zero_point (FP4 is symmetric) must be all zeros. The values are float32 (compressed-tensors'
   * own decompressor rounds them to bf16 after the same product; at --dtype bf16 they are the same). */
  private fp4(p: string, s: CtScheme | null): QuantizedLinear {
    const [rows, bytes, ...extra] = this.shape(`${p}.weight_packed`);
    let out = rows!, inDim = bytes! * 2;
    if (this.store.has(`${p}.weight_shape`)) {
      const shape = this.ints(`${p}.weight_shape`);
      [out, inDim] = [shape[0]!, shape[1]!];
    }
    if (extra.length > 0 || rows !== out || bytes !== Math.ceil(inDim / 2)) {
      throw new UnsupportedModelError(`${this.dir}: '${p}.weight_packed' [${this.shape(`${p}.weight_packed`).join(', ')}] does not hold FP4 [${out}, ${inDim}] two codes a byte`);
    }
    const scaleName = `${p}.weight_scale`, globalName = `${p}.weight_global_scale`, zeroName = `${p}.weight_zero_point`;
    const [scaleRows, groups = 1] = this.shape(scaleName), size = groupWidth(s?.groupSize ?? null, inDim, groups);
    if (scaleRows !== out || this.shape(scaleName).length > 2 || Math.ceil(inDim / size) !== groups) {
      throw new UnsupportedModelError(`${this.dir}: '${scaleName}' [${this.shape(scaleName).join(', ')}] is not one scale per row and group of ${size} of [${out}, ${inDim}]`);
    }
    const exponents = ['U8', 'F8_E8M0'].includes(this.store.info(scaleName).dtype);  // MXFP4: 2^(e − 127)
    const hasGlobal = this.store.has(globalName), hasZero = this.store.has(zeroName);
    if (hasGlobal && this.shape(globalName).reduce((a, b) => a * b, 1) !== 1) {
      throw new UnsupportedModelError(`${this.dir}: '${globalName}' must hold one value`);
    }
    const consumed = [`${p}.weight_packed`, scaleName, ...[`${p}.weight_shape`, globalName, zeroName].filter((n) => this.store.has(n))];
    return {
      out, in: inDim, file: this.store.info(`${p}.weight_packed`).file, consumed,
      read: (w) => {
        if (hasZero && this.floats(zeroName).some((z) => z !== 0)) {
          throw new UnsupportedModelError(`'${zeroName}' is not zero: asymmetric FP4 is not supported`);
        }
        let scales = exponents ? Float32Array.from(this.store.readBytes(scaleName), (e) => FP8_TABLES.F8_E8M0[e]!) : this.store.readF32(scaleName);
        if (hasGlobal) {  // compressed-tensors divides each scale by the global scale (in float32), then multiplies
          const g = this.store.readF32(globalName)[0]!;
          scales = scales.map((v) => v / g);
        }
        return dequantFp4(this.store.readBytes(`${p}.weight_packed`), scales, groups, size, out, inDim, w);
      },
    };
  }

  /** A float or integer tensor as float32. */
  private floats(name: string): Float32Array {
    return FLOAT_DTYPES.has(this.store.info(name).dtype) ? this.store.readF32(name) : Float32Array.from(readInts(this.store, name));
  }

  /** The rows of an unpacked weight: one-byte codes with the table that decodes them, or float32 values. */
  private weightRows(name: string, rows: Slice): { values: Uint8Array | Float32Array; table: Float32Array | null } {
    const dtype = this.store.info(name).dtype;
    if (dtype === 'I8') return { values: this.store.readBytes(name, rows), table: INT8_TABLE };
    if (dtype === 'F8_E4M3' || dtype === 'F8_E5M2') return { values: this.store.readBytes(name, rows), table: FP8_TABLES[dtype] };
    return { values: this.store.readF32(name, rows), table: null };
  }

  /** bitsandbytes 4-bit (Linear4bit's saved state): weight bytes, absmax (maybe 8-bit codes with nested_absmax,
   * nested_quant_map and the offset), quant_map, and the JSON quant_state (shape, blocksize, quant_type). */
  private bnb4(p: string): QuantizedLinear {
    const stateName = [`${p}.weight.quant_state.bitsandbytes__nf4`, `${p}.weight.quant_state.bitsandbytes__fp4`].find((n) => this.store.has(n))!;
    let state: { shape?: unknown; blocksize?: unknown; nested_blocksize?: unknown; nested_offset?: unknown };
    try {
      state = JSON.parse(Buffer.from(this.store.readBytes(stateName)).toString('utf8'));
    } catch (e) {
      throw new UnsupportedModelError(`${this.dir}: '${stateName}' is not bitsandbytes' JSON quant state: ${(e as Error).message}`);
    }
    const shape = state.shape, blocksize = Number(state.blocksize);
    if (!Array.isArray(shape) || shape.length !== 2 || !shape.every((d) => Number.isInteger(d) && d > 0) || !(blocksize > 0)) {
      throw new UnsupportedModelError(`${this.dir}: '${stateName}' needs a 2-D shape and a blocksize, got ${JSON.stringify(state)}`);
    }
    const [out, inDim] = shape as [number, number], n = out * inDim;
    const nested = state.nested_offset !== undefined;
    const bytes = this.store.info(this.need(`${p}.weight`)).byteLength;
    if (bytes !== Math.ceil(n / 2)) throw new UnsupportedModelError(`${this.dir}: '${p}.weight' holds ${bytes} bytes; 4-bit [${out}, ${inDim}] needs ${Math.ceil(n / 2)}`);
    const blocks = Math.ceil(n / blocksize);
    if (this.store.info(this.need(`${p}.weight.absmax`)).shape.reduce((a, b) => a * b, 1) !== blocks) {
      throw new UnsupportedModelError(`${this.dir}: '${p}.weight.absmax' must hold ${blocks} values (one per ${blocksize})`);
    }
    const consumed = [`${p}.weight`, `${p}.weight.absmax`, `${p}.weight.quant_map`, stateName,
      ...(nested ? [`${p}.weight.nested_absmax`, `${p}.weight.nested_quant_map`] : [])];
    return {
      out, in: inDim, file: this.store.info(`${p}.weight`).file, consumed,
      read: (w) => {
        const absmax = nested
          ? nestedAbsmax(this.store.readBytes(`${p}.weight.absmax`), this.store.readF32(this.need(`${p}.weight.nested_quant_map`)),
            this.store.readF32(this.need(`${p}.weight.nested_absmax`)), Number(state.nested_blocksize ?? 256), Number(state.nested_offset))
          : this.store.readF32(`${p}.weight.absmax`);
        return dequantBnb4(this.store.readBytes(`${p}.weight`), absmax, this.store.readF32(this.need(`${p}.weight.quant_map`)), out, inDim, blocksize, w);
      },
    };
  }

  /** bitsandbytes LLM.int8 (Linear8bitLt's saved state): int8 weight rows and a float32 SCB per row; w = q·SCB/127. */
  private bnb8(p: string): QuantizedLinear {
    const [out, inDim] = this.shape(`${p}.weight`) as [number, number];
    this.expect(`${p}.SCB`, [out]);
    const hasFormat = this.store.has(`${p}.weight_format`);
    if (hasFormat && readInts(this.store, `${p}.weight_format`)[0] !== 0) {
      throw new UnsupportedModelError(`${this.dir}: '${p}.weight_format' is not the row-major layout (0) bitsandbytes saves by default`);
    }
    const consumed = [`${p}.weight`, `${p}.SCB`, ...(hasFormat ? [`${p}.weight_format`] : [])];
    const inv127 = Math.fround(1 / 127);
    return {
      out, in: inDim, file: this.store.info(`${p}.weight`).file, consumed,
      read: (w) => {
        const { values, table } = this.weightRows(`${p}.weight`, { dim: 0, start: w.o0, end: w.o1 });
        const scale = { data: this.store.readF32(`${p}.SCB`), rowsPer: 1, cols: 1, colsPer: inDim };
        return dequantUnpacked(values, table, inDim, scale, null, inv127, out, w);  // (q · SCB) · (1/127)
      },
    };
  }

  /** FP8 / int8 weight [out, in] with weight_scale_inv (fp8) or weight_scale (+ weight_zero_point) (compressed-tensors). */
  private unpacked(p: string): QuantizedLinear {
    const [out, inDim] = this.shape(`${p}.weight`) as [number, number];
    const scaleName = this.store.has(`${p}.weight_scale_inv`) ? `${p}.weight_scale_inv` : `${p}.weight_scale`;
    const block = this.scheme.method === 'fp8' || this.scheme.method === 'compressed-tensors' ? this.scheme.block : null;
    const ctGroup = this.scheme.method === 'compressed-tensors' ? this.scheme.groupSize : null;
    const gridOf = (name: string): GridShape => scaleGrid(this.shape(name), out, inDim, block, ctGroup, `${this.dir}: '${name}'`);
    const zeroName = `${p}.weight_zero_point`, hasZero = this.store.has(zeroName);
    const scaleShape = gridOf(scaleName), zeroShape = hasZero ? gridOf(zeroName) : null;  // checked now, not at the first read
    const consumed = [`${p}.weight`, scaleName, ...(hasZero ? [zeroName] : [])];
    return {
      out, in: inDim, file: this.store.info(`${p}.weight`).file, consumed,
      read: (w) => {
        const { values, table } = this.weightRows(`${p}.weight`, { dim: 0, start: w.o0, end: w.o1 });
        const zero = zeroShape ? { ...zeroShape, data: readInts(this.store, zeroName) } : null;
        return dequantUnpacked(values, table, inDim, { ...scaleShape, data: this.store.readF32(scaleName) }, zero, 1, out, w);
      },
    };
  }
}

/** `X` when `name` is the tensor that marks X as a quantized linear in this scheme, else null. */
function quantizedPrefix(name: string, scheme: QuantScheme): string | null {
  const cut = (suffix: string) => (name.endsWith(suffix) ? name.slice(0, -suffix.length) : null);
  if (scheme.method === 'awq' || scheme.method === 'gptq') return cut('.qweight');
  if (scheme.method === 'fp8') return cut('.weight_scale_inv');
  if (scheme.method === 'bitsandbytes') {
    return scheme.bits === 8 ? cut('.SCB') : cut('.weight.quant_state.bitsandbytes__nf4') ?? cut('.weight.quant_state.bitsandbytes__fp4');
  }
  return cut('.weight_packed') ?? cut('.weight_scale');
}

function windowOf(q: QuantizedLinear, slice: Slice | undefined, name: string): Window {
  const w = { o0: 0, o1: q.out, i0: 0, i1: q.in };
  if (!slice) return w;
  const len = slice.dim === 0 ? q.out : q.in;
  if (slice.dim > 1 || slice.start < 0 || slice.end > len || slice.start > slice.end) {
    throw new UnsupportedModelError(`slice ${JSON.stringify(slice)} is outside '${name}' [${q.out}, ${q.in}]`);
  }
  return slice.dim === 0 ? { ...w, o0: slice.start, o1: slice.end } : { ...w, i0: slice.start, i1: slice.end };
}

/** A tensor of integers (I8/U8/I16/U16/I32/U32, or I64/U64 holding small values) as Int32Array. */
export function readInts(store: TensorSource, name: string, slice?: Slice): Int32Array {
  const dtype = store.info(name).dtype, bytes = store.readBytes(name, slice);
  const copy = bytes.slice();  // aligned for the typed views below
  switch (dtype) {
    case 'I32': case 'U32': return new Int32Array(copy.buffer);
    case 'I8': return Int32Array.from(new Int8Array(copy.buffer));
    case 'U8': return Int32Array.from(copy);
    case 'I16': return Int32Array.from(new Int16Array(copy.buffer));
    case 'U16': return Int32Array.from(new Uint16Array(copy.buffer));
    case 'I64': case 'U64': return Int32Array.from(new BigInt64Array(copy.buffer), (v) => Number(v));
    default:
      throw new UnsupportedModelError(`'${name}' has dtype ${dtype} (${DTYPE_SIZE[dtype]} bytes); an integer tensor was expected`);
  }
}

/** The bit width whose packing turns `inDim` columns into `words` words, when only one does. */
function packedBits(inDim: number, words: number, where: string): number {
  const fits = [2, 4, 8].filter((b) => Math.ceil(inDim / (32 / b)) === words);
  if (fits.length !== 1) throw new UnsupportedModelError(`${where}: cannot tell the bit width of ${words} words for ${inDim} columns; set config_groups.weights.num_bits`);
  return fits[0]!;
}

function groupWidth(configured: number | null, inDim: number, groups: number): number {
  if (groups === 1) return inDim;
  return configured !== null && configured > 0 ? configured : Math.ceil(inDim / groups);
}

/** The grid a scale (or zero point) of this shape lays over a weight [out, in]: per tensor, channel, group or block. */
function scaleGrid(shape: number[], out: number, inDim: number, block: [number, number] | null, groupSize: number | null, where: string): GridShape {
  const n = shape.reduce((a, b) => a * b, 1);
  if (n === 1) return { rowsPer: out, cols: 1, colsPer: inDim };
  if (block) {
    const [bo, bi] = block;
    if (shape.length === 2 && shape[0] === Math.ceil(out / bo) && shape[1] === Math.ceil(inDim / bi)) return { rowsPer: bo, cols: shape[1], colsPer: bi };
    throw new UnsupportedModelError(`${where} has shape [${shape.join(', ')}]; [${bo}, ${bi}] blocks of [${out}, ${inDim}] need [${Math.ceil(out / bo)}, ${Math.ceil(inDim / bi)}]`);
  }
  if (shape[0] === out && (shape.length === 1 || shape.length === 2)) {
    const groups = shape[1] ?? 1;
    return { rowsPer: 1, cols: groups, colsPer: groupWidth(groupSize, inDim, groups) };
  }
  throw new UnsupportedModelError(`${where} has shape [${shape.join(', ')}]: not a per-tensor, per-channel or per-group scale of [${out}, ${inDim}] ` +
    '(block scales need weight_block_size / block_structure in quantization_config)');
}
