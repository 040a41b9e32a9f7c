// A tiny safetensors writer: 8-byte little-endian header length, a JSON header naming each tensor's
// dtype, shape and byte range, then the raw little-endian data. Reading lives in shard/; this only writes.
import { endianness } from 'node:os';
import { writeFile } from 'node:fs/promises';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64' | 'U8';

const DTYPE_BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2, I32: 4, I64: 8, U8: 1 };

export interface TensorToWrite {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Raw element data in the dtype's layout (F16/BF16 as Uint16Array). */
  data: ArrayBufferView;
}

/** Encodes tensors (written in name order, so the bytes are canonical) into one safetensors buffer. */
export function encodeSafetensors(
  tensors: Readonly<Record<string, TensorToWrite>>,
  metadata: Readonly<Record<string, string>> = { format: 'pt' },
): Buffer {
  if (endianness() !== 'LE') throw new Error('encodeSafetensors: big-endian hosts are not supported');
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const name of names) {
    const t = tensors[name]!;
    const elements = t.shape.reduce((a, b) => a * b, 1);
    const expected = elements * DTYPE_BYTES[t.dtype];
    if (t.data.byteLength !== expected) {
      throw new Error(
        `tensor ${name}: shape [${t.shape.join(', ')}] ${t.dtype} needs ${expected} bytes, got ${t.data.byteLength}`,
      );
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + expected] };
    offset += expected;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8); // data starts 8-byte aligned
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let at = 8 + headerBytes.length;
  for (const name of names) {
    const { data } = tensors[name]!;
    Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(out, at);
    at += data.byteLength;
  }
  return out;
}

export async function writeSafetensors(
  path: string,
  tensors: Readonly<Record<string, TensorToWrite>>,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  await writeFile(path, encodeSafetensors(tensors, metadata));
}
