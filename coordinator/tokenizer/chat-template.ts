// Chat prompts: renders a model's Jinja chat template (tokenizer_config.json) with @huggingface/jinja.
import { Template } from '@huggingface/jinja';

export interface ChatMessage {
  role: string;
  content: string;
}

export interface RenderChatOptions {
  addGenerationPrompt: boolean;
  bosToken?: string | null;
  eosToken?: string | null;
  /** Further template variables (e.g. `tools`). */
  extra?: Record<string, unknown>;
}

export class ChatTemplateError extends Error {
  override name = 'ChatTemplateError';
}

const compiled = new Map<string, Template>();

export function renderChat(
  template: string | null | undefined,
  messages: readonly ChatMessage[],
  opts: RenderChatOptions,
): string {
  if (template === null || template === undefined || template === '') {
    throw new ChatTemplateError(
      'the model has no chat_template (tokenizer_config.json or chat_template.jinja); use a completion endpoint or a model with a chat template',
    );
  }
  let parsed = compiled.get(template);
  if (parsed === undefined) {
    try {
      parsed = new Template(template);
    } catch (err) {
      throw new ChatTemplateError(`the model's chat_template does not parse: ${(err as Error).message}`, { cause: err });
    }
    if (compiled.size >= 16) compiled.delete(compiled.keys().next().value!);
    compiled.set(template, parsed);
  }
  try {
    return parsed.render({
      ...opts.extra,
      messages: messages.map((m) => ({ ...m })),
      add_generation_prompt: opts.addGenerationPrompt,
      bos_token: opts.bosToken ?? '',
      eos_token: opts.eosToken ?? '',
    });
  } catch (err) {
    throw new ChatTemplateError(`rendering the chat_template failed: ${(err as Error).message}`, { cause: err });
  }
}
