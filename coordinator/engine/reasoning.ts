// Reasoning models' thoughts apart from their answer (the `reasoning_content` of a chat completion, as vLLM and
// SGLang return it with a reasoning parser). Two output formats:
//  - think: the thoughts between <think> and </think> tokens (DeepSeek-R1, Qwen3, GLM-4.5, …). Templates that open
//    the block themselves (their generation prompt ends with <think>) start the answer inside it.
//  - harmony: OpenAI's gpt-oss messages, <|channel|>NAME<|message|>TEXT<|end|>, <|start|>assistant… between them:
//    the analysis channel is the thoughts, final (and commentary: preambles) the answer. A message addressed to a
//    function (`to=functions.NAME` in its header or channel, ended by <|call|>) is a tool call: it goes into the
//    answer as HARMONY_CALL markup (private-use characters no model text holds), which the harmony tool format
//    (coordinator/http/tool-formats.ts) turns into tool_calls.
// The split reads each generated token's vocabulary piece, so the markers must be tokens of the vocabulary
// (detectReasoningFormat checks); the text pieces themselves come from the detokenizer as before.

export type ReasoningFormat = 'think' | 'harmony';
/** --reasoning-parser: auto picks the format the vocabulary's tokens give (think or harmony), or none. */
export type ReasoningParserChoice = 'auto' | 'none' | ReasoningFormat;

const THINK_OPEN = '<think>', THINK_CLOSE = '</think>';
const HARMONY = { channel: '<|channel|>', message: '<|message|>', end: '<|end|>', start: '<|start|>' };
const HARMONY_CALL_END = '<|call|>';

/** How a harmony tool call reaches the answer text: OPEN name ARGS arguments [CLOSE]. */
export const HARMONY_CALL = { open: '\uE000', args: '\uE001', close: '\uE002' };
const RECIPIENT = /\bto=functions\.([A-Za-z0-9_-]+)/;
const RECIPIENT_START = 'to=functions.';

/**
 * The format the server splits with: the choice, checked against the vocabulary (`hasToken`: whether a string is one
 * token), or for auto the one whose markers the vocabulary has. A named format the vocabulary lacks is an error.
 */
export function detectReasoningFormat(choice: ReasoningParserChoice, hasToken: (t: string) => boolean): ReasoningFormat | null {
  const think = hasToken(THINK_OPEN) && hasToken(THINK_CLOSE);
  const harmony = Object.values(HARMONY).every(hasToken);
  if (choice === 'none') return null;
  if (choice === 'auto') return harmony ? 'harmony' : think ? 'think' : null;
  if (choice === 'think' && !think) {
    throw new Error(`--reasoning-parser think: the tokenizer has no ${THINK_OPEN} / ${THINK_CLOSE} tokens; use --reasoning-parser none`);
  }
  if (choice === 'harmony' && !harmony) {
    throw new Error(`--reasoning-parser harmony: the tokenizer lacks gpt-oss's ${Object.values(HARMONY).join(' ')} tokens; ` +
      'use --reasoning-parser none');
  }
  return choice;
}

/** Whether a rendered chat prompt leaves a <think> block open (the template started the thoughts). */
export function promptOpensThinking(prompt: string): boolean {
  const open = prompt.lastIndexOf(THINK_OPEN);
  return open >= 0 && open > prompt.lastIndexOf(THINK_CLOSE) && prompt.slice(open + THINK_OPEN.length).trim() === '';
}

export interface ReasoningDelta { reasoning: string; content: string }

/**
 * Splits one generation's token stream: push each token's vocabulary piece and its text delta, get the delta's
 * reasoning and answer parts. The answer's leading whitespace after thoughts is dropped (Qwen3 writes "</think>\n\n").
 */
export class ReasoningSplitter {
  private mode: 'reasoning' | 'content' | 'header' | 'channel' | 'idle' | 'call';
  private channelName = '';
  /** harmony: the current message's header (after <|start|>, or before the first marker), for its recipient. */
  private header = '';
  /** harmony: nothing but a possible header (" to=functions.x") came yet — held until a marker says what it was. */
  private opening: boolean;
  private sawReasoning = false;
  private contentStarted = false;

