// Continuous batching with paged KV blocks, adapter-aware admission and preemption by recompute.
// Two calls drive it: schedule() builds the next Step, update() applies its StepResult; they alternate.
// Async scheduling adds scheduleAhead(): with one step in flight it builds the next one before that step's
// result is known, so the shards never wait for the coordinator (see scheduleAhead for what it may not do).
// Prefix caching (config.prefixCaching): a full block is registered under its content key once the step that
// computes it has come back; an admission finds its leading blocks there and the shards skip those tokens.
// Pure bookkeeping: no I/O, no timers. Aborts and stops take effect at the next schedule().

import { PROTOCOL_VERSION, SAMPLED_LAST_STEP } from '../../protocol/index.js';
import type { PrefillChunk, RunningSequence, SeqOutput, Step, StepResult } from '../../protocol/index.js';
import { adapterAdmissible, findStarving, insertByPriority, priorityPreemption, rejectReason, waitingPriorities, wantedAdapters } from './admission.js';
import type { PriorityPreemption } from './admission.js';
import { BlockManager } from './block-manager.js';
import { chunkLength } from './image-chunks.js';
import { PendingBlocks, cachedPrefix, registerComputed } from './prefix-cache.js';
import { slotPreemption } from './slot-preemption.js';
import type { SlotPreemption } from './slot-preemption.js';
import { baseSlots, reserveDrafts } from './speculation.js';
import { continuePrefills, newSequenceMessage, outputProblem } from './step-messages.js';
import type { FinishReason, Sequence } from './sequence.js';
import { SchedulerError, StepFailedError, checkSchedulerConfig } from './types.js';
import type { ScheduledStep, SchedulerConfig, SchedulerHooks, SequenceEvent } from './types.js';

interface InFlight {
  stepId: number;
  /** The sequences that produce a token in this step. */
  seqs: Sequence[];
  /** Every sequence the step computes (also chunked prefills with more to come): a failed step ends them all. */
  members: Sequence[];
  /** For each member: its tokens with K/V in the cache once this step has run (what may be registered). */
  computed: number[];
}

interface PendingStop {
  reason: FinishReason;
  message: string | null;
}

export class Scheduler {
  private readonly config: SchedulerConfig;
  private readonly blocks: BlockManager;
  private readonly maxTotalTokens: number;
  private readonly isAdapterReady: (key: string) => boolean;
  private readonly adapterSlot: ((key: string) => number) | undefined;
  private readonly now: () => number;
  private readonly hooks: SchedulerHooks;

  private readonly live = new Map<string, Sequence>();
  private waitingQueue: Sequence[] = [];
  /** In admission order: the last one is the first to be preempted. */
  private runningList: Sequence[] = [];
  private readonly pendingStops = new Map<string, PendingStop>();
  /** Ids the shards must drop, sent with the next step. */
  private toFree: string[] = [];
  /** Steps sent and not yet updated, oldest first: at most two (one more with scheduleAhead). */
  private inFlight: InFlight[] = [];
  private readonly abandoned = new Set<number>();
  private readonly pendingBlocks = new PendingBlocks();
  /** Steps up to this id were in flight when a step failed: until they are back nothing is built ahead (a
   * requeued sequence admitted again must not take an output of its old admission). */
  private staleThrough = 0;
  private nextStepId = 1;
  private preemptionTotal = 0;
  private draftedTotal = 0;
  private acceptedTotal = 0;

  constructor(config: SchedulerConfig, hooks: SchedulerHooks = {}) {
    checkSchedulerConfig(config);
    this.config = { ...config };
    this.blocks = new BlockManager(config.numBlocks, config.blockSize);
    this.maxTotalTokens = Math.min(config.maxTotalTokens, this.blocks.capacityTokens);
    this.isAdapterReady = hooks.isAdapterReady ?? (() => true);
    this.adapterSlot = hooks.adapterSlot;
    this.now = hooks.now ?? Date.now;
    this.hooks = hooks;
  }

  /** Queues a new request. Throws SchedulerError when it could never run. */
  add(seq: Sequence): void {
    const why = this.live.has(seq.seqId) ? 'id already queued' : rejectReason(seq, this.maxTotalTokens, this.config.maxActiveAdapters);
    if (why !== null) throw new SchedulerError(`sequence ${seq.seqId}: ${why}`, 'INVALID_SEQUENCE');
    seq.arrivalTime = this.now();
    this.live.set(seq.seqId, seq);
    insertByPriority(this.waitingQueue, seq);
  }

