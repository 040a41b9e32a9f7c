// What every tool-call format is (the ToolFormat interface) and the pieces the formats share: call ids, a parsed
// call checked against the offered functions, and the streaming helpers for markup that starts calls.
import { randomBytes } from 'node:crypto';
import { isJsonObject } from './json.js';
import type { ToolCall, ToolFunction, ToolUse } from './openai-tools.js';
import type { ToolFormatName } from '../engine/tool-format-detect.js';

/** An answer with calls: the text before them (null: none) and the calls. */
export interface ParsedCalls {
  content: string | null;
  calls: ToolCall[];
}

export interface ToolFormat {
  name: ToolFormatName;
  /** The chat template renders the tools and the history's calls/results (else weft writes them as text). */
  native: boolean;
  /** The answer's pattern (undefined: free text, parsed afterwards). */
  constraint(use: ToolUse): string | undefined;
  /** The answer's calls, or null when it has none (or they do not parse: then it is all text). */
  parse(answer: string, use: ToolUse): ParsedCalls | null;
  /** Streaming: where calls begin in the answer so far (-1: not yet, or never). */
  callStart(answer: string): number;
  /** Streaming: how many trailing characters to hold back because they may begin a call's markup. */
  heldTail(answer: string): number;
  /** Special tokens whose text belongs in the answer (call markup), though special tokens are otherwise dropped. */
  markerTokens?: readonly string[];
}

export const newCallId = (): string => `call_${randomBytes(12).toString('hex')}`;

/** A parsed call object {name, <argsKey>: {…}} of an offered function (arguments an object, or JSON text of
 * one), or null. */
export function callOf(v: unknown, use: ToolUse, argsKeys: readonly string[], id: () => string = newCallId): ToolCall | null {
  if (!isJsonObject(v) || typeof v.name !== 'string') return null;
  const key = argsKeys.find((k) => v[k] !== undefined);
  return namedCall(v.name, key === undefined ? {} : v[key], use, id);
}

export function namedCall(name: string, args: unknown, use: ToolUse, id: () => string): ToolCall | null {
  if (!use.tools.some((t) => t.name === name)) return null;
  if (typeof args === 'string') {
    try {
      args = JSON.parse(args);
    } catch {
      return null;
    }
  }
  if (!isJsonObject(args)) return null;
  return { id: id(), name, arguments: JSON.stringify(args) };
}

/** The trimmed text before a call marker, or null when there is none. */
export const textBefore = (answer: string, at: number): string | null => answer.slice(0, at).trim() || null;

/** heldTail of a format whose calls start at `marker`: its beginning, and the spaces before it (the text before
 * calls is sent trimmed, as parse() gives it). */
export function heldBefore(answer: string, marker: string): number {
  const k = markerPrefixAtEnd(answer, marker);
  const before = answer.slice(0, answer.length - k);
  return k + before.length - before.trimEnd().length;
}

/** The longest proper prefix of `marker` that `text` ends with (0: none). */
export function markerPrefixAtEnd(text: string, marker: string): number {
  for (let k = Math.min(marker.length - 1, text.length); k > 0; k--) if (text.endsWith(marker.slice(0, k))) return k;
  return 0;
}

/** The functions a required or named call may call. */
export const allowedTools = (use: ToolUse): ToolFunction[] =>
  typeof use.choice === 'object' ? use.tools.filter((t) => t.name === (use.choice as { name: string }).name) : use.tools;
