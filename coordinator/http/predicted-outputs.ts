// OpenAI's Predicted Outputs (`prediction: {"type": "content", "content": …}` on chat and completions): text the
// answer is expected to mostly be — a file to which a few edits are asked. Its tokens go to the shards as the
// sequence's drafts (SamplingParams.prediction, shard/engine/prediction-drafts.ts), verified like any speculative
// draft, so the answer is exactly what it would be without: a good prediction only makes it come faster (up to
// 1 + max(--speculate, 8) tokens per step; the allowance is coordinator/scheduler/speculation.ts's). The usage then
// reports `completion_tokens_details.accepted_prediction_tokens` (generated tokens that were the prediction's drafts,
// accepted) and `rejected_prediction_tokens` (the prediction's other tokens), as OpenAI does.
import type { GenerationEngine } from '../engine/types.js';
import { validationError } from './errors.js';
import { isJsonObject, type Json } from './json.js';

/** The prediction's text, checked as OpenAI takes it: {type: "content", content: string | [{type: "text", text}]}. */
export function predictionOf(top: Json): string | undefined {
  const p = top.prediction;
  if (p === undefined || p === null) return undefined;
  if (!isJsonObject(p) || p.type !== 'content') {
    throw validationError('`prediction` must be {"type": "content", "content": <string or text parts>}');
  }
  for (const key of Object.keys(p)) if (key !== 'type' && key !== 'content') throw validationError(`unknown field \`prediction.${key.slice(0, 64)}\``);
  const content = p.content;
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw validationError('`prediction.content` must be a string or an array of text parts');
  return content.map((part, i) => {
    if (!isJsonObject(part) || part.type !== 'text' || typeof part.text !== 'string' || Object.keys(part).some((k) => k !== 'type' && k !== 'text')) {
      throw validationError(`\`prediction.content[${i}]\` must be {"type": "text", "text": <string>}`);
    }
    return part.text;
  }).join('');
}

/** The prediction as token ids (no special tokens added), at most the model's context; [] for an empty text. */
export async function predictionTokens(engine: GenerationEngine, text: string): Promise<number[]> {
  if (text === '') return [];
  const ids = (await engine.tokenize(text, true)).map((t) => t.id);
  if (ids.length > engine.info.maxTotalTokens) {
    throw validationError(`\`prediction\` is ${ids.length} tokens, more than the model's context (${engine.info.maxTotalTokens})`);
  }
  return ids;
}

export interface PredictionDetails { accepted_prediction_tokens: number; rejected_prediction_tokens: number }

/** Over every choice: the accepted drafts, and the prediction tokens each choice did not take. */
export function predictionDetails(predictionLength: number, acceptedPerChoice: readonly number[]): PredictionDetails {
  const accepted = acceptedPerChoice.reduce((s, a) => s + a, 0);
  const rejected = acceptedPerChoice.reduce((s, a) => s + Math.max(0, predictionLength - a), 0);
  return { accepted_prediction_tokens: accepted, rejected_prediction_tokens: rejected };
}