  /** Cancels a request at the next schedule(); false when it is unknown or already ending. */
  abort(seqId: string, reason: FinishReason = 'cancelled', message: string | null = null): boolean {
    if (!this.live.has(seqId) || this.pendingStops.has(seqId)) return false;
    this.pendingStops.set(seqId, { reason, message });
    return true;
  }

  /** Ends a request the layer above decided is complete (e.g. a stop sequence matched). */
  finish(seqId: string, reason: FinishReason = 'stop_sequence'): boolean {
    return this.abort(seqId, reason);
  }

  /** True while schedule() has something to do. A null schedule() with work left means: wait for an adapter. */
  hasWork(): boolean {
    return this.waitingQueue.length > 0 || this.runningList.length > 0 || this.toFree.length > 0 || this.pendingStops.size > 0;
  }

  schedule(): ScheduledStep | null {
    if (this.inFlight.length > 0) {
      throw new SchedulerError(`step ${this.inFlight[0]!.stepId} is in flight: call update() first`, 'OUT_OF_ORDER');
    }
    this.applyStops();
    const priority = this.priorityPreemption();
    const slot = priority === null ? this.slotPreemption() : null;
    const victims = priority?.victims ?? slot?.victims ?? [];
    this.runningList = this.runningList.filter((seq) => !victims.includes(seq));
    for (const victim of victims) this.requeue(victim, true);  // worst first: each goes to the front of its class
    // Their adapters are out of use: the registry evicts them and loads the better request's adapter, now.
    if (slot !== null) this.hooks.adaptersFreed?.(slot.freedAdapters);
    const preempted = victims.map((seq) => seq.seqId);
    const decoding: Sequence[] = [];
    const running = this.scheduleRunning(preempted, decoding);
    const budget = { left: this.config.maxBatchPrefillTokens };
    const chunks = continuePrefills(this.runningList, budget, this.config);
    // Recompute-preemption for room to decode means the cache is full: admit nothing new this step. After
    // preemption for a better request, admit (that request), but not a sequence this step preempted (nor, after
    // one for a device slot, any request of the adapters it freed).
    const notNow = new Set(slot === null ? victims : this.waitingQueue.filter((seq) => slot.freedAdapters.includes(seq.adapterKey!)));
    const admitted = preempted.length === victims.length ? this.admitWaiting(budget, notNow) : [];
    const step = this.emit(running, admitted, chunks, preempted, decoding, 0);
    if (step !== null && priority !== null) step.priorityPreemption = { for: priority.for.seqId, freedAdapter: priority.freedAdapter };
    if (step !== null && slot !== null) step.slotPreemption = { for: slot.for.seqId, adapter: slot.adapter, freedAdapters: slot.freedAdapters };
    return step;
  }

  /**
   * Builds the step after the one in flight before its result is back. Every running sequence of that step
   * decodes again with token SAMPLED_LAST_STEP (each shard feeds what it sampled), except the ones its result
   * will end by length; prefills under way get their next chunk and waiting requests are admitted as usual.
   * Returns null (having applied only pending stops) when nothing would run, when the running sequences' next
   * blocks do not fit (preemption must see the result first), or when the step in flight was sent before a
   * failure was known (see stepFailed). A
   * sequence the in-flight step ends by EOS or a stop sequence decodes one token too many here; update()
   * drops that output and the sequence's blocks are freed by the step after.
   */
  scheduleAhead(): ScheduledStep | null {
    if (this.inFlight.length !== 1) {
      throw new SchedulerError(`scheduleAhead needs exactly one step in flight (${this.inFlight.length} are)`, 'OUT_OF_ORDER');
    }
    this.applyStops();
    if (this.inFlight[0]!.stepId <= this.staleThrough) return null;
    if (this.priorityPreemption() !== null || this.slotPreemption() !== null) return null; // preemption must see the result first
    // A sequence whose last prefill chunk is in flight decodes too: that step samples its first token.
    const decoding = this.runningList.filter((seq) => !seq.isPrefilling && !this.endsByLength(seq, 1));
    let missing = 0;
    for (const seq of decoding) missing += this.blocks.missingBlocks(seq.seqId, baseSlots(seq, 1));
    if (missing > this.blocks.freeBlocks) return null;
    const running: RunningSequence[] = decoding.map((seq) => ({ seqId: seq.seqId, token: SAMPLED_LAST_STEP,
      newBlocks: this.blocks.appendSlots(seq.seqId, baseSlots(seq, 1)) }));
    const budget = { left: this.config.maxBatchPrefillTokens };
    const chunks = continuePrefills(this.runningList, budget, this.config);
    const admitted = this.admitWaiting(budget);
    return this.emit(running, admitted, chunks, [], decoding, 1);
  }

