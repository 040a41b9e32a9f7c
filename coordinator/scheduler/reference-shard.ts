// A shard without a model: applies Steps with exactly the bookkeeping the protocol asks of a shard
// and checks every rule a scheduler must keep. Tests of the scheduler (and of anything that drives it)
// use it in place of real shards; the tokens it "samples" come from a caller-supplied function.

import { PROTOCOL_VERSION, SAMPLED_LAST_STEP } from '../../protocol/index.js';
import type { SeqOutput, Step, StepResult } from '../../protocol/index.js';

/** Picks the token sampled after `tokens` (the whole sequence so far) for seqId. */
export type ReferenceSampler = (seqId: string, tokens: readonly number[]) => number;

/** Speculative decoding: up to `max` guesses of the tokens after `tokens` (right or wrong). */
export type ReferenceDrafter = (seqId: string, tokens: readonly number[], max: number) => number[];

export interface ReferenceShardOptions {
  /** Proposes drafts for running sequences whose step allows them (RunningSequence.draft); absent: none. */
  drafter?: ReferenceDrafter;
  /** Tokens' worth of KV slots a sequence may hold beyond what it stores (speculative decoding reserves them
   * ahead); 0: exactly the blocks its tokens need. */
  slack?: number;
}

interface ShardSequence {
  /** Tokens whose K/V are stored, in position order. */
  tokens: number[];
  blockTable: number[];
  /** Sampled last step: the token the next step must feed back. */
  pending: number;
  /** Chunked prefill: tokens still to come before anything is sampled. */
  unsent: number;
}

export class ReferenceShard {
  private readonly seqs = new Map<string, ShardSequence>();
  /** The "KV memory": the token whose K/V each slot of each block holds (what a prefix-cache hit reads). */
  private readonly kv = new Map<number, number[]>();
  /** Sequences a failed step made this shard drop, until the coordinator lists them as finished. */
  private readonly dropped = new Set<string>();
  /** `generated` of a NewSequence whose prefill is still arriving in chunks. */
  private readonly generatedOf = new Map<string, number[]>();
  private readonly sample: ReferenceSampler;
  private readonly blockSize: number;
  private readonly numBlocks: number;

  private readonly options: ReferenceShardOptions;
  /** Speculative decoding: drafts verified and accepted, over all steps. */
  drafted = 0;
  accepted = 0;

  constructor(numBlocks: number, blockSize: number, sample: ReferenceSampler, options: ReferenceShardOptions = {}) {
    this.numBlocks = numBlocks;
    this.blockSize = blockSize;
    this.sample = sample;
    this.options = options;
  }

  /** Sequences whose state this shard holds. */
  get size(): number {
    return this.seqs.size;
  }

  has(seqId: string): boolean {
    return this.seqs.has(seqId);
  }

  /** Ids of the sequences whose state this shard holds. */
  ids(): string[] {
    return [...this.seqs.keys()];
  }

  /** The block table this shard holds for seqId (undefined when it holds no state). */
  blockTable(seqId: string): readonly number[] | undefined {
    return this.seqs.get(seqId)?.blockTable;
  }

  /** A restarted shard: the KV memory holds nothing a cached prefix could use. */
  loseKvMemory(): void {
    this.kv.clear();
  }

  /** Fails step as a real shard does on an internal error: drops every sequence it holds, replies an error. */
  failStep(step: Step, error = 'injected failure'): StepResult {
    for (const seqId of step.finished) this.seqs.delete(seqId) || this.dropped.delete(seqId);
    for (const seqId of this.seqs.keys()) this.dropped.add(seqId);
    for (const n of step.newSeqs) this.dropped.add(n.seqId); // a real shard admits them before it fails
    this.seqs.clear();
    this.generatedOf.clear();
    return { v: PROTOCOL_VERSION, type: 'step.result', stepId: step.stepId, rank: 0, outputs: [], computeMs: 0, error };
  }

