// Turns the text of one flag (from argv or the environment) into its typed value, or a ConfigError that
// names where the value came from and what was wrong with it.
import { parseBool, parseNamedAdapter } from './env.js';
import type { FlagSpec, ListFlag, StringFlag } from './flags.js';
import { ConfigError, type PreloadAdapter } from './types.js';

export type FlagValue = string | number | boolean | null | readonly (string | number | PreloadAdapter)[];

const INT = /^[+-]?\d+$/;
const FLOAT = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
const SUBJECT_TOKEN = /^[A-Za-z0-9_-]+$/;
const HOST_PORT = /^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?$/;
const NATS_SCHEMES = ['nats:', 'tls:', 'ws:', 'wss:'];

function invalid(source: string, message: string, suggestion?: string): ConfigError {
  const hint = suggestion === undefined ? '' : `; did you mean '${suggestion}'?`;
  return new ConfigError(`${source}: ${message}${hint}`, 'INVALID_VALUE', { source, suggestion });
}

function quote(s: string): string {
  return `'${s}'`;
}

function checkRange(n: number, min: number | undefined, max: number | undefined, source: string, text: string): number {
  if ((min !== undefined && n < min) || (max !== undefined && n > max)) {
    const range = min !== undefined && max !== undefined ? `between ${min} and ${max}`
      : min !== undefined ? `>= ${min}` : `<= ${max}`;
    throw invalid(source, `must be ${range}, got ${quote(text)}`);
  }
  return n;
}

export function parseInteger(text: string, source: string, min?: number, max?: number): number {
  const t = text.trim();
  const n = Number(t);
  if (!INT.test(t)) throw invalid(source, `expected an integer, got ${quote(text)}`);
  if (!Number.isSafeInteger(n)) throw invalid(source, `${quote(text)} is too large`);
  return checkRange(n, min, max, source, text);
}

function parseFloatStrict(text: string, source: string, min?: number, max?: number): number {
  const t = text.trim();
  const n = Number(t);
  if (!FLOAT.test(t) || !Number.isFinite(n)) throw invalid(source, `expected a number, got ${quote(text)}`);
  return checkRange(n, min, max, source, text);
}

function checkFormat(f: StringFlag, value: string, source: string): void {
  switch (f.format) {
    case undefined:
      return;
    case 'token':
      if (!SUBJECT_TOKEN.test(value)) throw invalid(source, `expected letters, digits, '_' or '-' only, got ${quote(value)}`);
      return;
    case 'http-url': {
      const u = URL.canParse(value) ? new URL(value) : null;
      if (u === null || (u.protocol !== 'http:' && u.protocol !== 'https:')) {
        throw invalid(source, `expected an http:// or https:// URL, got ${quote(value)}`);
      }
      return;
    }
    case 'nats-url':
      for (const part of value.split(',').map((p) => p.trim())) {
        const ok = part.includes('://')
          ? URL.canParse(part) && NATS_SCHEMES.includes(new URL(part).protocol)
          : HOST_PORT.test(part);
        if (!ok) throw invalid(source, `expected nats://host:port (or tls://, ws://, wss://, host:port), got ${quote(part)}`);
      }
      return;
    default: {
      const unhandled: never = f.format;
      throw new Error(`unhandled format ${String(unhandled)}`);
    }
  }
}

function parseString(f: StringFlag, text: string, source: string): string {
  if (text === '') throw invalid(source, 'empty value');
  if (f.choices !== undefined && !f.choices.includes(text)) {
    throw invalid(source, `expected one of ${f.choices.join(', ')}, got ${quote(text)}`, closest(text, f.choices));
  }
  checkFormat(f, text, source);
  return text;
}

function parseListItem(f: ListFlag, item: string, source: string): string | number | PreloadAdapter {
  switch (f.of) {
    case 'int':
      return parseInteger(item, source, f.min);
    case 'name=id':
      return parseNamedAdapter(item, source, false);
    case 'string':
      return item;
    default: {
      const unhandled: never = f.of;
      throw new Error(`unhandled list item type ${String(unhandled)}`);
    }
  }
}

/**
 * The items of a list flag. From argv every occurrence counts (split on `f.split` when set); from the
 * environment, one variable split on `f.envSplit` (default ','), blank items dropped.
 */
export function parseList(f: ListFlag, texts: readonly string[], source: string, fromEnv: boolean): FlagValue {
  const items: string[] = [];
  for (const text of texts) {
    if (text.trim() === '') continue;
    const sep = fromEnv ? (f.envSplit ?? ',') : f.split;
    for (const part of (sep === undefined ? [text] : text.split(sep)).map((s) => s.trim())) {
      if (part !== '') items.push(part);
      else if (!fromEnv) throw invalid(source, `empty item in ${quote(text)}`);
    }
  }
  return items.map((item) => parseListItem(f, item, source));
}

/** One value of a single-valued flag. */
export function parseScalar(f: Exclude<FlagSpec, ListFlag>, text: string, source: string): FlagValue {
  switch (f.type) {
    case 'int':
      return parseInteger(text, source, f.min, f.max);
    case 'float':
      return parseFloatStrict(text, source, f.min, f.max);
    case 'bool': {
      const b = parseBool(text);
      if (b === undefined) throw invalid(source, `expected true or false, got ${quote(text)}`);
      return b;
    }
    case 'string':
      return parseString(f, text, source);
    default: {
      const unhandled: never = f;
      throw new Error(`unhandled flag ${JSON.stringify(unhandled)}`);
    }
  }
}

/** Edits (insert, delete, substitute, swap two neighbours) that turn `a` into `b`. */
function editDistance(a: string, b: string): number {
  let before: number[] = [];
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j], before[j - 2] + 1);
    }
    before = prev;
    prev = row;
  }
  return prev[b.length];
}

/** The candidate closest to `word` when it is close enough to be a likely typo (or a prefix), else undefined. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = c.startsWith(word) && word.length >= 3 ? 1 : editDistance(word, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}
