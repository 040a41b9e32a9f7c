import type { ReasoningFormat } from './reasoning.js';

// Which format function calls take in a model's chat answers (--tool-call-parser; the formats themselves are
// coordinator/http/tool-formats.ts). Decided once per server from the chat template and the vocabulary.

export type ToolFormatName = 'weft' | 'hermes' | 'llama3_json' | 'mistral' | 'harmony' | 'pythonic' | 'qwen3_coder';
export const TOOL_FORMATS: readonly ToolFormatName[] = ['weft', 'hermes', 'llama3_json', 'mistral', 'harmony', 'pythonic', 'qwen3_coder'];

/** Hermes-style call tags (Qwen 2.5/3, Hermes and their fine-tunes; Qwen3-Coder wraps its XML calls in them too). */
export const HERMES_OPEN = '<tool_call>';
export const HERMES_CLOSE = '</tool_call>';
/** Mistral's call marker (a control token of its tokenizers since v3). */
export const MISTRAL_CALLS = '[TOOL_CALLS]';
/** Llama 4's wrapper of code and pythonic calls (special tokens). */
export const PYTHON_START = '<|python_start|>';
export const PYTHON_END = '<|python_end|>';

/** How the pythonic templates describe the call list (Llama 3.2's "[func_name1(params_name1=params_value1, …",
 * Llama 4's "[func_name1(param1=value1, …"). */
const PYTHONIC_EXAMPLE = '[func_name1(';

/**
 * `auto`: the format the model's chat template was written for — harmony when it renders `tools` for a gpt-oss
 * tokenizer (the harmony reasoning parser); qwen3_coder when it renders `tools` and writes `<function=` and
 * `<parameter=` calls (before hermes: those templates write <tool_call> tags too); hermes when it writes <tool_call>
 * tags; mistral when it writes [TOOL_CALLS]; pythonic when it asks for a `[func_name1(…` call list (vLLM's
 * pythonic templates for Llama 3.2 / 4); llama3_json when the vocabulary has Llama 3's <|python_tag|>; weft's own
 * format otherwise (a template that does not render tools, or a format weft does not parse).
 */
export function detectToolFormat(choice: ToolFormatName | 'auto', template: string | null | undefined,
  hasToken: (text: string) => boolean, reasoning: ReasoningFormat | null = null): ToolFormatName {
  if (choice === 'harmony' && reasoning !== 'harmony') {
    throw new Error('--tool-call-parser harmony reads the calls the harmony reasoning parser finds: it needs --reasoning-parser harmony (or auto on a gpt-oss tokenizer)');
  }
  if (choice !== 'auto') return choice;
  if (!template || !/\btools\b/.test(template)) return 'weft';
  if (reasoning === 'harmony') return 'harmony';
  if (template.includes('<function=') && template.includes('<parameter=')) return 'qwen3_coder';
  if (template.includes(HERMES_OPEN)) return 'hermes';
  if (template.includes(MISTRAL_CALLS)) return 'mistral';
  // Not from the vocabulary: Llama 4's own template asks for JSON calls though its tokenizer has <|python_start|>.
  if (template.includes(PYTHONIC_EXAMPLE)) return 'pythonic';
  if (hasToken('<|python_tag|>')) return 'llama3_json';
  return 'weft';
}
