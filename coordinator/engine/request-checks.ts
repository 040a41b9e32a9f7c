// The checks a request passes before it is queued, apart from the engine's own state (shards ready, overload):
// fields that cannot go together, token ids inside the vocabulary, lengths inside the limits. Each failure is a
// validation EngineError (422) saying what to change.
import { EngineError, type EngineInfo, type GenerateRequest } from './types.js';

/** Before tokenizing: what the request's fields alone decide. */
export function checkRequestFields(req: GenerateRequest, info: EngineInfo): void {
  if (req.adapter && req.merge) throw new EngineError('validation', 'give either adapter_id or merged_adapters, not both');
  if ((req.priority ?? 0) !== 0 && info.schedulingPolicy !== 'priority') {
    throw new EngineError('validation', '`priority` needs a server started with --scheduling-policy priority');
  }
  if (req.stopTokenIds) checkIds(req.stopTokenIds, info.vocabSize, 'stop_token_ids');
  if (req.sampling.allowedTokens) checkIds(req.sampling.allowedTokens, info.vocabSize, 'allowed_token_ids');
  if (req.sampling.prediction) checkIds(req.sampling.prediction, info.vocabSize, 'prediction');
  const biased = req.sampling.logitBias?.find((b) => b.token >= info.vocabSize);
  if (biased) throw new EngineError('validation', `Input validation error: logit_bias token ${biased.token} is outside the vocabulary (0..${info.vocabSize - 1})`);
  if ((req.minNewTokens ?? 0) > 0 && req.constraint !== undefined) {
    // A complete match may allow only the end tokens, which min tokens forbid: no draw would be valid.
    throw new EngineError('validation', 'Input validation error: `min_tokens` cannot be combined with structured output ' +
      '(response_format, grammar or tools)');
  }
}

/** Token ids given by the client, each inside the vocabulary (a copy). */
export function checkIds(ids: readonly number[], vocabSize: number, what = 'token id'): number[] {
  const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize);
  if (bad !== undefined) {
    throw new EngineError('validation', `Input validation error: ${what} ${bad} is outside the vocabulary (0..${vocabSize - 1})`);
  }
  return [...ids];
}

/** The prompt and the tokens asked for, inside --max-input-length (unless it `continues` a generation) and --max-total-tokens. */
export function checkLengths(promptTokens: number, maxNewTokens: number, info: EngineInfo, continues = false): void {
  if (promptTokens === 0) throw new EngineError('validation', 'Input validation error: `inputs` tokenizes to zero tokens');
  if (promptTokens > info.maxInputLength && !continues) {
    throw new EngineError('validation', `Input validation error: \`inputs\` must have less than ${info.maxInputLength} tokens. Given: ${promptTokens}`);
  }
  if (promptTokens + maxNewTokens > info.maxTotalTokens) {
    throw new EngineError('validation', `Input validation error: \`inputs\` tokens + \`max_new_tokens\` must be <= ${info.maxTotalTokens}. ` +
      `Given: ${promptTokens} \`inputs\` tokens and ${maxNewTokens} \`max_new_tokens\``);
  }
}
