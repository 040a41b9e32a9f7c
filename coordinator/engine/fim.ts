// Fill-in-the-middle for code models (OpenAI completions' `suffix`): the prompt is the code before the cursor, the
// suffix the code after it, and the model writes what goes between — asked in the special tokens the model was
// trained with, found in its tokenizer. PSM order (prefix, suffix, then the middle is generated) except Mistral's
// Codestral, which puts the suffix first.
export type FimFormatName = 'starcoder' | 'qwen' | 'deepseek' | 'mistral';

interface FimFormat {
  name: FimFormatName;
  /** Special tokens the tokenizer must have. */
  tokens: string[];
  prompt(prefix: string, suffix: string): string;
}

const FORMATS: readonly FimFormat[] = [
  // StarCoder, StarCoder2, Granite Code, Refact
  { name: 'starcoder', tokens: ['<fim_prefix>', '<fim_suffix>', '<fim_middle>'], prompt: (p, s) => `<fim_prefix>${p}<fim_suffix>${s}<fim_middle>` },
  // Qwen2.5-Coder, Qwen3-Coder, CodeGemma
  { name: 'qwen', tokens: ['<|fim_prefix|>', '<|fim_suffix|>', '<|fim_middle|>'], prompt: (p, s) => `<|fim_prefix|>${p}<|fim_suffix|>${s}<|fim_middle|>` },
  // DeepSeek-Coder (V1, V2)
  { name: 'deepseek', tokens: ['<｜fim▁begin｜>', '<｜fim▁hole｜>', '<｜fim▁end｜>'], prompt: (p, s) => `<｜fim▁begin｜>${p}<｜fim▁hole｜>${s}<｜fim▁end｜>` },
  // Codestral (mistral-common's encode_fim: [SUFFIX] suffix [PREFIX] prefix)
  { name: 'mistral', tokens: ['[SUFFIX]', '[PREFIX]'], prompt: (p, s) => `[SUFFIX]${s}[PREFIX]${p}` },
];

/** The fill-in-the-middle format whose tokens the tokenizer has, or null. */
export function detectFimFormat(hasToken: (token: string) => boolean): FimFormatName | null {
  return FORMATS.find((f) => f.tokens.every(hasToken))?.name ?? null;
}

/** The prompt that asks a model of this format for the middle between `prefix` and `suffix`. */
export function fimPrompt(format: FimFormatName, prefix: string, suffix: string): string {
  return FORMATS.find((f) => f.name === format)!.prompt(prefix, suffix);
}
