// Embeddings from the served model and its adapters: POST /v1/embeddings (OpenAI; vLLM's extras) and POST /embed
// (Text Embeddings Inference). Each input runs as a prefill whose final hidden states (after the final norm, what
// transformers' `hidden_states[-1]` holds) come back pooled as the model's sentence-transformers config says
// (sentence-transformers.ts: the last token's — how decoder embedding models such as Qwen3-Embedding are trained —
// or the mean, max or first of every position's; then its Dense and Normalize modules), L2-normalised unless asked
// not to, optionally cut to `dimensions` first (Matryoshka models). Inputs batch with other requests like any
// prefill, at any --num-shard, with any adapter (`model`, as on the other OpenAI routes).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GREEDY } from '../../protocol/index.js';
import { EngineError, type AdapterRef, type GenerateRequest, type GenerationEngine } from '../engine/types.js';
import { validationError } from './errors.js';
import type { Json } from './json.js';
import { spanOf } from './lifecycle.js';
import { adapterAuthorization, allOrCancel, runEvents, startEngineRun, startRuns, type EngineRun } from './engine-run.js';
import { openAiErrorHandler } from './openai-routes.js';
import { adapterSourceOf, bearerToken, knownFields } from './validate.js';
import { renderMessages } from './vllm-tokenize.js';
import { applyPoolSteps, type EmbeddingPipeline } from './sentence-transformers.js';

export { sentenceTransformersPooling } from './sentence-transformers.js';

/** Inputs one request may carry (OpenAI's limit). */
export const MAX_EMBEDDING_INPUTS = 2048;

export interface EmbeddingDeps {
  engine: GenerationEngine;
  bodyLimitBytes: number;
  bearerIsAdapterToken?: boolean;
  /** The model's embedding pipeline (sentence-transformers.ts embeddingPipeline); absent: the last token's state. */
  embedding?: EmbeddingPipeline;
}

/** The pipeline of deps: the model's, or (none read) the last token's final hidden state as it is. */
function pipelineOf(deps: EmbeddingDeps): EmbeddingPipeline {
  return deps.embedding ?? { pooling: 'last', steps: [], dimension: deps.engine.info.hiddenSize, refusal: null };
}

export interface EmbeddingJob {
  inputs: (string | number[])[];
  adapter: AdapterRef | null;
  normalize: boolean;
  dimensions: number | undefined;
  /** Keep only the last this many tokens of each input (vLLM's truncate_prompt_tokens; TEI's truncate). */
  truncate: number | undefined;
  /** Rendered by the chat template: the tokenizer adds no special tokens. */
  templated?: boolean;
  /** How the final hidden states become the vector (pooling, Dense, Normalize); absent: the last token's state as it
   * is (what classifier heads read). */
  pipeline?: EmbeddingPipeline;
}

