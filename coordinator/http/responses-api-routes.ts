// POST /v1/responses: OpenAI's Responses API over the chat completion machinery (responses-api-request.ts turns the
// request into a chat request). The answer is a response object whose `output` holds a reasoning item (the
// reasoning parser's thoughts), then the message (output_text) or the function calls; streamed, it is OpenAI's
// typed events (`event: response.output_text.delta` …, each with a sequence_number) ending with response.completed
// (or response.incomplete at max_output_tokens). Errors before the stream are OpenAI error bodies; a failure
// mid-stream is one `error` event.
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { HttpError, toHttpError } from './errors.js';
import { ResponseStore, ownerOf } from './response-store.js';
import { adapterAuthorization, cancelRun, endedEarly, runEvents, sendSse, unknownEvent } from './engine-run.js';
import { chatTokenLogprob, openAiErrorBody, StopTrimmer, type ChatLogprobsJson, type ChatTokenLogprobJson } from './openai-responses.js';
import { choice, openAiErrorHandler, openAiLimits, start, type ChoiceResult, type OpenAiDeps, type Run } from './openai-routes.js';
import type { ToolCall } from './openai-tools.js';
import { ToolCallStream, answerDelta, promptMessages } from './tool-formats.js';
import { validateChatBody } from './openai-validate.js';
import { loadImages } from './content-parts.js';
import { chatBodyOfResponses, previousResponseIdOf, type ResponseSettings } from './responses-api-request.js';

type Json = Record<string, unknown>;
interface Head { id: string; created: number; model: string }
interface Counts { promptTokens: number; cachedTokens: number; generatedTokens: number; reasoningTokens: number }

export function registerResponsesApiRoute(app: FastifyInstance, deps: OpenAiDeps, store: ResponseStore): void {
  const errorHandler = openAiErrorHandler(deps.bodyLimitBytes);
  app.post('/v1/responses', { errorHandler }, async (request, reply) => {
    const owner = ownerOf(request.headers);
    const previousId = previousResponseIdOf(request.body);
    const previous = previousId === null ? undefined : store.get(previousId, owner);
    if (previousId !== null && !previous) throw unknownResponse(previousId, store);
    const { chat, settings, inputItems } = chatBodyOfResponses(request.body, previous?.items);
    const valid = validateChatBody(chat, openAiLimits(deps), adapterAuthorization(request, deps.bearerIsAdapterToken));
    const inputs = deps.engine.renderChat(promptMessages(deps.engine.info.toolFormat, valid.messages, valid.tools), valid.render);
    const [run] = await start(request, reply, deps, 'chat', valid, [inputs], valid.tools, true, await loadImages(deps.engine, valid.images));
    run!.answerLogprobsOnly = true;  // output_text's log-probs: the thoughts are a reasoning item of their own
    const head = { id: `resp_${randomUUID().replace(/-/g, '')}`, created: Math.floor(Date.now() / 1000), model: valid.model || deps.engine.info.modelId };
    // Kept once complete: the conversation so far, this input, this output (store: false, or a store of 0 entries: not).
    const keep = settings.store && store.enabled
      ? (response: Json) => store.put(head.id, owner, { response,
        items: [...previous?.items ?? [], ...inputItems.map(storedItem), ...(response.output as Json[])] })
      : () => {};
    // The response repeats the temperature and top_p in effect: the request's, else --generation-config's default.
    const echoed = { ...settings, store: settings.store && store.enabled,
      temperature: settings.temperature ?? deps.samplingDefaults?.temperature ?? null, topP: settings.topP ?? deps.samplingDefaults?.top_p ?? null };
    if (!valid.stream) {
      const r = await choice(run!);
      const response = responseJson(head, echoed, outputOf(r), r.finish === 'length', r);
      keep(response);
      return response;
    }
    return sendSse(reply, events(run!, head, echoed, reply, keep));
  });
  app.get<{ Params: { id: string } }>('/v1/responses/:id', { errorHandler }, async (request) => {
    const found = store.get(request.params.id, ownerOf(request.headers));
    if (!found) throw unknownResponse(request.params.id, store);
    return found.response;
  });
  // The items the response was generated from (the conversation before its output), newest first unless
  // order=asc, `limit` (1-100, default 20) at a time after the item `after` (OpenAI's list shape).
  app.get<{ Params: { id: string }; Querystring: Record<string, string | undefined> }>('/v1/responses/:id/input_items', { errorHandler }, async (request) => {
    const found = store.get(request.params.id, ownerOf(request.headers));
    if (!found) throw unknownResponse(request.params.id, store);
    const q = request.query;
    const limit = q.limit === undefined ? 20 : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw new HttpError(422, 'validation', '`limit` must be an integer from 1 to 100');
    if (q.order !== undefined && q.order !== 'asc' && q.order !== 'desc') throw new HttpError(422, 'validation', '`order` must be asc or desc');
    const inputs = found.items.slice(0, found.items.length - (found.response.output as Json[]).length);
    const ordered = q.order === 'asc' ? inputs : [...inputs].reverse();
    const from = q.after === undefined ? 0 : ordered.findIndex((i) => i.id === q.after) + 1;
    if (from === 0 && q.after !== undefined) throw new HttpError(404, 'not_found', `no input item '${q.after.slice(0, 80)}' in response '${request.params.id.slice(0, 80)}'`);
    const data = ordered.slice(from, from + limit);
    return { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: from + limit < ordered.length };
  });
  app.delete<{ Params: { id: string } }>('/v1/responses/:id', { errorHandler }, async (request) => {
    if (!store.delete(request.params.id, ownerOf(request.headers))) throw unknownResponse(request.params.id, store);
    return { id: request.params.id, object: 'response', deleted: true };
  });
}

