// POST /v1/completions and POST /v1/chat/completions (OpenAI-compatible), whole or streamed (SSE chunks
// ending with `data: [DONE]`). `model` picks the adapter (engine.adapterForModel). Errors keep the HTTP
// statuses of the other routes but take OpenAI's shape, `{"error": {message, type, param, code}}`, which
// OpenAI SDKs parse (code = weft's error_type); a failure mid-stream is one such `data:` event, then [DONE].
import { badWordTokens, checkFirstTokenLeft } from './token-filters.js';
import type { Span } from '@opentelemetry/api';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { EngineError, type AdapterRef, type GenerateRequest, type GenerationEngine } from '../engine/types.js';
import { nobodyToAnswer, toHttpError, validationError } from './errors.js';
import { runBeamSearch, takeBeamSearch, type BeamSearch } from './beam-search.js';
import { spanOf } from './lifecycle.js';
import {
  adapterAuthorization, allOrCancel, cancelRun, endedEarly, requestSecrets, runEvents, sendSse, startEngineRun, startRuns, unknownEvent, type EngineRun,
} from './engine-run.js';
import {
  SSE_DONE,
  CompletionLogprobs,
  StopTrimmer,
  chatChoice,
  chatChunk,
  chatJson,
  chatLogprobs,
  chatTokenLogprob,
  completionChoice,
  completionChunk,
  completionJson,
  finishReasonOf,
  openAiErrorBody,
  responseHead,
  toolCallJson,
  usageChunk,
  usageJson,
  type ChatLogprobsJson,
  type ChatTokenLogprobJson,
  type CompletionLogprobsJson,
  type OpenAiFinishReason,
  type ResponseHead,
  type UsageJson,
} from './openai-responses.js';
import { validateChatBody, validateCompletionBody, type ValidChat, type ValidCompletion, type ValidOpenAi } from './openai-validate.js';
import { takeSuffix, withSuffix } from './openai-suffix.js';
import { isJsonObject } from './json.js';
import { promptOpensThinking, ReasoningSplitter } from '../engine/reasoning.js';
import type { ToolCall, ToolUse } from './openai-tools.js';
import { ToolCallStream, answerCalls, answerDelta, promptMessages, toolFormat, type ToolFormat } from './tool-formats.js';
import { sseFrame } from './responses.js';
import { MAX_SEED, type ValidationLimits } from './validate.js';
import type { SamplingDefaults } from './generation-defaults.js';
import { predictionDetails, predictionTokens } from './predicted-outputs.js';
import { loadImages } from './content-parts.js';
import type { PreparedImage } from '../vision/index.js';

export interface OpenAiDeps {
  engine: GenerationEngine;
  /** The server's body limit (named in the 413 message). */
  bodyLimitBytes: number;
  /** Whether an `Authorization: Bearer` token stands for an adapter's access token (false with API keys on). */
  bearerIsAdapterToken?: boolean;
  /** --generation-config's defaults for omitted sampling fields (generation-defaults.ts); null/absent: none. */
  samplingDefaults?: SamplingDefaults | null;
}

/** What the OpenAI validators need from the server: its limits, settings and --generation-config defaults. */
export function openAiLimits(deps: OpenAiDeps): ValidationLimits {
  const info = deps.engine.info;
  return { maxTotalTokens: info.maxTotalTokens, defaultAdapterSource: info.defaultAdapterSource,
    requestChatTemplate: info.trustRequestChatTemplate, toolFormat: info.toolFormat, samplingDefaults: deps.samplingDefaults ?? null };
}

export type Kind = 'completion' | 'chat';

/** A started generation (one choice): its events (the first already read), what shapes its answer, its cancel. */
export interface Run extends EngineRun {
  kind: Kind;
  valid: ValidOpenAi;
  head: ResponseHead;
  span: Span;
  /** The choice's index (`n` > 1: one run per choice). */
  index: number;
  /** The prompt text (echoed back with `echo`). */
  prompt: string;
  /** Token ids to text (the echoed prompt's tokens). */
  decode: (ids: number[]) => string;
  /** Chat with tools: an answer that is a call comes back as tool_calls. */
  tools: ToolUse | undefined;
  /** How calls look in the answer (--tool-call-parser). */
  toolFormat: ToolFormat;
  /** Chat with a reasoning parser (--reasoning-parser): a new splitter of this choice's thoughts from its answer. */
  splitter: (() => ReasoningSplitter) | null;
  /** include_reasoning: the thoughts are returned (else dropped). */
  includeReasoning: boolean;
  /** The prediction's length in tokens (predicted-outputs.ts; 0: none). */
  predictionTokens: number;
  /** Log-probs of the answer's tokens only, not of a reasoning parser's thoughts (the Responses API's output_text). */
  answerLogprobsOnly?: boolean;
}

