// The generation engine: admits requests (tokenize, validate, resolve adapter), drives the
// scheduler ↔ shards step loop, and turns step results into each request's event stream.
import { tokenSpans } from '../tokenizer/token-spans.js';
import { context as otelContext, propagation, trace, SpanStatusCode, type Span, type Tracer } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { ImageRef, MessageHeaders, StepResult } from '../../protocol/index.js';
import { bytesToFloat32 } from '../../protocol/index.js';
import { Scheduler, Sequence, StepFailedError, type ScheduledStep, type SequenceEvent } from '../scheduler/index.js';
import type { TokenizerPool } from '../tokenizer/index.js';
import { AdapterRegistry, type Prepared } from '../adapters/index.js';
import { ClassifierHeads, type ClassifierHead } from '../adapters/classifier-head.js';
import { ChatTemplateError, renderChat, templateIteratesContent } from '../tokenizer/index.js';
import type { ImageInput, PreparedImage } from '../vision/index.js';
import { EngineVision, refuseImages, stepImages, templateMessages } from './engine-vision.js';
import { RequestState } from './request-state.js';
import { detectFimFormat } from './fim.js';
import { ConstraintChecker } from './constraint-check.js';
import { checkIds, checkLengths, checkRequestFields } from './request-checks.js';
import {
  EngineError, type AdapterAdmin, type AdapterRef, type ChatRender, type EngineInfo, type EngineStats, type FinishLabel, type GenerateRequest,
  type GenerationEngine, type GenerationEvent, type PrefillToken, type RenderMessage,
} from './types.js';
import { detectReasoningFormat } from './reasoning.js';
import { detectToolFormat } from './tool-format-detect.js';
import type { EngineLimits, EngineObserver, ShardGroupLike } from './engine-config.js';

export type { EngineLimits, EngineObserver, ShardGroupLike } from './engine-config.js';
import { prefillTokens } from './prefill-tokens.js';

/** A step published to the shards; `settled` never rejects. */
interface SentStep {
  sched: ScheduledStep;
  span: Span;
  sentAt: number;
  batchSize: number;
  settled: Promise<{ result: StepResult } | { error: Error }>;
}

export class Engine implements GenerationEngine {
  readonly info: EngineInfo;
  readonly registry: AdapterRegistry;
  readonly adapters: AdapterAdmin;
  /** Requests between the concurrency check and their admission (tokenizing, access checks, downloads). */
  private admitting = 0;
  private scheduler!: Scheduler;
  private readonly requests = new Map<string, RequestState>();
  private looping = false;
  private wake: (() => void) | null = null;
  private nextId = 0;
  /** When the last step result was applied: a step's time starts at max(sent, this). */
  private lastCompletion = 0;
  /** longrope models: prompts longer than this are rotated with the long factors (ModelInfo.ropeLongFrom). */
  private readonly ropeLongFrom: number;
  private readonly constraints: ConstraintChecker;
  private readonly heads = new ClassifierHeads();
  /** A vision-language model's image pipeline; null for a text-only model. */
  private readonly vision: EngineVision | null;

