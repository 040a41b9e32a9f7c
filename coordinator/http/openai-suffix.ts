// OpenAI's `suffix` on /v1/completions (fill in the middle): the prompt becomes the code before the cursor and the
// suffix the code after it, in the model's own FIM tokens (coordinator/engine/fim.ts).
import { fimPrompt, type FimFormatName } from '../engine/fim.js';
import { validationError } from './errors.js';
import { isJsonObject } from './json.js';
import type { ValidCompletion } from './openai-validate.js';

/** OpenAI's `suffix` (fill in the middle): taken out of the body before validation; '' or null is no suffix. */
export function takeSuffix(body: unknown): { suffix: string | undefined; body: unknown } {
  if (!isJsonObject(body) || body.suffix === undefined) return { suffix: undefined, body };
  const { suffix, ...rest } = body;
  if (suffix !== null && typeof suffix !== 'string') throw validationError('`suffix` must be a string');
  return { suffix: suffix === null || suffix === '' ? undefined : suffix, body: rest };
}

/** Each prompt as the code before the cursor, with `suffix` after it, in the model's fill-in-the-middle tokens. */
export function withSuffix(valid: ValidCompletion, suffix: string, format: FimFormatName | null): ValidCompletion {
  if (format === null) {
    throw validationError('`suffix` needs a model trained to fill in the middle: this tokenizer has none of the known FIM tokens ' +
      '(<fim_prefix>/<fim_suffix>/<fim_middle>, <|fim_prefix|>…, <｜fim▁begin｜>…, [SUFFIX]/[PREFIX])');
  }
  if (valid.echo) throw validationError('`echo` cannot be combined with `suffix`');
  if (valid.prompts.some((p) => typeof p !== 'string')) throw validationError('`suffix` needs a text prompt, not token ids');
  return { ...valid, prompts: valid.prompts.map((p) => fimPrompt(format, p as string, suffix)) };
}
