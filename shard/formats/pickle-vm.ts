// A restricted unpickler: a pickle stack machine (opcodes of protocols 0-5 that build plain data) that resolves
// GLOBAL/STACK_GLOBAL only against an allow-list and hands every call (REDUCE/NEWOBJ) and persistent id to the
// caller, which builds inert descriptions. Nothing from the stream is ever executed; any other global is refused
// with UnsafePickleError at the opcode that names it, before any later opcode runs and before tensor data is read.
// Opcode semantics: CPython Lib/pickle.py and Lib/pickletools.py.

export class PickleError extends Error {
  override readonly name: string = 'PickleError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export class UnsafePickleError extends PickleError {
  override readonly name = 'UnsafePickleError';
  /** The refused global, as "module.name". */
  readonly global: string;
  constructor(message: string, global: string) {
    super(message);
    this.global = global;
  }
}

/** A resolved, allowed global ("module.name"). */
export class PickleGlobal {
  constructor(readonly name: string) {}
}

export interface UnpickleOptions {
  /** Names the file in error messages. */
  where: string;
  /** Allowed globals as "module.name". */
  allowedGlobals: ReadonlySet<string>;
  /** Builds the value of `global(*args)`; may throw PickleError. */
  call(global: PickleGlobal, args: unknown[]): unknown;
  /** Resolves a persistent id (BINPERSID / PERSID). */
  persistentLoad(pid: unknown): unknown;
  /** Applies BUILD state to an object the caller built; default: refuse. */
  build?(obj: unknown, state: unknown): unknown;
}

const MARK = Symbol('mark');
const utf8 = new TextDecoder('utf-8', { fatal: true });
const latin1 = new TextDecoder('latin1');

