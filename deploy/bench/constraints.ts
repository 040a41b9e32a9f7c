// `weft bench --scenario constraints`: what structured output costs a shard — the time to compute a token mask
// for an automaton state met for the first time (the vocabulary walk), per kind of constraint: a regular
// expression (JSON Schema compiled to one), a GBNF grammar and a Lark grammar. Each case walks a fixed document
// token by token (the longest vocabulary token that matches it and the mask allows), timing every mask; a second
// walk over the same document times the cached masks. The vocabulary is `--model`'s tokenizer.json, or a
// synthetic one of Llama 3's size (128,256 seeded text pieces) — masks cost in proportion to vocabulary size.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileConstraint, loadTokenVocab, sortedVocab, type ConstraintSource, type TokenVocab } from '../../protocol/index.js';
import { TokenAutomaton } from '../../shard/constraints/token-constraint.js';
import { freeJsonObject, jsonSchemaRegex } from '../../coordinator/constraints/json-schema.js';
import { formatTable, hostDevice, type Column, type Report } from './report.js';
import { median } from './stats.js';

export interface ConstraintRow {
  constraint: string;
  syntax: NonNullable<ConstraintSource['syntax']> | 'regex';
  documentBytes: number;
  tokens: number;
  /** Masks computed (automaton states met for the first time). */
  newStates: number;
  compileMs: number;
  maskMeanMs: number;
  maskMedianMs: number;
  maskMaxMs: number;
  /** A mask for a state seen before (the second walk). */
  cachedMaskUs: number;
}

const PERSON = { type: 'object', required: ['name', 'age', 'tags'], properties: { name: { type: 'string', maxLength: 24 },
  age: { type: 'integer' }, tags: { type: 'array', items: { type: 'string' }, maxItems: 4 } } };
const JSON_GBNF = String.raw`
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws
array  ::= "[" ws ( value ("," ws value)* )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) )* "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws
ws     ::= | " " | "\n" [ \t]{0,20}`;
const SUM_LARK = String.raw`
start: sum
sum: sum ("+" | "-") product | product
product: product ("*" | "/") atom | atom
atom: NUMBER | "(" sum ")" | "-" atom
%import common.NUMBER
%ignore " "`;
const SHALLOW = '{"name": "Ada Lovelace", "age": 36, "tags": ["math", "engines"]}';
const DEEP = '{"name": "x", "list": [1, 2.5, {"deep": [[{"k": "v", "n": [null, [true]]}], -3e2]}], "ok": false}';

const CASES: { constraint: string; source: ConstraintSource; doc: string }[] = [
  { constraint: 'any JSON object (regex, containers 3 deep)', source: { pattern: freeJsonObject() }, doc: SHALLOW },
  { constraint: 'JSON Schema: 3 properties (regex)', source: { pattern: jsonSchemaRegex(PERSON) }, doc: SHALLOW },
  { constraint: 'JSON (GBNF, recursive)', source: { pattern: JSON_GBNF, syntax: 'gbnf' }, doc: SHALLOW },
  { constraint: 'JSON nested 7 deep (GBNF)', source: { pattern: JSON_GBNF, syntax: 'gbnf' }, doc: DEEP },
  { constraint: 'arithmetic (Lark, %ignore)', source: { pattern: SUM_LARK, syntax: 'lark' }, doc: '(12 + 7.5) * -(3 - 4 / 2) + 100 * (2 + (3 * (4 - 1)))' },
];

/** Llama 3's vocabulary size. */
const SYNTHETIC_SIZE = 128_256;

/** Seeded pieces of 2–8 characters from JSON, code and prose alphabets, after the 256 single bytes. */
function syntheticVocab(): Uint8Array[] {
  let x = 123456789;
  const rand = () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 2 ** 32; };
  const chars = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 {}[]()":,.+-*/_\n';
  const pieces = Array.from({ length: 256 }, (_, b) => new Uint8Array([b]));
  const seen = new Set<string>();
  while (pieces.length < SYNTHETIC_SIZE) {
    let s = '';
    for (let n = 2 + Math.floor(rand() * 7); n > 0; n--) s += chars[Math.floor(rand() * chars.length)];
    if (!seen.has(s)) { seen.add(s); pieces.push(new Uint8Array(Buffer.from(s))); }
  }
  return pieces;
}