export function registerEmbeddingRoutes(app: FastifyInstance, deps: EmbeddingDeps): void {
  const { errorHandler, preHandler } = embeddingRouteOptions(deps);
  app.post('/v1/embeddings', { errorHandler, preHandler }, async (request, reply) => {
    const { job, base64, model } = openAiJob(request, deps);
    const { vectors, promptTokens } = await embed(request, reply, deps.engine, job);
    return {
      object: 'list', model,
      data: vectors.map((v, index) => ({ object: 'embedding', index, embedding: base64 ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') : [...v] })),
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    };
  });
  // TEI: {inputs: string | string[], normalize?, truncate?, dimensions?} -> [[…], …]; weft adds adapter_id (+ source, api_token).
  app.post('/embed', { errorHandler, preHandler }, async (request, reply) => {
    const { vectors } = await embed(request, reply, deps.engine, teiJob(request, deps));
    return vectors.map((v) => [...v]);
  });
}

/** What every embedding route is registered with: OpenAI-shaped errors, and the refusal of a model whose
 * sentence-transformers config weft cannot run. */
export function embeddingRouteOptions(deps: EmbeddingDeps) {
  const errorHandler = openAiErrorHandler(deps.bodyLimitBytes);
  // Vectors the model was not trained to give would be wrong silently: refused, not approximated.
  const refusal = deps.embedding?.refusal ?? null;
  const preHandler = async () => {
    if (refusal !== null) throw validationError(`${refusal} — so this model's embeddings cannot be served as it was trained to give them`);
  };
  return { errorHandler, preHandler };
}

/** The body's fields, each one of `known`. */
export const body = (request: FastifyRequest, known: readonly string[]): Json => knownFields(request.body, known);

/** `api_token`, else the bearer token when it stands for adapter access (not an API key). */
function apiTokenOf(b: Json, request: FastifyRequest, deps: EmbeddingDeps): string | undefined {
  return typeof b.api_token === 'string' ? b.api_token : bearerToken(adapterAuthorization(request, deps.bearerIsAdapterToken));
}

/** The job, and how to answer: base64 vectors, and the `model` named (the base model's id when none). */
function openAiJob(request: FastifyRequest, deps: EmbeddingDeps): { job: EmbeddingJob; base64: boolean; model: string } {
  const b = body(request, ['input', 'model', 'encoding_format', 'dimensions', 'user', 'truncate_prompt_tokens', 'normalize',
    'adapter_source', 'api_token', ...CHAT_KEYS]);
  if (b.encoding_format !== undefined && b.encoding_format !== 'float' && b.encoding_format !== 'base64') {
    throw validationError('`encoding_format` must be "float" or "base64"');
  }
  if (b.user !== undefined && typeof b.user !== 'string') throw validationError('`user` must be a string');
  const { adapter, model } = openAiAdapter(b, request, deps);
  const pipeline = pipelineOf(deps);
  const job: EmbeddingJob = { ...inputOrMessages(b, deps.engine), adapter, normalize: flag(b.normalize, 'normalize', true),
    dimensions: dimensionsOf(b.dimensions, pipeline.dimension), truncate: truncateOf(b.truncate_prompt_tokens, 'truncate_prompt_tokens'),
    pipeline };
  return { job, base64: b.encoding_format === 'base64', model };
}

/** vLLM's chat embeddings: a conversation rendered with the chat template instead of `input`. */
const CHAT_KEYS = ['messages', 'add_generation_prompt', 'continue_final_message', 'chat_template_kwargs', 'add_special_tokens'];

/** `input`, or (vLLM) `messages` rendered as one text — no generation prompt unless asked, and no special tokens
 * added by the tokenizer unless `add_special_tokens` (the template writes its own, as for chat completions). */
function inputOrMessages(b: Json, engine: GenerationEngine): Pick<EmbeddingJob, 'inputs' | 'templated'> {
  if (b.messages === undefined) {
    const chatOnly = CHAT_KEYS.find((k) => b[k] !== undefined);
    if (chatOnly) throw validationError(`\`${chatOnly}\` goes with \`messages\``);
    return { inputs: inputsOf(b.input, 'input', true), templated: false };
  }
  if (b.input !== undefined) throw validationError('give `input` or `messages`, not both');
  return { inputs: [renderMessages(engine, b, false)], templated: !flag(b.add_special_tokens, 'add_special_tokens', false) };
}

/** The adapter `model` names (+ `adapter_source`, `api_token`), as on the OpenAI routes; and the `model` to answer with. */
export function openAiAdapter(b: Json, request: FastifyRequest, deps: EmbeddingDeps): { adapter: AdapterRef | null; model: string } {
  if (b.model !== undefined && typeof b.model !== 'string') throw validationError('`model` must be a string');
  const source = b.adapter_source === undefined ? undefined : adapterSourceOf(b.adapter_source);
  let adapter = deps.engine.adapterForModel(b.model as string | undefined, apiTokenOf(b, request, deps));
  if (adapter && source !== undefined) adapter = { ...adapter, source };
  return { adapter, model: typeof b.model === 'string' ? b.model : deps.engine.info.modelId };
}

function teiJob(request: FastifyRequest, deps: EmbeddingDeps): EmbeddingJob {
  const b = body(request, ['inputs', 'normalize', 'truncate', 'truncation_direction', 'dimensions', 'prompt_name', 'adapter_id',
    'adapter_source', 'api_token']);
  if (b.prompt_name !== undefined && b.prompt_name !== null) throw validationError('`prompt_name` is not supported: put the instruction in the input');
  if (b.truncation_direction !== undefined && b.truncation_direction !== 'Left' && b.truncation_direction !== 'left') {
    throw validationError('`truncation_direction` must be "Left" (the last tokens are kept: the pooled position is the last)');
  }
  const source = adapterSourceOf(b.adapter_source ?? deps.engine.info.defaultAdapterSource);
  if (b.adapter_id !== undefined && (typeof b.adapter_id !== 'string' || b.adapter_id === '')) throw validationError('`adapter_id` must be a non-empty string');
  const apiToken = apiTokenOf(b, request, deps);
  const adapter: AdapterRef | null = typeof b.adapter_id === 'string'
    ? { id: b.adapter_id, source, ...(apiToken !== undefined ? { apiToken } : {}) } : null;
  const pipeline = pipelineOf(deps);
  return { inputs: inputsOf(b.inputs, 'inputs', false), adapter, normalize: flag(b.normalize, 'normalize', true),
    dimensions: dimensionsOf(b.dimensions, pipeline.dimension),
    truncate: flag(b.truncate, 'truncate', false) ? deps.engine.info.maxInputLength : undefined, pipeline };
}

/** A string, a list of strings, a list of token ids, or a list of such lists (token ids: OpenAI only). */
export function inputsOf(v: unknown, name: string, tokenIds: boolean): (string | number[])[] {
  const isIds = (x: unknown): x is number[] => Array.isArray(x) && x.length > 0 && x.every((t) => Number.isInteger(t) && t >= 0);
  let list: unknown[];
  if (typeof v === 'string') list = [v];
  else if (tokenIds && isIds(v)) list = [v];
  else if (Array.isArray(v)) list = v;
  else throw validationError(`\`${name}\` must be a string or a list of ${tokenIds ? 'strings or token-id lists' : 'strings'}`);
  if (list.length === 0) throw validationError(`\`${name}\` is empty`);
  if (list.length > MAX_EMBEDDING_INPUTS) throw validationError(`\`${name}\` holds ${list.length} inputs; at most ${MAX_EMBEDDING_INPUTS} per request`);
  return list.map((x, i) => {
    if (typeof x === 'string') {
      if (x === '') throw validationError(`\`${name}[${i}]\` is an empty string: there is nothing to embed`);
      return x;
    }
    if (tokenIds && isIds(x)) return x;
    throw validationError(`\`${name}[${i}]\` must be a non-empty ${tokenIds ? 'string or list of token ids' : 'string'}`);
  });
}

export function flag(v: unknown, name: string, dflt: boolean): boolean {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw validationError(`\`${name}\` must be true or false`);
  return v;
}

/** `dimensions`: from 1 to the embedding's length (the hidden size, or the last Dense module's out_features). */
function dimensionsOf(v: unknown, length: number): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Number.isInteger(v) || (v as number) < 1 || (length > 0 && (v as number) > length)) {
    throw validationError(`\`dimensions\` must be an integer from 1 to the model's embedding size, ${length}`);
  }
  return v as number;
}

export function truncateOf(v: unknown, name: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Number.isInteger(v) || (v as number) < 1) throw validationError(`\`${name}\` must be a positive integer`);
  return v as number;
}

