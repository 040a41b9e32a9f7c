// Cross-encoder scoring for /score and /rerank. When `model` names a one-label sequence-classification adapter (a
// reranker fine-tuned as a PEFT SEQ_CLS LoRA of the served base) or the served model is a one-label
// *ForSequenceClassification checkpoint, each (query, document) pair runs as one input — the two texts joined by the
// tokenizer's pair template, as transformers' and vLLM's cross-encoders read them — and its score is the sigmoid of
// the head's logit. Anything else scores as a bi-encoder (score-routes.ts).
import type { FastifyReply, FastifyRequest } from 'fastify';
import { classify, type ClassifierHead } from '../adapters/classifier-head.js';
import { EngineError, type AdapterRef, type GenerationEngine } from '../engine/types.js';
import { activate } from './classify-routes.js';
import { embed } from './embeddings-routes.js';

/** The one-label head that makes this request a cross-encoder's, or null (score by embeddings). */
export async function crossEncoderHead(engine: GenerationEngine, adapter: AdapterRef | null): Promise<ClassifierHead | null> {
  if (adapter === null && engine.info.task !== 'classify') return null;
  let head: ClassifierHead;
  try {
    head = await engine.classifierHead(adapter);
  } catch (e) {
    if (e instanceof EngineError && e.kind === 'validation') return null;  // not a classifier: a bi-encoder
    throw e;
  }
  return head.labels.length === 1 ? head : null;
}

/** Each pair's score in [0, 1], and the prompt tokens run (every pair's joined input). */
export async function crossEncoderScores(request: FastifyRequest, reply: FastifyReply, engine: GenerationEngine, head: ClassifierHead,
  pairs: [string, string][], adapter: AdapterRef | null, truncate: number | undefined): Promise<{ scores: number[]; promptTokens: number }> {
  const inputs = await Promise.all(pairs.map(([first, second]) => engine.encodePair(first, second)));
  const { vectors, promptTokens } = await embed(request, reply, engine, { inputs, adapter, normalize: false, dimensions: undefined, truncate });
  return { scores: vectors.map((hidden) => activate(classify(head, hidden))[0]!), promptTokens };
}