  /** markCalls (harmony, a request with tools in the harmony tool format): messages to a function become
   * HARMONY_CALL markup; otherwise their arguments are answer text, as any commentary. */
  constructor(private readonly format: ReasoningFormat, startsInReasoning = false, private readonly markCalls = false) {
    // harmony: the answer starts after the template's <|start|>assistant, at the channel header (text before any
    // marker is taken as the answer, so a model that skips the header still answers).
    this.mode = format === 'think' ? (startsInReasoning ? 'reasoning' : 'content') : 'content';
    if (this.mode === 'reasoning') this.sawReasoning = true;
    this.opening = format === 'harmony' && markCalls;
  }

  /** The text now pushed is the answer's (not thoughts, not a harmony header or marker). */
  get answering(): boolean {
    return this.mode === 'content' && !this.opening;
  }

  /** At the end of the generation: answer text still held (a harmony answer that was all a would-be header). */
  finish(): string {
    const held = this.opening ? this.header : '';
    this.opening = false;
    this.header = '';
    return held;
  }

  push(piece: string, delta: string): ReasoningDelta {
    return this.format === 'think' ? this.think(piece, delta) : this.harmony(piece, delta);
  }

  private think(piece: string, delta: string): ReasoningDelta {
    if (piece === THINK_OPEN) {
      this.mode = 'reasoning';
      this.sawReasoning = true;
      return { reasoning: '', content: '' };
    }
    if (piece === THINK_CLOSE) {
      this.mode = 'content';
      return { reasoning: '', content: '' };
    }
    return this.route(delta);
  }

  private harmony(piece: string, delta: string): ReasoningDelta {
    const none = { reasoning: '', content: '' };
    if (this.opening) {
      if (piece === HARMONY.channel || piece === HARMONY.message || piece === HARMONY.start) {
        this.opening = false;  // a header held so far stays in this.header for <|message|> to read
      } else if (!(piece.startsWith('<|') && delta === '')) {  // a text token (special ones say nothing here)
        const text = this.header + delta;
        const t = text.trimStart();
        if (t === '' || RECIPIENT_START.startsWith(t) || t.startsWith(RECIPIENT_START)) {
          this.header = text;
          return none;
        }
        this.opening = false;  // not a header: what was held is answer text
        this.header = '';
        return this.route(text);
      }
    }
    switch (piece) {
      case HARMONY.channel:
        this.mode = 'channel';
        this.channelName = '';
        return none;
      case HARMONY.message: {
        // "analysis", "final", "commentary", or "commentary json" after a recipient: the first word names it
        const name = this.channelName.trim().split(/\s+/)[0] ?? '';
        const to = this.markCalls ? RECIPIENT.exec(`${this.header} ${this.channelName}`)?.[1] : undefined;
        this.header = '';
        if (to !== undefined) {
          this.mode = 'call';
          return { reasoning: '', content: HARMONY_CALL.open + to + HARMONY_CALL.args };
        }
        this.mode = name === 'analysis' ? 'reasoning' : 'content';
        if (this.mode === 'reasoning') this.sawReasoning = true;
        return none;
      }
      case HARMONY.end: case HARMONY_CALL_END: {
        const closing = this.mode === 'call';
        this.mode = 'idle';
        return closing ? { reasoning: '', content: HARMONY_CALL.close } : none;
      }
      case HARMONY.start:
        this.mode = 'header';
        this.header = '';
        return none;
    }
    if (this.mode === 'channel') {
      this.channelName += delta;
      return none;
    }
    if (this.mode === 'header') {
      this.header += delta;
      return none;
    }
    if (this.mode === 'idle') return none;
    if (this.mode === 'call') return { reasoning: '', content: delta };  // the arguments, verbatim
    return this.route(delta);
  }

  private route(delta: string): ReasoningDelta {
    if (this.mode === 'reasoning') return { reasoning: delta, content: '' };
    if (!this.contentStarted && this.sawReasoning) {
      delta = delta.replace(/^\s+/, '');
      if (delta === '') return { reasoning: '', content: '' };
    }
    this.contentStarted ||= delta !== '';
    return { reasoning: '', content: delta };
  }
}
