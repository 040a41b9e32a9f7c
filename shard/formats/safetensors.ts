// safetensors reader/writer (https://github.com/huggingface/safetensors, format section): an 8-byte little-endian
// header length N, N bytes of JSON, then the data section; tensor `data_offsets` are relative to its start.
// Validation follows the reference implementation: offsets must tile the data section exactly (sorted by start,
// no gaps, no overlaps, nothing after the last tensor) and each tensor's byte length must equal numel * dtype size.
// Reads go through fs.readSync at positions in bounded chunks, so a 14 GB model loads tensor by tensor.
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { basename, join } from 'node:path';
import { DTYPE_SIZE, FLOAT_DTYPES, decodeFloats, encodeFloats, numel, type DType, type FloatDType } from './dtype.js';

export {
  DTYPE_SIZE, bf16ToF32, decodeFloats, encodeFloats, f16ToF32, f32ToBf16, f32ToF16, numel, type DType, type FloatDType,
} from './dtype.js';

export interface TensorInfo { name: string; dtype: DType; shape: number[]; file: string; byteOffset: number; byteLength: number }
/** A half-open range [start, end) along one dimension. */
export interface Slice { dim: number; start: number; end: number }

export class SafetensorsError extends Error {
  override readonly name = 'SafetensorsError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

const MAX_HEADER_BYTES = 100_000_000; // same cap as the reference implementation
const DEFAULT_CHUNK_BYTES = 64 << 20; // bounded read size; keeps peak memory near the output size

export interface OpenOptions {
  /** Largest single read, in bytes (default 64 MiB). */
  chunkBytes?: number;
}

// ---------- one file ----------

interface Entry { info: TensorInfo; begin: number; end: number }

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function readAt(fd: number, position: number, length: number, file: string): Uint8Array {
  // Not zero-filled first: every byte is read into it below, or the read throws (an adapter's 80 MB of weights
  // would otherwise be written twice).
  const buf = Buffer.allocUnsafeSlow(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, Math.min(length - done, 1 << 30), position + done);
    if (n === 0) throw new SafetensorsError(`${file}: unexpected end of file at byte ${position + done} (file truncated?)`);
    done += n;
  }
  return buf;
}

export class SafetensorsFile {
  readonly path: string;
  readonly metadata: Record<string, string>;
  private fd: number | undefined;
  private readonly entries: Map<string, Entry>;
  private readonly chunkBytes: number;

  private constructor(path: string, fd: number, metadata: Record<string, string>, entries: Map<string, Entry>, chunkBytes: number) {
    this.path = path;
    this.fd = fd;
    this.metadata = metadata;
    this.entries = entries;
    this.chunkBytes = chunkBytes;
  }