  constructor(private readonly group: ShardGroupLike, private readonly tokenizer: TokenizerPool,
    private readonly limits: EngineLimits, private readonly log: Logger, private readonly tracer: Tracer,
    private readonly observer: EngineObserver = {}) {
    const r = group.info();
    this.ropeLongFrom = r.model.ropeLongFrom ?? Infinity;
    this.constraints = new ConstraintChecker(tokenizer);
    this.vision = EngineVision.create(r.model, tokenizer, limits.images);
    if (this.vision && !group.publishImage) throw new Error('the model takes images but its shard group cannot publish them (publishImage)');
    this.registry = new AdapterRegistry({ ...limits.adapters, slots: r.adapterSlots, vocab: r.model.vocabSize }, group, {
      ready: (_key, loaded) => { observer.adapterLoad?.('ok', loaded); this.kick(); },
      failed: (key, reason) => { observer.adapterLoad?.('failed'); this.failAdapter(key, reason); },
      prefetched: () => observer.adapterPrefetch?.(),
      inUse: (key) => this.scheduler.adapterInUse(key),
      waitingPriorities: () => this.scheduler.waitingPriorities(),
    });
    const reg = this.registry;
    this.adapters = {
      list: () => reg.list(),
      load: (ref) => reg.load(ref).finally(() => this.kick()),
      unload: (ref) => reg.unload(ref).finally(() => this.kick()),
      pin: (ref, pinned) => reg.pin(ref, pinned).finally(() => this.kick()),
      loadNamed: (name, ref, replace) => reg.loadNamed(name, ref, replace).finally(() => this.kick()),
      unloadNamed: (name) => reg.unloadNamed(name).finally(() => this.kick()),
    };
    const maxTotal = Math.min(limits.maxTotalTokens, r.kvBlocks * r.blockSize, r.model.maxPositions);
    const reasoning = detectReasoningFormat(limits.reasoningParser ?? 'auto', (t) => tokenizer.hasToken(t));
    this.info = {
      modelId: limits.modelId, modelNames: [limits.modelId, ...(limits.modelAliases ?? [])], architecture: r.model.architecture, vocabSize: r.model.vocabSize, hiddenSize: r.model.hiddenSize ?? 0,
      maxInputLength: Math.min(limits.maxInputLength, maxTotal - 1), maxTotalTokens: maxTotal,
      maxBatchPrefillTokens: limits.maxBatchPrefillTokens, maxConcurrentRequests: limits.maxConcurrentRequests,
      numShard: r.worldSize, blockSize: r.blockSize, kvBlocks: r.kvBlocks, adapterSlots: r.adapterSlots,
      eosTokenIds: [...new Set([...tokenizer.eosTokenIds, ...r.model.eosTokenIds])], version: '0.1.0',
      defaultAdapterSource: limits.defaultAdapterSource, device: limits.device ?? 'cpu', dtype: limits.dtype ?? 'float32',
      asyncScheduling: limits.asyncScheduling !== false, prefixCaching: limits.prefixCaching !== false && limits.bidirectional !== true && limits.recurrentState !== true,
      speculate: limits.recurrentState === true ? 0 : limits.speculate ?? 0, schedulingPolicy: limits.schedulingPolicy ?? 'fcfs', structuredOutput: tokenizer.structuredOutputProblem === null,
      trustRequestChatTemplate: limits.trustRequestChatTemplate === true,
      reasoning,
      toolFormat: detectToolFormat(limits.toolCallParser ?? 'auto', tokenizer.chatTemplate, (t) => tokenizer.hasToken(t), reasoning),
      fimFormat: detectFimFormat((t) => tokenizer.hasToken(t)),
      task: limits.baseClassifierHead ? 'classify' : limits.embeddingOnly !== undefined ? 'embed' : 'generate',
      ...(this.vision ? { vision: this.vision.info } : {}),
    };
    this.scheduler = this.newScheduler();
  }

  private newScheduler(): Scheduler {
    return new Scheduler({
      numBlocks: this.info.kvBlocks, blockSize: this.info.blockSize, maxBatchSize: this.limits.maxBatchSize,
      maxBatchPrefillTokens: this.limits.maxBatchPrefillTokens, maxTotalTokens: this.info.maxTotalTokens,
      maxActiveAdapters: this.limits.maxActiveAdapters, adapterCycleTimeS: this.limits.adapterCycleTimeS,
      prefixCaching: this.info.prefixCaching, speculate: this.info.speculate,
      ...(this.limits.recurrentState === true ? { drafts: false } : {}),
      ...(this.info.vision?.bidirectionalImages === true ? { bidirectionalImages: true } : {}),
    }, { isAdapterReady: (k) => this.registry.isReady(k), adapterSlot: (k) => this.registry.slotOf(k),
      // Priority preemption for a device slot: which adapters' sequences to preempt, then evict them and load now.
      adapterRoom: (k, candidates) => this.registry.roomFor(k, candidates), adaptersFreed: () => this.registry.retryWaiting() });
  }