export function registerOpenAiRoutes(app: FastifyInstance, deps: OpenAiDeps): void {
  const errorHandler = openAiErrorHandler(deps.bodyLimitBytes);
  const limits = () => openAiLimits(deps);
  app.post('/v1/completions', { errorHandler }, async (request, reply) => {
    const { beam, rest } = takeBeamSearch(request.body);
    const { suffix, body } = takeSuffix(rest);
    const parsed = validateCompletionBody(body, limits(), adapterAuthorization(request, deps.bearerIsAdapterToken));
    const valid = suffix === undefined ? parsed : withSuffix(parsed, suffix, deps.engine.info.fimFormat ?? null);
    if (beam) {
      if (valid.prompts.length !== 1) throw validationError('beam search takes one prompt per request');
      return beamAnswer(request, reply, deps, 'completion', valid, beam, valid.prompts[0]!, false);
    }
    const runs = await start(request, reply, deps, 'completion', valid, valid.prompts);
    return valid.stream ? sendSse(reply, sseChunks(runs, reply)) : whole(runs);
  });
  app.post('/v1/chat/completions', { errorHandler }, async (request, reply) => {
    const { beam, rest } = takeBeamSearch(request.body);
    const valid = validateChatBody(rest, limits(), adapterAuthorization(request, deps.bearerIsAdapterToken));
    const inputs = deps.engine.renderChat(promptMessages(deps.engine.info.toolFormat, valid.messages, valid.tools), valid.render);
    if (beam && valid.images.length > 0) throw validationError('beam search does not take images; send `use_beam_search` false');
    if (beam) return beamAnswer(request, reply, deps, 'chat', valid, beam, inputs, true);
    const runs = await start(request, reply, deps, 'chat', valid, [inputs], valid.tools, true, await loadImages(deps.engine, valid.images));
    return valid.stream ? sendSse(reply, sseChunks(runs, reply)) : whole(runs);
  });
}

/** use_beam_search (beam-search.ts): the n best beams as n choices, whole (no streaming). */
async function beamAnswer(request: FastifyRequest, reply: FastifyReply, deps: OpenAiDeps, kind: Kind, valid: ValidOpenAi, search: BeamSearch,
  prompt: string | number[], templated: boolean) {
  const engine = deps.engine;
  let promptIds = typeof prompt === 'string' ? (await engine.tokenize(prompt, templated)).map((t) => t.id) : prompt;
  if (valid.truncate !== undefined && promptIds.length > valid.truncate) promptIds = promptIds.slice(-valid.truncate);
  const span = spanOf(request);
  span.setAttribute('weft.beam_width', search.width);
  // A --generation-config default max_tokens fits the room the prompt leaves, as the engine fits it (fitMaxNewTokens).
  const maxNewTokens = valid.fitMaxNewTokens ? Math.max(1, Math.min(valid.maxNewTokens, engine.info.maxTotalTokens - promptIds.length))
    : valid.maxNewTokens;
  const beams = await runBeamSearch({ engine, request, reply, span, promptIds, adapter: adapterOf(engine, valid), search,
    maxNewTokens, ignoreEos: valid.ignoreEos, sampling: valid.sampling, badWords: valid.badWords, priority: valid.priority });
  const head = responseHead(kind, valid.model || engine.info.modelId);
  const usage = usageJson(promptIds.length, beams.reduce((n, b) => n + b.tokens.length, 0), 0);
  const answers = beams.map((b, i) => ({ i, text: engine.detokenize(b.complete ? b.tokens.slice(0, -1) : b.tokens),
    finish: b.complete ? 'stop' as const : 'length' as const }));
  return kind === 'chat' ? chatJson(head, answers.map((a) => chatChoice(a.i, a.text, null, a.finish)), usage)
    : completionJson(head, answers.map((a) => completionChoice(a.i, a.text, null, a.finish)), usage);
}