  /** Applies step (finished, then running, then new) and returns what rank 0 would reply. A step that
   * continues a sequence a failed step dropped fails as on a real shard (failStep); any other inconsistency
   * throws an Error naming the broken rule. */
  run(step: Step): StepResult {
    if (step.v !== PROTOCOL_VERSION || step.type !== 'step') throw new Error('not a step message');
    for (const seqId of step.finished) {
      if (!this.seqs.delete(seqId) && !this.dropped.delete(seqId)) throw new Error(`step ${step.stepId}: finished ${seqId}, which holds no state`);
      this.generatedOf.delete(seqId);
    }
    const continued = [...step.running, ...(step.chunks ?? [])].find((r) => this.dropped.has(r.seqId));
    if (continued !== undefined) return this.failStep(step, `sequence '${continued.seqId}' is unknown on this shard`);
    const outputs: SeqOutput[] = [];
    const seen = new Set<string>();
    const once = (seqId: string): void => {
      if (seen.has(seqId)) throw new Error(`step ${step.stepId}: ${seqId} listed twice`);
      seen.add(seqId);
    };
    for (const r of step.running) {
      once(r.seqId);
      const seq = this.seqs.get(r.seqId);
      if (seq === undefined) throw new Error(`step ${step.stepId}: running ${r.seqId}, which holds no state`);
      if (seq.pending < 0 || seq.unsent > 0) throw new Error(`step ${step.stepId}: ${r.seqId} decodes but nothing was sampled for it`);
      const token = r.token === SAMPLED_LAST_STEP ? seq.pending : r.token;
      if (token !== seq.pending) throw new Error(`step ${step.stepId}: ${r.seqId} fed ${r.token}, sampled ${seq.pending}`);
      seq.blockTable.push(...r.newBlocks);
      this.store(seq, [token]);
      const room = seq.blockTable.length * this.blockSize - seq.tokens.length;
      const max = Math.min(r.draft ?? 0, room);
      const drafts = max > 0 && this.options.drafter ? this.options.drafter(r.seqId, seq.tokens, max).slice(0, max) : [];
      outputs.push(drafts.length > 0 ? this.verify(r.seqId, seq, drafts) : this.emit(r.seqId, seq));
    }
    for (const n of step.newSeqs) {
      once(n.seqId);
      if (this.seqs.has(n.seqId)) throw new Error(`step ${step.stepId}: new ${n.seqId} already holds state`);
      if (n.tokens.length === 0) throw new Error(`step ${step.stepId}: new ${n.seqId} has no tokens`);
      const cached = n.cached ?? 0;
      if (cached % this.blockSize !== 0 || cached >= n.tokens.length) {
        throw new Error(`step ${step.stepId}: new ${n.seqId} has ${cached} cached of ${n.tokens.length} tokens`);
      }
      const seq: ShardSequence = { tokens: [], blockTable: [...n.blockTable], pending: -1, unsent: n.pending ?? 0 };
      for (let p = 0; p < cached; p++) {
        if (this.slot(seq, p) !== n.tokens[p]) throw new Error(`step ${step.stepId}: new ${n.seqId} reads cached K/V of other tokens at position ${p}`);
      }
      seq.tokens.push(...n.tokens.slice(0, cached));
      this.store(seq, n.tokens.slice(cached));
      this.seqs.set(n.seqId, seq);
      this.prefilled(step.stepId, n.seqId, seq, n.generated, outputs);
    }
    for (const c of step.chunks ?? []) {
      once(c.seqId);
      const seq = this.seqs.get(c.seqId);
      if (seq === undefined) throw new Error(`step ${step.stepId}: chunk for ${c.seqId}, which holds no state`);
      if (seq.unsent !== c.tokens.length + c.pending) {
        throw new Error(`step ${step.stepId}: chunk of ${c.tokens.length} + ${c.pending} pending for ${c.seqId}, which awaits ${seq.unsent}`);
      }
      this.store(seq, c.tokens);
      seq.unsent = c.pending;
      this.prefilled(step.stepId, c.seqId, seq, null, outputs);
    }
    this.checkBlocks(step.stepId);
    return { v: PROTOCOL_VERSION, type: 'step.result', stepId: step.stepId, rank: 0, outputs, computeMs: 0 };
  }

