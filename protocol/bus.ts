// Typed publish/subscribe of protocol messages over one NATS connection. Trace context (W3C traceparent,
// tracestate) travels in NATS headers. Nothing a peer sends can throw out of a subscription loop.
import { headers as natsHeaders, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from 'nats';
import { decodeAs, encode } from './codec.js';
import { ProtocolError } from './errors.js';
import type { Message, MessageOf, MessageType } from './messages.js';

/** NATS message headers, keys lower-cased on receipt; repeated values joined with ','. */
export type MessageHeaders = Record<string, string>;

export type MessageHandler<T extends MessageType> = (
  msg: MessageOf<T>,
  headers: MessageHeaders,
) => void | Promise<void>;

export interface MessageBusOptions {
  /** A received payload failed to decode, or was not the subscribed type. The receiver logs it. */
  onInvalid: (subject: string, err: ProtocolError) => void;
  /**
   * A handler threw or rejected, or a subscription ended with an error (e.g. a permissions violation).
   * Default: reported to onInvalid as a ProtocolError with code 'HANDLER_FAILED' and the error as cause.
   */
  onHandlerError?: (subject: string, err: unknown) => void;
}

export class MessageBus {
  readonly #nc: NatsConnection;
  readonly #opts: MessageBusOptions;

  constructor(nc: NatsConnection, opts: MessageBusOptions) {
    this.#nc = nc;
    this.#opts = opts;
  }

  /** Validates, encodes and publishes `msg`; throws ProtocolError if `msg` is invalid. */
  publish(subject: string, msg: Message, headers?: MessageHeaders): void {
    const data = encode(msg);
    const hdrs = headers && Object.keys(headers).length > 0 ? toNatsHeaders(headers) : undefined;
    this.#nc.publish(subject, data, hdrs ? { headers: hdrs } : undefined);
  }

  /**
   * Delivers each valid `type` message on `subject` to `handler`, one at a time and in order: the next
   * message waits until the handler's promise settles. Stop with the returned subscription's
   * unsubscribe() or drain().
   */
  subscribe<T extends MessageType>(subject: string, type: T, handler: MessageHandler<T>): Subscription {
    const sub = this.#nc.subscribe(subject);
    void this.#pump(sub, type, handler);
    return sub;
  }

  async #pump<T extends MessageType>(sub: Subscription, type: T, handler: MessageHandler<T>): Promise<void> {
    try {
      for await (const m of sub) await this.#deliver(m, type, handler);
    } catch (err) {
      const subject = sub.getSubject();
      this.#handlerError(subject, new Error(`subscription to ${subject} ended with an error`, { cause: err }));
    }
  }

  async #deliver<T extends MessageType>(m: Msg, type: T, handler: MessageHandler<T>): Promise<void> {
    let msg: MessageOf<T>;
    try {
      msg = decodeAs(m.data, type);
    } catch (err) {
      const perr = err instanceof ProtocolError
        ? err
        : new ProtocolError(`could not decode a message on ${m.subject}`, 'MALFORMED', { cause: err });
      report(() => this.#opts.onInvalid(m.subject, perr), 'onInvalid');
      return;
    }
    try {
      await handler(msg, fromNatsHeaders(m.headers));
    } catch (err) {
      this.#handlerError(m.subject, err);
    }
  }

  #handlerError(subject: string, err: unknown): void {
    const { onHandlerError, onInvalid } = this.#opts;
    if (onHandlerError) {
      report(() => onHandlerError(subject, err), 'onHandlerError');
      return;
    }
    const why = err instanceof Error ? err.message : String(err);
    const wrapped = new ProtocolError(`handler for ${subject} failed: ${why}`, 'HANDLER_FAILED', { cause: err });
    report(() => onInvalid(subject, wrapped), 'onInvalid');
  }
}

/** Calls a user callback; if the callback itself throws there is no one left to tell but the process. */
function report(callback: () => void, name: string): void {
  try {
    callback();
  } catch (err) {
    process.emitWarning(`MessageBus ${name} callback threw: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function toNatsHeaders(headers: MessageHeaders): MsgHdrs {
  const h = natsHeaders();
  for (const [key, value] of Object.entries(headers)) h.set(key, value);
  return h;
}

function fromNatsHeaders(h: MsgHdrs | undefined): MessageHeaders {
  const out: MessageHeaders = {};
  if (!h) return out;
  for (const [key, values] of h) out[key.toLowerCase()] = values.join(',');
  return out;
}
