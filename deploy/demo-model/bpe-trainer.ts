// A small byte-pair-encoding trainer, and the Hugging Face `tokenizer.json` it produces for a
// GPT-2-style byte-level tokenizer. Deterministic: the same corpus always gives the same merges.

/** Symbols are joined with this in pair keys; no symbol may contain it. */
const SEP = '\u0000';

export interface BpeTrainResult {
  /** Merges in rank order (the first was learned first and is applied first). */
  merges: [string, string][];
  /** The distinct new tokens, in the order they were first made (two merges can make the same string). */
  tokens: string[];
}

/**
 * Learns merges from word counts until `numTokens` new tokens exist. Each word starts as its Unicode
 * code points; at every step the most frequent adjacent pair (ties: the smaller pair in code-unit order)
 * is merged. Stops early when no adjacent pair is left.
 */
export function trainBpe(wordCounts: ReadonlyMap<string, number>, numTokens: number): BpeTrainResult {
  const words: { symbols: string[]; count: number }[] = [];
  for (const [word, count] of [...wordCounts].sort((a, b) => compare(a[0], b[0]))) {
    if (word.includes(SEP)) throw new Error('trainBpe: words must not contain U+0000');
    if (word.length > 0 && count > 0) words.push({ symbols: Array.from(word), count });
  }
  const pairCounts = new Map<string, number>();
  const pairWords = new Map<string, Set<number>>();
  const addWord = (wi: number, sign: 1 | -1): void => {
    const { symbols, count } = words[wi]!;
    for (let i = 0; i + 1 < symbols.length; i++) {
      const key = symbols[i]! + SEP + symbols[i + 1]!;
      const next = (pairCounts.get(key) ?? 0) + sign * count;
      if (next === 0) pairCounts.delete(key);
      else pairCounts.set(key, next);
      if (sign > 0) {
        let set = pairWords.get(key);
        if (set === undefined) pairWords.set(key, (set = new Set()));
        set.add(wi);
      }
    }
  };
  words.forEach((_, wi) => addWord(wi, 1));

  const merges: [string, string][] = [];
  const tokens = new Set<string>();
  while (tokens.size < numTokens) {
    let best: string | null = null;
    let bestCount = 0;
    for (const [key, count] of pairCounts) {
      if (count > bestCount || (count === bestCount && best !== null && compare(key, best) < 0)) {
        best = key;
        bestCount = count;
      }
    }
    if (best === null) break;
    const [a, b] = best.split(SEP) as [string, string];
    merges.push([a, b]);
    tokens.add(a + b);
    for (const wi of pairWords.get(best) ?? []) {
      const word = words[wi]!;
      if (!hasPair(word.symbols, a, b)) continue;
      addWord(wi, -1);
      word.symbols = mergePair(word.symbols, a, b);
      addWord(wi, 1);
    }
    pairWords.delete(best);
  }
  return { merges, tokens: [...tokens] };
}

function compare(x: string, y: string): number {
  return x < y ? -1 : x > y ? 1 : 0;
}

function hasPair(symbols: string[], a: string, b: string): boolean {
  for (let i = 0; i + 1 < symbols.length; i++) if (symbols[i] === a && symbols[i + 1] === b) return true;
  return false;
}

function mergePair(symbols: string[], a: string, b: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < symbols.length; i++) {
    if (i + 1 < symbols.length && symbols[i] === a && symbols[i + 1] === b) {
      out.push(a + b);
      i++;
    } else {
      out.push(symbols[i]!);
    }
  }
  return out;
}

// ---- byte level (GPT-2 style) ----

/**
 * The reversible byte → printable character table used by byte-level BPE: bytes that are printable
 * Latin-1 stand for themselves, the other 68 are shifted to U+0100 and above, in byte order.
 */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const printable = (b: number): boolean =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table: string[] = [];
  let shifted = 0;
  for (let b = 0; b < 256; b++) table.push(String.fromCodePoint(printable(b) ? b : 256 + shifted++));
  return table;
})();

/** The GPT-2 pre-tokenization pattern, the one the ByteLevel pre-tokenizer applies with `use_regex`. */
export const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** Splits text into pre-tokens and maps each one's UTF-8 bytes to byte-level characters. */
export function byteLevelWords(text: string): string[] {
  const encoder = new TextEncoder();
  return (text.match(GPT2_SPLIT) ?? []).map((piece) =>
    Array.from(encoder.encode(piece), (b) => BYTE_TO_CHAR[b]!).join(''),
  );
}

export interface ByteLevelTokenizerSpec {
  corpus: string;
  /** Total vocabulary including the special tokens. */
  vocabSize: number;
  /** Appended after the learned vocabulary, in this order. */
  specialTokens: string[];
}

/** Trains a byte-level BPE tokenizer and returns it as a Hugging Face `tokenizer.json` object. */
export function buildByteLevelTokenizer(spec: ByteLevelTokenizerSpec): Record<string, unknown> {
  const baseSize = spec.vocabSize - spec.specialTokens.length;
  if (baseSize < 256) throw new Error(`vocabSize ${spec.vocabSize} leaves no room for the 256 byte tokens`);
  const counts = new Map<string, number>();
  for (const w of byteLevelWords(spec.corpus)) counts.set(w, (counts.get(w) ?? 0) + 1);
  const { merges, tokens } = trainBpe(counts, baseSize - 256);
  if (tokens.length !== baseSize - 256) {
    throw new Error(`corpus too small: learned ${tokens.length} tokens, need ${baseSize - 256}`);
  }
  const vocab: Record<string, number> = {};
  BYTE_TO_CHAR.forEach((ch, id) => (vocab[ch] = id));
  tokens.forEach((token, i) => (vocab[token] = 256 + i));
  const byteLevel = { add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: spec.specialTokens.map((content, i) => ({
      id: baseSize + i,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', ...byteLevel },
    post_processor: { type: 'ByteLevel', ...byteLevel, trim_offsets: false },
    decoder: { type: 'ByteLevel', ...byteLevel },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}