  static open(path: string, options: OpenOptions = {}): SafetensorsFile {
    const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 8) throw new SafetensorsError(`${path}: chunkBytes must be an integer >= 8`);
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new SafetensorsError(`${path}: cannot open: ${(e as Error).message}`, { cause: e });
    }
    try {
      const { metadata, entries } = parseHeader(fd, path);
      return new SafetensorsFile(path, fd, metadata, entries, chunkBytes);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  info(name: string): TensorInfo {
    const e = this.entries.get(name);
    if (!e) throw new SafetensorsError(`${this.path}: no tensor named '${name}'`);
    return { ...e.info, shape: [...e.info.shape] };
  }

  /** Reads a float tensor (F32/F16/BF16/F64, or 8-bit floats) as float32; with a slice, only that range along one dimension. */
  readF32(name: string, slice?: Slice): Float32Array {
    const info = this.info(name);
    if (!FLOAT_DTYPES.has(info.dtype)) {
      throw new SafetensorsError(`${this.path}: tensor '${name}' has dtype ${info.dtype}; readF32 reads float tensors only (${[...FLOAT_DTYPES].join('/')})`);
    }
    const dtype = info.dtype as FloatDType;
    const plan = planSlice(info, slice, this.path);
    const out = new Float32Array(plan.outElems);
    this.readPlan(info, plan, (bytes, outElem) => decodeFloats(dtype, bytes, out, outElem));
    return out;
  }

  /** Reads a tensor's raw little-endian bytes (any dtype), optionally a slice along one dimension. */
  readBytes(name: string, slice?: Slice): Uint8Array {
    const info = this.info(name);
    const size = DTYPE_SIZE[info.dtype];
    const plan = planSlice(info, slice, this.path);
    const out = new Uint8Array(plan.outElems * size);
    this.readPlan(info, plan, (bytes, outElem) => out.set(bytes, outElem * size));
    return out;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private readPlan(info: TensorInfo, plan: SlicePlan, sink: (bytes: Uint8Array, outElem: number) => void): void {
    if (this.fd === undefined) throw new SafetensorsError(`${this.path}: file is closed`);
    const size = DTYPE_SIZE[info.dtype];
    const { outer, rowElems, spanStart, spanElems } = plan;
    if (spanElems === 0 || outer === 0) return;
    const fd = this.fd;
    const rowBytes = rowElems * size;
    const readRange = (fromElem: number, count: number, outElem: number): void => {
      const step = Math.max(1, Math.floor(this.chunkBytes / size));
      for (let done = 0; done < count; done += step) {
        const n = Math.min(step, count - done);
        sink(readAt(fd, info.byteOffset + (fromElem + done) * size, n * size, this.path), outElem + done);
      }
    };
    // No slice or a dim-0 slice is one contiguous range; rows bigger than a chunk are read span by span;
    // otherwise whole rows are read a chunk at a time and the wanted span of each row is kept.
    if (outer === 1 || rowBytes > this.chunkBytes) {
      for (let o = 0; o < outer; o++) readRange(o * rowElems + spanStart, spanElems, o * spanElems);
      return;
    }
    const rowsPerChunk = Math.floor(this.chunkBytes / rowBytes);
    for (let o = 0; o < outer; o += rowsPerChunk) {
      const rows = Math.min(rowsPerChunk, outer - o);
      const chunk = readAt(this.fd, info.byteOffset + o * rowBytes, rows * rowBytes, this.path);
      for (let r = 0; r < rows; r++) {
        const from = r * rowBytes + spanStart * size;
        sink(chunk.subarray(from, from + spanElems * size), (o + r) * spanElems);
      }
    }
  }
}

/** The tensor as `outer` rows of `rowElems` elements, of which [spanStart, spanStart + spanElems) are wanted. */
interface SlicePlan { outer: number; rowElems: number; spanStart: number; spanElems: number; outElems: number }

function planSlice(info: TensorInfo, slice: Slice | undefined, file: string): SlicePlan {
  const total = numel(info.shape);
  if (!slice) return { outer: 1, rowElems: total, spanStart: 0, spanElems: total, outElems: total };
  const { dim, start, end } = slice;
  const where = `${file}: tensor '${info.name}' shape [${info.shape.join(', ')}]`;
  if (!Number.isInteger(dim) || dim < 0 || dim >= info.shape.length) {
    throw new SafetensorsError(`${where}: slice dim ${dim} out of range (tensor has ${info.shape.length} dims)`);
  }
  const extent = info.shape[dim]!;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || end > extent) {
    throw new SafetensorsError(`${where}: slice [${start}, ${end}) along dim ${dim} is not within [0, ${extent}]`);
  }
  const inner = numel(info.shape.slice(dim + 1));
  const outer = numel(info.shape.slice(0, dim));
  const spanElems = (end - start) * inner;
  return { outer, rowElems: extent * inner, spanStart: start * inner, spanElems, outElems: outer * spanElems };
}