/** `model` → adapter; with `adapter_source` the model is taken as an adapter id in that source. */
function adapterOf(engine: GenerationEngine, valid: ValidOpenAi): AdapterRef | null {
  const ref = engine.adapterForModel(valid.model, valid.apiToken);
  if (ref === null || valid.adapterSource === undefined || valid.model === undefined) return ref;
  return { ...ref, id: valid.model, source: valid.adapterSource };
}

/** Starts one engine request per sequence: n (or best_of) per prompt, prompt by prompt (index = prompt x per + j,
 * sampled with seed + j); if one cannot start, none runs. A prompt is text, or token ids (used as given; echoed
 * as their decoded text). */
export async function start(
  request: FastifyRequest,
  reply: FastifyReply,
  deps: OpenAiDeps,
  kind: Kind,
  valid: ValidOpenAi,
  prompts: readonly (string | number[])[],
  tools?: ToolUse,
  templated = false,  // the prompts were rendered by the chat template (GenerateRequest.templated)
  images: readonly PreparedImage[] = [],  // the (one) prompt's images, loaded once for every choice
): Promise<Run[]> {
  const adapter = adapterOf(deps.engine, valid);
  const span = spanOf(request);
  span.setAttribute('weft.adapter_id', adapter?.id ?? '');
  if (adapter) span.setAttribute('weft.adapter_source', adapter.source);
  const per = valid.bestOf ?? valid.n;
  const total = prompts.length * per;
  if (total > 1) span.setAttribute('weft.choices', total);
  const head = responseHead(kind, valid.model || deps.engine.info.modelId);
  const badWords = valid.badWords.length > 0 ? await badWordTokens(deps.engine, valid.badWords) : [];
  checkFirstTokenLeft(valid.sampling.allowedTokens, badWords, deps.engine.info.vocabSize);
  const prediction = valid.prediction !== undefined ? await predictionTokens(deps.engine, valid.prediction) : [];
  const started = await startRuns(total, reply, (index) => {
    const prompt = prompts[Math.floor(index / per)]!;
    const sampling = { ...valid.sampling, seed: (valid.sampling.seed + (index % per)) % (MAX_SEED + 1), ...(badWords.length > 0 ? { badWords } : {}),
      ...(prediction.length > 0 ? { prediction } : {}) };
    const req: GenerateRequest = {
      requestId: total > 1 ? `${request.id}.${index}` : request.id, inputs: typeof prompt === 'string' ? prompt : '',
      ...(typeof prompt === 'string' ? {} : { inputIds: prompt }), ...(templated ? { templated } : {}), adapter, merge: null, sampling,
      maxNewTokens: valid.maxNewTokens, stop: valid.stop, promptLogprobs: (valid.echo ?? false) && valid.logprobs, topN: valid.topN,
      ignoreEos: valid.ignoreEos, ...(valid.constraint !== undefined ? { constraint: valid.constraint } : {}),
      ...(valid.minNewTokens > 0 ? { minNewTokens: valid.minNewTokens } : {}),
      ...(valid.stopTokenIds.length > 0 ? { stopTokenIds: valid.stopTokenIds } : {}),
      ...(valid.truncate !== undefined ? { truncate: valid.truncate } : {}),
      ...(valid.priority !== 0 ? { priority: valid.priority } : {}),
      ...(valid.keepSpecialTokens ? { keepSpecialTokens: true } : {}),
      ...(valid.fitMaxNewTokens ? { fitMaxNewTokens: true } : {}),
      ...(images.length > 0 ? { images } : {}),
    };
    return startEngineRun(deps.engine, req, span, request, reply);
  });
  const texts = prompts.map((p) => (typeof p === 'string' ? p : valid.echo ? deps.engine.detokenize(p) : ''));
  const decode = (ids: number[]) => deps.engine.detokenize(ids);
  // skip_special_tokens false asks for the raw text: no split then.
  const format = kind === 'chat' && !valid.keepSpecialTokens ? deps.engine.info.reasoning : null;
  const includeReasoning = (valid as Partial<ValidChat>).includeReasoning ?? true;
  return started.map((run, index) => {
    const prompt = texts[Math.floor(index / per)]!;
    const opensThinking = format === 'think' && promptOpensThinking(prompt);
    return { ...run, kind, valid, head, span, index, prompt, decode, tools, toolFormat: toolFormat(deps.engine.info.toolFormat), includeReasoning,
      predictionTokens: prediction.length,
      splitter: format ? () => new ReasoningSplitter(format, opensThinking, tools !== undefined && deps.engine.info.toolFormat === 'harmony') : null };
  });
}

