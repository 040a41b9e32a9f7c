// A sequence whose logits overflowed (an extreme temperature or penalty, a merge of huge weights, a broken
// adapter) samples with NaN log-probabilities. NaN cannot travel in a step result (protocol/schema.ts refuses it),
// and a result that cannot be sent would fail every sequence of the step — on every rank but 0 the step would
// even go on and leave the ranks out of step. So such a sequence fails alone: its output says why, the rest of the
// step stands (as a structured-output failure does).
import type { SeqOutput, TokenChoice } from '../../protocol/index.js';

const bad = (x: number) => Number.isNaN(x) || x === Infinity;

/** Outputs with NaN (or +Infinity) log-probabilities turned into that sequence's error. */
export function failNonFinite(outputs: SeqOutput[]): SeqOutput[] {
  return outputs.map((o) => {
    const broken = bad(o.logprob) || o.top.some((t) => bad(t.logprob)) || (o.more ?? []).some((m) => bad(m.logprob) || m.top.some((t: TokenChoice) => bad(t.logprob)))
      || (o.promptLogprobs ?? []).some(bad) || (o.promptTop ?? []).some((row) => row.some((t) => bad(t.logprob)));
    if (!broken || o.error !== undefined) return o;
    return { seqId: o.seqId, token: o.token, logprob: 0, top: [],
      error: 'the model\'s logits for this sequence are not finite (NaN): a numerical overflow — an extreme temperature, ' +
        'repetition penalty, logit_bias or merge weight, or an adapter with huge or invalid weights' };
  });
}
