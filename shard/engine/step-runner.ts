// Runs one protocol Step on this shard: applies the diffs (finished → new → running), builds the
// native batch, runs the forward pass and samples every sequence's next token. Every rank samples (the
// same logits and seeds give the same tokens), so a step sent before the previous one's result came back
// (async scheduling, token SAMPLED_LAST_STEP) is fed locally; rank 0 alone reports the outputs.
import { StateSlots } from './state-slots.js';
import { failNonFinite } from './non-finite.js';
import type { NewSequence, RunningSequence, SeqOutput, Step } from '../../protocol/index.js';
import { GREEDY, SAMPLED_LAST_STEP, float32ToBytes } from '../../protocol/index.js';
import { cpuOps, type SampleResult } from '../../kernels/index.js';
import type { LoadedModel } from '../models/index.js';
import { tokenBitset, type SequenceState } from './sequence-state.js';
import type { AutomatonCache, TokenAutomaton } from '../constraints/token-constraint.js';
import { NgramIndex, acceptedDrafts, type Drafter } from './speculation.js';
import { PredictionCursor } from './prediction-drafts.js';
import { HiddenPool } from './pooling.js';
import { shareDrafts, type DraftModelHook } from './draft-share.js';
import { layoutRows } from './batch-layout.js';
import { imageOverrides, imageSpans, splitImage, type Prepared, type VisionPrefill } from './vision-prefill.js';
import { MropePositions } from './mrope.js';
import { NO_TOKENS, penaltyTokens, rowSampling, samplingOf } from './row-sampling.js';

/** The step's messages do not fit this rank's state: found before any compute, identical on every rank. */
export class StepError extends Error {
  override name = 'StepError';
}

/** The forward pass itself failed (native error): the ranks may have stopped at different collectives, and a
 * CUDA error can leave the device context unusable, so the caller cannot assume the next step is safe. */
export class ForwardError extends Error {
  override name = 'ForwardError';
}

interface Row {
  state: SequenceState;
  tokens: number[];
  firstPos: number;
  wantAll: boolean;
  promptLogprobs: boolean;
  logits: NewSequence['logits'];
  /** A chunked prefill with more tokens to come: K/V only, no logits, nothing sampled. */
  partial: boolean;
  /** Speculative decoding: the draft tokens fed after the row's first token (tokens = [token, ...drafts]); every
   * position is sampled, and `cstates` are the constraint's states before each of them (structured output). */
  drafts: number[];
  cstates?: number[];
}

/** A row whose step returns its final hidden state (an embedding's last prompt chunk). */
const returnsHidden = (r: Row): boolean => r.logits === 'hidden' && !r.partial;
/** How many of a prompt row's positions' final hidden states its sequence's pool reads (pooled embeddings), from its
 * first; none for a decode row. */
const pooledRows = (r: Row): number => (r.logits === 'hidden' ? r.state.pool?.rowsOf(r.firstPos, r.tokens.length) ?? 0 : 0);

const NO_IMAGES: ReadonlyMap<string, Prepared> = new Map();
/** The output of a sequence that failed alone (SequenceState.failed): its token means nothing. */
const failure = (state: SequenceState): SeqOutput => ({ seqId: state.seqId, token: 0, logprob: 0, top: [], error: state.failed! });
/** Sampling options that leave the distribution as the model gives it (for prompt alternatives). */
const RAW = { ...GREEDY, drawIndex: 0 };

export class StepRunner {
  private readonly seqs = new Map<string, SequenceState>();
  /** A hybrid Mamba model's recurrent-state slots (state-slots.ts); null for attention-only models. */
  private readonly stateSlots: StateSlots | null;
  private forwards = 0;
  /** Fault injection for tests (`WEFT_TEST_FAIL_FORWARD`): the n-th forward pass of this runner (from 1) fails
   * before it starts, as a native error would. 0: never. */
  failForwardAt = 0;

  /** `constraints`: compiled structured-output patterns (absent: NewSequence.constraint is refused). `drafter`:
   * where speculative drafts come from (default: the n-gram lookup; tests give guesses of known quality);
   * `draftModel`: a draft model's drafts instead (--speculative-model, draft-share.ts). */
  constructor(private readonly model: LoadedModel, private readonly rank: number, private readonly constraints?: AutomatonCache,
    private readonly drafter?: Drafter, private readonly draftModel?: DraftModelHook, private readonly vision?: VisionPrefill) {
    this.stateSlots = model.spec.mamba ? new StateSlots() : null;
  }

