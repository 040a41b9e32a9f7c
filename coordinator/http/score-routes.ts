// Score and rerank: POST /score, /v1/score (vLLM) and POST /rerank, /v1/rerank, /v2/rerank (vLLM's Jina/Cohere
// shape). With a one-label classifier (a reranker adapter, or a reward/reranker base checkpoint) they are a
// cross-encoder's scores (cross-encoder.ts). Otherwise the served model is a bi-encoder: every distinct text of a request is embedded once, exactly as
// /v1/embeddings embeds it (the last token's final hidden state, L2-normalised; with any adapter, `model`), and a
// pair's score is the cosine similarity of its two vectors: their dot product. Same auth, adapter choice, limits,
// pooling refusal and cancellation as the embeddings routes (embeddings-routes.ts), whose helpers these reuse.
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AdapterRef } from '../engine/types.js';
import { validationError } from './errors.js';
import { isJsonObject } from './json.js';
import { crossEncoderHead, crossEncoderScores } from './cross-encoder.js';
import { body, embed, embeddingRouteOptions, flag, inputsOf, openAiAdapter, truncateOf, type EmbeddingDeps } from './embeddings-routes.js';

const COMMON = ['model', 'truncate_prompt_tokens', 'adapter_source', 'api_token'] as const;

export function registerScoreRoutes(app: FastifyInstance, deps: EmbeddingDeps): void {
  const options = embeddingRouteOptions(deps);
  for (const path of ['/score', '/v1/score']) app.post(path, options, (request, reply) => score(request, reply, deps));
  for (const path of ['/rerank', '/v1/rerank', '/v2/rerank']) app.post(path, options, (request, reply) => rerank(request, reply, deps));
}

/**
 * vLLM's pairing: one `text_1` against every `text_2` (1:1, 1:N), or as many of each, zipped (N:N).
 * {text_1, text_2, model?, truncate_prompt_tokens?, adapter_source?, api_token?} -> {id, object, created, model, data, usage}.
 */
async function score(request: FastifyRequest, reply: FastifyReply, deps: EmbeddingDeps) {
  const b = body(request, ['text_1', 'text_2', ...COMMON]);
  const { adapter, model } = openAiAdapter(b, request, deps);
  const left = inputsOf(b.text_1, 'text_1', false) as string[];
  const right = inputsOf(b.text_2, 'text_2', false) as string[];
  if (left.length > 1 && left.length !== right.length) {
    throw validationError(`\`text_1\` holds ${left.length} texts and \`text_2\` ${right.length}: give one \`text_1\` (scored against ` +
      'every `text_2`) or as many of each (scored in pairs)');
  }
  const truncate = truncateOf(b.truncate_prompt_tokens, 'truncate_prompt_tokens');
  const { score: scoreOf, promptTokens } = await pairScores(request, reply, deps, right.map((r, i) => [left.length === 1 ? left[0]! : left[i]!, r]),
    adapter, truncate);
  const data = right.map((_, i) => ({ index: i, object: 'score', score: scoreOf(i) }));
  return {
    id: `score-${randomBytes(16).toString('hex')}`, object: 'list', created: Math.floor(Date.now() / 1000), model, data,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  };
}

/**
 * {query, documents (strings or {text} objects), top_n?, return_documents?, model?, truncate_prompt_tokens?, …} ->
 * {id, model, usage, results: [{index, document?, relevance_score}]}, most relevant first, the first `top_n` (≤ 0: all).
 */
async function rerank(request: FastifyRequest, reply: FastifyReply, deps: EmbeddingDeps) {
  const b = body(request, ['query', 'documents', 'top_n', 'return_documents', ...COMMON]);
  const { adapter, model } = openAiAdapter(b, request, deps);
  if (typeof b.query !== 'string' || b.query === '') throw validationError('`query` must be a non-empty string');
  const documents = documentsOf(b.documents);
  if (b.top_n !== undefined && b.top_n !== null && !Number.isInteger(b.top_n)) throw validationError('`top_n` must be an integer');
  const topN = typeof b.top_n === 'number' && b.top_n > 0 ? b.top_n : documents.length;
  const returnDocuments = flag(b.return_documents, 'return_documents', true);
  const truncate = truncateOf(b.truncate_prompt_tokens, 'truncate_prompt_tokens');
  const query = b.query;
  const { score: scoreOf, promptTokens } = await pairScores(request, reply, deps, documents.map((d) => [query, d]), adapter, truncate);
  const results = documents.map((text, index) => ({ index, ...(returnDocuments ? { document: { text } } : {}),
    relevance_score: scoreOf(index) }));
  results.sort((x, y) => y.relevance_score - x.relevance_score || x.index - y.index);
  return { id: `rerank-${randomBytes(16).toString('hex')}`, model, usage: { total_tokens: promptTokens }, results: results.slice(0, topN) };
}

/** `documents`: a list of strings or of {text} objects (Jina's and Cohere's), as their texts. */
function documentsOf(v: unknown): string[] {
  if (!Array.isArray(v)) throw validationError('`documents` must be a list of strings or of {"text": string} objects');
  const texts = v.map((d, i) => {
    if (!isJsonObject(d)) return d;
    const extra = Object.keys(d).find((k) => k !== 'text');
    if (extra !== undefined) throw validationError(`\`documents[${i}]\`: unknown field \`${extra.slice(0, 64)}\` (a document object holds \`text\` only)`);
    if (typeof d.text !== 'string') throw validationError(`\`documents[${i}].text\` must be a string`);
    return d.text;
  });
  return inputsOf(texts, 'documents', false) as string[];  // not empty, within the limit, no empty or non-string text
}

/** Each pair's score: the cross-encoder's when the request has a one-label classifier, else the cosine similarity. */
async function pairScores(request: FastifyRequest, reply: FastifyReply, deps: EmbeddingDeps, pairs: [string, string][],
  adapter: AdapterRef | null, truncate: number | undefined): Promise<{ score: (i: number) => number; promptTokens: number }> {
  const head = await crossEncoderHead(deps.engine, adapter);
  if (head) {
    const { scores, promptTokens } = await crossEncoderScores(request, reply, deps.engine, head, pairs, adapter, truncate);
    return { score: (i) => scores[i]!, promptTokens };
  }
  const { similarity, promptTokens } = await embedDistinct(request, reply, deps, pairs.flat(), adapter, truncate);
  return { score: (i) => similarity(2 * i, 2 * i + 1), promptTokens };
}

/**
 * Embeds each distinct text of `texts` once (all start or none; cancelled with the client) and gives the cosine
 * similarity of the texts at two positions of `texts`, and the prompt tokens of what was run.
 */
async function embedDistinct(request: FastifyRequest, reply: FastifyReply, deps: EmbeddingDeps, texts: string[],
  adapter: AdapterRef | null, truncate: number | undefined) {
  const slot = new Map<string, number>();
  const at = texts.map((t) => {
    let i = slot.get(t);
    if (i === undefined) slot.set(t, i = slot.size);
    return i;
  });
  const { vectors, promptTokens } = await embed(request, reply, deps.engine,
    { inputs: [...slot.keys()], adapter, normalize: true, dimensions: undefined, truncate, ...(deps.embedding ? { pipeline: deps.embedding } : {}) });
  const similarity = (i: number, j: number): number => dot(vectors[at[i]!]!, vectors[at[j]!]!);
  return { similarity, promptTokens };
}

/** Of two unit vectors: their cosine similarity (summed in double precision). */
function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}