function parseHeader(fd: number, path: string): { metadata: Record<string, string>; entries: Map<string, Entry> } {
  const fileSize = fstatSync(fd).size;
  if (fileSize < 8) throw new SafetensorsError(`${path}: file is ${fileSize} bytes, too short for a safetensors header`);
  const lenBytes = readAt(fd, 0, 8, path);
  const headerLen = new DataView(lenBytes.buffer).getBigUint64(0, true);
  if (headerLen > BigInt(fileSize - 8)) {
    throw new SafetensorsError(`${path}: header length ${headerLen} exceeds the file size ${fileSize} (truncated or ` +
      `not a safetensors file)`);
  }
  if (headerLen > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(`${path}: header length ${headerLen} is over ` +
    `the ${MAX_HEADER_BYTES}-byte limit`);
  const n = Number(headerLen);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(readAt(fd, 8, n, path)));
  } catch (e) {
    if (e instanceof SafetensorsError) throw e;
    throw new SafetensorsError(`${path}: header is not valid UTF-8 JSON: ${(e as Error).message}`, { cause: e });
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new SafetensorsError(`${path}: header must be a JSON object`);
  }
  const dataStart = 8 + n;
  const dataLen = fileSize - dataStart;
  let metadata: Record<string, string> = {};
  const list: Entry[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(raw, path);
      continue;
    }
    list.push(parseEntry(name, raw, path, dataStart, dataLen));
  }
  list.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let prev: Entry | undefined;
  for (const e of list) {
    if (e.begin < cursor) {
      throw new SafetensorsError(`${path}: tensor '${e.info.name}' data_offsets [${e.begin}, ${e.end}] overlap ` +
        `tensor '${prev!.info.name}' [${prev!.begin}, ${prev!.end}]`);
    }
    if (e.begin > cursor) {
      throw new SafetensorsError(`${path}: tensor '${e.info.name}' starts at data offset ${e.begin} but the ` +
        `previous tensor ends at ${cursor} (gap in data section)`);
    }
    cursor = e.end;
    prev = e;
  }
  if (cursor !== dataLen) {
    throw new SafetensorsError(`${path}: data section is ${dataLen} bytes but the tensors cover ${cursor} ` +
      `(${dataLen - cursor} unaccounted bytes)`);
  }
  return { metadata, entries: new Map(list.map((e) => [e.info.name, e])) };
}

function parseMetadata(raw: unknown, path: string): Record<string, string> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new SafetensorsError(`${path}: __metadata__ must be an object of strings`);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof v !== 'string') throw new SafetensorsError(`${path}: __metadata__ value for '${k}' must be a string, got ${typeof v}`);
    out[k] = v;
  }
  return out;
}

