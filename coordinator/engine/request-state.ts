// The coordinator-side life of one HTTP request: its events channel, streaming detokenizer and
// stop-sequence matcher.
import type { Span } from '@opentelemetry/api';
import { StreamingDetokenizer } from '../tokenizer/index.js';
import { EventChannel } from './event-channel.js';
import type { GenerateRequest, GenerationEvent } from './types.js';

export class RequestState {
  readonly events = new EventChannel<GenerationEvent>();
  readonly detok: StreamingDetokenizer;
  text = '';
  generated = 0;
  /** Of `generated`: speculative drafts the shards accepted. */
  acceptedDrafts = 0;
  admitted = false;
  done = false;
  /** performance.now() of the latest token (inter-token latency). */
  lastTokenAt = 0;

  constructor(
    readonly req: GenerateRequest,
    readonly promptIds: number[],
    readonly adapterKey: string | null,
    readonly span: Span,
    /** From submission until the first step that computes this request (queue wait). */
    readonly queueSpan: Span,
    decode: (ids: number[]) => string,
    /** performance.now() when generate() was called (time to first token). */
    readonly startedAt: number,
  ) {
    this.detok = new StreamingDetokenizer({ decode });
  }

  /** Appends streamed text; returns true when a stop sequence now appears in the output. */
  /** Appends generated text; whether a stop sequence now ends it (never while `check` is false: min_tokens). */
  appendAndCheckStop(delta: string, check = true): boolean {
    const before = this.text.length;
    this.text += delta;
    if (!check) return false;
    for (const stop of this.req.stop) {
      if (stop.length > 0 && this.text.indexOf(stop, Math.max(0, before - stop.length + 1)) >= 0) return true;
    }
    return false;
  }
}
