// Drives a LocalEngine with protocol Steps the way the coordinator would: admit sequences (prefill),
// decode them one token per step, free them. Every sequence gets its KV blocks up front.
import { PROTOCOL_VERSION, type NewSequence, type SeqOutput, type Step } from '../../protocol/index.js';
import { GREEDY, LocalEngine } from '../../shard/index.js';
import type { OpProfiler } from './op-breakdown.js';
import { prng } from './synthetic.js';

export const BLOCK_SIZE = 16;

export interface EngineSize {
  /** Most sequences alive at once. */
  maxSeqs: number;
  /** Most tokens one sequence reaches (prompt + generated). */
  maxTokens: number;
  adapterSlots: number;
  maxRank: number;
}

/** A bench session on one engine: sequence range i owns blocks [i·perSeq, (i+1)·perSeq). */
export class EngineDriver {
  private stepId = 0;
  private readonly blocksPerSeq: number;
  private readonly rnd = prng(12345);

  private constructor(readonly engine: LocalEngine, size: EngineSize) {
    this.blocksPerSeq = Math.ceil((size.maxTokens + 1) / BLOCK_SIZE);
  }

  static open(modelDir: string, size: EngineSize, device: 'cpu' | 'cuda' = 'cpu'): EngineDriver {
    const blocksPerSeq = Math.ceil((size.maxTokens + 1) / BLOCK_SIZE);
    const engine = LocalEngine.open(modelDir, {
      numBlocks: size.maxSeqs * blocksPerSeq, blockSize: BLOCK_SIZE,
      adapterSlots: Math.max(1, size.adapterSlots), maxLoraRank: Math.max(1, size.maxRank), device,
      dtype: device === 'cuda' ? 'bfloat16' : 'float32',
    });
    return new EngineDriver(engine, size);
  }

  /** Random prompt token ids (never 0, which some tokenizers reserve). */
  prompt(tokens: number, vocab: number): number[] {
    return Array.from({ length: tokens }, () => 1 + Math.floor((this.rnd() + 0.5) * (vocab - 1)));
  }

  /**
   * Prefills one sequence per entry, entry i in block range `first + i`; returns each one's first sampled
   * token by seqId. Sequences go in steps of at most `maxStepTokens` prompt tokens (as a server's
   * --max-batch-prefill-tokens would split them), so a batch of 128 × 512-token prompts stays within one
   * step's row limit and activation memory. Live sequences that share a block range overwrite each other's
   * KV: only timing benchmarks (random weights, values unused) may do that.
   */
  async admit(seqs: { prompt: number[]; adapterSlot: number }[], tag: string, first = 0, maxStepTokens = 8192): Promise<Map<string, number>> {
    const newSeqs: NewSequence[] = seqs.map((s, i) => ({
      seqId: `${tag}-${i}`, adapterSlot: s.adapterSlot, tokens: s.prompt,
      blockTable: Array.from({ length: this.blocksPerSeq }, (_, k) => (first + i) * this.blocksPerSeq + k),
      sampling: GREEDY, generated: [], logits: 'none', promptLogprobs: false, topN: 0,
    }));
    const out = new Map<string, number>();
    for (let i = 0; i < newSeqs.length;) {
      const chunk: NewSequence[] = [];
      let tokens = 0;
      while (i < newSeqs.length && (chunk.length === 0 || tokens + newSeqs[i]!.tokens.length <= maxStepTokens)) {
        tokens += newSeqs[i]!.tokens.length;
        chunk.push(newSeqs[i++]!);
      }
      for (const [id, tok] of tokensOf(await this.run({ newSeqs: chunk, running: [], finished: [] }))) out.set(id, tok);
    }
    return out;
  }

  /** One decode step for every sequence in `last` (seqId → the token it sampled last); updates `last`. */
  async decode(last: Map<string, number>): Promise<void> {
    const running = [...last].map(([seqId, token]) => ({ seqId, token, newBlocks: [] }));
    for (const [id, tok] of tokensOf(await this.run({ newSeqs: [], running, finished: [] }))) last.set(id, tok);
  }

  async free(ids: Iterable<string>): Promise<void> {
    await this.run({ newSeqs: [], running: [], finished: [...ids] });
  }

  /** The executor's op profile (op-breakdown.ts). */
  get profiler(): OpProfiler {
    return this.engine.model.native;
  }

  loadAdapter(slot: number, dir: string): void {
    this.engine.loadAdapter(slot, dir);
  }

  dispose(): void {
    this.engine.dispose();
  }

  private run(body: Pick<Step, 'newSeqs' | 'running' | 'finished'>): Promise<SeqOutput[]> {
    return this.engine.runner.run({ v: PROTOCOL_VERSION, type: 'step', stepId: ++this.stepId, ...body });
  }
}

function tokensOf(outputs: SeqOutput[]): Map<string, number> {
  return new Map(outputs.map((o) => [o.seqId, o.token]));
}

/** Sequence i of a batch of `batch` with `adapters` distinct adapters: contiguous groups (SGMV segments). */
export function slotFor(i: number, batch: number, adapters: number): number {
  return adapters === 0 ? -1 : Math.floor((i * adapters) / batch);
}
