// Loads a PyTorch zip checkpoint (torch.save since 1.6; PEFT's adapter_model.bin) without Python.
// Layout, from torch/serialization.py `_save`: zip entries `<archive>/data.pkl` (the pickled object),
// `<archive>/byteorder` ("little" | "big"), and `<archive>/data/<key>` (raw storage bytes). Each tensor pickles as
// `torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`
// where `storage` is the persistent id ('storage', torch.<Type>Storage, key, location, numel).
// The unpickler only builds inert descriptions; storage bytes are read after the whole pickle was accepted.
import { openSync, readSync, closeSync } from 'node:fs';
import { DTYPE_SIZE, decodeFloats, numel, type DType } from './dtype.js';
import { PickleError, PickleGlobal, unpickle } from './pickle-vm.js';
import { ZipError, ZipReader } from './zip-reader.js';

export { PickleError, UnsafePickleError } from './pickle-vm.js';
export { ZipError } from './zip-reader.js';

export class TorchBinError extends Error {
  override readonly name = 'TorchBinError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export interface TorchBinTensor { dtype: 'F32' | 'F16' | 'BF16'; shape: number[]; data: Float32Array }

const STORAGE_DTYPES: Readonly<Record<string, DType>> = {
  'torch.FloatStorage': 'F32',
  'torch.HalfStorage': 'F16',
  'torch.BFloat16Storage': 'BF16',
  'torch.DoubleStorage': 'F64',
  'torch.UntypedStorage': 'U8',
  'torch.storage.UntypedStorage': 'U8',
};
const REBUILD_TENSOR = 'torch._utils._rebuild_tensor_v2';
const REBUILD_PARAMETER = 'torch._utils._rebuild_parameter';
const ORDERED_DICT = 'collections.OrderedDict';
export const ALLOWED_TORCH_GLOBALS: ReadonlySet<string> = new Set([
  REBUILD_TENSOR, REBUILD_PARAMETER, ORDERED_DICT, ...Object.keys(STORAGE_DTYPES),
]);

class StorageRef {
  constructor(readonly key: string, readonly dtype: DType, readonly numel: number) {}
}
class TensorRef {
  constructor(readonly storage: StorageRef, readonly offset: number, readonly shape: number[], readonly stride: number[]) {}
}

const isNonNegInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Reads every tensor of a PyTorch zip checkpoint whose top level is a dict of tensors, converted to float32. */
export function loadTorchBin(path: string): Map<string, TorchBinTensor> {
  const zip = openZip(path);
  try {
    const prefix = findArchivePrefix(zip, path);
    const order = zip.get(`${prefix}byteorder`);
    const byteorder = order ? new TextDecoder().decode(zip.read(order)).trim() : 'little';
    if (byteorder !== 'little' && byteorder !== 'big') throw new TorchBinError(`${path}: unknown byteorder record '${byteorder}'`);
    const root = unpickleCheckpoint(zip.read(`${prefix}data.pkl`), path);
    if (!(root instanceof Map)) throw new TorchBinError(`${path}: top-level object is not a dict of tensors`);
    const decoded = new Map<string, Float32Array>();
    const out = new Map<string, TorchBinTensor>();
    for (const [name, t] of root) {
      if (typeof name !== 'string') throw new TorchBinError(`${path}: state dict key ${String(name)} is not a string`);
      if (!(t instanceof TensorRef)) throw new TorchBinError(`${path}: entry '${name}' is not a tensor`);
      const dtype = t.storage.dtype;
      if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') {
        throw new TorchBinError(`${path}: tensor '${name}' has dtype ` +
          `${dtype === 'U8' ? 'uint8 (untyped storage)' : dtype}; only F32, F16 and BF16 tensors are loaded ` +
          `(convert the adapter with .float())`);
      }
      let storage = decoded.get(t.storage.key);
      if (!storage) {
        storage = readStorage(zip, prefix, t.storage, byteorder === 'big', path);
        decoded.set(t.storage.key, storage);
      }
      out.set(name, { dtype, shape: [...t.shape], data: gather(storage, t, `${path}: tensor '${name}'`) });
    }
    return out;
  } finally {
    zip.close();
  }
}

function openZip(path: string): ZipReader {
  try {
    return ZipReader.open(path);
  } catch (e) {
    if (!(e instanceof ZipError)) throw e;
    const head = new Uint8Array(2);
    let n = 0;
    try {
      const fd = openSync(path, 'r');
      try { n = readSync(fd, head, 0, 2, 0); } finally { closeSync(fd); }
    } catch { /* the zip error below names the problem */ }
    if (n === 2 && head[0] === 0x80 && head[1]! <= 5) {
      throw new TorchBinError(`${path}: legacy (pre-1.6, non-zip) torch.save format is not supported; re-save it ` +
        `with a current PyTorch or convert it to safetensors`, { cause: e });
    }
    throw new TorchBinError(`${path}: not a PyTorch zip checkpoint: ${e.message}`, { cause: e });
  }
}

function findArchivePrefix(zip: ZipReader, path: string): string {
  const pkls = zip.entries().map((e) => e.name).filter((n) => /^([^/]+\/)?data\.pkl$/.test(n));
  if (pkls.length !== 1) {
    throw new TorchBinError(`${path}: expected exactly one '<archive>/data.pkl' entry, found ` +
      `${pkls.length === 0 ? 'none' : pkls.join(', ')}`);
  }
  return pkls[0]!.slice(0, -'data.pkl'.length);
}