export interface ChoiceResult {
  text: string;
  /** The thoughts a reasoning parser split out (null: no parser, or include_reasoning false). */
  reasoning: string | null;
  /** Generated tokens that were thoughts (the reasoning parser's, markers excluded). */
  reasoningTokens: number;
  /** The answer is these calls (chat with tools); `text` is then what the answer said before them. */
  calls: ToolCall[] | null;
  logprobs: CompletionLogprobsJson | ChatLogprobsJson | null;
  finish: OpenAiFinishReason;
  promptTokens: number;
  cachedTokens: number;
  generatedTokens: number;
  /** Generated tokens that were accepted speculative drafts (with a prediction: the prediction's). */
  acceptedDraftTokens: number;
  /** Mean log-prob of the generated tokens (best_of ranks by it); -Infinity when none. */
  meanLogprob: number;
}

/** Every choice whole; the first failure cancels the others and answers for the request. */
async function whole(runs: Run[]): Promise<object> {
  const all = await allOrCancel(runs, choice, 'another choice of the request failed');
  const { head, kind, valid } = runs[0]!;
  const per = valid.bestOf ?? valid.n;
  const usage = usageOf(all.map((r, index) => ({ ...r, index })), per, runs[0]!);
  const results = per > valid.n ? bestOfEach(all, per, valid.n) : all;
  if (kind === 'chat') {
    const legacy = runs[0]!.tools?.legacy ?? false;
    return chatJson(head, results.map((r, i) => chatChoice(i, r.text, r.logprobs as ChatLogprobsJson | null, r.finish, r.calls, legacy,
      r.reasoning)), usage);
  }
  return completionJson(head, results.map((r, i) => completionChoice(i, r.text, r.logprobs as CompletionLogprobsJson | null, r.finish)), usage);
}

/** best_of: of each prompt's `per` sequences, the n with the highest mean token log-prob, best first (ties: the
 * lower seed), prompt by prompt. */
function bestOfEach(results: readonly ChoiceResult[], per: number, n: number): ChoiceResult[] {
  const out: ChoiceResult[] = [];
  for (let p = 0; p < results.length; p += per) {
    const group = results.slice(p, p + per).map((r, j) => ({ r, j }));
    group.sort((a, b) => b.r.meanLogprob - a.r.meanLogprob || a.j - b.j);
    out.push(...group.slice(0, n).map((g) => g.r));
  }
  return out;
}

type ChoiceCounts = Pick<ChoiceResult, 'promptTokens' | 'cachedTokens' | 'generatedTokens' | 'acceptedDraftTokens'> & { index: number };

/** Each prompt once (its n choices share it: the first of them counts), completion tokens of every choice; with a
 * prediction, how much of it the choices took. */
function usageOf(results: readonly ChoiceCounts[], n: number, run: Pick<Run, 'valid' | 'predictionTokens'>): UsageJson {
  const firsts = results.filter((r) => r.index % n === 0);
  const sum = (rs: readonly ChoiceCounts[], f: (r: ChoiceCounts) => number) => rs.reduce((s, r) => s + f(r), 0);
  const usage = usageJson(sum(firsts, (r) => r.promptTokens), sum(results, (r) => r.generatedTokens), sum(firsts, (r) => r.cachedTokens));
  if (run.valid.prediction === undefined) return usage;
  return { ...usage, completion_tokens_details: predictionDetails(run.predictionTokens, results.map((r) => r.acceptedDraftTokens)) };
}

