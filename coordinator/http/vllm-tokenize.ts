// vLLM's tokenizer endpoints beside TGI's: POST /tokenize with `prompt` or `messages` (TGI's takes `inputs`) →
// {count, max_model_len, tokens, token_strs?}, and POST /detokenize {tokens} → {prompt}. Clients count tokens with
// them before they send a request (vLLM's OpenAI server answers the same shapes; `model` is accepted and does not
// change the tokenizer — adapters share the base model's).
import type { FastifyInstance } from 'fastify';
import type { GenerationEngine, RenderMessage } from '../engine/types.js';
import type { ImageInput } from '../vision/index.js';
import { contentOf, tokenizeChatPrompt } from './content-parts.js';
import { validationError } from './errors.js';
import { isJsonObject, type Json } from './json.js';
import { openAiErrorHandler } from './openai-routes.js';

const TOKENIZE_KEYS = ['model', 'prompt', 'messages', 'add_special_tokens', 'add_generation_prompt', 'continue_final_message',
  'chat_template_kwargs', 'return_token_strs'];

/** Whether a /tokenize body is vLLM's shape (`prompt` or `messages`) rather than TGI's (`inputs`). */
export function isVllmTokenizeBody(body: unknown): boolean {
  return isJsonObject(body) && body.inputs === undefined && (body.prompt !== undefined || body.messages !== undefined);
}

function boolOf(b: Json, key: string, dflt: boolean): boolean {
  const v = b[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw validationError(`\`${key}\` must be true or false`);
  return v;
}

/** vLLM's /tokenize: a prompt (special tokens added unless add_special_tokens false) or chat messages rendered
 * with the chat template (nothing added: the template writes its own special tokens), their images (image_url parts
 * of user messages) loaded and each placeholder expanded as the chat route does: the ids it runs. */
export async function vllmTokenize(engine: GenerationEngine, body: Json) {
  const extra = Object.keys(body).find((k) => !TOKENIZE_KEYS.includes(k));
  if (extra) throw validationError(`unknown field \`${extra.slice(0, 64)}\``);
  if (body.model !== undefined && typeof body.model !== 'string') throw validationError('`model` must be a string');
  let tokens: { id: number; text: string }[];
  if (body.messages !== undefined) {
    if (body.prompt !== undefined) throw validationError('give `prompt` or `messages`, not both');
    const images: ImageInput[] = [];
    const text = renderMessages(engine, body, true, images);
    tokens = await tokenizeChatPrompt(engine, text, !boolOf(body, 'add_special_tokens', false), images);
  } else {
    if (typeof body.prompt !== 'string') throw validationError('`prompt` must be a string');
    tokens = await engine.tokenize(body.prompt, !boolOf(body, 'add_special_tokens', true));
  }
  return { count: tokens.length, max_model_len: engine.info.maxTotalTokens, tokens: tokens.map((t) => t.id),
    ...(boolOf(body, 'return_token_strs', false) ? { token_strs: tokens.map((t) => t.text) } : {}) };
}

/**
 * vLLM's chat-shaped body (/tokenize, /v1/embeddings): `messages` ({role, content} with string content) rendered with
 * the chat template, `add_generation_prompt` (default as given: true to tokenize a chat prompt, false to embed a
 * conversation), `continue_final_message`, `chat_template_kwargs`. With `images` (/tokenize) content may also be
 * content parts as the chat route takes them (content-parts.ts), user messages' image parts appended to `images`.
 */
export function renderMessages(engine: GenerationEngine, body: Json, addGenerationPrompt: boolean, images: ImageInput[] | null = null): string {
  if (!Array.isArray(body.messages) || body.messages.length === 0) throw validationError('`messages` must be a non-empty list');
  const messages = body.messages.map((m, i): RenderMessage => {
    if (images !== null && isJsonObject(m) && typeof m.role === 'string') {
      const { text, parts } = contentOf(m.content, `messages[${i}].content`, m.role === 'user' ? images : null);
      return { role: m.role, content: text, ...(parts ? { parts } : {}) };
    }
    if (!isJsonObject(m) || typeof m.role !== 'string' || typeof m.content !== 'string') {
      throw validationError(`\`messages[${i}]\` must be {role, content}${images === null ? ' with string content' : ''}`);
    }
    return { role: m.role, content: m.content };
  });
  const kwargs = body.chat_template_kwargs;
  if (kwargs !== undefined && kwargs !== null && !isJsonObject(kwargs)) throw validationError('`chat_template_kwargs` must be an object');
  return engine.renderChat(messages, { addGenerationPrompt: boolOf(body, 'add_generation_prompt', addGenerationPrompt),
    continueFinalMessage: boolOf(body, 'continue_final_message', false), ...(isJsonObject(kwargs) ? { templateKwargs: kwargs } : {}) });
}

export function registerDetokenizeRoute(app: FastifyInstance, engine: GenerationEngine, bodyLimitBytes: number): void {
  app.post('/detokenize', { errorHandler: openAiErrorHandler(bodyLimitBytes) }, async (request) => {
    const body = request.body;
    if (!isJsonObject(body)) throw validationError('the body must be a JSON object {tokens}');
    const extra = Object.keys(body).find((k) => k !== 'model' && k !== 'tokens');
    if (extra) throw validationError(`unknown field \`${extra.slice(0, 64)}\``);
    const { tokens } = body;
    if (!Array.isArray(tokens) || !tokens.every((t) => Number.isInteger(t) && (t as number) >= 0 && (t as number) < engine.info.vocabSize)) {
      throw validationError(`\`tokens\` must be a list of token ids from 0 to ${engine.info.vocabSize - 1}`);
    }
    return { prompt: engine.detokenize(tokens as number[], { keepSpecialTokens: true }) };
  });
}