  get activeSequences(): number {
    return this.seqs.size;
  }

  /** Drops every sequence (after a failed step the coordinator fails them all). */
  reset(): void {
    for (const state of this.seqs.values()) this.vision?.release(state.images);
    this.seqs.clear();
    this.stateSlots?.clear();
    this.draftModel?.drafter?.reset();
  }

  async run(step: Step): Promise<SeqOutput[]> {
    for (const id of step.finished) {
      this.vision?.release(this.seqs.get(id)?.images);
      this.seqs.delete(id);
      this.stateSlots?.release(id);
      this.draftModel?.drafter?.forget(id);
    }
    const prepared = await this.prepareImages(step);
    const rows: Row[] = [];
    const failed: SeqOutput[] = [];  // sequences that failed alone, reported when their prompt is complete
    for (const ns of step.newSeqs) {
      const row = this.admit(ns, prepared.get(ns.seqId));
      if (row.state.failed === undefined) rows.push(row);
      else if (row.state.unsent === 0) failed.push(failure(row.state));
    }
    for (const c of step.chunks ?? []) {
      const state = this.seqs.get(c.seqId);
      if (!state) throw new StepError(`step ${step.stepId}: prefill chunk for '${c.seqId}', unknown on rank ${this.rank}`);
      if (state.unsent !== c.tokens.length + c.pending) {
        throw new StepError(`step ${step.stepId}: chunk of ${c.tokens.length} tokens (+${c.pending} to come) for '${c.seqId}', which awaits ${state.unsent}`);
      }
      state.unsent = c.pending;
      state.history.push(...c.tokens);
      if (state.failed !== undefined) {
        if (c.pending === 0) failed.push(failure(state));
        continue;
      }
      rows.push({ state, tokens: c.tokens, firstPos: state.length, wantAll: false, promptLogprobs: false,
        logits: state.hidden ? 'hidden' : 'none', partial: c.pending > 0, drafts: [] });
    }
    this.refuseSplitImages(rows, failed);
    // A step that returns full logits (rare: scoring, prompt logprobs) or hidden states (embeddings) does not
    // speculate: one sampling path.
    // A hybrid Mamba model never speculates: a rejected draft would have advanced its recurrent state.
    const speculate = !this.stateSlots && !rows.some((r) => r.wantAll || returnsHidden(r) || pooledRows(r) > 0);
    const running: { state: SequenceState; r: RunningSequence; token: number }[] = [];
    for (const r of step.running) {
      const state = this.seqs.get(r.seqId);
      if (!state) throw new StepError(`step ${step.stepId}: running sequence '${r.seqId}' is unknown on rank ${this.rank}`);
      if (state.failed !== undefined) continue;  // sent before its failure was back (async scheduling): ended already
      if (state.unsent > 0) throw new StepError(`step ${step.stepId}: sequence '${r.seqId}' decodes before its prefill is complete`);
      const token = r.token === SAMPLED_LAST_STEP ? state.lastSampled : r.token;
      if (token < 0) throw new StepError(`step ${step.stepId}: sequence '${r.seqId}' is fed the token sampled last step, but none was sampled on rank ${this.rank}`);
      state.blockTable.push(...r.newBlocks);
      state.history.push(token);
      running.push({ state, r, token });
    }
    // Drafts after every check above: a draft model's are shared by a collective every rank must reach.
    const proposed = speculate ? await this.proposeAll(running) : [];
    running.forEach(({ state, token }, k) => {
      const { drafts, cstates } = speculate ? this.constrained(state, proposed[k]!) : { drafts: [] };
      rows.push({ state, tokens: [token, ...drafts], firstPos: state.length, wantAll: false, promptLogprobs: false,
        logits: 'none', partial: false, drafts, ...(cstates ? { cstates } : {}) });
    });
    if (rows.length === 0) return this.rank === 0 ? failed : [];
    const batch = this.buildBatch(rows);
    const sampling = rows.filter((r) => !r.partial);
    // Rows that return logits (all of them, or prompt logprobs) need the full logits here; otherwise the
    // executor samples (on the GPU for a one-rank CUDA model) and only tokens come back.
    if (speculate) {
      // Built before the forward pass: only the native call's own failures count as ForwardError.
      const options = sampling.flatMap(rowSampling);
      const sampled = await this.compute(() => this.model.native.forwardSample(batch, options));
      let next = 0;
      const outputs = sampling.map((row) => {
        const n = row.drafts.length + 1;
        next += n;
        return row.drafts.length === 0 ? this.output(row, sampled[next - 1]!) : this.verified(row, sampled.slice(next - n, next));
      });
      for (const row of rows) if (row.drafts.length === 0) row.state.length += row.tokens.length;
      this.promptsDone(rows);
      return this.rank === 0 ? [...failNonFinite(outputs), ...failed] : [];
    }
    const logits = await this.compute(() => this.model.native.forward(batch));
    for (const row of rows) row.state.length += row.tokens.length;
    this.promptsDone(rows);
    if (batch.hiddenRows) this.foldPooled(rows, logits, batch.logitRows.length, batch.returnHidden === true);
    const outputs = this.sampleAll(sampling, logits);
    return this.rank === 0 ? [...failNonFinite(outputs), ...failed] : [];
  }