  /** The step message for these sequences. In flight go the decoding sequences (`decoding`) and every new or
   * chunked sequence whose prefill completes here: exactly the ones that produce a token. `ahead`: 1 when the
   * decoding sequences feed the token the step in flight samples (their length does not count it yet). */
  private emit(running: RunningSequence[], admitted: Sequence[], chunks: { seq: Sequence; chunk: PrefillChunk }[],
    preempted: string[], decoding: Sequence[], ahead: 0 | 1): ScheduledStep | null {
    const finished = this.toFree;
    if (running.length === 0 && admitted.length === 0 && chunks.length === 0 && finished.length === 0) return null;
    // Drafts last: they take only what the step's own sequences left free.
    reserveDrafts(this.blocks, running, decoding, this.config.speculate ?? 0, this.maxTotalTokens, ahead, this.config.drafts !== false);
    this.toFree = [];
    const newSeqs = admitted.map((seq) => newSequenceMessage(seq, this.blocks.blockTable(seq.seqId)));
    const step: Step = { v: PROTOCOL_VERSION, type: 'step', stepId: this.nextStepId++, newSeqs, running, finished };
    if (chunks.length > 0) step.chunks = chunks.map((c) => c.chunk);
    const sampled = [...decoding, ...admitted.filter((seq) => !seq.isPrefilling),
      ...chunks.filter((c) => c.chunk.pending === 0).map((c) => c.seq)];
    const prefilling = [...admitted, ...chunks.map((c) => c.seq)];
    const members = [...decoding, ...prefilling];
    const computed = [...decoding.map((seq) => seq.length + ahead), ...prefilling.map((seq) => seq.prefillSent)];
    this.inFlight.push({ stepId: step.stepId, seqs: sampled, members, computed });
    const cachedTokens = newSeqs.reduce((n, s) => n + (s.cached ?? 0), 0);
    const prefillTokens = newSeqs.reduce((n, s) => n + s.tokens.length, 0) - cachedTokens +
      chunks.reduce((n, c) => n + c.chunk.tokens.length, 0);
    return { step, prefillTokens, decodeTokens: running.length, cachedTokens, preempted };
  }

  /** Steps sent and not yet applied by update(). */
  get stepsInFlight(): number {
    return this.inFlight.length;
  }