export async function choice(run: Run): Promise<ChoiceResult> {
  let promptTokens = 0;
  let cachedTokens = 0;
  const completionLogprobs = new CompletionLogprobs();
  const chatContent: ChatTokenLogprobJson[] = [];
  const { echo = false, scoreOnly = false } = run.valid;
  let logprobSum = 0;
  let tokens = 0;
  // The text as the stream would send it, token by token (min_tokens decides where stop sequences count).
  const trimmer = new StopTrimmer(run.valid.stop, run.valid.minNewTokens, run.valid.includeStop);
  const splitter = run.splitter?.() ?? null;
  let text = '';
  let reasoning = '';
  let reasoningTokens = 0;
  for await (const ev of runEvents(run)) {
    switch (ev.type) {
      case 'admitted':
        promptTokens = ev.promptTokens;
        cachedTokens = ev.cachedTokens;
        if (echo && run.valid.logprobs && ev.prefill) completionLogprobs.addPrompt(ev.prefill, run.decode);
        break;
      case 'token':
        logprobSum += ev.token.logprob;
        tokens++;
        let thought = false;  // the token is no part of the answer's text: thoughts, or a reasoning marker
        if (!scoreOnly) {
          const delta = ev.token.special ? '' : ev.textDelta;
          const part = splitter ? splitter.push(ev.token.text, delta) : { reasoning: '', content: delta };
          // A piece of a character split over tokens has no text yet: it is the answer's when the answer is going on.
          thought = splitter !== null && part.content === '' && !(delta === '' && splitter.answering);
          reasoning += part.reasoning;
          if (part.reasoning !== '') reasoningTokens++;
          // Call markup that is a special token (Mistral's [TOOL_CALLS]) stays in the answer the parser reads.
          text += (run.tools ? answerDelta(run.toolFormat, ev.token, '') : '') + trimmer.push(part.content);
        }
        if (scoreOnly || !run.valid.logprobs || ev.token.special || (run.answerLogprobsOnly && thought)) break;
        if (run.kind === 'chat') chatContent.push(chatTokenLogprob(ev.token, ev.textDelta));
        else completionLogprobs.add(ev.token, ev.textDelta);
        break;
      case 'end': {
        if (run.index === 0) run.span.setAttribute('weft.finish_reason', ev.finishReason);
        const logprobs = !run.valid.logprobs ? null : run.kind === 'chat' ? chatLogprobs(chatContent) : completionLogprobs.json;
        // Split, the text is the answer alone: the engine's whole text is no longer its continuation.
        // With a splitter the tokens carried all the text (plus what it still held).
        const generated = scoreOnly ? '' : text + (splitter ? trimmer.push(splitter.finish()) + trimmer.finish('') : trimmer.finish(ev.generatedText));
        const parsed = run.tools && ev.finishReason !== 'length' ? answerCalls(run.toolFormat, generated, run.tools) : null;
        return { text: parsed ? parsed.content ?? '' : (echo ? run.prompt : '') + generated, calls: parsed?.calls ?? null, logprobs,
          reasoning: splitter && run.includeReasoning ? reasoning : null, reasoningTokens, finish: scoreOnly ? 'length' : finishReasonOf(ev.finishReason),
          promptTokens, cachedTokens, generatedTokens: scoreOnly ? 0 : ev.generatedTokens, acceptedDraftTokens: ev.acceptedDraftTokens ?? 0,
          meanLogprob: tokens > 0 ? logprobSum / tokens : -Infinity };
      }
      case 'error':
        throw ev.error;
      default:
        throw unknownEvent(ev);
    }
  }
  throw endedEarly(run);
}

/** What one choice's stream yields: SSE frames, then its token counts (or a failure). */
type ChoiceFrame = { frame: string } | { end: ChoiceCounts };

/**
 * The choices' chunks interleaved as they come, then the usage chunk (include_usage) and [DONE]. The first
 * failure ends the stream with one error event and cancels the other choices; so does the client leaving.
 */