  /**
   * Gemma 3: an image's tokens attend to each other both ways, so a prompt row must hold the rest of every image it
   * starts (the coordinator never ends a chunk inside one: ModelInfo.vision.bidirectionalImages). A row that would
   * fails its sequence alone, with nothing of it computed; the failure is its output once its prompt is complete.
   */
  private refuseSplitImages(rows: Row[], failed: SeqOutput[]): void {
    if (!this.model.spec.vision?.siglip) return;
    for (let k = rows.length - 1; k >= 0; k--) {
      const { state, firstPos, tokens } = rows[k]!;
      const why = splitImage(state.images, firstPos, firstPos + tokens.length);
      if (why === null) continue;
      state.failed = `sequence '${state.seqId}': ${why}`;
      rows.splice(k, 1);
      this.vision?.release(state.images);
      delete state.images;
      if (state.unsent === 0) failed.push(failure(state));
    }
  }

  /** Vision-language models: the step's new sequences' images, waited for and encoded (vision-prefill.ts). */
  private async prepareImages(step: Step): Promise<ReadonlyMap<string, Prepared>> {
    const withImages = step.newSeqs.filter((ns) => (ns.images?.length ?? 0) > 0);
    if (withImages.length === 0) return NO_IMAGES;
    if (!this.vision) {
      return new Map(withImages.map((ns) => [ns.seqId, { error: `new sequence '${ns.seqId}' has images, but ` +
        `${this.model.spec.architecture} is not a vision-language model weft encodes images for` }]));
    }
    return this.vision.prepare(withImages);
  }

  /** A sequence whose prompt is now computed no longer needs its images' feature rows. */
  private promptsDone(rows: Row[]): void {
    for (const row of rows) {
      if (row.state.images && row.state.unsent === 0) {
        this.vision?.release(row.state.images);
        delete row.state.images;
      }
    }
  }

  /** Pooled embeddings: each pooled row's hidden states (forward()'s last block, in row order) into its pool. */
  private foldPooled(rows: Row[], out: Float32Array, logitRows: number, returnHidden: boolean): void {
    const H = this.model.spec.hidden;
    let at = logitRows * (this.model.spec.vocab + (returnHidden ? H : 0));
    for (const row of rows) {
      const n = pooledRows(row);
      if (n === 0) continue;
      if (out.length < at + n * H) throw new ForwardError(`forward pass returned no hidden states for '${row.state.seqId}'`);
      row.state.pool!.add(out.subarray(at, at + n * H), n);
      at += n * H;
    }
  }

  private async compute<T>(pass: () => Promise<T>): Promise<T> {
    const n = ++this.forwards;
    try {
      if (n === this.failForwardAt) throw new Error(`injected failure of forward pass ${n} (WEFT_TEST_FAIL_FORWARD)`);
      return await pass();
    } catch (e) {
      throw new ForwardError(`forward pass failed on rank ${this.rank}: ${(e as Error).message}`, { cause: e });
    }
  }

