// POST /chat_tokenize (TGI): a chat completion body (messages, tools, chat_template_kwargs …) rendered by the chat
// template exactly as /v1/chat/completions renders it, and that prompt's tokens — what a client checks a template
// or counts a conversation's tokens with; image parts are loaded and expanded as the chat route does (each image's
// tokens, their `start`/`stop` its placeholder in templated_text). GET /version (vLLM): the server's version.
import type { FastifyInstance } from 'fastify';
import { tokenizeChatPrompt } from './content-parts.js';
import { adapterAuthorization } from './engine-run.js';
import { openAiErrorHandler, openAiLimits, type OpenAiDeps } from './openai-routes.js';
import { validateChatBody } from './openai-validate.js';
import { promptMessages } from './tool-formats.js';

export function registerChatTokenizeRoutes(app: FastifyInstance, deps: OpenAiDeps): void {
  app.post('/chat_tokenize', { errorHandler: openAiErrorHandler(deps.bodyLimitBytes) }, async (request) => {
    const valid = validateChatBody(request.body, openAiLimits(deps), adapterAuthorization(request, deps.bearerIsAdapterToken));
    const templated = deps.engine.renderChat(promptMessages(deps.engine.info.toolFormat, valid.messages, valid.tools), valid.render);
    const tokens = await tokenizeChatPrompt(deps.engine, templated, true, valid.images);
    return { tokenize_response: tokens.map((t) => ({ id: t.id, text: t.text, start: t.start, stop: t.stop })), templated_text: templated };
  });
  app.get('/version', async () => ({ version: deps.engine.info.version }));
}
