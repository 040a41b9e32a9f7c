// Chat prompts: renders a model's Jinja chat template (tokenizer_config.json) with @huggingface/jinja,
// in the environment transformers' apply_chat_template renders with (test/unit/chat-template-conformance).
import { Environment, Interpreter, Template } from '@huggingface/jinja';

/** A part of a message's content as chat templates read it (transformers' convention): text, or an image's place. */
export type ChatContentPart = { type: 'text'; text: string } | { type: 'image' };

export interface ChatMessage {
  role: string;
  /** A string, or content parts (vision-language models' templates render `{"type": "image"}` parts). */
  content: string | ChatContentPart[];
}

/**
 * Whether a template loops over a message's content (`{% for c in message['content'] %}`): it expects content parts,
 * not a string — vLLM's "openai" content format, detected the same way (the template's text, not its output).
 */
export function templateIteratesContent(template: string | null | undefined): boolean {
  return template !== null && template !== undefined &&
    /\{%-?\s*for\s+\w+\s+in\s+\w+\s*(\[\s*['"]content['"]\s*\]|\.content\b)/.test(template);
}

/** The text a message ends with (a final content part's text), for continue_final_message. */
function finalText(content: ChatMessage['content']): string {
  if (typeof content === 'string') return content;
  const last = content.at(-1);
  return last?.type === 'text' ? last.text : '';
}

/** The message with `tag` after the end of its content (its last part, when that is text; else a new text part). */
function withTag(m: ChatMessage, tag: string): ChatMessage {
  if (typeof m.content === 'string') return { ...m, content: m.content + tag };
  const last = m.content.at(-1);
  return { ...m, content: last?.type === 'text' ? [...m.content.slice(0, -1), { type: 'text', text: last.text + tag }]
    : [...m.content, { type: 'text', text: tag }] };
}

export interface RenderChatOptions {
  addGenerationPrompt: boolean;
  bosToken?: string | null;
  eosToken?: string | null;
  /** Further template variables (e.g. `tools`, a request's chat_template_kwargs). */
  extra?: Record<string, unknown>;
  /** Leave the final message open for the model to continue (a prefilled assistant turn), as transformers'
   * continue_final_message: the text ends where that message's content ends. Not with addGenerationPrompt. */
  continueFinalMessage?: boolean;
}

// transformers marks the end of the final message with this tag and cuts the rendering there.
const CONTINUE_TAG = 'CONTINUE_FINAL_MESSAGE_TAG ';

export class ChatTemplateError extends Error {
  override name = 'ChatTemplateError';
}

const compiled = new Map<string, Template>();

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June',
  'July', 'August', 'September', 'October', 'November', 'December'];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/** Python's `datetime.now().strftime(format)`, which transformers exposes to templates as `strftime_now`:
 * local time, C-locale (English) names whatever the host locale — @huggingface/jinja's own version names
 * months in the process's Intl locale ("15 janv. 2025" under fr_FR where transformers says "15 Jan 2025"). */
function strftime(format: string, date: Date): string {
  const pad = (n: number, width = 2): string => String(n).padStart(width, '0');
  const hour12 = date.getHours() % 12 === 0 ? 12 : date.getHours() % 12;
  const year = date.getFullYear();
  const dayOfYear = Math.round((Date.UTC(year, date.getMonth(), date.getDate()) - Date.UTC(year, 0, 1)) / 86_400_000) + 1;
  return format.replace(/%([aAbBdeHIjmMpSyY%])/g, (_, d: string) => {
    switch (d) {
      case 'a': return DAYS[date.getDay()]!.slice(0, 3);
      case 'A': return DAYS[date.getDay()]!;
      case 'b': return MONTHS[date.getMonth()]!.slice(0, 3);
      case 'B': return MONTHS[date.getMonth()]!;
      case 'd': return pad(date.getDate());
      case 'e': return String(date.getDate()).padStart(2, ' ');
      case 'H': return pad(date.getHours());
      case 'I': return pad(hour12);
      case 'j': return pad(dayOfYear, 3);
      case 'm': return pad(date.getMonth() + 1);
      case 'M': return pad(date.getMinutes());
      case 'p': return date.getHours() < 12 ? 'AM' : 'PM';
      case 'S': return pad(date.getSeconds());
      case 'y': return pad(year % 100);
      case 'Y': return String(year);
      default: return '%';
    }
  });
}

/** @huggingface/jinja's globals (its Template.render sets the same), with transformers' strftime_now. Built once; each
 * render declares its variables in a child environment. */
const GLOBALS: Environment = (() => {
  const env = new Environment();
  const values: Record<string, unknown> = {
    false: false, true: true, none: null, False: false, True: true, None: null,
    raise_exception: (message: unknown) => { throw new Error(String(message)); },
    range: (start: number, stop?: number, step = 1): number[] => {
      if (stop === undefined) [start, stop] = [0, start];
      if (step === 0) throw new Error('range() step must not be zero');
      const out: number[] = [];
      for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
      return out;
    },
    strftime_now: (format: string) => strftime(format, new Date()),
  };
  for (const [name, value] of Object.entries(values)) env.set(name, value);
  return env;
})();

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
  const cont = opts.continueFinalMessage === true;
  if (cont && (messages.length === 0 || opts.addGenerationPrompt)) {
    throw new ChatTemplateError(messages.length === 0 ? 'continue_final_message needs a final message to continue'
      : 'continue_final_message and add_generation_prompt cannot both be set');
  }
  const final = cont ? finalText(messages[messages.length - 1]!.content) : '';
  let rendered: string;
  try {
    // template variables shadow the globals, as in jinja2 (Template.render would refuse to redeclare them)
    const env = new Environment(GLOBALS);
    const vars = {
      ...opts.extra,
      messages: messages.map((m, i) => (cont && i === messages.length - 1 ? withTag(m, CONTINUE_TAG) : { ...m })),
      add_generation_prompt: opts.addGenerationPrompt,
      bos_token: opts.bosToken ?? '',
      eos_token: opts.eosToken ?? '',
    };
    for (const [name, value] of Object.entries(vars)) env.set(name, value);
    rendered = new Interpreter(env).run(parsed.parsed).value as string;
  } catch (err) {
    throw new ChatTemplateError(`rendering the chat_template failed: ${(err as Error).message}`, { cause: err });
  }
  if (!cont) return rendered;
  // transformers' cut: at the tag; where the template trimmed the space after it, also the trailing spaces.
  const tag = CONTINUE_TAG.trim();
  if (!rendered.includes(final.trim()) || !rendered.includes(tag)) {
    throw new ChatTemplateError('continue_final_message: the final message does not appear in the rendered chat (the ' +
      'chat template changes or drops it)');
  }
  const at = rendered.lastIndexOf(tag);
  return rendered.startsWith(CONTINUE_TAG, at) ? rendered.slice(0, at) : rendered.slice(0, at).trimEnd();
}
