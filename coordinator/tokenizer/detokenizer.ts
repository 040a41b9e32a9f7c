// Incremental detokenization for streaming. Each step decodes a short window of recent tokens twice,
// without and with the new ones, and emits the difference, but only when the text does not end in
// U+FFFD (a multi-byte character still split across tokens). Windows keep the cost per token constant
// and give decoders that strip a leading space (SentencePiece) the left context they need.

export interface StreamingDetokenizerOptions {
  /** Synchronous ids → text, e.g. `(ids) => pool.decodeSync(ids, { skipSpecialTokens: true })`. */
  decode: (ids: number[]) => string;
  /** Tokens that precede the stream (the prompt's tail): context for the first tokens, never emitted. */
  context?: readonly number[];
}

const REPLACEMENT_CHAR = '\uFFFD';
/** How many context tokens to keep in front of the stream. */
const CONTEXT_TOKENS = 6;

export class StreamingDetokenizer {
  readonly #decode: (ids: number[]) => string;
  readonly #ids: number[];
  /** Where the decoded stream starts in #ids (after the context). */
  readonly #start: number;
  readonly #contextText: string;
  #prefixOffset: number;
  #readOffset: number;
  #emitted = '';
  #finished = false;

  constructor(opts: StreamingDetokenizerOptions) {
    this.#decode = (ids) => (ids.length === 0 ? '' : opts.decode(ids));
    this.#ids = (opts.context ?? []).slice(-CONTEXT_TOKENS);
    this.#start = this.#ids.length;
    this.#prefixOffset = 0;
    this.#readOffset = this.#start;
    this.#contextText = this.#start > 0 ? this.#decode(this.#ids) : '';
  }

  /** Generated ids so far. */
  get ids(): number[] {
    return this.#ids.slice(this.#start);
  }

  /** Text emitted so far. */
  get text(): string {
    return this.#emitted;
  }

  /** Adds tokens; returns the newly stable text ('' when it must wait for more tokens). */
  push(ids: number | readonly number[]): string {
    if (this.#finished) throw new Error('StreamingDetokenizer: push() after flush()');
    if (typeof ids === 'number') this.#ids.push(ids);
    else this.#ids.push(...ids);
    const prefixText = this.#decode(this.#ids.slice(this.#prefixOffset, this.#readOffset));
    const newText = this.#decode(this.#ids.slice(this.#prefixOffset));
    if (newText.length <= prefixText.length || newText.endsWith(REPLACEMENT_CHAR)) return '';
    const delta = newText.slice(prefixText.length);
    this.#prefixOffset = this.#readOffset;
    this.#readOffset = this.#ids.length;
    this.#emitted += delta;
    return delta;
  }

  /**
   * Ends the stream and returns the rest of the text, so that all pushes plus this equal the decode of
   * every generated id (after the context), invalid trailing bytes included.
   */
  flush(): string {
    if (this.#finished) return '';
    this.#finished = true;
    const full = this.#decode(this.#ids);
    let rest: string;
    if (full.startsWith(this.#contextText + this.#emitted)) {
      rest = full.slice(this.#contextText.length + this.#emitted.length);
    } else {
      // A decoder whose output is not prefix-stable: fall back to the window's remainder.
      const prefixText = this.#decode(this.#ids.slice(this.#prefixOffset, this.#readOffset));
      rest = this.#decode(this.#ids.slice(this.#prefixOffset)).slice(prefixText.length);
    }
    this.#emitted += rest;
    return rest;
  }
}
