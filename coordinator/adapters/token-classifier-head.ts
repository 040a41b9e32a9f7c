// --classifier-from-tokens: a causal LM used as a classifier through its own next-token logits, as vLLM's
// `classifier_from_token` override serves rerankers that answer "yes"/"no" (Qwen3-Reranker, mxbai-rerank-v2) or
// "Yes" (bge-reranker-v2-gemma). With two tokens [no, yes] the score is softmax over their two logits at the last
// position, P(yes) = sigmoid(logit_yes − logit_no); with one token, sigmoid of its logit. Both are one linear row
// of the lm_head applied to the final hidden state, so the head is built once from the checkpoint's lm_head rows
// and runs like any classification head (classifier-head.ts): /classify, and /score and /rerank as a cross-encoder.
import { openModelWeights } from '../../shard/models/model-weights.js';
import { hfNames, lmHeadWeightName } from '../../shard/models/load-weights.js';
import type { ModelSpec } from '../../shard/models/spec.js';
import type { ClassifierHead } from './classifier-head.js';

/** The head for `tokens` (1 or 2 token strings, as `ids` in the vocabulary), read from the model in `modelDir`. */
export function tokenClassifierHead(modelDir: string, spec: ModelSpec, tokens: readonly string[], ids: readonly number[]): ClassifierHead {
  if (tokens.length < 1 || tokens.length > 2) {
    throw new Error(`--classifier-from-tokens takes one token (its logit is the score) or two (no,yes: P(yes) of the two), got ${tokens.length}`);
  }
  if (spec.finalSoftcap > 0) {
    throw new Error(`--classifier-from-tokens: ${spec.architecture} soft-caps its logits (final_logit_softcapping), which a linear head cannot express`);
  }
  const store = openModelWeights(modelDir);
  try {
    const names = hfNames(spec, store);
    const weightName = lmHeadWeightName(spec, store, names);
    const biasName = names.lmHead.replace(/weight$/, 'bias');
    const row = (id: number): Float32Array => store.readF32(weightName, { dim: 0, start: id, end: id + 1 });
    const bias = (id: number): number => (spec.lmHeadBias ? store.readF32(biasName, { dim: 0, start: id, end: id + 1 })[0]! : 0);
    const scale = 1 / spec.logitsDivisor;
    const yes = ids[ids.length - 1]!;
    const weight = row(yes);
    let b = bias(yes);
    if (ids.length === 2) {
      const no = row(ids[0]!);
      for (let j = 0; j < weight.length; j++) weight[j] = weight[j]! - no[j]!;
      b -= bias(ids[0]!);
    }
    for (let j = 0; j < weight.length; j++) weight[j] = weight[j]! * scale;
    return { labels: [tokens[tokens.length - 1]!], weight, bias: spec.lmHeadBias ? Float32Array.of(b * scale) : null, hidden: weight.length };
  } finally {
    store.close();
  }
}