  private output(row: Row, s: SampleResult): SeqOutput {
    row.state.draws++;
    row.state.lastSampled = s.token;
    const c = row.state.constraint;
    if (c && c.failed === undefined) {
      try {
        c.state = c.automaton.advance(c.state, s.token);
      } catch (e) {
        c.failed = (e as Error).message;
      }
    }
    if (c?.failed !== undefined) {
      return { seqId: row.state.seqId, token: s.token, logprob: s.logprob, top: [], error: `structured output: ${c.failed}` };
    }
    return { seqId: row.state.seqId, token: s.token, logprob: s.logprob, top: s.top.map(([token, logprob]) => ({ token, logprob })) };
  }

  /** How many drafts a running row may verify: r.draft, no more than its KV blocks hold. */
  private allowance(state: SequenceState, r: RunningSequence): number {
    const room = state.blockTable.length * this.model.plan.blockSize - state.length - 1;
    return Math.max(0, Math.min(r.draft ?? 0, room));
  }

  /** Every running row's proposed drafts: the draft model's (rank 0's, shared with the other ranks), or each
   * sequence's n-gram lookup (every rank computes the same ones from the same history). */
  private async proposeAll(running: { state: SequenceState; r: RunningSequence }[]): Promise<number[][]> {
    const maxes = running.map(({ state, r }) => this.allowance(state, r));
    if (this.draftModel) {  // a request's prediction drafts for it, the draft model for the others
      const modelled = await shareDrafts(this.draftModel, running.map(({ state }, k) => ({ seqId: state.seqId, history: state.history,
        max: state.sampling.prediction ? 0 : maxes[k]! })));
      return running.map(({ state }, k) => (state.sampling.prediction && maxes[k]! > 0 ? this.propose(state, maxes[k]!) : modelled[k]!));
    }
    return running.map(({ state }, k) => (maxes[k]! > 0 ? this.propose(state, maxes[k]!) : []));
  }

  /** The proposed drafts a row verifies: (structured output) only while the pattern allows them — with the
   * constraint's state before each position. */
  private constrained(state: SequenceState, drafts: number[]): { drafts: number[]; cstates?: number[] } {
    const c = state.constraint;
    if (drafts.length === 0 || !c) return { drafts };
    if (c.failed !== undefined) return { drafts: [] };
    const cstates = [c.state];
    try {
      for (let i = 0; i < drafts.length; i++) {
        const d = drafts[i]!;
        if (((c.automaton.mask(cstates[i]!)[d >> 3] ?? 0) >> (d & 7) & 1) === 0) {  // bit d: may come next
          drafts.length = i;
          break;
        }
        cstates.push(c.automaton.advance(cstates[i]!, d));
      }
    } catch {
      drafts.length = cstates.length - 1;  // the automaton's own failure shows up when the token is sampled
    }
    return { drafts, cstates: cstates.slice(0, drafts.length + 1) };
  }

  /** Up to max drafts: the given drafter's, or the n-gram lookup over the sequence's history (its index kept
   * with the sequence, brought up to date here). */
  private propose(state: SequenceState, max: number): number[] {
    const prediction = state.sampling.prediction;
    if (prediction) return (state.predicted ??= new PredictionCursor(prediction)).propose(state.history, max, state.promptLen);
    if (this.drafter) return this.drafter(state.seqId, state.history, max).slice(0, max);
    state.ngrams ??= new NgramIndex();
    state.ngrams.update(state.history);
    return state.ngrams.propose(state.history, max);
  }

  /** A speculative row's output: the tokens sampled at its positions up to and including the first that differs
   * from the draft fed after it; the sequence's K/V and history keep the accepted drafts only. */
  private verified(row: Row, sampled: SampleResult[]): SeqOutput {
    const accepted = acceptedDrafts(row.drafts, sampled.map((s) => s.token));
    const outs: SeqOutput[] = [];
    for (const s of sampled.slice(0, accepted + 1)) {
      const out = this.output(row, s);
      outs.push(out);
      if (out.error !== undefined) break;
    }
    const kept = outs.length - 1;  // drafts whose K/V stay (the last output is fed next step)
    row.state.history.push(...row.drafts.slice(0, kept));
    row.state.length += 1 + kept;
    const first = outs[0]!;
    const last = outs.at(-1)!;
    if (last.error !== undefined) return { ...last, drafted: row.drafts.length };
    return { ...first, drafted: row.drafts.length,
      ...(outs.length > 1 ? { more: outs.slice(1).map(({ token, logprob, top }) => ({ token, logprob, top })) } : {}) };
  }