  // After a prefill part: sample once nothing is pending (checking, for a recompute, that the tokens end with
  // what was generated before).
  private prefilled(stepId: number, seqId: string, seq: ShardSequence, generated: number[] | null, outputs: SeqOutput[]): void {
    if (generated !== null) this.generatedOf.set(seqId, generated);
    if (seq.unsent > 0) return;
    const gen = this.generatedOf.get(seqId) ?? [];
    this.generatedOf.delete(seqId);
    const tail = seq.tokens.slice(seq.tokens.length - gen.length);
    if (tail.some((t, i) => t !== gen[i])) throw new Error(`step ${stepId}: ${seqId} tokens do not end with generated`);
    outputs.push(this.emit(seqId, seq));
  }

  /** Appends tokens to seq, writing their K/V into its blocks. */
  private store(seq: ShardSequence, tokens: readonly number[]): void {
    for (const t of tokens) {
      this.writeSlot(seq, seq.tokens.length, t);
      seq.tokens.push(t);
    }
  }

  /** Writes t as the K/V of seq's position p (nothing when no block covers it). */
  private writeSlot(seq: ShardSequence, p: number, t: number): void {
    const block = seq.blockTable[Math.floor(p / this.blockSize)];
    if (block === undefined) return;
    let slots = this.kv.get(block);
    if (slots === undefined) this.kv.set(block, slots = []);
    slots[p % this.blockSize] = t;
  }

  /** The token whose K/V seq's position p reads. */
  private slot(seq: ShardSequence, p: number): number | undefined {
    const block = seq.blockTable[Math.floor(p / this.blockSize)];
    return block === undefined ? undefined : this.kv.get(block)?.[p % this.blockSize];
  }

  /** A row of [fed token, ...drafts]: every draft's K/V is written (a rejected one's slot holds it until
   * overwritten), the sampled tokens are kept up to the first that differs from the draft after it. */
  private verify(seqId: string, seq: ShardSequence, drafts: number[]): SeqOutput {
    drafts.forEach((t, i) => this.writeSlot(seq, seq.tokens.length + i, t));
    const sampled: number[] = [];
    for (let i = 0; i <= drafts.length; i++) {
      sampled.push(this.sample(seqId, [...seq.tokens, ...drafts.slice(0, i)]));
      if (i === drafts.length || sampled[i] !== drafts[i]) break;
    }
    this.drafted += drafts.length;
    this.accepted += sampled.length - 1;
    this.store(seq, drafts.slice(0, sampled.length - 1));
    seq.pending = sampled.at(-1)!;
    const more = sampled.slice(1).map((token) => ({ token, logprob: -1, top: [] }));
    return { seqId, token: sampled[0]!, logprob: -1, top: [], drafted: drafts.length, ...(more.length > 0 ? { more } : {}) };
  }

  private emit(seqId: string, seq: ShardSequence): SeqOutput {
    seq.pending = this.sample(seqId, seq.tokens);
    return { seqId, token: seq.pending, logprob: -1, top: [] };
  }

  // Every stored position has a block, no sequence holds more than it needs, every position reads the K/V
  // of its own token, and a block two sequences hold is full on both (prefix caching shares only blocks
  // nobody writes any more).
  private checkBlocks(stepId: number): void {
    const owner = new Map<number, { seqId: string; full: boolean }>();
    for (const [seqId, seq] of this.seqs) {
      const need = Math.ceil((seq.tokens.length + seq.unsent) / this.blockSize);  // a chunked prefill's blocks come first
      const most = Math.ceil((seq.tokens.length + seq.unsent + (this.options.slack ?? 0)) / this.blockSize);
      if (seq.blockTable.length < need || seq.blockTable.length > most) {
        throw new Error(`step ${stepId}: ${seqId} stores ${seq.tokens.length} tokens in ${seq.blockTable.length} blocks (needs ${need})`);
      }
      seq.blockTable.forEach((block, i) => {
        if (!Number.isInteger(block) || block < 0 || block >= this.numBlocks) throw new Error(`step ${stepId}: bad block id ${block}`);
        const full = (i + 1) * this.blockSize <= seq.tokens.length;
        const other = owner.get(block);
        if (other === undefined) owner.set(block, { seqId, full });
        else if (!full || !other.full) throw new Error(`step ${stepId}: block ${block} shared by ${other.seqId} and ${seqId} while not full`);
      });
      for (let p = 0; p < seq.tokens.length; p++) {
        if (this.slot(seq, p) !== seq.tokens[p]) throw new Error(`step ${stepId}: ${seqId} position ${p} holds the K/V of another token`);
      }
    }
  }
}
