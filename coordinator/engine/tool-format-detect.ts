import type { ReasoningFormat } from './reasoning.js';

// Which format function calls take in a model's chat answers (--tool-call-parser; the formats themselves are
// coordinator/http/tool-formats.ts). Decided once per server from the chat template and the vocabulary.

export type ToolFormatName = 'weft' | 'hermes' | 'llama3_json' | 'mistral' | 'harmony';
export const TOOL_FORMATS: readonly ToolFormatName[] = ['weft', 'hermes', 'llama3_json', 'mistral', 'harmony'];

/** Hermes-style call tags (Qwen 2.5/3, Hermes and their fine-tunes). */
export const HERMES_OPEN = '<tool_call>';
export const HERMES_CLOSE = '</tool_call>';
/** Mistral's call marker (a control token of its tokenizers since v3). */
export const MISTRAL_CALLS = '[TOOL_CALLS]';

/**
 * `auto`: the format the model's chat template was written for — hermes when it renders `tools` and writes
 * <tool_call> tags, harmony when it renders `tools` for a gpt-oss tokenizer (the harmony reasoning parser), mistral
 * when it renders `tools` and writes [TOOL_CALLS], llama3_json when it renders `tools`
 * and the vocabulary has Llama 3's <|python_tag|>; weft's
 * own format otherwise (a template that does not render tools, or a format weft does not parse).
 */
export function detectToolFormat(choice: ToolFormatName | 'auto', template: string | null | undefined,
  hasToken: (text: string) => boolean, reasoning: ReasoningFormat | null = null): ToolFormatName {
  if (choice === 'harmony' && reasoning !== 'harmony') {
    throw new Error('--tool-call-parser harmony reads the calls the harmony reasoning parser finds: it needs --reasoning-parser harmony (or auto on a gpt-oss tokenizer)');
  }
  if (choice !== 'auto') return choice;
  if (!template || !/\btools\b/.test(template)) return 'weft';
  if (reasoning === 'harmony') return 'harmony';
  if (template.includes(HERMES_OPEN)) return 'hermes';
  if (template.includes(MISTRAL_CALLS)) return 'mistral';
  if (hasToken('<|python_tag|>')) return 'llama3_json';
  return 'weft';
}