/** 404 for a response id this server does not hold for the caller (never stored, dropped, or someone else's). */
function unknownResponse(id: string, store: ResponseStore): HttpError {
  const why = store.enabled
    ? `the last ${store.maxEntries} stored responses are kept, in this server's memory`
    : 'responses are not stored (--response-store-entries 0)';
  return new HttpError(404, 'not_found', `no stored response '${id.slice(0, 80)}' (${why}); send the whole conversation in \`input\``);
}

const itemId = (prefix: string) => `${prefix}_${randomUUID().replace(/-/g, '')}`;

/** An input item as stored (and listed by input_items): with an id, a message's text as content parts. */
function storedItem(item: Json): Json {
  const type = item.type ?? 'message';
  const content = type === 'message' && typeof item.content === 'string'
    ? [{ type: item.role === 'assistant' ? 'output_text' : 'input_text', text: item.content }] : item.content;
  const prefix = type === 'function_call' ? 'fc' : type === 'function_call_output' ? 'fco' : type === 'reasoning' ? 'rs' : 'msg';
  return { ...item, id: typeof item.id === 'string' ? item.id : itemId(prefix), type, ...(content !== undefined ? { content } : {}) };
}

function usageOf(c: Counts) {
  return { input_tokens: c.promptTokens, input_tokens_details: { cached_tokens: c.cachedTokens }, output_tokens: c.generatedTokens,
    output_tokens_details: { reasoning_tokens: c.reasoningTokens }, total_tokens: c.promptTokens + c.generatedTokens };
}

/** The response object: its settings echoed, `output`, and (once done) usage. */
function responseJson(head: Head, s: ResponseSettings, output: Json[], incomplete: boolean, counts: Counts | null,
  status?: 'in_progress') {
  return {
    id: head.id, object: 'response', created_at: head.created, status: status ?? (incomplete ? 'incomplete' : 'completed'),
    error: null, incomplete_details: incomplete && !status ? { reason: 'max_output_tokens' } : null, instructions: s.instructions,
    max_output_tokens: s.maxOutputTokens, model: head.model, output, parallel_tool_calls: s.parallelToolCalls,
    previous_response_id: s.previousResponseId, reasoning: { effort: s.reasoningEffort, summary: null }, store: s.store,
    temperature: s.temperature ?? 1, text: s.text, tool_choice: s.toolChoice, tools: s.tools, top_p: s.topP ?? 1,
    truncation: 'disabled', usage: counts ? usageOf(counts) : null, metadata: s.metadata, top_logprobs: s.topLogprobs,
  };
}