  healthy(): boolean {
    return this.group.isReady();
  }

  stats(): EngineStats {
    return { waiting: this.scheduler.waiting, running: this.scheduler.running, usedBlocks: this.scheduler.usedBlocks,
      freeBlocks: this.scheduler.freeBlocks, activeAdapters: this.scheduler.activeAdapters,
      loadedAdapters: this.registry.loadedCount, adapterBytes: this.registry.usedBytes,
      adapterBudgetBytes: this.limits.adapters.budgetBytes ?? 0, adapterRefs: this.registry.totalRefs, cachedBlocks: this.scheduler.cachedBlocks,
      preemptions: this.scheduler.preemptions, draftTokens: this.scheduler.speculation.drafted,
      acceptedDraftTokens: this.scheduler.speculation.accepted };
  }

  encodePair(first: string, second: string): Promise<number[]> {
    return this.tokenizer.encode(first, { pair: second });
  }

  async tokenize(text: string, templated = false, images?: readonly PreparedImage[]): Promise<{ id: number; text: string; start: number; stop: number }[]> {
    if (images === undefined) {
      const ids = await this.tokenizer.encode(text, { addSpecialTokens: !templated });
      return tokenSpans(text, ids, this.tokenizer.tokenStringsSync(ids), (part) => this.tokenizer.decodeSync(part, { skipSpecialTokens: false }));
    }
    // A chat prompt (/tokenize with messages, /chat_tokenize): the ids generate() would run, each image's placeholder
    // expanded and checked as there; the spans index `text`, an image's tokens its placeholder.
    const { ids, text: expanded } = await this.encodePrompt({ inputs: text, images, templated });
    const spans = tokenSpans(expanded, ids, this.tokenizer.tokenStringsSync(ids), (part) => this.tokenizer.decodeSync(part, { skipSpecialTokens: false }));
    return this.vision && images.length > 0 ? this.vision.placeholderSpans({ inputs: text, images }, spans) : spans;
  }

  /**
   * A prompt's token ids as the model gets them — the one path for generate() and tokenize() with images: with a
   * vision tower each placeholder expanded to its image's tokens (a 422 when they do not match the images), tokenized,
   * cut to `truncate`, and the images' token ranges found (a 422 when the tokens do not hold them whole). A text-only
   * model's images are a 422.
   */
  private async encodePrompt(req: Pick<GenerateRequest, 'inputs' | 'images' | 'templated' | 'truncate'>): Promise<{ ids: number[]; text: string; images: ImageRef[] }> {
    if (req.images?.length && !this.vision) throw refuseImages(this.info.modelId);
    const text = this.vision ? this.vision.expand(req) : req.inputs;
    let ids = await this.tokenizer.encode(text, { addSpecialTokens: !req.templated });
    if (req.truncate !== undefined && ids.length > req.truncate) ids = ids.slice(ids.length - req.truncate);
    return { ids, text, images: this.vision ? this.vision.refs(ids, req) : [] };
  }

  detokenize(ids: readonly number[], opts: { keepSpecialTokens?: boolean } = {}): string {
    return this.tokenizer.decodeSync([...ids], { skipSpecialTokens: opts.keepSpecialTokens !== true });
  }

  renderChat(messages: RenderMessage[], how: ChatRender = {}): string {
    const template = how.template ?? this.tokenizer.chatTemplate;
    try {
      return renderChat(template, templateMessages(messages, this.vision !== null && templateIteratesContent(template)), { addGenerationPrompt: how.addGenerationPrompt ?? true,
        continueFinalMessage: how.continueFinalMessage === true, ...(how.templateKwargs ? { extra: how.templateKwargs } : {}),
        bosToken: this.tokenizer.bosToken, eosToken: this.tokenizer.eosToken });
    } catch (e) {
      if (e instanceof ChatTemplateError) {
        throw new EngineError('validation', how.template === undefined ? e.message
          : e.message.replace("the model's chat_template", "the request's chat_template"));
      }
      throw e;
    }
  }

