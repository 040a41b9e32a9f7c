// The beams a search over a golden model's exact next-token logits finds (vLLM's algorithm, beam-search.ts): every
// beam's prefix scored whole by a local float32 engine, the request's token filters applied to its logits. What the
// server's beam search must answer, choice by choice.
import { join } from 'node:path';
import { LocalEngine } from '../../shard/index.js';
import { beamSearch, type Beam } from '../../coordinator/http/beam-search.js';
import type { GoldenCase } from './golden.js';
import { textOf } from './golden-server.js';
import { refLogSoftmax } from './reference-ops.js';

/** The golden llama's end-of-sequence token. */
const EOS = 2;

export interface BeamReference {
  prompt: number[];
  adapter?: string | null;
  width: number;
  steps: number;
  lengthPenalty?: number;
  /** The request's token filters on one beam's next-token logits, in place: biases added, banned tokens -inf. */
  filter?: (generated: readonly number[], logits: Float64Array) => void;
}

export async function referenceBeams(c: GoldenCase, o: BeamReference): Promise<Beam[]> {
  const engine = LocalEngine.open(c.modelDir, { numBlocks: 64, blockSize: 16, adapterSlots: 1, device: 'cpu', dtype: 'float32' });
  try {
    if (o.adapter) engine.loadAdapter(0, join(c.dir, 'adapters', o.adapter));
    return await beamSearch({ promptLength: o.prompt.length, width: o.width, lengthPenalty: o.lengthPenalty ?? 1, maxNewTokens: o.steps,
      eos: new Set([EOS]), ignoreEos: false,
      expand: async (beams) => Promise.all(beams.map(async (b) => {
        const tokens = [...o.prompt, ...b.tokens];
        const [logits] = await engine.scoreBatch([{ tokens, adapterSlot: o.adapter ? 0 : -1 }]);
        const row = Float64Array.from(logits!.subarray((tokens.length - 1) * c.vocab, tokens.length * c.vocab));
        o.filter?.(b.tokens, row);
        const last = refLogSoftmax(row);
        return [...last.keys()].sort((x, y) => last[y]! - last[x]! || x - y).slice(0, 2 * o.width).map((token) => ({ token, logprob: last[token]! }));
      })) });
  } finally {
    engine.dispose();
  }
}

/** A completion's or chat's choices as (words, finish_reason), and the same for reference beams, to compare. */
export const choicesOf = (json: { choices: { text?: string; message?: { content: string }; finish_reason: string }[] }) =>
  json.choices.map((ch) => ({ words: words(ch.text ?? ch.message!.content), finish: ch.finish_reason }));
export const beamChoices = (beams: readonly Beam[]) =>
  beams.map((b) => ({ words: words(textOf(b.complete ? b.tokens.slice(0, -1) : b.tokens)), finish: b.complete ? 'stop' : 'length' }));
const words = (s: string): string[] => s.trim().split(/\s+/).filter(Boolean);
