// TGI's `details.prefill`: the prompt's tokens with their text and log-probs (decoder_input_details).
import type { SequenceEvent } from '../scheduler/index.js';
import type { TokenizerPool } from '../tokenizer/index.js';
import type { PrefillToken } from './types.js';
/** A prompt's tokens as TGI's `details.prefill` reports them: text, log-prob given the tokens before (none for the
 * first) and, when asked, the most likely alternatives at each position. */
export function prefillTokens(tokenizer: TokenizerPool, ids: number[], logprobs: number[], tops: SequenceEvent['promptTop']): PrefillToken[] {
  const texts = tokenizer.tokenStringsSync(ids);
  return ids.map((id, i) => {
    const token: PrefillToken = { id, text: texts[i], logprob: i === 0 ? null : (logprobs[i - 1] ?? null) };
    const top = i === 0 ? undefined : tops?.[i - 1];
    if (top !== undefined) {
      const names = tokenizer.tokenStringsSync(top.map((t) => t.token));
      token.top = top.map((t, j) => ({ ...t, text: names[j]! }));
    }
    return token;
  });
}