  adapterForModel(model: string | undefined, apiToken: string | undefined): AdapterRef | null {
    if (!model || this.info.modelNames.includes(model)) return null;
    const named = this.limits.adapters.names.get(model);
    return { id: model, source: named ? named.source : this.limits.defaultAdapterSource, apiToken };
  }

  async classifierHead(ref: AdapterRef | null): Promise<ClassifierHead> {
    if (ref) return this.heads.of(await this.registry.prepare(ref), ref.id);  // access-checked with this request's token
    if (this.limits.baseClassifierHead) return this.limits.baseClassifierHead;
    throw new EngineError('validation', '`model` must name a sequence-classification adapter (PEFT task_type "SEQ_CLS") or the ' +
      'served model be a *ForSequenceClassification checkpoint: this base model has no classification head');
  }

  prepareImages(inputs: readonly ImageInput[], signal?: AbortSignal): Promise<PreparedImage[]> {
    if (inputs.length === 0) return Promise.resolve([]);
    return this.vision ? this.vision.prepare(inputs, signal) : Promise.reject(refuseImages(this.info.modelId));
  }

  adapterNames(): string[] {
    return [...this.limits.adapters.names.keys()];
  }

  async generate(req: GenerateRequest, signal: AbortSignal): Promise<AsyncIterable<GenerationEvent>> {
    const startedAt = performance.now();
    if (!this.group.isReady()) throw new EngineError('shard_lost', 'the model shards are not ready (starting or restarting); retry shortly');
    if (this.requests.size + this.admitting >= this.info.maxConcurrentRequests) {
      throw new EngineError('overloaded', `Model is overloaded: ${this.requests.size + this.admitting} requests in flight ` +
        `(--max-concurrent-requests ${this.info.maxConcurrentRequests})`);
    }
    checkRequestFields(req, this.info);
    if (this.info.task === 'classify' && req.embed !== true) {
      throw new EngineError('validation', `${this.info.modelId} is served as a sequence classifier (a *ForSequenceClassification ` +
        'checkpoint, or --classifier-from-tokens): it serves /classify, /score, /rerank and embeddings, not text generation');
    }
    if (this.info.task === 'embed' && req.embed !== true) {
      throw new EngineError('validation', `${this.info.modelId} is an embedding model (${this.limits.embeddingOnly}): it serves ` +
        '/v1/embeddings, /embed, /score and /rerank, not text generation');
    }
    if (req.images?.length && !this.vision) throw refuseImages(this.info.modelId);
    this.admitting++;
    let ids: number[];
    let maxNewTokens = req.maxNewTokens;
    let adapter: Prepared | null;
    let images: ImageRef[];
    try {
      const tokenizeSpan = this.tracer.startSpan('engine.tokenize');
      try {
        if (req.inputIds) {
          ids = checkIds(req.inputIds, this.info.vocabSize);
          if (req.truncate !== undefined && ids.length > req.truncate) ids = ids.slice(ids.length - req.truncate);
          images = this.vision ? this.vision.refs(ids, req) : [];
        } else {
          ({ ids, images } = await this.encodePrompt(req));
        }
        tokenizeSpan.setAttribute('weft.prompt_tokens', ids.length);
      } finally {
        tokenizeSpan.end();
      }
      if (req.fitMaxNewTokens) maxNewTokens = Math.max(1, Math.min(maxNewTokens, this.info.maxTotalTokens - ids.length));
      checkLengths(ids.length, maxNewTokens, this.info, req.continues === true);
      if (req.constraint !== undefined) await this.constraints.check(req.constraint);
      // Access is checked here for every request, with its own token, even when the adapter is cached.
      adapter = req.merge ? await this.registry.prepareMerge(req.merge) : req.adapter ? await this.registry.prepare(req.adapter) : null;
    } finally {
      this.admitting--;
    }
    if (signal.aborted) throw new EngineError('validation', 'request was cancelled by the client');

    const seqId = `${req.requestId}#${++this.nextId}`;
    const span = this.tracer.startSpan('engine.request', { attributes: { 'weft.request_id': req.requestId,
      'weft.prompt_tokens': ids.length, 'weft.adapter': adapter?.id ?? '' } });
    const state = new RequestState(req, ids, adapter?.key ?? null, span,
      this.tracer.startSpan('engine.queue', {}, trace.setSpan(otelContext.active(), span)),
      (t) => this.tokenizer.decodeSync(t, { skipSpecialTokens: req.keepSpecialTokens !== true }), startedAt);
    this.requests.set(seqId, state);
    if (adapter) this.registry.acquire(adapter);
    const eos = [...new Set([...(req.ignoreEos ? [] : this.info.eosTokenIds), ...(req.stopTokenIds ?? [])])];
    const minTokens = req.minNewTokens ?? 0;
    const sampling = minTokens > 0 && eos.length > 0 ? { ...req.sampling, minTokens, endTokens: [...eos] } : req.sampling;
    this.scheduler.add(new Sequence({ seqId, promptTokens: ids, adapterKey: adapter?.key ?? null, sampling,
      ropeLong: ids.length > this.ropeLongFrom,
      maxNewTokens, eosTokenIds: eos, promptLogprobs: req.promptLogprobs,
      topN: req.topN, priority: req.priority ?? 0, ...(req.embed ? { logits: 'hidden' as const } : {}),
      ...(req.embed && req.pooling !== undefined && req.pooling !== 'last' ? { pooling: req.pooling } : {}),
      ...(this.limits.bidirectional ? { wholePrompt: true } : {}), ...(images.length > 0 ? { images } : {}),
      ...(req.constraint !== undefined ? { constraint: { ...req.constraint, endTokens: this.info.eosTokenIds } } : {}) }));
    this.observer.tokens?.(ids.length, 0);
    signal.addEventListener('abort', () => this.cancel(seqId), { once: true });
    this.kick();
    return state.events;
  }