  private admit(ns: NewSequence, images?: Prepared): Row {
    if (this.seqs.has(ns.seqId)) throw new StepError(`new sequence '${ns.seqId}' already exists on rank ${this.rank}`);
    // Prefix caching: the first `cached` tokens' K/V are in the leading (shared) blocks; compute the rest.
    const cached = ns.cached ?? 0;
    const bs = this.model.plan.blockSize;
    if (cached % bs !== 0 || cached >= ns.tokens.length || cached > ns.blockTable.length * bs) {
      throw new StepError(`new sequence '${ns.seqId}': ${cached} cached tokens must be whole blocks of ${bs}, fewer than its ${ns.tokens.length} tokens`);
    }
    if (this.stateSlots && cached > 0) {
      throw new StepError(`new sequence '${ns.seqId}': a hybrid Mamba model computes every prompt from its first token (a cached prefix has no recurrent state)`);
    }
    const state: SequenceState = {
      seqId: ns.seqId,
      adapterSlot: ns.adapterSlot,
      blockTable: [...ns.blockTable],
      length: cached,
      promptLen: ns.tokens.length + (ns.pending ?? 0) - ns.generated.length,
      history: [...ns.tokens],
      sampling: ns.sampling,
      draws: ns.generated.length,
      lastSampled: -1,
      topN: ns.topN,
      unsent: ns.pending ?? 0,
      ...(ns.logits === 'hidden' ? { hidden: true } : {}),
      ...(ns.constraint !== undefined ? { constraint: this.constraint(ns) } : {}),
      ...(ns.sampling.allowedTokens ? { allowed: this.allowedBits(ns) } : {}),
      ...(images ? ('error' in images ? { failed: images.error } : { images: images.images }) : {}),
      ...(images && !('error' in images) && images.grids ? { mrope: new MropePositions(images.grids) } : {}),
    };
    if (ns.pooling !== undefined) {
      // A pooled embedding reads every prompt position: a cached one would be missing from the pool.
      if (ns.logits !== 'hidden' || cached > 0) {
        throw new StepError(`new sequence '${ns.seqId}': pooling '${ns.pooling}' needs logits 'hidden' and no cached tokens`);
      }
      state.pool = new HiddenPool(ns.pooling, this.model.spec.hidden);
    }
    if (this.stateSlots) state.stateSlot = this.stateSlots.take(ns.seqId);
    this.seqs.set(ns.seqId, state);
    const wantAll = ns.logits === 'all' || ns.promptLogprobs;
    if (wantAll && (state.unsent > 0 || cached > 0)) {
      throw new StepError(`new sequence '${ns.seqId}': a prefill that returns logits cannot be chunked or start from cached tokens`);
    }
    return { state, tokens: cached > 0 ? ns.tokens.slice(cached) : ns.tokens, firstPos: cached, wantAll,
      promptLogprobs: ns.promptLogprobs, logits: ns.logits, partial: state.unsent > 0, drafts: [] };
  }

  private allowedBits(ns: NewSequence): Uint8Array {
    const V = this.model.spec.vocab;
    const outside = ns.sampling.allowedTokens!.find((t) => t >= V);
    if (outside !== undefined) throw new StepError(`new sequence '${ns.seqId}': allowed token ${outside} is outside the vocabulary (${V})`);
    return tokenBitset(ns.sampling.allowedTokens!, V);
  }

  /** The automaton of a new sequence's pattern, in the state its already generated tokens lead to. */
  private constraint(ns: NewSequence): { automaton: TokenAutomaton; state: number } {
    if (!this.constraints) throw new StepError(`new sequence '${ns.seqId}': structured output is not available on this shard`);
    let automaton: TokenAutomaton;
    try {
      automaton = this.constraints.get(ns.constraint!);
    } catch (e) {
      throw new StepError(`new sequence '${ns.seqId}': ${(e as Error).message}`);
    }
    let state = automaton.start;
    for (const t of ns.generated) state = automaton.advance(state, t);
    return { automaton, state };
  }