export function unpickle(bytes: Uint8Array, opts: UnpickleOptions): unknown {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  let pos = 0;
  let op = 0;
  let opAt = 0;

  const fail = (msg: string): never => {
    throw new PickleError(`${opts.where}: ${msg} (opcode 0x${op.toString(16)} at byte ${opAt})`);
  };
  const need = (n: number): void => {
    if (pos + n > bytes.length) fail(`pickle data truncated: need ${n} more bytes`);
  };
  const u8 = (): number => (need(1), bytes[pos++]!);
  const u16 = (): number => (need(2), (pos += 2), view.getUint16(pos - 2, true));
  const u32 = (): number => (need(4), (pos += 4), view.getUint32(pos - 4, true));
  const i32 = (): number => (need(4), (pos += 4), view.getInt32(pos - 4, true));
  const u64 = (): number => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(bytes.length)) fail(`length ${v} exceeds the pickle size`);
    return Number(v);
  };
  const take = (n: number): Uint8Array => (need(n), (pos += n), bytes.subarray(pos - n, pos));
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail('pickle data truncated: missing newline');
    const s = latin1.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const str = (b: Uint8Array): string => {
    try {
      return utf8.decode(b);
    } catch {
      return fail('invalid UTF-8 in string');
    }
  };
  const pop = (): unknown => {
    if (stack.length === 0 || stack[stack.length - 1] === MARK) fail('stack underflow');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0 || stack[stack.length - 1] === MARK) fail('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) fail('MARK expected on the stack');
    const items = stack.splice(i);
    items.shift();
    return items;
  };
  const resolve = (module: string, name: string): PickleGlobal => {
    const full = `${module}.${name}`;
    if (!opts.allowedGlobals.has(full)) {
      throw new UnsafePickleError(`${opts.where}: refusing to load global '${full}': only tensor-rebuilding globals ` +
        `are allowed (${[...opts.allowedGlobals].join(', ')}); the file may be malicious`, full);
    }
    return new PickleGlobal(full);
  };
  const call = (fn: unknown, args: unknown): unknown => {
    if (!(fn instanceof PickleGlobal)) return fail('call target is not an allowed global');
    if (!Array.isArray(args)) return fail(`arguments for ${fn.name} are not a tuple`);
    return opts.call(fn, args);
  };
  const setItems = (d: unknown, kv: unknown[]): void => {
    if (!(d instanceof Map)) fail('SETITEM(S) target is not a dict');
    if (kv.length % 2 !== 0) fail('SETITEMS needs key/value pairs');
    for (let i = 0; i < kv.length; i += 2) (d as Map<unknown, unknown>).set(kv[i], kv[i + 1]);
  };
  const appendItems = (l: unknown, items: unknown[]): void => {
    if (!Array.isArray(l)) fail('APPEND(S) target is not a list');
    for (const it of items) (l as unknown[]).push(it); // no spread: item counts come from the file
  };
  const memoGet = (k: number): unknown => (memo.has(k) ? memo.get(k) : fail(`memo key ${k} not found`));
  const safe = (v: bigint): boolean => v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER);
  const toNum = (v: bigint): number | bigint => (safe(v) ? Number(v) : v);
  const longLE = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
    return toNum(v);
  };

  for (;;) {
    opAt = pos;
    op = u8();
    switch (op) {
      case 0x80: { // PROTO
        const v = u8();
        if (v > 5) fail(`unsupported pickle protocol ${v}`);
        break;
      }
      case 0x95: u64(); break; // FRAME: framing is transparent here
      case 0x2e: { // STOP
        const result = pop();
        return result;
      }
      case 0x28: stack.push(MARK); break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x8a: stack.push(longLE(take(u8()))); break; // LONG1
      case 0x8b: { // LONG4
        const n = i32();
        if (n < 0) fail('negative LONG4 length');
        stack.push(longLE(take(n)));
        break;
      }
      case 0x49: { // INT (text; "00"/"01" are False/True)
        const s = line();
        if (s === '00' || s === '01') stack.push(s === '01');
        else if (/^[+-]?\d+$/.test(s)) stack.push(toNum(BigInt(s)));
        else fail(`bad INT literal ${JSON.stringify(s)}`);
        break;
      }
      case 0x4c: { // LONG (text)
        const s = line().replace(/L$/, '');
        if (!/^[+-]?\d+$/.test(s)) fail(`bad LONG literal ${JSON.stringify(s)}`);
        stack.push(toNum(BigInt(s)));
        break;
      }
      case 0x47: need(8); stack.push(view.getFloat64(pos, false)); pos += 8; break; // BINFLOAT (big-endian)
      case 0x46: { // FLOAT (text)
        const s = line().trim().toLowerCase();
        const v = s === 'inf' ? Infinity : s === '-inf' ? -Infinity : Number(s);
        if (s === '' || (Number.isNaN(v) && s !== 'nan')) fail(`bad FLOAT literal ${JSON.stringify(s)}`);
        stack.push(v);
        break;
      }
      case 0x58: stack.push(str(take(u32()))); break; // BINUNICODE
      case 0x8c: stack.push(str(take(u8()))); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(str(take(u64()))); break; // BINUNICODE8
      case 0x54: { // BINSTRING (py2 str; torch loads with encoding utf-8)
        const n = i32();
        if (n < 0) fail('negative BINSTRING length');
        stack.push(str(take(n)));
        break;
      }
      case 0x55: stack.push(str(take(u8()))); break; // SHORT_BINSTRING
      case 0x42: stack.push(take(u32()).slice()); break; // BINBYTES
      case 0x43: stack.push(take(u8()).slice()); break; // SHORT_BINBYTES
      case 0x8e: stack.push(take(u64()).slice()); break; // BINBYTES8
      case 0x96: stack.push(take(u64()).slice()); break; // BYTEARRAY8
      case 0x98: break; // READONLY_BUFFER: no-op on our values
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x85: stack.push([pop()]); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push([a, b]); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push([a, b, c]); break; } // TUPLE3
      case 0x74: stack.push(popMark()); break; // TUPLE
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x6c: stack.push(popMark()); break; // LIST
      case 0x61: { const v = pop(); appendItems(top(), [v]); break; } // APPEND
      case 0x65: { const items = popMark(); appendItems(top(), items); break; } // APPENDS
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x64: { const d = new Map(); setItems(d, popMark()); stack.push(d); break; } // DICT
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const kv = popMark(); setItems(top(), kv); break; } // SETITEMS
      case 0x8f: stack.push(new Set()); break; // EMPTY_SET
      case 0x90: { // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) fail('ADDITEMS target is not a set');
        for (const it of items) (s as Set<unknown>).add(it);
        break;
      }
      case 0x91: stack.push(new Set(popMark())); break; // FROZENSET
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x70: { // PUT (text)
        const s = line();
        if (!/^\d+$/.test(s)) fail(`bad PUT index ${JSON.stringify(s)}`);
        memo.set(Number(s), top());
        break;
      }
      case 0x68: stack.push(memoGet(u8())); break; // BINGET
      case 0x6a: stack.push(memoGet(u32())); break; // LONG_BINGET
      case 0x67: { // GET (text)
        const s = line();
        if (!/^\d+$/.test(s)) fail(`bad GET index ${JSON.stringify(s)}`);
        stack.push(memoGet(Number(s)));
        break;
      }
      case 0x63: { const module = line(); const name = line(); stack.push(resolve(module, name)); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(resolve(module as string, name as string));
        break;
      }
      case 0x52: { const args = pop(); const fn = pop(); stack.push(call(fn, args)); break; } // REDUCE
      case 0x81: { const args = pop(); const cls = pop(); stack.push(call(cls, args)); break; } // NEWOBJ
      case 0x92: { // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (!(kwargs instanceof Map) || kwargs.size !== 0) fail('NEWOBJ_EX with keyword arguments is not supported');
        stack.push(call(cls, args));
        break;
      }
      case 0x62: { // BUILD
        const state = pop();
        const obj = pop();
        if (!opts.build) fail('BUILD is not allowed here');
        stack.push(opts.build!(obj, state));
        break;
      }
      case 0x51: stack.push(opts.persistentLoad(pop())); break; // BINPERSID
      case 0x50: stack.push(opts.persistentLoad(line())); break; // PERSID
      case 0x69: { const g = resolve(line(), line()); stack.push(call(g, popMark())); break; } // INST
      case 0x6f: { const [cls, ...args] = popMark(); stack.push(call(cls, args)); break; } // OBJ
      case 0x82: case 0x83: case 0x84: // EXT1/2/4: globals named by the copyreg extension registry
        throw new UnsafePickleError(`${opts.where}: refusing extension-registry global (opcode 0x${op.toString(16)} ` +
          `at byte ${opAt})`, `extension code (opcode 0x${op.toString(16)})`);
      default:
        fail('unknown or unsupported pickle opcode');
    }
  }
}