  /** Client went away: stop generating and free the sequence's blocks at the next step boundary. */
  private cancel(seqId: string): void {
    const st = this.requests.get(seqId);
    if (!st || st.done) return;
    this.scheduler.abort(seqId, 'cancelled');
    this.finishRequest(seqId, st, null);
    this.kick();
  }

  private failAdapter(key: string, reason: string): void {
    for (const [seqId, st] of this.requests) {
      if (st.adapterKey !== key || st.done) continue;
      this.scheduler.abort(seqId, 'error', reason);
      const name = st.req.adapter?.id ?? st.req.merge?.adapters.map((a) => a.id).join('+');
      this.log.warn({ requestId: st.req.requestId, adapter: name, err: reason }, 'adapter failed to load; failing its request');
      this.finishRequest(seqId, st, { type: 'error', error: new EngineError('adapter_load', `adapter '${name}' failed to load: ${reason}`) });
    }
    this.kick();
  }

  /** Fails everything in flight (a shard was lost); the supervisor restarts the group. */
  failAll(message: string): void {
    for (const seq of this.scheduler.failAll(message)) {
      const st = this.requests.get(seq.seqId);
      if (st) this.finishRequest(seq.seqId, st, { type: 'error', error: new EngineError('shard_lost', message) });
    }
    for (const [seqId, st] of this.requests) {
      if (!st.done) this.finishRequest(seqId, st, { type: 'error', error: new EngineError('shard_lost', message) });
    }
  }

  /** The shard group came back after a restart: adapters must be loaded again. */
  onGroupRestarted(): void {
    this.registry.reset();
    this.scheduler.clearPrefixCache(); // the new shards' KV memory holds nothing
    this.kick();
  }

  private kick(): void {
    if (this.wake) {
      const w = this.wake;
      this.wake = null;
      w();
    }
    if (!this.looping) void this.loop();
  }

