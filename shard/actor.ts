// The shard actor: one process per rank. It owns this rank's weights, KV cache and adapter slots and
// does what each message says (DESIGN.md §2). All work runs through one mailbox, in arrival order, so a
// step never races an adapter load. Rank 0 samples; every rank answers each step so errors surface.
import type { NatsConnection } from 'nats';
import { context as otelContext, trace, SpanStatusCode, type Context, type Tracer } from '@opentelemetry/api';
import type { Logger } from 'pino';
import {
  MessageBus, PROTOCOL_VERSION, adapterSubject, controlSubject, shardSubject, stepResultSubject, stepSubject,
  type AdapterLoad, type Message, type MessageHeaders, type Step,
} from '../protocol/index.js';
import { createCollective, type NativeCollective } from '../kernels/index.js';
import { LocalEngine } from './local-engine.js';

export interface ShardActorOptions {
  nc: NatsConnection;
  cluster: string;
  modelDir: string;
  rank: number;
  worldSize: number;
  shmName: string;
  kvBlocks: number;
  blockSize: number;
  adapterSlots: number;
  maxLoraRank: number;
  hostCacheBytes: number;
  device: 'cpu' | 'cuda';
  dtype: 'float32' | 'bfloat16' | 'float16';
  heartbeatMs: number;
  logger: Logger;
  tracer: Tracer;
  /** W3C trace context from NATS headers (provided by the process entry, which owns the propagator). */
  extractContext: (headers: MessageHeaders) => Context;
  injectContext: (ctx: Context) => MessageHeaders;
  /** Runs after stop() and before the process exits on a shutdown message (e.g. flush traces). */
  beforeExit?: () => Promise<void>;
}

export class ShardActor {
  private readonly bus: MessageBus;
  private mailbox: Promise<void> = Promise.resolve();
  private lastStepId = 0;
  private heartbeat?: NodeJS.Timeout;
  private collective?: NativeCollective;
  private engine!: LocalEngine;
  private stopped = false;

  constructor(private readonly o: ShardActorOptions) {
    this.bus = new MessageBus(o.nc, {
      onInvalid: (subject, err) => o.logger.error({ subject, err: err.message }, 'rejected invalid message'),
      onHandlerError: (subject, err) => o.logger.error({ subject, err: String(err) }, 'message handler failed'),
    });
  }

