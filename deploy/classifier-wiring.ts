// The base model's classification head, if it has one: a *ForSequenceClassification checkpoint's own `score`
// head, or one built from the lm_head rows of --classifier-from-tokens (a yes/no reranker served as a classifier).
import type { LaunchConfig } from './config/index.js';
import { readBaseClassifierHead, type ClassifierHead } from '../coordinator/adapters/classifier-head.js';
import { tokenClassifierHead } from '../coordinator/adapters/token-classifier-head.js';
import type { ModelSpec } from '../shard/models/spec.js';

export function baseClassifierHeadOf(o: Pick<LaunchConfig, 'classifierFromTokens'>, modelDir: string, spec: ModelSpec,
  tokenId: (token: string) => number | null): ClassifierHead | null {
  const own = readBaseClassifierHead(modelDir);
  const tokens = o.classifierFromTokens;
  if (tokens.length === 0) return own;
  if (own) throw new Error('--classifier-from-tokens: the model is a *ForSequenceClassification checkpoint with its own head; drop the flag');
  const ids = tokens.map((t) => {
    const id = tokenId(t);
    if (id === null) throw new Error(`--classifier-from-tokens: '${t}' is not one token of the model's vocabulary (give the token as the vocabulary spells it, e.g. 'yes' or 'Ġyes')`);
    return id;
  });
  return tokenClassifierHead(modelDir, spec, tokens, ids);
}
