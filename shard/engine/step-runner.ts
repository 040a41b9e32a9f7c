// Runs one protocol Step on this shard: applies the diffs (finished → new → running), builds the
// native batch, runs the forward pass and samples every sequence's next token. Every rank samples (the
// same logits and seeds give the same tokens), so a step sent before the previous one's result came back
// (async scheduling, token SAMPLED_LAST_STEP) is fed locally; rank 0 alone reports the outputs.
import type { NewSequence, SeqOutput, Step } from '../../protocol/index.js';
import { SAMPLED_LAST_STEP, float32ToBytes } from '../../protocol/index.js';
import { cpuOps, type BatchSeq, type SampleResult, type SamplingOptions } from '../../kernels/index.js';
import { usesLongRope, type LoadedModel } from '../models/index.js';
import type { SequenceState } from './sequence-state.js';
import type { AutomatonCache, TokenAutomaton } from '../constraints/token-constraint.js';

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
}

const NO_TOKENS = new Int32Array(0);
/** Sampling options that leave the distribution as the model gives it (for prompt alternatives). */
const RAW = { temperature: 1, topK: 0, topP: 1, typicalP: 1, repetitionPenalty: 1, doSample: false, seed: 0, drawIndex: 0 };

/** The sampler's options for a sequence's next token: its request's, the draw index, the constraint's mask. A
 * constraint that fails (its automaton outgrew its limit) fails only its sequence: no mask, and the output says
 * why (see output()). */
function samplingOf(state: SequenceState): SamplingOptions {
  const c = state.constraint;
  let allowedMask: Uint8Array | undefined;
  if (c && c.failed === undefined) {
    try {
      allowedMask = c.automaton.mask(c.state);
    } catch (e) {
      c.failed = (e as Error).message;
    }
  }
  const s = state.sampling;
  // min_tokens: the end tokens get -inf (a bias no logit_bias reaches) until that many tokens are generated.
  const banEnd = s.minTokens !== undefined && state.draws < s.minTokens && (s.endTokens?.length ?? 0) > 0;
  const logitBias = banEnd ? [...(s.logitBias ?? []), ...s.endTokens!.map((token) => ({ token, bias: -Infinity }))] : s.logitBias;
  return { ...s, ...(logitBias ? { logitBias } : {}), drawIndex: state.draws, ...(allowedMask ? { allowedMask } : {}) };
}

/** The tokens the penalties look at: the whole history (its last `draws` are the generated ones, which the
 * frequency/presence penalties count), or none when there is no penalty. */
function penaltyTokens(state: SequenceState): Int32Array {
  const s = state.sampling;
  const any = s.repetitionPenalty !== 1 || (s.frequencyPenalty ?? 0) !== 0 || (s.presencePenalty ?? 0) !== 0;
  return any ? Int32Array.from(state.history) : NO_TOKENS;
}

export class StepRunner {
  private readonly seqs = new Map<string, SequenceState>();
  private forwards = 0;
  /** Fault injection for tests (`WEFT_TEST_FAIL_FORWARD`): the n-th forward pass of this runner (from 1) fails
   * before it starts, as a native error would. 0: never. */
  failForwardAt = 0;

  /** `constraints`: compiled structured-output patterns (absent: NewSequence.constraint is refused). */
  constructor(private readonly model: LoadedModel, private readonly rank: number, private readonly constraints?: AutomatonCache) {}

  get activeSequences(): number {
    return this.seqs.size;
  }

  /** Drops every sequence (after a failed step the coordinator fails them all). */
  reset(): void {
    this.seqs.clear();
  }