/**
 * Runs the inputs — at most half of --max-concurrent-requests at a time, so a request of many inputs (up to
 * MAX_EMBEDDING_INPUTS) is not refused as an overload on an idle server; each wave all starts or none — then the
 * pipeline's Dense and Normalize modules on each pooled state (a Normalize module always: it is part of the model,
 * as in sentence-transformers), cut to `dimensions`, L2-normalise (the request's `normalize`).
 */
export async function embed(request: FastifyRequest, reply: FastifyReply, engine: GenerationEngine, job: EmbeddingJob):
  Promise<{ vectors: Float32Array[]; promptTokens: number }> {
  const span = spanOf(request);
  span.setAttribute('weft.adapter_id', job.adapter?.id ?? '');
  span.setAttribute('weft.embedding_inputs', job.inputs.length);
  const wave = Math.max(1, Math.floor(engine.info.maxConcurrentRequests / 2));
  const results: { vector: Float32Array; promptTokens: number }[] = [];
  for (let from = 0; from < job.inputs.length; from += wave) {
    const count = Math.min(wave, job.inputs.length - from);
    const runs = await startRuns(count, reply, (k): Promise<EngineRun> => {
      const i = from + k, input = job.inputs[i]!;
      const req: GenerateRequest = {
        requestId: job.inputs.length > 1 ? `${request.id}.${i}` : request.id, inputs: typeof input === 'string' ? input : '',
        ...(typeof input === 'string' ? {} : { inputIds: input }), adapter: job.adapter, merge: null,
        sampling: GREEDY,
        maxNewTokens: 1, stop: [], promptLogprobs: false, topN: 0, ignoreEos: true, embed: true, ...(job.templated ? { templated: true } : {}),
        ...(job.pipeline && job.pipeline.pooling !== 'last' ? { pooling: job.pipeline.pooling } : {}),
        ...(job.truncate !== undefined ? { truncate: job.truncate } : {}),
      };
      return startEngineRun(engine, req, span, request, reply);
    });
    results.push(...await allOrCancel(runs, async (run) => {
      let vector: Float32Array | undefined, promptTokens = 0;
      for await (const ev of runEvents(run)) {
        if (ev.type === 'admitted') {
          vector = ev.embedding;
          promptTokens = ev.promptTokens;
        } else if (ev.type === 'error') {
          throw ev.error;
        }
      }
      // Ended before its prefill came back: cancelled (the client went away, or another input failed).
      if (!vector) throw new EngineError('validation', 'request was cancelled before its embedding was computed');
      const modules = job.pipeline ? applyPoolSteps(job.pipeline.steps, vector) : vector;
      return { vector: pool(modules, job.dimensions, job.normalize), promptTokens };
    }, 'another input of the request failed'));
  }
  return { vectors: results.map((r) => r.vector), promptTokens: results.reduce((n, r) => n + r.promptTokens, 0) };
}

/** The first `dimensions` values, scaled to unit length (when `normalize`); float32 like the model's output. */
export function pool(hidden: Float32Array, dimensions: number | undefined, normalize: boolean): Float32Array {
  const v = Float32Array.from(hidden.subarray(0, dimensions ?? hidden.length));
  if (!normalize) return v;
  let sq = 0;
  for (const x of v) sq += x * x;
  const norm = Math.max(Math.sqrt(sq), 1e-12);  // torch.nn.functional.normalize's eps
  for (let i = 0; i < v.length; i++) v[i]! /= norm;
  return v;
}
