/** What went wrong with a payload, a subject or a delivery; lets receivers tell a version skew from garbage. */
export type ProtocolErrorCode =
  | 'NOT_MSGPACK' // bytes are not one complete msgpack value
  | 'MALFORMED' // not a map, or `type` missing / not a string
  | 'VERSION' // `v` missing or not the version this build speaks
  | 'UNKNOWN_TYPE' // `type` names no message
  | 'INVALID_FIELD' // a field has the wrong type, range, or is missing / unknown
  | 'WRONG_TYPE' // a valid message, but not the type the receiver expected
  | 'BAD_SUBJECT' // a NATS subject could not be built from the given parts
  | 'HANDLER_FAILED'; // a subscriber's handler threw or rejected

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  readonly code: ProtocolErrorCode;

  constructor(message: string, code: ProtocolErrorCode, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