  /** Applies a step's sampled tokens; returns one event per sequence that produced a token. */
  update(result: StepResult): SequenceEvent[] {
    if (this.abandoned.delete(result.stepId)) return [];
    const flight = this.inFlight[0];
    if (flight === undefined || result.stepId !== flight.stepId) {
      throw new SchedulerError(`result for step ${result.stepId} but ${flight?.stepId ?? 'none'} is the oldest in flight`, 'OUT_OF_ORDER');
    }
    this.inFlight.shift();
    // Not the ones ended since, nor the ones a failed step before this one sent back to the queue.
    const expected = flight.seqs.filter((seq) => seq.status === 'running' && !this.pendingStops.has(seq.seqId));
    const outputs = new Map<string, SeqOutput>(result.outputs.map((o) => [o.seqId, o]));
    const problem = result.error ?? outputProblem(flight.seqs, expected, outputs);
    if (problem !== null) throw this.stepFailed(flight, problem);
    if (this.config.prefixCaching === true) {
      // An aborted member's blocks may already be someone else's: only live sequences register.
      flight.members.forEach((seq, i) => { if (seq.status === 'running') registerComputed(this.blocks, seq, flight.computed[i]!, this.pendingBlocks); });
    }

    const events: SequenceEvent[] = [];
    for (const seq of expected) {
      const out = outputs.get(seq.seqId)!;
      if (out.error !== undefined) {  // this sequence alone failed on the shards
        events.push({ seqId: seq.seqId, token: out.token, logprob: out.logprob, top: [], finished: 'error', error: out.error });
        this.end(seq, 'error', out.error);
        continue;
      }
      this.draftedTotal += out.drafted ?? 0;
      this.acceptedTotal += out.more?.length ?? 0;
      // The step's tokens in order (more than one with speculative decoding), up to the one that ends it.
      for (const [i, t] of [out, ...(out.more ?? [])].entries()) {
        seq.generated.push(t.token);
        const event: SequenceEvent = { seqId: seq.seqId, token: t.token, logprob: t.logprob, top: t.top, ...(i > 0 ? { fromDraft: true } : {}) };
        if (i === 0) {
          if (seq.generated.length === 1) event.cachedTokens = seq.cachedTokens;
          if (out.promptLogprobs !== undefined) event.promptLogprobs = out.promptLogprobs;
          if (out.promptTop !== undefined) event.promptTop = out.promptTop;
          if (out.logits !== undefined) event.logits = out.logits;
          if (out.hidden !== undefined) event.hidden = out.hidden;
        }
        const reason = this.stopReason(seq, t.token);
        events.push(event);
        if (reason !== null) {
          event.finished = reason;
          this.end(seq, reason, null);
          break;
        }
      }
    }
    this.runningList = this.runningList.filter((seq) => !seq.isFinished);
    return events;
  }

  /**
   * A shard that fails a step drops every sequence it holds. The step's sequences end with 'error'; every
   * other running one goes back to the queue's front to start over: with async scheduling that includes the
   * ones the step in flight behind it admitted (that step fails on the shards too when it continues a dropped
   * sequence; if it does not, their outputs are ignored and the shards free them with the next step).
   * Cached K/V are not trusted any more.
   */
  private stepFailed(flight: InFlight, problem: string): StepFailedError {
    const failed = this.endAll(flight.members.filter((seq) => seq.status === 'running'), 'error', problem);
    const requeued = [...this.runningList];
    for (const seq of [...requeued].reverse()) this.requeue(seq, false);
    this.runningList = [];
    this.staleThrough = this.inFlight.at(-1)?.stepId ?? 0;
    this.blocks.clearCache();
    return new StepFailedError(`step ${flight.stepId} failed: ${problem}`, flight.stepId, failed, requeued);
  }

  /** A shard died: ends every running and waiting sequence with 'error' and frees all blocks.
   * Returns the sequences ended with 'error' (those with a pending abort/finish keep that reason). */
  failAll(message: string): Sequence[] {
    for (const f of this.inFlight) this.abandoned.add(f.stepId);
    this.inFlight = [];
    const failed = this.endAll([...this.runningList, ...this.waitingQueue], 'error', message);
    this.blocks.clearCache();
    return failed;
  }

  /** Forgets the prefix cache: the shards' K/V memory is new (a shard group restarted). */
  clearPrefixCache(): void {
    this.blocks.clearCache();
  }

  get(seqId: string): Sequence | undefined {
    return this.live.get(seqId);
  }

  get waiting(): number {
    return this.waitingQueue.length;
  }

  get running(): number {
    return this.runningList.length;
  }

  get usedBlocks(): number {
    return this.blocks.usedBlocks;
  }

  get freeBlocks(): number {
    return this.blocks.freeBlocks;
  }

  /** Blocks registered in the prefix cache (held by sequences or idle). */
  get cachedBlocks(): number {
    return this.blocks.cachedBlocks;
  }

  /** Distinct adapters among running sequences. */
  get activeAdapters(): number {
    return this.runningAdapterKeys().size;
  }

  get preemptions(): number {
    return this.preemptionTotal;
  }

  /** Speculative decoding: draft tokens the shards verified, and how many of them were accepted. */
  get speculation(): { drafted: number; accepted: number } {
    return { drafted: this.draftedTotal, accepted: this.acceptedTotal };
  }

  /** An adapter with running sequences must stay in its device slot. */
  adapterInUse(key: string): boolean {
    return this.runningList.some((seq) => seq.adapterKey === key);
  }

