// Sequence classification with LoRA adapters: POST /classify and /v1/classify (vLLM's request and response shape).
// `model` names a PEFT task_type "SEQ_CLS" adapter — LoRA pairs plus the trained score head PEFT saves through
// modules_to_save — which runs like any adapter (batched with generation, any --num-shard); the shards return each
// input's final hidden state at its last token (as for embeddings) and the adapter's head turns it into logits here
// (classifier-head.ts), as transformers' *ForSequenceClassification does. Many classifiers share one base model:
// the point of serving them from a multi-LoRA server.
//
// `probs` are softmax(logits) (sigmoid for a one-label head: a reward or regression score), or the logits themselves
// with vLLM's `use_activation: false`; `label` is the most likely label.
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { classify } from '../adapters/classifier-head.js';
import { validationError } from './errors.js';
import { body, embed, flag, inputsOf, openAiAdapter, truncateOf, type EmbeddingDeps } from './embeddings-routes.js';
import { openAiErrorHandler } from './openai-routes.js';

export function registerClassifyRoutes(app: FastifyInstance, deps: EmbeddingDeps): void {
  const errorHandler = openAiErrorHandler(deps.bodyLimitBytes);
  for (const path of ['/classify', '/v1/classify']) {
    app.post(path, { errorHandler }, async (request, reply) => {
      const b = body(request, ['input', 'model', 'truncate_prompt_tokens', 'use_activation', 'user', 'adapter_source', 'api_token']);
      if (b.user !== undefined && typeof b.user !== 'string') throw validationError('`user` must be a string');
      const { adapter, model } = openAiAdapter(b, request, deps);
      const inputs = inputsOf(b.input, 'input', true);
      const activation = flag(b.use_activation, 'use_activation', true);
      const truncate = truncateOf(b.truncate_prompt_tokens, 'truncate_prompt_tokens');
      const head = await deps.engine.classifierHead(adapter);  // before any input runs: a non-classifier is a 422 at once
      const { vectors, promptTokens } = await embed(request, reply, deps.engine,
        { inputs, adapter, normalize: false, dimensions: undefined, truncate });
      const data = vectors.map((hidden, index) => {
        const logits = classify(head, hidden);
        const best = logits.reduce((bi, x, i) => (x > logits[bi]! ? i : bi), 0);
        return { index, label: head.labels[best]!, probs: activation ? activate(logits) : logits, num_classes: logits.length };
      });
      return {
        id: `classify-${randomBytes(16).toString('hex')}`, object: 'list', created: Math.floor(Date.now() / 1000), model, data,
        usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
      };
    });
  }
}

/** Softmax over the labels; a one-label head's sigmoid (transformers' text-classification pipeline does the same). */
export function activate(logits: number[]): number[] {
  if (logits.length === 1) return [1 / (1 + Math.exp(-logits[0]!))];
  const max = Math.max(...logits);
  const exps = logits.map((x) => Math.exp(x - max));
  const sum = exps.reduce((a, x) => a + x, 0);
  return exps.map((x) => x / sum);
}
