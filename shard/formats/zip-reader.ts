// A read-only zip reader for PyTorch checkpoints (APPNOTE.TXT 6.3): end-of-central-directory record, optional
// zip64 locator/record and per-entry zip64 extra fields, STORED and DEFLATE entries, CRC-32 checked on read.
// Reads go through fs.readSync at positions; only the central directory and the requested entries are read.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';

export class ZipError extends Error {
  override readonly name = 'ZipError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export interface ZipEntry {
  name: string;
  method: number; // 0 stored, 8 deflate
  flags: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;

let crcTable: Uint32Array | undefined;
export function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function u64(view: DataView, at: number, what: string, file: string): number {
  const v = view.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipError(`${file}: ${what} ${v} is too large`);
  return Number(v);
}

export class ZipReader {
  private fd: number | undefined;
  private readonly byName: Map<string, ZipEntry>;

  private constructor(readonly path: string, fd: number, private readonly size: number, entries: ZipEntry[]) {
    this.fd = fd;
    this.byName = new Map(entries.map((e) => [e.name, e]));
  }

  static open(path: string): ZipReader {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new ZipError(`${path}: cannot open: ${(e as Error).message}`, { cause: e });
    }
    try {
      const size = fstatSync(fd).size;
      return new ZipReader(path, fd, size, readCentralDirectory(fd, path, size));
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  entries(): ZipEntry[] {
    return [...this.byName.values()];
  }

  get(name: string): ZipEntry | undefined {
    return this.byName.get(name);
  }

  /** The uncompressed bytes of an entry, CRC-checked. */
  read(entryOrName: ZipEntry | string): Uint8Array {
    const e = typeof entryOrName === 'string' ? this.byName.get(entryOrName) : entryOrName;
    if (!e) throw new ZipError(`${this.path}: no entry named '${String(entryOrName)}'`);
    const where = `${this.path}: entry '${e.name}'`;
    if (e.flags & 1) throw new ZipError(`${where} is encrypted`);
    const fd = this.requireOpen();
    const local = readAt(fd, e.localHeaderOffset, 30, this.path, this.size);
    const lv = new DataView(local.buffer);
    if (lv.getUint32(0, true) !== SIG_LOCAL) throw new ZipError(`${where}: bad local header signature at byte ${e.localHeaderOffset}`);
    const dataStart = e.localHeaderOffset + 30 + lv.getUint16(26, true) + lv.getUint16(28, true);
    if (dataStart + e.compressedSize > this.size) {
      throw new ZipError(`${where}: data [${dataStart}, ${dataStart + e.compressedSize}) runs past the end of the ` +
        `file (${this.size} bytes; truncated?)`);
    }
    const raw = readAt(fd, dataStart, e.compressedSize, this.path, this.size);
    let data: Uint8Array;
    if (e.method === 0) {
      if (e.compressedSize !== e.uncompressedSize) throw new ZipError(`${where}: stored entry has compressed size ` +
        `${e.compressedSize} != size ${e.uncompressedSize}`);
      data = raw;
    } else if (e.method === 8) {
      try {
        const out = inflateRawSync(raw, { maxOutputLength: Math.max(1, e.uncompressedSize) });
        data = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
      } catch (err) {
        throw new ZipError(`${where}: corrupt deflate data: ${(err as Error).message}`, { cause: err });
      }
      if (data.byteLength !== e.uncompressedSize) throw new ZipError(`${where}: inflated to ${data.byteLength} ` +
        `bytes, expected ${e.uncompressedSize}`);
    } else {
      throw new ZipError(`${where}: unsupported compression method ${e.method} (only stored and deflate)`);
    }
    const crc = crc32(data);
    if (crc !== e.crc32) throw new ZipError(`${where}: CRC-32 mismatch (file has 0x${e.crc32.toString(16)}, data ` +
      `gives 0x${crc.toString(16)}; corrupt file)`);
    return data;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private requireOpen(): number {
    if (this.fd === undefined) throw new ZipError(`${this.path}: zip file is closed`);
    return this.fd;
  }
}

function readAt(fd: number, position: number, length: number, file: string, size: number): Uint8Array {
  if (position < 0 || position + length > size) {
    throw new ZipError(`${file}: read of ${length} bytes at ${position} is outside the file (${size} bytes; truncated?)`);
  }
  const buf = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, Math.min(length - done, 1 << 30), position + done);
    if (n === 0) throw new ZipError(`${file}: unexpected end of file at byte ${position + done}`);
    done += n;
  }
  return buf;
}

function readCentralDirectory(fd: number, file: string, size: number): ZipEntry[] {
  const tailLen = Math.min(size, EOCD_SIZE + MAX_COMMENT);
  const tail = readAt(fd, size - tailLen, tailLen, file, size);
  const tv = new DataView(tail.buffer);
  let eocd = -1;
  for (let i = tailLen - EOCD_SIZE; i >= 0; i--) {
    if (tv.getUint32(i, true) === SIG_EOCD && i + EOCD_SIZE + tv.getUint16(i + 20, true) === tailLen) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new ZipError(`${file}: not a zip file, or truncated: end-of-central-directory record not found`);
  let count = tv.getUint16(eocd + 10, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);
  const eocdAbs = size - tailLen + eocd;
  if (eocdAbs >= 20) {
    const loc = readAt(fd, eocdAbs - 20, 20, file, size);
    const lv = new DataView(loc.buffer);
    if (lv.getUint32(0, true) === SIG_ZIP64_LOCATOR) {
      const recOffset = u64(lv, 8, 'zip64 record offset', file);
      const rec = readAt(fd, recOffset, 56, file, size);
      const rv = new DataView(rec.buffer);
      if (rv.getUint32(0, true) !== SIG_ZIP64_EOCD) throw new ZipError(`${file}: bad zip64 end-of-central-directory ` +
        `signature at byte ${recOffset}`);
      count = u64(rv, 32, 'entry count', file);
      cdSize = u64(rv, 40, 'central directory size', file);
      cdOffset = u64(rv, 48, 'central directory offset', file);
    }
  }
  if (cdOffset + cdSize > size) throw new ZipError(`${file}: central directory [${cdOffset}, ${cdOffset + cdSize}) ` +
    `runs past the end of the file (${size} bytes; truncated?)`);
  const cd = readAt(fd, cdOffset, cdSize, file, size);
  const cv = new DataView(cd.buffer);
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdSize || cv.getUint32(p, true) !== SIG_CENTRAL) throw new ZipError(`${file}: corrupt central directory at entry ${i}`);
    const nameLen = cv.getUint16(p + 28, true);
    const extraLen = cv.getUint16(p + 30, true);
    const commentLen = cv.getUint16(p + 32, true);
    if (p + 46 + nameLen + extraLen + commentLen > cdSize) throw new ZipError(`${file}: corrupt central directory at entry ${i}`);
    const flags = cv.getUint16(p + 8, true);
    const nameBytes = cd.subarray(p + 46, p + 46 + nameLen);
    const name = new TextDecoder(flags & 0x800 ? 'utf-8' : 'latin1').decode(nameBytes);
    const e: ZipEntry = {
      name,
      method: cv.getUint16(p + 10, true),
      flags,
      crc32: cv.getUint32(p + 16, true),
      compressedSize: cv.getUint32(p + 20, true),
      uncompressedSize: cv.getUint32(p + 24, true),
      localHeaderOffset: cv.getUint32(p + 42, true),
    };
    applyZip64Extra(e, cd.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen), cv.getUint16(p + 34, true), file);
    entries.push(e);
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** Fields stored as 0xFFFFFFFF live in the zip64 extra (id 1), in the order: size, compressed size, offset. */
function applyZip64Extra(e: ZipEntry, extra: Uint8Array, disk: number, file: string): void {
  const needs = [e.uncompressedSize, e.compressedSize, e.localHeaderOffset].some((v) => v === 0xffffffff) || disk === 0xffff;
  if (!needs) return;
  const ev = new DataView(extra.buffer, extra.byteOffset, extra.byteLength);
  for (let q = 0; q + 4 <= extra.byteLength;) {
    const id = ev.getUint16(q, true);
    const len = ev.getUint16(q + 2, true);
    if (id === 1) {
      let r = q + 4;
      const take = (what: string): number => {
        if (r + 8 > q + 4 + len) throw new ZipError(`${file}: entry '${e.name}': zip64 extra field too short for ${what}`);
        const v = u64(ev, r, what, file);
        r += 8;
        return v;
      };
      if (e.uncompressedSize === 0xffffffff) e.uncompressedSize = take('size');
      if (e.compressedSize === 0xffffffff) e.compressedSize = take('compressed size');
      if (e.localHeaderOffset === 0xffffffff) e.localHeaderOffset = take('local header offset');
      return;
    }
    q += 4 + len;
  }
  throw new ZipError(`${file}: entry '${e.name}' needs a zip64 extra field but has none`);
}
