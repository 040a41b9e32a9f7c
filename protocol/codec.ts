// msgpack encoding of messages. Both directions validate: a bad message fails at its sender, with a stack,
// and a bad payload never reaches a receiver's logic.
import { Decoder, Encoder } from '@msgpack/msgpack';
import { ProtocolError } from './errors.js';
import type { Message, MessageOf, MessageType } from './messages.js';
import { validateMessage } from './validate.js';

// Optional fields left `undefined` are omitted rather than sent as nil.
const encoder = new Encoder({ ignoreUndefined: true });
// bin values decode as views into the input bytes (no copy).
const decoder = new Decoder();

/** Validates `msg` and encodes it; throws ProtocolError if it is not a valid message. */
export function encode(msg: Message): Uint8Array {
  validateMessage(msg);
  return encoder.encode(msg);
}

/**
 * Decodes and validates one message. Binary fields (SeqOutput.logits) are views into `bytes`:
 * don't mutate `bytes` while the message is in use.
 */
export function decode(bytes: Uint8Array): Message {
  let raw: unknown;
  try {
    raw = decoder.decode(bytes);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new ProtocolError(`payload is not one msgpack value (${bytes.byteLength} bytes): ${why}`, 'NOT_MSGPACK', {
      cause: err,
    });
  }
  return validateMessage(raw);
}

/** Like decode, and also requires the message to be of `type`. */
export function decodeAs<T extends MessageType>(bytes: Uint8Array, type: T): MessageOf<T> {
  const msg = decode(bytes);
  if (msg.type !== type) throw new ProtocolError(`expected a "${type}" message, got "${msg.type}"`, 'WRONG_TYPE');
  return msg as MessageOf<T>;
}

const littleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** float32 values as little-endian bytes for SeqOutput.logits: a view on little-endian hosts, else a copy. */
export function float32ToBytes(values: Float32Array): Uint8Array {
  if (littleEndianHost) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint8Array(values.byteLength);
  const view = new DataView(out.buffer);
  values.forEach((x, i) => view.setFloat32(i * 4, x, true));
  return out;
}

/**
 * Little-endian float32 bytes (SeqOutput.logits) as a Float32Array: a view when the bytes are 4-byte aligned
 * on a little-endian host (the view aliases `bytes`), a copy otherwise.
 */
export function bytesToFloat32(bytes: Uint8Array): Float32Array {
  if (bytes.byteLength % 4 !== 0) {
    throw new ProtocolError(`float32 data must be a multiple of 4 bytes, got ${bytes.byteLength}`, 'INVALID_FIELD');
  }
  const n = bytes.byteLength / 4;
  if (littleEndianHost && bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, n);
  const out = new Float32Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}