  // The step loop. With async scheduling (the default) the next step is built and published right after the
  // current one, before its result is back: the shards run their steps back to back while the coordinator
  // applies results, streams tokens and schedules. Scheduler.scheduleAhead says what such a step may contain.
  private async loop(): Promise<void> {
    this.looping = true;
    let current: SentStep | null = null;
    try {
      while (current !== null || this.scheduler.hasWork()) {
        if (current === null) {
          if (!this.group.isReady()) {
            await this.group.waitReady(60_000).catch(() => undefined);
            continue;
          }
          const sched = this.scheduler.schedule();
          if (!sched) {
            // Everything waiting needs an adapter that is not resident. Slots held by adapters without running
            // sequences can be reassigned now that the batch is consistent; a finished load wakes us.
            this.registry.retryWaiting();
            await new Promise<void>((r) => { this.wake = r; });
            continue;
          }
          current = this.send(sched);
        }
        // Not after a failure abandoned the step in flight (the scheduler then has none).
        const canAhead = this.info.asyncScheduling && this.scheduler.stepsInFlight === 1 && this.group.isReady();
        const ahead = canAhead ? this.scheduler.scheduleAhead() : null;
        const next = ahead ? this.send(ahead) : null;
        await this.complete(current);
        current = next;
      }
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'step loop crashed; failing in-flight requests');
      this.failAll(`internal error in the step loop: ${(e as Error).message}`);
      this.scheduler = this.newScheduler();
    } finally {
      this.looping = false;
    }
  }

  private send(sched: ScheduledStep): SentStep {
    const step = sched.step;
    if (sched.slotPreemption) this.log.debug({ ...sched.slotPreemption, preempted: sched.preempted }, 'preempted for a device adapter slot');
    const ids = [...step.newSeqs.map((s) => s.seqId), ...step.running.map((s) => s.seqId)];
    const owners = ids.map((id) => this.requests.get(id)).filter((s): s is RequestState => !!s);
    // The step span is a child of the first request in the batch and links to the others.
    const parent = owners[0] ? trace.setSpan(otelContext.active(), owners[0].span) : otelContext.active();
    const span = this.tracer.startSpan('coordinator.step', { attributes: { 'weft.step_id': step.stepId, 'weft.batch_size': ids.length },
      links: owners.slice(1).map((o) => ({ context: o.span.spanContext() })) }, parent);
    const headers: MessageHeaders = {};
    propagation.inject(trace.setSpan(parent, span), headers);
    // A new sequence's images go out before the step that refers to them (again after a preemption: the ranks keep
    // only a bounded number of images once their prefill is done).
    if (this.vision) for (const image of stepImages(step.newSeqs, (id) => this.requests.get(id)?.req.images)) this.group.publishImage!(image);
    const settled = this.group.step(step, headers).then((result) => ({ result }), (error: Error) => ({ error }));
    return { sched, span, sentAt: performance.now(), batchSize: ids.length, settled };
  }

  private async complete(sent: SentStep): Promise<void> {
    const { step, prefillTokens, decodeTokens, cachedTokens } = sent.sched;
    const outcome = await sent.settled;
    if ('error' in outcome) {
      sent.span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.error.message });
      sent.span.end();
      this.log.error({ stepId: step.stepId, err: outcome.error.message }, 'step failed: shard group lost');
      this.failAll(`a model shard failed during generation: ${outcome.error.message}`);
      return;
    }
    const result = outcome.result;
    sent.span.end();
    const now = performance.now();
    this.observer.step?.(now - Math.max(sent.sentAt, this.lastCompletion), sent.batchSize, prefillTokens, decodeTokens);
    this.lastCompletion = now;
    if (cachedTokens > 0) this.observer.prefixCacheHits?.(cachedTokens);
    let events: SequenceEvent[];
    try {
      events = this.scheduler.update(result);
    } catch (e) {
      if (!(e instanceof StepFailedError)) throw e;
      if (e.requeued.length > 0) {
        this.log.warn({ stepId: step.stepId, requeued: e.requeued.length }, 'step failed; the other running sequences the shards dropped start over');
      }
      for (const seq of e.failed) {
        const st = this.requests.get(seq.seqId);
        if (st) this.finishRequest(seq.seqId, st, { type: 'error', error: new EngineError('generation', `generation failed: ${result.error ?? e.message}`) });
      }
      return;
    }
    for (const ev of events) this.dispatch(ev);
  }

  private dispatch(ev: SequenceEvent): void {
    const st = this.requests.get(ev.seqId);
    if (!st || st.done) return;
    if (!st.admitted) {
      st.admitted = true;
      st.queueSpan.end();
      const prefill = st.req.promptLogprobs ? prefillTokens(this.tokenizer, st.promptIds, ev.promptLogprobs ?? [], ev.promptTop) : null;
      st.events.push({ type: 'admitted', promptTokens: st.promptIds.length, cachedTokens: ev.cachedTokens ?? 0, prefill,
        ...(ev.hidden !== undefined ? { embedding: bytesToFloat32(ev.hidden) } : {}) });
    }
    if (ev.finished === 'cancelled') return;
    if (ev.finished === 'error') {
      this.finishRequest(ev.seqId, st, { type: 'error', error: new EngineError('generation', ev.error ? `generation failed: ${ev.error}` : 'generation failed') });
      return;
    }
    st.generated++;
    if (ev.fromDraft) st.acceptedDrafts++;
    const now = performance.now();
    if (!st.req.embed) {  // an embedding's (or classification's) one sampled token is thrown away: not a generated token
      this.observer.tokens?.(0, 1);
      if (st.generated === 1) this.observer.firstToken?.((now - st.startedAt) / 1000);
      else this.observer.interToken?.((now - st.lastTokenAt) / 1000);
    }
    st.lastTokenAt = now;
    // The EOS / stop token that ends the generation is never text (skipped as special, or left out as vLLM does).
    const ending = ev.finished === 'eos_token' && st.req.keepSpecialTokens === true;
    let delta = ending ? '' : st.detok.push(ev.token);
    if (ev.finished) delta += st.detok.flush();
    const stopped = st.appendAndCheckStop(delta, st.generated >= (st.req.minNewTokens ?? 0));
    const names = this.tokenizer.tokenStringsSync([ev.token, ...ev.top.map((t) => t.token)]);
    st.events.push({ type: 'token', textDelta: delta, token: { id: ev.token, text: names[0], logprob: ev.logprob,
      special: this.tokenizer.specialTokenIds.has(ev.token), top: ev.top.map((t, i) => ({ ...t, text: names[i + 1] })) } });
    if (stopped && !ev.finished) {
      this.scheduler.finish(ev.seqId, 'stop_sequence');
      st.text += st.detok.flush();
      this.finishRequest(ev.seqId, st, this.endEvent(st, 'stop_sequence'));
    } else if (ev.finished) {
      this.finishRequest(ev.seqId, st, this.endEvent(st, stopped ? 'stop_sequence' : ev.finished === 'eos_token' ? 'eos_token' : 'length'));
    }
  }

  private endEvent(st: RequestState, reason: 'length' | 'eos_token' | 'stop_sequence'): GenerationEvent {
    return { type: 'end', finishReason: reason, generatedText: st.text, generatedTokens: st.generated, acceptedDraftTokens: st.acceptedDrafts,
      seed: st.req.sampling.doSample ? st.req.sampling.seed : null };
  }

  private finishRequest(seqId: string, st: RequestState, last: GenerationEvent | null): void {
    if (st.done) return;
    st.done = true;
    if (!st.admitted) st.queueSpan.end();
    if (last?.type === 'error' && last.error.kind !== 'validation') {
      this.log.warn({ requestId: st.req.requestId, kind: last.error.kind, err: last.error.message }, 'request failed');
    }
    if (last) st.events.push(last);
    st.events.close();
    this.observer.finished?.(last === null ? 'cancelled' : last.type === 'end' ? last.finishReason : 'error', st.req.embed ? 0 : st.generated,
      { adapter: st.req.merge ? 'merged' : st.req.adapter?.id ?? null, promptTokens: st.promptIds.length });
    if (last?.type === 'error') st.span.setStatus({ code: SpanStatusCode.ERROR, message: last.error.message });
    st.span.setAttribute('weft.generated_tokens', st.generated);
    st.span.end();
    if (st.adapterKey) this.registry.release(st.adapterKey);
    this.requests.delete(seqId);
    this.kick();
  }
}