async function* sseChunks(runs: Run[], reply: FastifyReply): AsyncGenerator<string> {
  const streams = runs.map((run) => choiceFrames(run));
  const next = (i: number) => streams[i]!.next().then((r) => ({ i, r }), (error: unknown) => ({ i, error }));
  const pending = new Map(streams.map((_, i) => [i, next(i)] as const));
  const ends: ChoiceCounts[] = [];
  let settled = false;
  let failed = false;
  try {
    while (pending.size > 0) {
      const got = await Promise.race(pending.values());
      if ('error' in got) {
        settled = failed = true;
        yield errorFrame(got.error, runs[got.i]!, reply);
        return;
      }
      if (got.r.done) {
        pending.delete(got.i);
        continue;
      }
      pending.set(got.i, next(got.i));
      const item = got.r.value;
      if ('frame' in item) yield item.frame;
      else ends.push(item.end);
    }
    settled = true;
    const { kind, head, valid } = runs[0]!;
    if (ends.length < runs.length) {
      if (!runs[0]!.abort.signal.aborted) yield errorFrame(endedEarly(runs[0]!), runs[0]!, reply);
      return;
    }
    if (valid.includeUsage) yield sseFrame(usageChunk(kind, head, usageOf(ends, valid.n, runs[0]!)));
    yield SSE_DONE;
  } finally {
    // Reached early when the response stream is destroyed (client gone) or a choice failed: cancel the rest.
    if (!settled) for (const run of runs) run.abort.abort(new Error('response stream closed'));
    if (failed) for (const run of runs) cancelRun(run, 'another choice of the request failed');
    for (const stream of streams) stream.return(undefined).catch(() => undefined);
  }
}

/** One choice: chat opens with a role chunk; then a chunk per token that adds text; a finish chunk. */
async function* choiceFrames(run: Run): AsyncGenerator<ChoiceFrame> {
  const { head, valid, index } = run;
  const chunk = (text: string | null, logprobs: ChatTokenLogprobJson | null, finish: OpenAiFinishReason | null) => ({
    frame: sseFrame(run.kind === 'chat'
      ? chatChunk(head, text === null ? {} : { content: text }, logprobs ? chatLogprobs([logprobs]) : null, finish, valid.includeUsage, index)
      : completionChunk(head, text ?? '', null, finish, valid.includeUsage, index)),
  });
  const trimmer = new StopTrimmer(valid.stop, valid.minNewTokens, valid.includeStop);
  const completionLogprobs = new CompletionLogprobs();
  const { echo = false, scoreOnly = false } = valid;
  const splitter = run.splitter?.() ?? null;
  // With tools, text goes out until calls begin (tool-formats.ts); the calls are held back and sent whole as
  // tool_calls (legacy functions: function_call) at the end.
  const calls = run.tools ? new ToolCallStream(run.toolFormat, run.tools) : null;
  let promptTokens = 0;
  let cachedTokens = 0;
  for await (const ev of runEvents(run)) {
    switch (ev.type) {
      case 'admitted':
        promptTokens = ev.promptTokens;
        cachedTokens = ev.cachedTokens;
        if (run.kind === 'chat') {
          yield { frame: sseFrame(chatChunk(head, { role: 'assistant', content: '' }, null, null, valid.includeUsage, index)) };
        } else if (echo) {
          const lp = valid.logprobs && ev.prefill ? completionLogprobs.addPrompt(ev.prefill, run.decode) : null;
          yield { frame: sseFrame(completionChunk(head, run.prompt, lp, null, valid.includeUsage, index)) };
        }
        break;
      case 'token': {
        if (scoreOnly || trimmer.stopped) break;
        // With a reasoning parser the token's thoughts go out as reasoning_content; its answer part (if any) goes on.
        const part = splitter?.push(ev.token.text, ev.token.special ? '' : ev.textDelta) ?? null;
        if (part && part.reasoning !== '' && run.includeReasoning) {
          const lp = valid.logprobs ? chatLogprobs([chatTokenLogprob(ev.token, ev.textDelta)]) : null;
          yield { frame: sseFrame(chatChunk(head, { reasoning_content: part.reasoning }, lp, null, valid.includeUsage, index)) };
        }
        // A special token that is call markup (Mistral's [TOOL_CALLS]) goes to the calls, not through the stop trimmer.
        const marker = calls ? answerDelta(run.toolFormat, ev.token, '') : '';
        // No answer text (a special token says nothing, unless the splitter made it call markup), but it counts
        // toward min_tokens.
        if (part ? part.content === '' : ev.token.special) {
          trimmer.push('');
          if (marker === '') break;
        }
        const pushed = marker + trimmer.push(marker !== '' ? '' : part ? part.content : ev.textDelta);
        const text = calls ? calls.push(pushed) : pushed;
        if (calls && text === '') break;
        if (!valid.logprobs) {
          if (text !== '') yield chunk(text, null, null);
        } else if (run.kind === 'chat') {
          yield chunk(text, chatTokenLogprob(ev.token, ev.textDelta), null);
        } else {
          const lp = completionLogprobs.add(ev.token, ev.textDelta);
          yield { frame: sseFrame(completionChunk(head, text, lp, null, valid.includeUsage, index)) };
        }
        break;
      }
      case 'end': {
        if (index === 0) run.span.setAttribute('weft.finish_reason', ev.finishReason);
        const rest = scoreOnly ? '' : splitter ? trimmer.push(splitter.finish()) + trimmer.finish('') : trimmer.finish(ev.generatedText);
        if (calls) {
          const end = calls.finish(rest, ev.finishReason !== 'length');
          if (end.calls && run.tools!.legacy) {  // one call (legacy requests never allow several)
            const { name, arguments: args } = end.calls[0]!;
            yield { frame: sseFrame(chatChunk(head, { function_call: { name, arguments: args } }, null, null, valid.includeUsage, index)) };
            yield { frame: sseFrame(chatChunk(head, {}, null, 'function_call', valid.includeUsage, index)) };
            yield { end: { promptTokens, cachedTokens, generatedTokens: ev.generatedTokens, acceptedDraftTokens: ev.acceptedDraftTokens ?? 0, index } };
            return;
          }
          if (end.calls) {
            const deltas = end.calls.map((c, i) => ({ index: i, ...toolCallJson(c) }));
            yield { frame: sseFrame(chatChunk(head, { tool_calls: deltas }, null, null, valid.includeUsage, index)) };
            yield { frame: sseFrame(chatChunk(head, {}, null, 'tool_calls', valid.includeUsage, index)) };
            yield { end: { promptTokens, cachedTokens, generatedTokens: ev.generatedTokens, acceptedDraftTokens: ev.acceptedDraftTokens ?? 0, index } };
            return;
          }
          if (end.text !== '') yield chunk(end.text, null, null);
        } else if (rest !== '') yield chunk(rest, null, null);
        yield chunk(null, null, scoreOnly ? 'length' : finishReasonOf(ev.finishReason));
        yield { end: { promptTokens, cachedTokens, generatedTokens: scoreOnly ? 0 : ev.generatedTokens, acceptedDraftTokens: ev.acceptedDraftTokens ?? 0, index } };
        return;
      }
      case 'error':
        throw ev.error;
      default:
        throw unknownEvent(ev);
    }
  }
}

