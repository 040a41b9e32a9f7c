// Reasoning models' thoughts apart from their answer (the `reasoning_content` of a chat completion, as vLLM and
// SGLang return it with a reasoning parser). Two output formats:
//  - think: the thoughts between <think> and </think> tokens (DeepSeek-R1, Qwen3, GLM-4.5, …). Templates that open
//    the block themselves (their generation prompt ends with <think>) start the answer inside it.
//  - harmony: OpenAI's gpt-oss messages, <|channel|>NAME<|message|>TEXT<|end|>, <|start|>assistant… between them:
//    the analysis channel is the thoughts, final (and commentary: preambles, tool arguments) the answer.
// The split reads each generated token's vocabulary piece, so the markers must be tokens of the vocabulary
// (detectReasoningFormat checks); the text pieces themselves come from the detokenizer as before.

export type ReasoningFormat = 'think' | 'harmony';
/** --reasoning-parser: auto picks the format the vocabulary's tokens give (think or harmony), or none. */
export type ReasoningParserChoice = 'auto' | 'none' | ReasoningFormat;

const THINK_OPEN = '<think>', THINK_CLOSE = '</think>';
const HARMONY = { channel: '<|channel|>', message: '<|message|>', end: '<|end|>', start: '<|start|>' };

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
  private mode: 'reasoning' | 'content' | 'header' | 'channel' | 'idle';
  private channelName = '';
  private sawReasoning = false;
  private contentStarted = false;

  constructor(private readonly format: ReasoningFormat, startsInReasoning = false) {
    // harmony: the answer starts after the template's <|start|>assistant, at the channel header (text before any
    // marker is taken as the answer, so a model that skips the header still answers).
    this.mode = format === 'think' ? (startsInReasoning ? 'reasoning' : 'content') : 'content';
    if (this.mode === 'reasoning') this.sawReasoning = true;
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
    switch (piece) {
      case HARMONY.channel:
        this.mode = 'channel';
        this.channelName = '';
        return { reasoning: '', content: '' };
      case HARMONY.message: {
        // "analysis", "final", "commentary", or "commentary json" after a recipient: the first word names it
        const name = this.channelName.trim().split(/\s+/)[0] ?? '';
        this.mode = name === 'analysis' ? 'reasoning' : 'content';
        if (this.mode === 'reasoning') this.sawReasoning = true;
        return { reasoning: '', content: '' };
      }
      case HARMONY.end:
        this.mode = 'idle';
        return { reasoning: '', content: '' };
      case HARMONY.start:
        this.mode = 'header';
        return { reasoning: '', content: '' };
    }
    if (this.mode === 'channel') {
      this.channelName += delta;
      return { reasoning: '', content: '' };
    }
    if (this.mode === 'header' || this.mode === 'idle') return { reasoning: '', content: '' };  // role, recipient
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