function unpickleCheckpoint(pkl: Uint8Array, path: string): unknown {
  const storages = new Map<string, StorageRef>();
  const bad = (msg: string): never => {
    throw new PickleError(`${path}: ${msg}`);
  };
  return unpickle(pkl, {
    where: path,
    allowedGlobals: ALLOWED_TORCH_GLOBALS,
    persistentLoad(pid) {
      if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== 'storage') return bad(`unexpected persistent id ${describe(pid)}`);
      const [, type, key, location, count] = pid as [string, unknown, unknown, unknown, unknown];
      if (!(type instanceof PickleGlobal) || !(type.name in STORAGE_DTYPES)) return bad(`persistent id names no ` +
        `storage type: ${describe(type)}`);
      if (typeof key !== 'string' || !/^[A-Za-z0-9_.-]+$/.test(key)) return bad(`bad storage key ${describe(key)}`);
      if (typeof location !== 'string' || !isNonNegInt(count)) return bad(`bad storage location/size in persistent id for key ${key}`);
      const dtype = STORAGE_DTYPES[type.name]!;
      const prev = storages.get(key);
      if (prev && (prev.dtype !== dtype || prev.numel !== count)) return bad(`storage ${key} is referenced with two ` +
        `different types or sizes`);
      const ref = prev ?? new StorageRef(key, dtype, count);
      storages.set(key, ref);
      return ref;
    },
    call(fn, args) {
      switch (fn.name) {
        case ORDERED_DICT:
          if (args.length === 0) return new Map();
          if (args.length === 1 && Array.isArray(args[0]) && args[0].every((p) => Array.isArray(p) && p.length === 2)) {
            return new Map(args[0] as [unknown, unknown][]);
          }
          return bad('unsupported OrderedDict arguments');
        case REBUILD_TENSOR: {
          if (args.length < 6 || args.length > 7) return bad(`${REBUILD_TENSOR} called with ${args.length} arguments`);
          const [storage, offset, size, stride] = args;
          if (!(storage instanceof StorageRef)) return bad(`${REBUILD_TENSOR}: first argument is not a storage`);
          if (!isNonNegInt(offset)) return bad(`${REBUILD_TENSOR}: bad storage offset ${describe(offset)}`);
          if (!Array.isArray(size) || !size.every(isNonNegInt)) return bad(`${REBUILD_TENSOR}: bad size ${describe(size)}`);
          if (!Array.isArray(stride) || stride.length !== size.length || !stride.every(isNonNegInt)) {
            return bad(`${REBUILD_TENSOR}: bad stride ${describe(stride)} for size ${describe(size)}`);
          }
          return new TensorRef(storage, offset, size as number[], stride as number[]);
        }
        case REBUILD_PARAMETER:
          if (args.length !== 3 || !(args[0] instanceof TensorRef)) return bad(`${REBUILD_PARAMETER}: expected ` +
            `(tensor, requires_grad, hooks)`);
          return args[0];
        default:
          return bad(`global ${fn.name} cannot be called`);
      }
    },
    // state_dict() OrderedDicts carry a `_metadata` attribute (module versions); it does not affect tensors.
    build(obj, state) {
      if (obj instanceof Map && (state === null || state instanceof Map)) return obj;
      return bad(`BUILD on ${describe(obj)} is not supported`);
    },
  });
}

function describe(v: unknown): string {
  if (v instanceof PickleGlobal) return v.name;
  if (v instanceof Map) return 'dict';
  try {
    return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)) ?? String(v);
  } catch {
    return String(v);
  }
}

function readStorage(zip: ZipReader, prefix: string, ref: StorageRef, bigEndian: boolean, path: string): Float32Array {
  const name = `${prefix}data/${ref.key}`;
  if (!zip.get(name)) throw new TorchBinError(`${path}: storage '${ref.key}' is missing (no zip entry '${name}')`);
  const bytes = zip.read(name);
  const size = DTYPE_SIZE[ref.dtype];
  if (bytes.byteLength !== ref.numel * size) {
    throw new TorchBinError(`${path}: storage '${ref.key}' has ${bytes.byteLength} bytes, expected ${ref.numel} × ${size}`);
  }
  if (bigEndian) {
    for (let i = 0; i < bytes.length; i += size) bytes.subarray(i, i + size).reverse();
  }
  const out = new Float32Array(ref.numel);
  decodeFloats(ref.dtype as 'F32' | 'F16' | 'BF16', bytes, out);
  return out;
}

/** Materializes a strided view of a storage as a contiguous row-major array. */
function gather(storage: Float32Array, t: TensorRef, where: string): Float32Array {
  const n = numel(t.shape);
  const out = new Float32Array(n);
  if (n === 0) return out;
  let last = t.offset;
  for (let d = 0; d < t.shape.length; d++) last += (t.shape[d]! - 1) * t.stride[d]!;
  if (last >= storage.length) {
    throw new TorchBinError(`${where}: view (offset ${t.offset}, size [${t.shape}], stride [${t.stride}]) reaches ` +
      `element ${last} of a ${storage.length}-element storage`);
  }
  let contiguous = true;
  for (let d = t.shape.length - 1, expect = 1; d >= 0; d--) {
    if (t.shape[d] !== 1 && t.stride[d] !== expect) contiguous = false;
    expect *= t.shape[d]!;
  }
  if (contiguous) {
    out.set(storage.subarray(t.offset, t.offset + n));
    return out;
  }
  const rank = t.shape.length;
  const idx = new Array<number>(rank).fill(0);
  let src = t.offset;
  for (let i = 0; i < n; i++) {
    out[i] = storage[src]!;
    for (let d = rank - 1; d >= 0; d--) {
      idx[d] = idx[d]! + 1;
      src += t.stride[d]!;
      if (idx[d]! < t.shape[d]!) break;
      src -= t.shape[d]! * t.stride[d]!;
      idx[d] = 0;
    }
  }
  return out;
}