const reasoningItem = (id: string, text: string) => ({ id, type: 'reasoning', summary: [], content: [{ type: 'reasoning_text', text }] });
/** `logprobs` (include: message.output_text.logprobs): the text's tokens, as chat completions' logprobs.content. */
const messageItem = (id: string, text: string, status: string, logprobs?: ChatTokenLogprobJson[]) => ({ id, type: 'message', status,
  role: 'assistant', content: [{ type: 'output_text', text, annotations: [], ...(logprobs ? { logprobs } : {}) }] });
const callItem = (c: ToolCall, status = 'completed') => ({ id: itemId('fc'), type: 'function_call', status, call_id: c.id, name: c.name,
  arguments: c.arguments });

function outputOf(r: ChoiceResult): Json[] {
  const out: Json[] = [];
  const logprobs = r.logprobs ? (r.logprobs as ChatLogprobsJson).content : undefined;
  if (r.reasoning) out.push(reasoningItem(itemId('rs'), r.reasoning));
  if (r.calls) {
    if (r.text !== '') out.push(messageItem(itemId('msg'), r.text, 'completed', logprobs));  // a native format's text before its calls
    out.push(...r.calls.map((c) => callItem(c)));
  } else out.push(messageItem(itemId('msg'), r.text, r.finish === 'length' ? 'incomplete' : 'completed', logprobs));
  return out;
}