function parseEntry(name: string, raw: unknown, path: string, dataStart: number, dataLen: number): Entry {
  const where = `${path}: tensor '${name}'`;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new SafetensorsError(`${where}: header entry must be an object`);
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (typeof dtype !== 'string' || !(dtype in DTYPE_SIZE)) {
    throw new SafetensorsError(`${where}: unknown or unsupported dtype ${JSON.stringify(dtype)} (supported: ` +
      `${Object.keys(DTYPE_SIZE).join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every(isNonNegInt)) {
    throw new SafetensorsError(`${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegInt) || offsets[0] > offsets[1]) {
    throw new SafetensorsError(`${where}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  const d = dtype as DType;
  const expected = numel(shape) * DTYPE_SIZE[d];
  if (end - begin !== expected) {
    throw new SafetensorsError(`${where}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${d} ` +
      `[${shape.join(', ')}] needs ${expected}`);
  }
  if (end > dataLen) {
    throw new SafetensorsError(`${where}: data_offsets [${begin}, ${end}] run past the end of the data section ` +
      `(${dataLen} bytes; file truncated?)`);
  }
  const info: TensorInfo = { name, dtype: d, shape: [...shape], file: path, byteOffset: dataStart + begin, byteLength: expected };
  return { info, begin, end };
}

// ---------- a model directory ----------

/**
 * What model loaders read tensors through: a checkpoint directory (WeightStore) or a view over one (a quantized
 * checkpoint's linear weights dequantized as they are read: shard/models/quantized/dequantizing-store.ts).
 */
export interface TensorSource {
  readonly dir: string;
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  readF32(name: string, slice?: Slice): Float32Array;
  readBytes(name: string, slice?: Slice): Uint8Array;
  close(): void;
}

const SINGLE = 'model.safetensors';
const INDEX = 'model.safetensors.index.json';

/** A Hugging Face model directory: model.safetensors, or shards listed by model.safetensors.index.json. */
export class WeightStore implements TensorSource {
  private constructor(
    readonly dir: string,
    private readonly files: SafetensorsFile[],
    private readonly owner: Map<string, SafetensorsFile>,
  ) {}

  static openDir(dir: string, options: OpenOptions = {}): WeightStore {
    const indexPath = join(dir, INDEX);
    if (existsSync(indexPath)) return WeightStore.openIndexed(dir, indexPath, options);
    const single = join(dir, SINGLE);
    if (existsSync(single)) {
      const f = SafetensorsFile.open(single, options);
      return new WeightStore(dir, [f], new Map(f.names().map((n) => [n, f])));
    }
    const bin = existsSync(join(dir, 'pytorch_model.bin')) ? ' (pytorch_model.bin is present: convert it to safetensors)' : '';
    throw new SafetensorsError(`${dir}: no weights found: looked for ${SINGLE} and ${INDEX}${bin}`);
  }

  private static openIndexed(dir: string, indexPath: string, options: OpenOptions): WeightStore {
    let index: unknown;
    try {
      index = JSON.parse(readFileSync(indexPath, 'utf8'));
    } catch (e) {
      throw new SafetensorsError(`${indexPath}: cannot read index: ${(e as Error).message}`, { cause: e });
    }
    const map = (index as { weight_map?: unknown } | null)?.weight_map;
    if (typeof map !== 'object' || map === null || Array.isArray(map)) {
      throw new SafetensorsError(`${indexPath}: missing "weight_map" object`);
    }
    const files = new Map<string, SafetensorsFile>();
    const owner = new Map<string, SafetensorsFile>();
    try {
      for (const [tensor, fileName] of Object.entries(map as Record<string, unknown>)) {
        if (typeof fileName !== 'string' || fileName !== basename(fileName) || fileName.startsWith('.')) {
          throw new SafetensorsError(`${indexPath}: weight_map entry '${tensor}' must name a file in ${dir}, got ` +
            `${JSON.stringify(fileName)}`);
        }
        let f = files.get(fileName);
        if (!f) {
          f = SafetensorsFile.open(join(dir, fileName), options);
          files.set(fileName, f);
        }
        if (!f.has(tensor)) throw new SafetensorsError(`${indexPath}: tensor '${tensor}' is mapped to ${fileName}, ` +
          `which does not contain it`);
        owner.set(tensor, f);
      }
    } catch (e) {
      for (const f of files.values()) f.close();
      throw e;
    }
    return new WeightStore(dir, [...files.values()], owner);
  }

  names(): string[] {
    return [...this.owner.keys()];
  }

  has(name: string): boolean {
    return this.owner.has(name);
  }

  info(name: string): TensorInfo {
    return this.file(name).info(name);
  }

  readF32(name: string, slice?: Slice): Float32Array {
    return this.file(name).readF32(name, slice);
  }

  readBytes(name: string, slice?: Slice): Uint8Array {
    return this.file(name).readBytes(name, slice);
  }

  close(): void {
    for (const f of this.files) f.close();
  }

  private file(name: string): SafetensorsFile {
    const f = this.owner.get(name);
    if (!f) throw new SafetensorsError(`${this.dir}: no tensor named '${name}'`);
    return f;
  }
}

// ---------- writing ----------

/** The dtypes writeSafetensors writes. */
export type WriteDType = 'F32' | 'F16' | 'BF16';

/**
 * One tensor for writeSafetensors. `data` is either float32 values (a Float32Array with numel elements,
 * encoded to `dtype` while writing) or the tensor already encoded in `dtype` as little-endian bytes
 * (a Uint8Array, or a Uint16Array of F16/BF16 bit patterns, of numel × dtype-size bytes), written as is.
 */
export interface TensorToWrite {
  dtype: WriteDType;
  shape: number[];
  data: Float32Array | Uint8Array | Uint16Array;
}

const WRITE_DTYPES: ReadonlySet<string> = new Set<WriteDType>(['F32', 'F16', 'BF16']);

/** The bytes a tensor's data section holds, validated against its shape; float32 values are encoded, bytes are viewed. */
function tensorBytes(path: string, name: string, t: TensorToWrite): { byteLength: number; bytes: () => Uint8Array } {
  const where = `${path}: tensor '${name}'`;
  if (!WRITE_DTYPES.has(t.dtype)) throw new SafetensorsError(`${where}: cannot write dtype ${JSON.stringify(t.dtype)} (F32, F16 or BF16)`);
  if (!Array.isArray(t.shape) || !t.shape.every(isNonNegInt)) {
    throw new SafetensorsError(`${where}: shape must be an array of non-negative integers, got ${JSON.stringify(t.shape)}`);
  }
  const n = numel(t.shape);
  const byteLength = n * DTYPE_SIZE[t.dtype];
  const d = t.data;
  if (d instanceof Float32Array) {
    if (d.length !== n) throw new SafetensorsError(`${where}: shape [${t.shape.join(', ')}] does not match ${d.length} values`);
    // F32 values are already the bytes to write: a view, no copy.
    return { byteLength, bytes: () => (t.dtype === 'F32' ? new Uint8Array(d.buffer, d.byteOffset, d.byteLength) : encodeFloats(t.dtype, d)) };
  }
  if (d instanceof Uint8Array || d instanceof Uint16Array) {
    if (d.byteLength !== byteLength) {
      throw new SafetensorsError(`${where}: ${d.byteLength} bytes of encoded data but ${t.dtype} [${t.shape.join(', ')}] ` +
        `needs ${byteLength} (${n} elements × ${DTYPE_SIZE[t.dtype]} bytes)`);
    }
    return { byteLength, bytes: () => new Uint8Array(d.buffer, d.byteOffset, d.byteLength) };
  }
  const kind = (d as object | null)?.constructor?.name ?? typeof d;
  throw new SafetensorsError(`${where}: data must be a Float32Array of values or a Uint8Array/Uint16Array of encoded ` +
    `${t.dtype} bytes, got ${kind}`);
}

/**
 * Writes F32/F16/BF16 tensors, each given as float32 values or as bytes already in its dtype (see
 * TensorToWrite); larger elements first so every tensor is aligned to its size. Everything is validated
 * before the file is opened; encoded bytes are written straight from the caller's buffer.
 */
export function writeSafetensors(
  path: string,
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): void {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const order = Object.entries(tensors).sort(([, a], [, b]) => (DTYPE_SIZE[b.dtype] ?? 0) - (DTYPE_SIZE[a.dtype] ?? 0));
  const sources: (() => Uint8Array)[] = [];
  let offset = 0;
  for (const [name, t] of order) {
    if (name === '__metadata__') throw new SafetensorsError(`${path}: '__metadata__' is reserved and cannot name a tensor`);
    const { byteLength, bytes } = tensorBytes(path, name, t);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + byteLength] };
    sources.push(bytes);
    offset += byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8); // pad so the data section starts 8-aligned
  const headerBytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.length));
  const fd = openSync(path, 'w');
  try {
    writeAll(fd, len);
    writeAll(fd, headerBytes);
    for (const bytes of sources) writeAll(fd, bytes()); // float32 → F16/BF16 is encoded one tensor at a time
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.byteLength;) done += writeSync(fd, bytes, done, Math.min(bytes.byteLength - done, 1 << 30));
}