/** A failure after the 200 went out: one OpenAI error event, then [DONE] so clients stop reading. */
function errorFrame(err: unknown, run: Run, reply: FastifyReply): string {
  const httpError = toHttpError(err, 0);
  const body = openAiErrorBody(httpError, run.secrets);
  run.span.setAttribute('weft.error_type', body.error.code);
  if (httpError.status >= 500) reply.log.error({ error_type: body.error.code, msg_text: body.error.message }, 'stream failed');
  else reply.log.info({ error_type: body.error.code }, 'stream ended with an error');
  return sseFrame(body) + SSE_DONE;
}

/** The route-level error handler: every error of these routes (body parsing included) in OpenAI's shape. */
export function openAiErrorHandler(bodyLimitBytes: number) {
  return (err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    if (nobodyToAnswer(err, request, reply)) {
      request.log.info({ err: err.message }, 'client went away (or the response had started); nothing sent');
      return;
    }
    const httpError = toHttpError(err, bodyLimitBytes);
    const fields = { status: httpError.status, error_type: httpError.errorType };
    if (httpError.status < 500) request.log.info(fields, 'request rejected');
    else if (httpError.errorType === 'internal' && !(err instanceof EngineError)) request.log.error({ ...fields, err }, 'request failed');
    else request.log.error({ ...fields, message: openAiErrorBody(httpError, requestSecrets(request)).error.message }, 'request failed');
    return reply.code(httpError.status).send(openAiErrorBody(httpError, requestSecrets(request)));
  };
}