  /** Loads the model slice, subscribes, announces readiness. */
  start(): void {
    const o = this.o;
    const t0 = Date.now();
    if (o.worldSize > 1) {
      // Big enough for one step's hidden states in a few chunks; larger tensors are chunked by the collective.
      this.collective = createCollective({ kind: 'shm', name: o.shmName, rank: o.rank, world: o.worldSize, maxFloats: 1 << 20 });
    }
    this.engine = LocalEngine.open(o.modelDir, {
      rank: o.rank, world: o.worldSize, numBlocks: o.kvBlocks, blockSize: o.blockSize, adapterSlots: o.adapterSlots,
      maxLoraRank: o.maxLoraRank, hostCacheBytes: o.hostCacheBytes, device: o.device, dtype: o.dtype,
      collective: this.collective,
    });
    const spec = this.engine.model.spec;
    o.logger.info({ ms: Date.now() - t0, architecture: spec.architecture, partition: this.engine.model.partition }, 'model slice loaded');

    this.bus.subscribe(stepSubject(o.cluster), 'step', (msg, headers) => this.enqueue(() => this.onStep(msg, headers)));
    this.bus.subscribe(adapterSubject(o.cluster, 'load'), 'adapter.load', (msg) => this.enqueue(() => this.onAdapterLoad(msg)));
    this.bus.subscribe(adapterSubject(o.cluster, 'evict'), 'adapter.evict', (msg) => this.enqueue(async () => {
      this.engine.model.native.clearAdapter(msg.slot);
      o.logger.info({ adapter: msg.key, slot: msg.slot }, 'adapter evicted');
    }));
    this.bus.subscribe(controlSubject(o.cluster, 'shutdown'), 'shutdown', (msg) => {
      o.logger.info({ reason: msg.reason }, 'shutdown requested');
      void this.stop().then(() => o.beforeExit?.()).finally(() => process.exit(0));
    });
    this.publish(shardSubject(o.cluster, o.rank, 'ready'), {
      v: PROTOCOL_VERSION, type: 'shard.ready', rank: o.rank, worldSize: o.worldSize, pid: process.pid,
      model: { architecture: spec.architecture, vocabSize: spec.vocab, numLayers: spec.layers, maxPositions: spec.maxPositions,
        eosTokenIds: spec.eosTokenIds },
      kvBlocks: o.kvBlocks, blockSize: o.blockSize, adapterSlots: o.adapterSlots,
    });
    this.heartbeat = setInterval(() => this.publish(shardSubject(o.cluster, o.rank, 'heartbeat'),
      { v: PROTOCOL_VERSION, type: 'shard.heartbeat', rank: o.rank, ts: Date.now(), stepId: this.lastStepId }), o.heartbeatMs);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.heartbeat);
    await this.mailbox.catch(() => undefined);
    await this.o.nc.drain().catch(() => undefined);
    this.engine?.dispose();
    this.collective?.dispose();
  }

  private enqueue(job: () => Promise<void>): Promise<void> {
    this.mailbox = this.mailbox.then(job, job);
    return this.mailbox;
  }

  private publish(subject: string, msg: Message, headers?: MessageHeaders): void {
    if (!this.o.nc.isClosed()) this.bus.publish(subject, msg, headers);
  }

  private async onStep(step: Step, headers: MessageHeaders): Promise<void> {
    const o = this.o;
    const parent = o.extractContext(headers);
    const span = o.tracer.startSpan('shard.step', { attributes: { 'weft.rank': o.rank, 'weft.step_id': step.stepId,
      'weft.new_seqs': step.newSeqs.length, 'weft.running': step.running.length } }, parent);
    const t0 = performance.now();
    this.lastStepId = step.stepId;
    try {
      const outputs = await otelContext.with(trace.setSpan(parent, span), () => this.engine.step(step));
      this.publish(stepResultSubject(o.cluster), { v: PROTOCOL_VERSION, type: 'step.result', stepId: step.stepId, rank: o.rank,
        outputs, computeMs: performance.now() - t0 }, o.injectContext(trace.setSpan(parent, span)));
    } catch (e) {
      const error = `rank ${o.rank}: ${(e as Error).message}`;
      o.logger.error({ stepId: step.stepId, err: error }, 'step failed');
      span.setStatus({ code: SpanStatusCode.ERROR, message: error });
      // The coordinator fails this step's sequences; drop local state so the next step starts clean.
      this.engine.runner.reset();
      this.publish(stepResultSubject(o.cluster), { v: PROTOCOL_VERSION, type: 'step.result', stepId: step.stepId, rank: o.rank,
        outputs: [], error, computeMs: performance.now() - t0 });
    } finally {
      span.end();
    }
  }

  private async onAdapterLoad(msg: AdapterLoad): Promise<void> {
    const o = this.o;
    try {
      const plan = this.engine.loadAdapter(msg.slot, msg.merge ? { merge: msg.merge } : msg.dir);
      o.logger.info({ adapter: msg.key, slot: msg.slot, bytes: plan.bytes, maxRank: plan.maxRank, fromHost: plan.fromHost },
        'adapter loaded');
      this.publish(adapterSubject(o.cluster, 'loaded'), { v: PROTOCOL_VERSION, type: 'adapter.loaded', key: msg.key, slot: msg.slot,
        rank: o.rank, bytes: plan.bytes, maxRank: Math.max(1, plan.maxRank), fromHost: plan.fromHost, hostBytes: plan.hostBytes });
    } catch (e) {
      const reason = (e as Error).message;
      o.logger.warn({ adapter: msg.key, slot: msg.slot, err: reason }, 'adapter load failed');
      this.publish(adapterSubject(o.cluster, 'failed'), { v: PROTOCOL_VERSION, type: 'adapter.failed', key: msg.key, slot: msg.slot,
        rank: o.rank, reason });
    }
  }
}