  /** The best priority of the requests waiting for each adapter (the registry's line of adapters waiting for room). */
  waitingPriorities(): Map<string, number> {
    return waitingPriorities(this.waitingQueue);
  }

  /** Adapters that waiting requests need and that are not ready, best request first: what to load next. */
  wantedAdapters(): string[] {
    return wantedAdapters(this.waitingQueue, this.isAdapterReady);
  }

  blockTable(seqId: string): readonly number[] {
    return this.blocks.blockTable(seqId);
  }

  // Every running sequence decodes: extend its table to cover the token it writes this step,
  // preempting the most recently admitted sequences until it fits.
  private scheduleRunning(preempted: string[], decoding: Sequence[]): RunningSequence[] {
    const scheduled: RunningSequence[] = [];
    for (let i = 0; i < this.runningList.length; i++) {
      const seq = this.runningList[i]!;
      if (seq.isPrefilling) continue; // its blocks were all allocated at admission; it gets a chunk instead
      while (!this.blocks.canAppend(seq.seqId, seq.length)) {
        const victim = this.runningList.pop()!;
        this.requeue(victim, true);
        preempted.push(victim.seqId);
        if (victim === seq) break;
      }
      if (seq.status !== 'running') break;
      scheduled.push({ seqId: seq.seqId, token: seq.lastToken, newBlocks: this.blocks.appendSlots(seq.seqId, seq.length) });
      decoding.push(seq);
    }
    return scheduled;
  }

  // FCFS within the batch-size, prefill-budget and block limits; requests whose adapter cannot run
  // now are skipped, not waited on.
  // A prompt longer than the prefill budget left is split (chunked prefill; never inside a bidirectional image: image-chunks.ts): its first chunk
  // runs now, the rest in later steps (continuePrefills); its blocks are all allocated now. Prompts needing every position's logits are never split.
  private admitWaiting(budget: { left: number }, notNow: ReadonlySet<Sequence> = new Set()): Sequence[] {
    const admitted: Sequence[] = [];
    const active = this.runningAdapterKeys();
    let starving = findStarving(this.waitingQueue, active, this.now() - this.config.adapterCycleTimeS * 1000);
    const prefill0 = this.config.maxBatchPrefillTokens - budget.left;
    let prefill = prefill0;
    let open = true;
    const stillWaiting: Sequence[] = [];
    for (const seq of this.waitingQueue) {
      if (open && this.runningList.length >= this.config.maxBatchSize) open = false;
      if (!open || notNow.has(seq) || !adapterAdmissible(seq, active, starving, this.config.maxActiveAdapters, this.isAdapterReady)) {
        stillWaiting.push(seq);
        continue;
      }
      const tokens = seq.length;
      const caching = this.config.prefixCaching === true;
      const hits = caching ? cachedPrefix(this.blocks, seq) : [];
      if (caching && this.pendingBlocks.shouldWait(seq, hits.length, this.config.blockSize)) {
        stillWaiting.push(seq); // its next block is being computed for another request: reuse it next step
        continue;
      }
      const cached = hits.length * this.config.blockSize;
      const left = this.config.maxBatchPrefillTokens - prefill;
      const first = seq.chunkable ? chunkLength(cached, tokens - cached, left, seq.images, this.config.bidirectionalImages === true, prefill === 0) : tokens;
      const overBudget = seq.chunkable ? left <= 0 || first === 0 : prefill > 0 && prefill + tokens > this.config.maxBatchPrefillTokens;
      if (overBudget || !this.blocks.canAllocate(tokens, hits)) {
        open = false;
        stillWaiting.push(seq);
        continue;
      }
      this.blocks.allocate(seq.seqId, tokens, hits);
      seq.prefillTotal = tokens;
      seq.prefillCached = cached;
      seq.registeredBlocks = hits.length;
      if (seq.generated.length === 0) seq.cachedTokens = cached;
      seq.prefillSent = cached + first;
      if (caching) this.pendingBlocks.admitted(seq, this.config.blockSize);
      if (seq.adapterKey !== null) {
        active.add(seq.adapterKey);
        if (this.adapterSlot !== undefined) seq.adapterSlot = this.adapterSlot(seq.adapterKey);
      }
      if (seq === starving) starving = null;
      seq.status = 'running';
      prefill += first;
      admitted.push(seq);
      insertByPriority(this.runningList, seq);  // the last is preempted first: the lowest priority, latest admitted
    }
    this.waitingQueue = stillWaiting;
    budget.left = this.config.maxBatchPrefillTokens - prefill;
    return admitted;
  }

