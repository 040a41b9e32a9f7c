// The bytes each token id stands for, read from the model directory's tokenizer.json: what structured
// output walks through its automaton. Byte-level BPE (GPT-2, Llama 3, Qwen: every byte is one of 256 printable
// characters) and SentencePiece-style vocabularies (Llama 2, Mistral: `▁` for a space, `<0xHH>` byte tokens).
// Special added tokens (BOS, EOS, chat markers) stand for no text: never allowed by a constraint, except EOS
// once the text is complete. A SentencePiece piece's `▁` counts as a space even first in the output (the
// decoder strips it there): constrained text starts where the pattern says, so a leading `▁` piece is refused
// by a pattern that does not begin with a space, and another piece is chosen.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

export interface TokenVocab {
  /** bytes[id]: the token's text as UTF-8 bytes; empty for special tokens and unused ids. */
  bytes: Uint8Array[];
  /** Token ids sorted by their bytes, and each one's common prefix length with the one before it. */
  order: Int32Array;
  lcp: Int32Array;
}

/** GPT-2's byte <-> printable character table (the inverse of bytes_to_unicode). */
function byteLevelDecoder(): Map<string, number> {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  return new Map(bs.map((b, i) => [String.fromCodePoint(cs[i]), b]));
}

function mentions(node: unknown, type: string): boolean {
  if (typeof node !== 'object' || node === null) return false;
  const o = node as Record<string, unknown>;
  if (o.type === type) return true;
  return Object.values(o).some((v) => Array.isArray(v) ? v.some((x) => mentions(x, type)) : mentions(v, type));
}

function readTokenizer(modelDir: string): Record<string, any> {
  const path = join(modelDir, 'tokenizer.json');
  if (!existsSync(path)) throw new Error(`structured output needs the model's tokenizer.json (not found in ${modelDir})`);
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, any>;
}

/** How a vocabulary piece becomes bytes, or null when this tokenizer's pieces are not text. */
function pieceDecoder(tok: Record<string, any>): ((piece: string) => Uint8Array) | null {
  const model = tok.model ?? {};
  let decode: (piece: string) => Uint8Array;
  if (mentions(tok.decoder, 'ByteLevel') || mentions(tok.pre_tokenizer, 'ByteLevel')) {
    const table = byteLevelDecoder();
    decode = (piece) => {
      const out: number[] = [];
      for (const ch of piece) {
        const b = table.get(ch);
        if (b === undefined) return new Uint8Array(Buffer.from(piece, 'utf8')); // not a byte-level piece
        out.push(b);
      }
      return new Uint8Array(out);
    };
  } else if (mentions(tok.decoder, 'Metaspace') || mentions(tok.decoder, 'ByteFallback') || mentions(tok.pre_tokenizer, 'Metaspace')
    || model.type === 'Unigram') {
    decode = (piece) => {
      const hex = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
      if (hex) return new Uint8Array([parseInt(hex[1], 16)]);
      return new Uint8Array(Buffer.from(piece.replace(/\u2581/g, ' '), 'utf8'));
    };
  } else {
    return null;
  }
  return decode;
}

function unsupported(tok: Record<string, any>): string {
  return 'structured output needs a byte-level BPE or SentencePiece tokenizer; this tokenizer.json has ' +
    `model ${String(tok.model?.type)} with decoder ${String(tok.decoder?.type ?? 'none')}`;
}

/** Why a parsed tokenizer.json cannot constrain output, or null when it can (the coordinator asks this of the
 * tokenizer it loaded; nothing is decoded or sorted). */
export function tokenizerJsonProblem(tok: Record<string, any>): string | null {
  return pieceDecoder(tok) ? null : unsupported(tok);
}

export function loadTokenVocab(modelDir: string, vocabSize: number): TokenVocab {
  const tok = readTokenizer(modelDir);
  const decode = pieceDecoder(tok);
  if (!decode) throw new Error(unsupported(tok));
  const model = tok.model ?? {};
  const entries: [string, number][] = Array.isArray(model.vocab)
    ? (model.vocab as [string, number][]).map(([piece], id) => [piece, id])  // Unigram: [[piece, score], ...]
    : Object.entries((model.vocab ?? {}) as Record<string, number>);
  const bytes: Uint8Array[] = Array.from({ length: vocabSize }, () => new Uint8Array(0));
  for (const [piece, id] of entries) if (id >= 0 && id < vocabSize) bytes[id] = decode(piece);
  for (const a of (tok.added_tokens ?? []) as { id: number; content: string; special?: boolean }[]) {
    if (a.id < 0 || a.id >= vocabSize) continue;
    bytes[a.id] = a.special ? new Uint8Array(0) : new Uint8Array(Buffer.from(a.content, 'utf8'));
  }
  return sortedVocab(bytes);
}

export function sortedVocab(bytes: Uint8Array[]): TokenVocab {
  const ids = [...bytes.keys()].filter((i) => bytes[i].length > 0);
  ids.sort((a, b) => Buffer.compare(bytes[a], bytes[b]));
  const lcp = new Int32Array(ids.length);
  for (let k = 1; k < ids.length; k++) {
    const x = bytes[ids[k - 1]], y = bytes[ids[k]];
    let l = 0;
    while (l < x.length && l < y.length && x[l] === y[l]) l++;
    lcp[k] = l;
  }
  return { bytes, order: Int32Array.from(ids), lcp };
}