function vocabularyOf(modelDir: string | null): { vocab: TokenVocab; label: string; eos: number } {
  if (modelDir !== null) {
    const config = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as { vocab_size: number };
    const vocab = loadTokenVocab(modelDir, config.vocab_size);
    // An id past the vocabulary stands for EOS: the walks only ask whether it is allowed.
    return { vocab, label: `${modelDir}/tokenizer.json (${config.vocab_size} tokens)`, eos: config.vocab_size };
  }
  const pieces = syntheticVocab();
  pieces.push(new Uint8Array(0));
  return { vocab: sortedVocab(pieces), label: `synthetic, ${SYNTHETIC_SIZE} text pieces`, eos: pieces.length - 1 };
}

/** The token ids of `doc`, greedily longest-first among those the automaton allows. */
function walk(auto: TokenAutomaton, vocab: TokenVocab, byText: Map<string, number[]>, doc: string, timeMask: (ms: number, fresh: boolean) => void): number {
  const bytes = Buffer.from(doc);
  let state = auto.start, i = 0, tokens = 0;
  while (i < bytes.length) {
    const known = auto.maskCount, t0 = performance.now();
    const mask = auto.mask(state);
    timeMask(performance.now() - t0, auto.maskCount > known);
    let chosen = -1;
    for (let len = Math.min(32, bytes.length - i); len > 0 && chosen < 0; len--) {
      for (const id of byText.get(bytes.subarray(i, i + len).toString('latin1')) ?? []) {
        if ((mask[id >> 3]! >> (id & 7)) & 1) { chosen = id; break; }
      }
    }
    if (chosen < 0) throw new Error(`no allowed token continues the document at byte ${i}: ${doc.slice(0, 80)}`);
    state = auto.advance(state, chosen);
    i += vocab.bytes[chosen]!.length;
    tokens++;
  }
  return tokens;
}

export function runConstraints(modelDir: string | null, log: (m: string) => void): Report<ConstraintRow> {
  if (modelDir !== null && !existsSync(join(modelDir, 'tokenizer.json'))) throw new Error(`${modelDir} has no tokenizer.json`);
  const t0 = performance.now();
  const { vocab, label, eos } = vocabularyOf(modelDir);
  log(`vocabulary ${label}: read and sorted in ${(performance.now() - t0).toFixed(0)} ms`);
  const byText = new Map<string, number[]>();
  vocab.bytes.forEach((b, id) => {
    if (b.length === 0 || b.length > 32) return;
    const key = Buffer.from(b).toString('latin1');
    byText.set(key, [...(byText.get(key) ?? []), id]);
  });
  const rows = CASES.map(({ constraint, source, doc }) => {
    const c0 = performance.now();
    compileConstraint(source);
    const compileMs = performance.now() - c0;
    const auto = new TokenAutomaton(source, vocab, [eos]);
    const fresh: number[] = [], cached: number[] = [];
    const tokens = walk(auto, vocab, byText, doc, (ms, isNew) => (isNew ? fresh : cached).push(ms));
    walk(auto, vocab, byText, doc, (ms) => cached.push(ms));
    log(`${constraint}: ${tokens} tokens, ${fresh.length} new states`);
    return { constraint, syntax: source.syntax ?? 'regex', documentBytes: Buffer.byteLength(doc), tokens, newStates: fresh.length, compileMs,
      maskMeanMs: fresh.reduce((a, b) => a + b, 0) / fresh.length, maskMedianMs: median(fresh), maskMaxMs: Math.max(...fresh),
      cachedMaskUs: median(cached) * 1000 } satisfies ConstraintRow;
  });
  return { scenario: 'constraints', date: new Date().toISOString(), device: hostDevice('cpu'), setup: { vocabulary: label, vocabularySize: vocab.bytes.length },
    rows, notes: ['a mask is computed once per automaton state, then cached per constraint and shard: "new states" walked the vocabulary'] };
}

const COLUMNS: Column<ConstraintRow>[] = [
  { header: 'constraint', value: (r) => r.constraint },
  { header: 'doc bytes', value: (r) => r.documentBytes, digits: 0 },
  { header: 'tokens', value: (r) => r.tokens, digits: 0 },
  { header: 'new states', value: (r) => r.newStates, digits: 0 },
  { header: 'compile ms', value: (r) => r.compileMs, digits: 1 },
  { header: 'new mask ms (mean)', value: (r) => r.maskMeanMs, digits: 2 },
  { header: 'median', value: (r) => r.maskMedianMs, digits: 2 },
  { header: 'max', value: (r) => r.maskMaxMs, digits: 1 },
  { header: 'cached mask µs', value: (r) => r.cachedMaskUs, digits: 1 },
];

export function formatConstraints(report: Report<ConstraintRow>): string {
  return `Token masks, ${report.device.description}, vocabulary: ${String(report.setup.vocabulary)}\n${formatTable(report.rows, COLUMNS)}`;
}