  private stopReason(seq: Sequence, token: number): FinishReason | null {
    if (seq.eosTokenIds.has(token)) return 'eos_token';
    return this.endsByLength(seq, 0) ? 'length' : null;
  }

  /** Whether the sequence is at its length limit once `pending` more tokens are appended. */
  private endsByLength(seq: Sequence, pending: number): boolean {
    return seq.generated.length + pending >= seq.maxNewTokens || seq.length + pending >= this.maxTotalTokens;
  }

  private priorityPreemption(): PriorityPreemption | null {
    const cutoff = this.now() - this.config.adapterCycleTimeS * 1000;
    const caching = this.config.prefixCaching === true;
    return priorityPreemption({ waiting: this.waitingQueue, running: this.runningList, blocks: this.blocks, limits: this.config,
      isReady: this.isAdapterReady, starving: (active) => findStarving(this.waitingQueue, active, cutoff),
      waitsForCache: (seq) => caching && this.pendingBlocks.shouldWait(seq, cachedPrefix(this.blocks, seq).length, this.config.blockSize) });
  }

  private slotPreemption(): SlotPreemption | null {
    const adapterRoom = this.hooks.adapterRoom;
    return adapterRoom === undefined ? null
      : slotPreemption({ waiting: this.waitingQueue, running: this.runningList, isReady: this.isAdapterReady, adapterRoom });
  }

  /** Frees seq's blocks and puts it at the queue's front, to be computed again from its tokens. */
  private requeue(seq: Sequence, preempted: boolean): void {
    this.blocks.free(seq.seqId);
    this.pendingBlocks.dropped(seq.seqId);
    seq.draftSent = 0;
    seq.prefillTotal = 0;
    seq.prefillSent = 0;
    seq.prefillCached = 0;
    seq.registeredBlocks = 0;
    this.toFree.push(seq.seqId);
    seq.status = preempted ? 'preempted' : 'waiting';
    if (preempted) {
      seq.preemptions++;
      this.preemptionTotal++;
    }
    insertByPriority(this.waitingQueue, seq, true);
  }

  private applyStops(): void {
    if (this.pendingStops.size === 0) return;
    for (const [seqId, stop] of this.pendingStops) {
      const seq = this.live.get(seqId);
      if (seq !== undefined) this.end(seq, stop.reason, stop.message);
    }
    this.pendingStops.clear();
    this.runningList = this.runningList.filter((seq) => !seq.isFinished);
    this.waitingQueue = this.waitingQueue.filter((seq) => !seq.isFinished);
  }

  /** Ends seqs with reason and drops them from both queues. One with a pending abort/finish ends with
   * that reason instead and is left out of the returned list: its caller already knows. */
  private endAll(seqs: Sequence[], reason: FinishReason, message: string): Sequence[] {
    const ended: Sequence[] = [];
    for (const seq of seqs) {
      const stop = this.pendingStops.get(seq.seqId);
      this.pendingStops.delete(seq.seqId);
      if (stop !== undefined) {
        this.end(seq, stop.reason, stop.message);
      } else {
        this.end(seq, reason, message);
        ended.push(seq);
      }
    }
    this.runningList = this.runningList.filter((seq) => !seq.isFinished);
    this.waitingQueue = this.waitingQueue.filter((seq) => !seq.isFinished);
    return ended;
  }

  /** Frees the blocks and marks the sequence finished; the caller removes it from the queues. */
  private end(seq: Sequence, reason: FinishReason, message: string | null): void {
    this.pendingBlocks.dropped(seq.seqId);
    if (seq.status === 'running') {
      this.blocks.free(seq.seqId);
      this.toFree.push(seq.seqId);
    }
    seq.status = 'finished';
    seq.finishReason = reason;
    seq.errorMessage = message;
    this.live.delete(seq.seqId);
  }

  private runningAdapterKeys(): Set<string> {
    const keys = new Set<string>();
    for (const seq of this.runningList) if (seq.adapterKey !== null) keys.add(seq.adapterKey);
    return keys;
  }
}