/** The streamed events of one response (see the file comment); the client leaving cancels the generation. */
async function* events(run: Run, head: Head, s: ResponseSettings, reply: FastifyReply, keep: (response: Json) => void): AsyncGenerator<string> {
  let seq = 0;
  const ev = (type: string, data: Json) => `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: seq++, ...data })}\n\n`;
  const output: Json[] = [];
  const counts: Counts = { promptTokens: 0, cachedTokens: 0, generatedTokens: 0, reasoningTokens: 0 };
  const trimmer = new StopTrimmer(run.valid.stop, run.valid.minNewTokens, run.valid.includeStop);
  const splitter = run.splitter?.() ?? null;
  let thoughts: { id: string; text: string; index: number } | null = null;
  let message: { id: string; text: string; index: number } | null = null;
  // tools: once the answer's calls begin they are held and sent as function_call items (tool-formats.ts)
  const calls = run.tools ? new ToolCallStream(run.toolFormat, run.tools) : null;
  // include message.output_text.logprobs: every answer token's, and those not yet sent with a text delta
  const logprobs: ChatTokenLogprobJson[] | null = run.valid.logprobs ? [] : null;
  let unsent: ChatTokenLogprobJson[] = [];
  let settled = false;
  function* closeThoughts() {
    if (!thoughts) return;
    const { id, text, index } = thoughts;
    yield ev('response.reasoning_text.done', { item_id: id, output_index: index, content_index: 0, text });
    yield ev('response.output_item.done', { output_index: index, item: reasoningItem(id, text) });
    output.push(reasoningItem(id, text));
    thoughts = null;
  }
  function* say(text: string) {
    if (text === '') return;
    yield* closeThoughts();
    if (!message) {
      message = { id: itemId('msg'), text: '', index: output.length };
      yield ev('response.output_item.added', { output_index: message.index, item: { ...messageItem(message.id, '', 'in_progress'), content: [] } });
      yield ev('response.content_part.added', { item_id: message.id, output_index: message.index, content_index: 0,
        part: { type: 'output_text', text: '', annotations: [] } });
    }
    message.text += text;
    yield ev('response.output_text.delta', { item_id: message.id, output_index: message.index, content_index: 0, delta: text,
      ...(logprobs ? { logprobs: unsent } : {}) });
    unsent = [];
  }
  try {
    const inProgress = responseJson(head, s, [], false, null, 'in_progress');
    yield ev('response.created', { response: inProgress });
    yield ev('response.in_progress', { response: inProgress });
    for await (const e of runEvents(run)) {
      switch (e.type) {
        case 'admitted':
          counts.promptTokens = e.promptTokens;
          counts.cachedTokens = e.cachedTokens;
          break;
        case 'token': {
          if (trimmer.stopped) break;
          const part = splitter?.push(e.token.text, e.token.special ? '' : e.textDelta) ?? null;
          if (part && part.reasoning !== '') {
            counts.reasoningTokens++;
            if (run.includeReasoning) {
              if (!thoughts) {
                thoughts = { id: itemId('rs'), text: '', index: output.length };
                yield ev('response.output_item.added', { output_index: thoughts.index, item: { ...reasoningItem(thoughts.id, ''), content: [] } });
              }
              thoughts.text += part.reasoning;
              yield ev('response.reasoning_text.delta', { item_id: thoughts.id, output_index: thoughts.index, content_index: 0,
                delta: part.reasoning });
            }
          }
          const thought = splitter !== null && part!.content === '' && !(e.textDelta === '' && splitter.answering);
          if (logprobs && !e.token.special && !thought) {
            const lp = chatTokenLogprob(e.token, e.textDelta);
            logprobs.push(lp);
            unsent.push(lp);
          }
          const marker = calls ? answerDelta(run.toolFormat, e.token, '') : '';  // call markup that is a special token
          const text = marker + trimmer.push(part ? part.content : e.token.special ? '' : e.textDelta);
          yield* say(calls ? calls.push(text) : text);
          break;
        }
        case 'end': {
          counts.generatedTokens = e.generatedTokens;
          const rest = splitter ? trimmer.push(splitter.finish()) + trimmer.finish('') : trimmer.finish(e.generatedText);
          yield* closeThoughts();
          const end = calls ? calls.finish(rest, e.finishReason !== 'length') : { text: rest, calls: null };
          const incomplete = e.finishReason === 'length';
          if (!end.calls) yield* say(end.text);
          // The message item (opened here when no text came: it is sent all the same, unless calls answer alone).
          if (!end.calls || message) {
            const m = message ?? { id: itemId('msg'), text: '', index: output.length };
            const done = messageItem(m.id, m.text, incomplete ? 'incomplete' : 'completed', logprobs ?? undefined);
            if (!message) yield ev('response.output_item.added', { output_index: m.index, item: { ...done, status: 'in_progress', content: [] } });
            yield ev('response.output_text.done', { item_id: m.id, output_index: m.index, content_index: 0, text: m.text });
            yield ev('response.content_part.done', { item_id: m.id, output_index: m.index, content_index: 0, part: done.content[0] });
            yield ev('response.output_item.done', { output_index: m.index, item: done });
            output.push(done);
          }
          if (end.calls) {
            for (const c of end.calls) {
              const item = callItem(c), index = output.length;
              yield ev('response.output_item.added', { output_index: index, item: { ...item, status: 'in_progress', arguments: '' } });
              yield ev('response.function_call_arguments.delta', { item_id: item.id, output_index: index, delta: c.arguments });
              yield ev('response.function_call_arguments.done', { item_id: item.id, output_index: index, arguments: c.arguments });
              yield ev('response.output_item.done', { output_index: index, item });
              output.push(item);
            }
          }
          settled = true;
          const response = responseJson(head, s, output, incomplete, counts);
          keep(response);
          yield ev(incomplete ? 'response.incomplete' : 'response.completed', { response });
          return;
        }
        case 'error':
          throw e.error;
        default:
          throw unknownEvent(e);
      }
    }
    throw endedEarly(run);
  } catch (err) {
    settled = true;
    const body = openAiErrorBody(toHttpError(err, 0), run.secrets);
    if (toHttpError(err, 0).status >= 500) reply.log.error({ error_type: body.error.code }, 'response stream failed');
    yield ev('error', { code: body.error.code, message: body.error.message, param: null });
  } finally {
    if (!settled) cancelRun(run, 'response stream closed');
  }
}