  private buildBatch(rows: Row[]) {
    const layout = layoutRows(rows.map((r) => ({ seqId: r.state.seqId, tokens: r.tokens, firstPos: r.firstPos, blockTable: r.state.blockTable,
      adapterSlot: r.state.adapterSlot, promptLen: r.state.promptLen,
      ...(r.state.stateSlot !== undefined ? { stateSlot: r.state.stateSlot } : {}), ...(r.state.mrope ? { mrope: r.state.mrope } : {}) })),
    this.model.plan.blockSize, this.model.spec.rope, (seqId, pos) => new StepError(`sequence '${seqId}': no KV block for position ${pos}`),
    this.model.spec.mropeSection !== undefined);
    const logitRows: number[] = [], hiddenRows: number[] = [];
    rows.forEach((row, k) => {
      const start = layout.starts[k]!, end = start + row.tokens.length;
      if (row.wantAll || row.drafts.length > 0) for (let i = start; i < end; i++) logitRows.push(i);
      else if (!row.partial) logitRows.push(end - 1);
      for (let i = 0; i < pooledRows(row); i++) hiddenRows.push(start + i);
    });
    if (this.model.spec.vision?.siglip) {  // Gemma 3: each prompt row's images attend to themselves both ways
      rows.forEach((row, k) => {
        if (row.state.images?.length) layout.seqs[k]!.imageSpans = imageSpans(row.state.images);
      });
    }
    const { starts, ...arrays } = layout;
    const returnHidden = rows.some(returnsHidden);
    const overrides = imageOverrides(rows.map((r, k) => ({ at: starts[k]!, firstPos: r.firstPos, count: r.tokens.length,
      ...(r.state.images ? { images: r.state.images } : {}) })), this.model.spec.hidden);
    return { ...arrays, ...overrides, logitRows: Int32Array.from(logitRows),
      ...(returnHidden ? { returnHidden } : {}), ...(hiddenRows.length > 0 ? { hiddenRows: Int32Array.from(hiddenRows) } : {}) };
  }

  /** A finished prompt's embedding: its pool's result, or (last-token pooling) its last position's state. */
  private embedding(row: Row, last: Float32Array): Float32Array {
    if (!row.state.pool) return last;
    const pooled = row.state.pool.result();
    if (!pooled) throw new ForwardError(`sequence '${row.state.seqId}' finished its prompt with nothing pooled`);
    return pooled;
  }

  private sampleAll(rows: Row[], logits: Float32Array): SeqOutput[] {
    const V = this.model.spec.vocab, H = this.model.spec.hidden;
    const outputs: SeqOutput[] = [];
    // With hidden states (returnHidden), they follow the logits: [logit rows, hidden].
    const logitRows = rows.reduce((n, row) => n + (row.wantAll ? row.tokens.length : 1), 0);
    const hidden = logits.subarray(logitRows * V);
    let r = 0;
    for (const row of rows) {
      const n = row.wantAll ? row.tokens.length : 1;
      const block = logits.subarray(r * V, (r + n) * V);
      r += n;
      if (row.logits === 'hidden' && hidden.length < r * H) throw new ForwardError(`forward pass returned no hidden state for '${row.state.seqId}'`);
      const last = block.subarray((n - 1) * V, n * V);
      const { state } = row;
      const s = cpuOps.sample(last, samplingOf(state), penaltyTokens(state), state.topN);
      const out = this.output(row, s);
      if (this.rank !== 0) continue;  // other ranks only need the token
      if (row.promptLogprobs) {
        // log p(token_i | tokens_<i) for i >= 1; the first prompt token has no prefix to score it.
        out.promptLogprobs = row.tokens.slice(1).map((tok, i) => cpuOps.logSoftmaxAt(block.subarray(i * V, (i + 1) * V), tok));
        // The most likely alternatives at each of those positions (the raw distribution: greedy, no penalty).
        if (state.topN > 0) {
          out.promptTop = row.tokens.slice(1).map((_, i) => cpuOps.sample(block.subarray(i * V, (i + 1) * V), RAW, NO_TOKENS, state.topN)
            .top.map(([token, logprob]) => ({ token, logprob })));
        }
      }
      if (row.logits === 'all') out.logits = float32ToBytes(block);
      if (row.logits === 'hidden') out.hidden = float32ToBytes(this.embedding(row, hidden.subarray((r - 1) * H, r * H)));
      outputs.push(out);
    }
    return outputs;
  }
}
