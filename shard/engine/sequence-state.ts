// What a shard remembers about one sequence between steps (DESIGN.md §2: steps carry diffs, not state).
import type { SamplingParams } from '../../protocol/index.js';
import type { TokenAutomaton } from '../constraints/token-constraint.js';
import type { NgramIndex } from './speculation.js';
import type { PredictionCursor } from './prediction-drafts.js';
import type { HiddenPool } from './pooling.js';
import type { SeqImage } from './vision-prefill.js';
import type { MropePositions } from './mrope.js';

export interface SequenceState {
  seqId: string;
  adapterSlot: number;
  /** A hybrid Mamba model's recurrent-state slot (state-slots.ts); absent for attention-only models. */
  stateSlot?: number;
  blockTable: number[];
  /** Tokens whose K/V are in the cache. */
  length: number;
  /** The prompt's length (without tokens generated before a preemption): longrope's choice of factors (rope.ts). */
  promptLen: number;
  /** Prompt + generated tokens: the repetition-penalty window. */
  history: number[];
  sampling: SamplingParams;
  /** Tokens sampled so far (the RNG draw index of the next sample). */
  draws: number;
  /** The token this rank sampled last step (every rank samples): what SAMPLED_LAST_STEP feeds; -1 = none yet. */
  lastSampled: number;
  topN: number;
  /** Chunked prefill: prompt tokens still to come in later steps (nothing is sampled until 0). */
  unsent: number;
  /** Embeddings: the prompt's last position returns its final hidden state (NewSequence.logits 'hidden'). */
  hidden?: boolean;
  /** Pooled embeddings (NewSequence.pooling): every prompt position's final hidden state folded in, chunk by chunk;
   * its result is the sequence's SeqOutput.hidden. */
  pool?: HiddenPool;
  /** Speculative decoding: the n-gram index of `history` (made on the first step that drafts). */
  ngrams?: NgramIndex;
  /** Speculative decoding from sampling.prediction: where the output is in it (made on the first step that drafts). */
  predicted?: PredictionCursor;
  /** Structured output: the pattern's automaton and its state after the tokens generated so far. */
  constraint?: { automaton: TokenAutomaton; state: number; failed?: string };
  /** allowed_token_ids as the sampler's bitset (bit t of byte t >> 3): the only tokens it may draw. */
  allowed?: Uint8Array;
  /** Vision-language models: the prompt's images' feature rows, kept until its last prompt token is computed. */
  images?: SeqImage[];
  /** Multimodal RoPE (Qwen2-VL): where the prompt's images sit, for every position's (t, h, w); absent: no images. */
  mrope?: MropePositions;
  /** This sequence alone failed before any of it was computed (an image that never came): nothing of it runs, and
   * the reason is its output in the step that completes its prompt (the first one the coordinator expects one from). */
  failed?: string;
}

/** `tokens` as a sampler bitset over a vocabulary of `vocab` (ids outside it are a StepError for the caller). */
export function tokenBitset(tokens: readonly number[], vocab: number): Uint8Array {
  const bits = new Uint8Array(Math.ceil(vocab / 8));
  for (const t of tokens) bits[t >> 3]! |= 1 << (t & 7);
  return bits;
}