  async run(step: Step): Promise<SeqOutput[]> {
    for (const id of step.finished) this.seqs.delete(id);
    const rows: Row[] = [];
    for (const ns of step.newSeqs) rows.push(this.admit(ns));
    for (const c of step.chunks ?? []) {
      const state = this.seqs.get(c.seqId);
      if (!state) throw new StepError(`step ${step.stepId}: prefill chunk for '${c.seqId}', unknown on rank ${this.rank}`);
      if (state.unsent !== c.tokens.length + c.pending) {
        throw new StepError(`step ${step.stepId}: chunk of ${c.tokens.length} tokens (+${c.pending} to come) for '${c.seqId}', which awaits ${state.unsent}`);
      }
      state.unsent = c.pending;
      state.history.push(...c.tokens);
      rows.push({ state, tokens: c.tokens, firstPos: state.length, wantAll: false, promptLogprobs: false, logits: 'none',
        partial: c.pending > 0 });
    }
    for (const r of step.running) {
      const state = this.seqs.get(r.seqId);
      if (!state) throw new StepError(`step ${step.stepId}: running sequence '${r.seqId}' is unknown on rank ${this.rank}`);
      if (state.unsent > 0) throw new StepError(`step ${step.stepId}: sequence '${r.seqId}' decodes before its prefill is complete`);
      const token = r.token === SAMPLED_LAST_STEP ? state.lastSampled : r.token;
      if (token < 0) throw new StepError(`step ${step.stepId}: sequence '${r.seqId}' is fed the token sampled last step, but none was sampled on rank ${this.rank}`);
      state.blockTable.push(...r.newBlocks);
      state.history.push(token);
      rows.push({ state, tokens: [token], firstPos: state.length, wantAll: false, promptLogprobs: false, logits: 'none',
        partial: false });
    }
    if (rows.length === 0) return [];
    const batch = this.buildBatch(rows);
    const sampling = rows.filter((r) => !r.partial);
    // Rows that return logits (all of them, or prompt logprobs) need the full logits here; otherwise the
    // executor samples (on the GPU for a one-rank CUDA model) and only tokens come back.
    if (!rows.some((r) => r.wantAll)) {
      // Built before the forward pass: only the native call's own failures count as ForwardError.
      const options = sampling.map((r) => ({ ...samplingOf(r.state), penaltyTokens: penaltyTokens(r.state), topN: r.state.topN }));
      const sampled = await this.compute(() => this.model.native.forwardSample(batch, options));
      for (const row of rows) row.state.length += row.tokens.length;
      const outputs = sampling.map((row, i) => this.output(row, sampled[i]));
      return this.rank === 0 ? outputs : [];
    }
    const logits = await this.compute(() => this.model.native.forward(batch));
    for (const row of rows) row.state.length += row.tokens.length;
    const outputs = this.sampleAll(sampling, logits);
    return this.rank === 0 ? outputs : [];
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

  private admit(ns: NewSequence): Row {
    if (this.seqs.has(ns.seqId)) throw new StepError(`new sequence '${ns.seqId}' already exists on rank ${this.rank}`);
    // Prefix caching: the first `cached` tokens' K/V are in the leading (shared) blocks; compute the rest.
    const cached = ns.cached ?? 0;
    const bs = this.model.plan.blockSize;
    if (cached % bs !== 0 || cached >= ns.tokens.length || cached > ns.blockTable.length * bs) {
      throw new StepError(`new sequence '${ns.seqId}': ${cached} cached tokens must be whole blocks of ${bs}, fewer than its ${ns.tokens.length} tokens`);
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
      ...(ns.constraint !== undefined ? { constraint: this.constraint(ns) } : {}),
    };
    this.seqs.set(ns.seqId, state);
    const wantAll = ns.logits === 'all' || ns.promptLogprobs;
    if (wantAll && (state.unsent > 0 || cached > 0)) {
      throw new StepError(`new sequence '${ns.seqId}': a prefill that returns logits cannot be chunked or start from cached tokens`);
    }
    return { state, tokens: cached > 0 ? ns.tokens.slice(cached) : ns.tokens, firstPos: cached, wantAll,
      promptLogprobs: ns.promptLogprobs, logits: ns.logits, partial: state.unsent > 0 };
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
    const bs = this.model.plan.blockSize;
    const T = rows.reduce((n, r) => n + r.tokens.length, 0);
    const tokens = new Int32Array(T), positions = new Int32Array(T), slotMapping = new Int32Array(T);
    const rope = this.model.spec.rope;
    const ropeLong = rope?.long ? new Uint8Array(T) : undefined;
    const seqs: BatchSeq[] = [];
    const logitRows: number[] = [];
    let t = 0;
    for (const row of rows) {
      const { state } = row;
      const start = t;
      for (let i = 0; i < row.tokens.length; i++, t++) {
        const pos = row.firstPos + i;
        const block = state.blockTable[Math.floor(pos / bs)];
        if (block === undefined) throw new StepError(`sequence '${state.seqId}': no KV block for position ${pos}`);
        tokens[t] = row.tokens[i];
        positions[t] = pos;
        if (ropeLong && usesLongRope(rope!, state.promptLen, pos)) ropeLong[t] = 1;
        slotMapping[t] = block * bs + (pos % bs);
      }
      if (row.wantAll) for (let i = start; i < t; i++) logitRows.push(i);
      else if (!row.partial) logitRows.push(t - 1);
      seqs.push({ tokenStart: start, numTokens: row.tokens.length, contextLen: row.firstPos + row.tokens.length,
        adapterSlot: state.adapterSlot, blockTable: Int32Array.from(state.blockTable) });
    }
    return { tokens, positions, slotMapping, ...(ropeLong ? { ropeLong } : {}), seqs, logitRows: Int32Array.from(logitRows) };
  }

  private sampleAll(rows: Row[], logits: Float32Array): SeqOutput[] {
    const V = this.model.spec.vocab;
    const outputs: SeqOutput[] = [];
    let r = 0;
    for (const row of rows) {
      const n = row.wantAll ? row.tokens.length : 1;
      const block = logits.subarray(r * V, (r + n) * V);
      r += n;
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
      outputs.push(out);
    }
    return outputs;
  }
}
