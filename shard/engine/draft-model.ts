// Speculative decoding with a draft model (--speculative-model): a small model with the target's tokenizer guesses
// each decoding sequence's next tokens greedily; the target verifies them in its own step (step-runner.ts), so the
// output is exactly the target's whatever the draft says — a better draft only makes more of them accepted.
//
// The draft keeps a paged KV cache of its own (whole model, no tensor parallelism, on rank 0 only: the other ranks
// receive its drafts through the step's collective, so every rank verifies the same row). Per sequence it remembers
// which tokens its cache holds; a step first feeds what the sequence gained since (a new prompt in one prefill, or
// the token sampled last step and the drafts accepted), then drafts one token per forward pass of the whole batch.
// The draft runs without adapters: an adapter's sequences are drafted by the base draft model.
import type { RowSampling } from '../../kernels/index.js';
import { GREEDY } from '../../protocol/index.js';
import type { LoadedModel } from '../models/index.js';
import { layoutRows } from './batch-layout.js';

/** What one decoding sequence asks of the drafter: up to `max` tokens to follow `history`. */
export interface DraftRequest { seqId: string; history: readonly number[]; max: number }

/** Drafts for a batch of sequences, one list per request (possibly shorter than asked, or empty). */
export interface BatchDrafter {
  propose(requests: DraftRequest[]): Promise<number[][]>;
  /** The sequence is done (finished, aborted, preempted): its cache blocks are free again. */
  forget(seqId: string): void;
  reset(): void;
}

interface DraftSeq {
  blocks: number[];
  /** The tokens whose K/V are in `blocks`, position by position. */
  fed: number[];
}

const ARGMAX: RowSampling = { ...GREEDY, drawIndex: 0, penaltyTokens: new Int32Array(0), topN: 0 };

export class DraftModelDrafter implements BatchDrafter {
  private readonly seqs = new Map<string, DraftSeq>();
  private readonly free: number[];

  /** `model`: the draft, loaded whole (world 1) with its own `numBlocks` KV blocks; `vocab`: the target's. */
  constructor(private readonly model: LoadedModel, private readonly vocab: number) {
    this.free = Array.from({ length: model.plan.numBlocks }, (_, i) => model.plan.numBlocks - 1 - i);
  }

  /** Sequences with draft state (tests). */
  get tracked(): number {
    return this.seqs.size;
  }

  forget(seqId: string): void {
    const s = this.seqs.get(seqId);
    if (!s) return;
    this.free.push(...s.blocks);
    this.seqs.delete(seqId);
  }

  reset(): void {
    for (const id of [...this.seqs.keys()]) this.forget(id);
  }

  async propose(requests: DraftRequest[]): Promise<number[][]> {
    const out = requests.map((): number[] => []);
    // Each active request: its state and the tokens to feed first (at least its last token, for its next logits).
    const active = requests.flatMap((req, i) => {
      if (req.max <= 0 || req.history.length === 0) return [];
      const s = this.prepare(req);
      return s ? [{ i, req, s, feed: req.history.slice(s.fed.length) }] : [];
    });
    for (let step = 0; active.length > 0; step++) {
      const rows = active.filter((a) => out[a.i]!.length === step && step < a.req.max);
      if (rows.length === 0) break;
      const tokens = await this.forward(rows.map((a) => ({ s: a.s, tokens: step === 0 ? a.feed : [out[a.i]!.at(-1)!] })));
      rows.forEach((a, k) => {
        if (step === 0) a.s.fed.push(...a.feed);
        else a.s.fed.push(out[a.i]!.at(-1)!);
        const t = tokens[k]!;
        if (t < this.vocab) out[a.i]!.push(t);
      });
    }
    return out;
  }

  /** The sequence's draft state with its cache cut back to what still matches `history` and blocks for the new
   * positions; null (no drafts this step) when the cache has no room. */
  private prepare(req: DraftRequest): DraftSeq | null {
    let s = this.seqs.get(req.seqId);
    if (!s) this.seqs.set(req.seqId, s = { blocks: [], fed: [] });
    let keep = 0;
    while (keep < s.fed.length && keep < req.history.length - 1 && s.fed[keep] === req.history[keep]) keep++;
    s.fed.length = keep;  // positions past it are rewritten (rejected drafts, or a history that changed)
    // Positions written: the history from `keep`, then drafts 1 … max−1 (the last draft is never fed).
    const need = Math.ceil((req.history.length + req.max - 1) / this.model.plan.blockSize);
    while (s.blocks.length < need && this.free.length > 0) s.blocks.push(this.free.pop()!);
    if (s.blocks.length < need) {
      this.forget(req.seqId);
      return null;
    }
    return s;
  }

  /** One forward pass of the draft over rows of [tokens] at each sequence's next positions: the argmax after each. */
  private async forward(rows: { s: DraftSeq; tokens: readonly number[] }[]): Promise<number[]> {
    const { starts, ...arrays } = layoutRows(rows.map(({ s, tokens }, k) => ({ seqId: String(k), tokens, firstPos: s.fed.length, blockTable: s.blocks,
      adapterSlot: -1, promptLen: s.fed.length + tokens.length })), this.model.plan.blockSize, this.model.spec.rope,
    (_seq, pos) => new Error(`draft model: no KV block for position ${pos}`));  // prepare() allocated them: a bug if seen
    const logitRows = Int32Array.from(rows, (r, k) => starts[k]! + r.tokens.length - 1);
    const sampled = await this.model.native.forwardSample({ ...arrays, logitRows }, rows.map(() => ARGMAX));
    return sampled.map((r) => r.token);
  }
}
