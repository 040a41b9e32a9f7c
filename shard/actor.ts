// The shard actor: one process per rank. It owns this rank's weights, KV cache and adapter slots and
// does what each message says (DESIGN.md §2). All work runs through one mailbox, in arrival order, so a
// step never races an adapter load. Every rank samples (async scheduling feeds each rank its own sample); rank 0
// reports the tokens; every rank answers each step so errors surface.
// Also here: joinNcclGroup, how the ranks of an nccl group get rank 0's unique id over NATS before the model loads.
import { ErrorCode, NatsError, type NatsConnection } from 'nats';
import { context as otelContext, trace, SpanStatusCode, type Context, type Tracer } from '@opentelemetry/api';
import type { Logger } from 'pino';
import {
  MessageBus, PROTOCOL_VERSION, adapterSubject, collectiveSubject, controlSubject, decodeAs, encode, imageDataSubject, shardSubject,
  stepResultSubject, stepSubject, type AdapterLoad, type Message, type MessageHeaders, type Step,
} from '../protocol/index.js';
import { createCollective, type NativeCollective } from '../kernels/index.js';
import { cudaInfo, ncclUniqueId } from '../kernels/cuda.js';
import { LocalEngine, type PreparedAdapter } from './local-engine.js';
import { DoraNormExchange } from './dora-exchange.js';
import { ForwardError } from './engine/step-runner.js';

/** Exit status of a shard that stops after a failed forward pass so that its group is restarted. */
export const EXIT_FORWARD_FAILED = 70;

export interface ShardActorOptions {
  nc: NatsConnection;
  cluster: string;
  modelDir: string;
  /** Speculative decoding with this draft model (LocalEngineOptions.draftModelDir). */
  draftModelDir?: string;
  rank: number;
  worldSize: number;
  /** The shm segment's name; with collective 'nccl', the group id of the unique-id exchange. Fresh per group start. */
  shmName: string;
  /** 'shm': ranks on one host (only when worldSize > 1). 'nccl': device memory, needs device 'cuda' (any worldSize). */
  collective: 'shm' | 'nccl';
  /** How long the nccl unique-id exchange may take (default 120 s). */
  collectiveTimeoutMs?: number;
  kvBlocks: number;
  blockSize: number;
  adapterSlots: number;
  maxLoraRank: number;
  hostCacheBytes: number;
  device: 'cpu' | 'cuda';
  dtype: 'float32' | 'bfloat16' | 'float16';
  /** CPU backend threads of this shard process (0 = one per hardware thread). */
  cpuThreads?: number;
  heartbeatMs: number;
  /** Vision-language models: how long a step waits for an image whose image.data chunks have not all come, then
   * fails only the sequences that refer to it (LocalEngineOptions.imageWaitMs). Absent: $WEFT_IMAGE_WAIT_MS, else 30 s. */
  imageWaitMs?: number;
  /** Test fault injection (`WEFT_TEST_FAIL_FORWARD=<rank>:<n>`): this rank's n-th forward pass fails. */
  failForwardAt?: number;
  /** Test fault injection (`WEFT_TEST_DROP_RESULT=<rank>:<n>`): this rank never sends its n-th step's result, as if
   * NATS had lost it (the coordinator's step timeout must recover). */
  dropResultAt?: number;
  logger: Logger;
  tracer: Tracer;
  /** W3C trace context from NATS headers (provided by the process entry, which owns the propagator). */
  extractContext: (headers: MessageHeaders) => Context;
  injectContext: (ctx: Context) => MessageHeaders;
  /** Runs after stop() and before the process exits on a shutdown message (e.g. flush traces). */
  beforeExit?: () => Promise<void>;
}

export class ShardActor {
  private stepsRun = 0;
  private readonly bus: MessageBus;
  /** DoRA adapters' weight norms summed across the group's ranks at load (dora-exchange.ts). */
  private dora!: DoraNormExchange;
  private mailbox: Promise<void> = Promise.resolve();
  /** Per adapter slot, how many load/evict messages arrived: a load installs only if it is still the latest. */
  private readonly slotMessages: number[] = [];
  private lastStepId = 0;
  private heartbeat?: NodeJS.Timeout;
  private collective?: NativeCollective;
  private engine!: LocalEngine;
  private stopped = false;
  /** A forward pass failed where going on is unsafe: steps are ignored until the process exits. */
  private broken = false;

  constructor(private readonly o: ShardActorOptions) {
    this.bus = new MessageBus(o.nc, {
      onInvalid: (subject, err) => o.logger.error({ subject, err: err.message }, 'rejected invalid message'),
      onHandlerError: (subject, err) => o.logger.error({ subject, err: String(err) }, 'message handler failed'),
    });
  }

  /** Joins the group's collective, loads the model slice, subscribes, announces readiness. */
  async start(): Promise<void> {
    const o = this.o;
    this.collective = await this.joinCollective();
    const t0 = Date.now();
    this.engine = LocalEngine.open(o.modelDir, {
      rank: o.rank, world: o.worldSize, numBlocks: o.kvBlocks, blockSize: o.blockSize, adapterSlots: o.adapterSlots,
      maxLoraRank: o.maxLoraRank, hostCacheBytes: o.hostCacheBytes, device: o.device, dtype: o.dtype,
      cpuThreads: o.cpuThreads,
      collective: this.collective,
      ...imageWait(o.imageWaitMs),
      ...(o.draftModelDir ? { draftModelDir: o.draftModelDir, onDraftError: (e: Error) => o.logger.warn({ err: e.message }, 'draft model failed; this step runs without drafts') } : {}),
    });
    this.engine.runner.failForwardAt = o.failForwardAt ?? 0;
    const spec = this.engine.model.spec;
    o.logger.info({ ms: Date.now() - t0, architecture: spec.architecture, partition: this.engine.model.partition }, 'model slice loaded');
    if (spec.visionLanguage && !spec.vision && !spec.qwenVision && !spec.pixtral) {
      o.logger.warn({ architecture: spec.architecture, device: o.device }, 'a vision-language model served text-only: images are ' +
        'refused (Qwen2-VL, Gemma 3 and Mistral 3 images need --device cpu for now; a checkpoint without vision_config has no tower)');
    }
    const t1 = Date.now();
    const noConstraints = this.engine.prepareConstraints();
    if (noConstraints) o.logger.info({ reason: noConstraints }, 'structured output is not available for this model');
    else o.logger.debug({ ms: Date.now() - t1 }, 'token bytes ready for structured output');

    this.bus.subscribe(stepSubject(o.cluster), 'step', (msg, headers) => this.enqueue(() => this.onStep(msg, headers)));
    this.dora = new DoraNormExchange({ bus: this.bus, cluster: o.cluster, rank: o.rank, world: o.worldSize,
      timeoutMs: DORA_EXCHANGE_TIMEOUT_MS, publish: (subject, msg) => this.publish(subject, msg) });
    this.dora.start();
    this.bus.subscribe(adapterSubject(o.cluster, 'load'), 'adapter.load', (msg) => this.onAdapterLoad(msg));
    // Read ahead into the host-RAM tier (a worker thread; never the mailbox): the load that follows skips the read.
    this.bus.subscribe(adapterSubject(o.cluster, 'prefetch'), 'adapter.prefetch', (msg) => {
      const t0 = performance.now();
      void this.engine.prefetchAdapter(msg.merge ? { merge: msg.merge } : msg.dir).then((ok) =>
        o.logger.debug({ adapter: msg.key, ok, ms: Math.round(performance.now() - t0) }, 'adapter prefetched'));
    });
    this.bus.subscribe(adapterSubject(o.cluster, 'evict'), 'adapter.evict', (msg) => {
      this.slotTicket(msg.slot);  // a load of this slot still being read is superseded
      void this.enqueue(async () => {
        this.engine.clearAdapter(msg.slot);
        o.logger.info({ adapter: msg.key, slot: msg.slot }, 'adapter evicted');
      });
    });
    if (spec.vision || spec.qwenVision || spec.pixtral) {
      // Straight into the image store, not through the mailbox: a step in the mailbox may be waiting for this image.
      this.bus.subscribe(imageDataSubject(o.cluster), 'image.data', (msg) => {
        try {
          this.engine.putImage(msg);
        } catch (e) {
          o.logger.warn({ image: msg.key, err: (e as Error).message }, 'image chunk refused');
        }
      });
    }
    this.bus.subscribe(controlSubject(o.cluster, 'shutdown'), 'shutdown', (msg) => {
      o.logger.info({ reason: msg.reason }, 'shutdown requested');
      void this.stop().then(() => o.beforeExit?.()).finally(() => process.exit(0));
    });
    this.publish(shardSubject(o.cluster, o.rank, 'ready'), {
      v: PROTOCOL_VERSION, type: 'shard.ready', rank: o.rank, worldSize: o.worldSize, pid: process.pid,
      model: { architecture: spec.architecture, vocabSize: spec.vocab, numLayers: spec.layers, maxPositions: spec.maxPositions,
        eosTokenIds: spec.eosTokenIds, hiddenSize: spec.hidden, ...(spec.rope?.long ? { ropeLongFrom: spec.rope.long.from } : {}),
        ...(spec.vision ? { vision: { imageTokenId: spec.vision.imageTokenId, tokensPerImage: spec.vision.tokensPerImage,
          imageSize: spec.vision.imageSize, ...(spec.vision.siglip ? { bidirectionalImages: true } : {}) } } : {}),
        // Dynamic resolution: an image of H × W pixels takes (H / (patch · merge)) · (W / (patch · merge)) tokens.
        ...(spec.qwenVision ? { vision: { imageTokenId: spec.qwenVision.imageTokenId, patchSize: spec.qwenVision.patchSize,
          mergeSize: spec.qwenVision.mergeSize } } : {}),
        // Pixtral: an image of H × W pixels spans rows · (cols + 1) positions (rows = H / (patch · merge), cols likewise),
        // each row of [IMG] tokens ended by a break token (the last by an end token) that keeps its embedding.
        ...(spec.pixtral ? { vision: { imageTokenId: spec.pixtral.imageTokenId, patchSize: spec.pixtral.patchSize,
          mergeSize: spec.pixtral.mergeSize, rowBreaks: true } } : {}) },
      kvBlocks: o.kvBlocks, blockSize: o.blockSize, adapterSlots: o.adapterSlots,
    });
    this.heartbeat = setInterval(() => this.publish(shardSubject(o.cluster, o.rank, 'heartbeat'),
      { v: PROTOCOL_VERSION, type: 'shard.heartbeat', rank: o.rank, ts: Date.now(), stepId: this.lastStepId }), o.heartbeatMs);
  }

  private async joinCollective(): Promise<NativeCollective | undefined> {
    const o = this.o;
    if (o.collective === 'shm') {
      // Big enough for one step's hidden states in a few chunks; larger tensors are chunked by the collective.
      return o.worldSize > 1
        ? createCollective({ kind: 'shm', name: o.shmName, rank: o.rank, world: o.worldSize, maxFloats: 1 << 20 })
        : undefined;
    }
    if (o.device !== 'cuda') {
      throw new Error(`--collective nccl needs --device cuda (NCCL works on GPU memory; --device is ${o.device}): ` +
        'use --collective shm on the CPU backend');
    }
    // Before the exchange, so a rank without a GPU fails now rather than after waiting for rank 0.
    const cuda = cudaInfo();
    if (!cuda.available) throw new Error(`--collective nccl: ${cuda.reason}`);
    // One GPU per rank on a host with several; each process sees one when CUDA_VISIBLE_DEVICES narrows it.
    const device = o.rank % cuda.devices.length;
    const t0 = Date.now();
    const collective = await joinNcclGroup({
      nc: o.nc, cluster: o.cluster, groupId: o.shmName, rank: o.rank, world: o.worldSize,
      timeoutMs: o.collectiveTimeoutMs ?? 120_000, logger: o.logger, makeUniqueId: ncclUniqueId,
      createCollective: (uniqueId) =>
        createCollective({ kind: 'nccl', rank: o.rank, world: o.worldSize, uniqueId, device }),
    });
    o.logger.info({ ms: Date.now() - t0, device, world: o.worldSize }, 'nccl communicator ready');
    return collective;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.heartbeat);
    this.dora?.stop();
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
    if (this.broken) return;
    const parent = o.extractContext(headers);
    const span = o.tracer.startSpan('shard.step', { attributes: { 'weft.rank': o.rank, 'weft.step_id': step.stepId,
      'weft.new_seqs': step.newSeqs.length, 'weft.running': step.running.length } }, parent);
    const t0 = performance.now();
    this.lastStepId = step.stepId;
    try {
      const outputs = await otelContext.with(trace.setSpan(parent, span), () => this.engine.step(step));
      if (++this.stepsRun === o.dropResultAt) return;
      this.publish(stepResultSubject(o.cluster), { v: PROTOCOL_VERSION, type: 'step.result', stepId: step.stepId, rank: o.rank,
        outputs, computeMs: performance.now() - t0 }, o.injectContext(trace.setSpan(parent, span)));
    } catch (e) {
      const error = `rank ${o.rank}: ${(e as Error).message}`;
      o.logger.error({ stepId: step.stepId, err: error }, 'step failed');
      span.setStatus({ code: SpanStatusCode.ERROR, message: error });
      // A failed forward pass with peers may have left the ranks at different collectives (the others wait in
      // one this rank never joins, or pair the next step's with this one's), and a CUDA error can leave the
      // context unusable: only a restart of the group is safe. Anything else failed before compute, alike on
      // every rank: the coordinator fails this step's sequences; drop local state so the next step starts clean.
      const fatal = e instanceof ForwardError && (o.worldSize > 1 || o.device === 'cuda');
      this.engine.runner.reset();
      this.publish(stepResultSubject(o.cluster), { v: PROTOCOL_VERSION, type: 'step.result', stepId: step.stepId, rank: o.rank,
        outputs: [], error, ...(fatal ? { fatal } : {}), computeMs: performance.now() - t0 });
      if (fatal) this.exitForRestart();
    } finally {
      span.end();
    }
  }

  /** Stops taking work and exits with EXIT_FORWARD_FAILED once the failed step's reply is flushed; the
   * supervisor (`weft launch`) restarts the group. */
  private exitForRestart(): void {
    this.broken = true;
    this.o.logger.error({ rank: this.o.rank, world: this.o.worldSize, device: this.o.device },
      'forward pass failed; exiting so that the shard group restarts (the ranks may be out of step)');
    setImmediate(() => {
      void this.stop().then(() => this.o.beforeExit?.()).finally(() => process.exit(EXIT_FORWARD_FAILED));
    });
  }

  /**
   * An adapter's files are read and decoded on a worker thread and its parts staged by the executor (copied;
   * uploaded, on a GPU) on the libuv pool while steps go on (LocalEngine.prepareAdapter); only the install into
   * its slot — pointing the slot at the staged memory — runs in the mailbox, in turn with steps. The coordinator
   * uses the slot once every rank said `adapter.loaded`, and gives a load a slot no running sequence uses, so
   * steps meanwhile never touch it. A later message for the same slot (an evict, another load) supersedes a
   * load still being prepared: it is dropped unreported and its staged memory freed.
   */
  private onAdapterLoad(msg: AdapterLoad): void {
    const ticket = this.slotTicket(msg.slot);
    const t0 = performance.now();
    // Every rank counts the same load/evict messages per slot, so (slot, ticket) names this load on all of them.
    const sumOverRanks = this.o.worldSize > 1
      ? (shares: Float32Array[]) => this.dora.sum(msg.key, msg.slot, ticket, shares) : undefined;
    void this.engine.prepareAdapter(msg.merge ? { merge: msg.merge } : msg.dir, sumOverRanks)
      .then((prepared) => prepared, (error: unknown) => {
        // Peers may be waiting for this rank's DoRA weight norms: they fail now instead of at their timeout.
        this.dora.fail(msg.key, msg.slot, ticket, (error as Error).message ?? String(error));
        return { error };
      })
      .then((read) => {
        const readMs = performance.now() - t0;
        return this.enqueue(async () => {
          if (!this.broken && !this.stopped && this.slotMessages[msg.slot] === ticket) this.installAdapter(msg, read, readMs);
          else if (!('error' in read)) this.engine.discardPrepared(read);
        });
      });
  }

  /** Counts a load/evict message for the slot; its count is the message's ticket. */
  private slotTicket(slot: number): number {
    return this.slotMessages[slot] = (this.slotMessages[slot] ?? 0) + 1;
  }

  private installAdapter(msg: AdapterLoad, read: PreparedAdapter | { error: unknown }, readMs: number): void {
    const o = this.o;
    try {
      if ('error' in read) throw read.error;
      const t0 = performance.now();
      const plan = this.engine.installPrepared(msg.slot, read);
      const installMs = performance.now() - t0;
      const bytes = this.engine.model.native.adapterBytes(msg.slot);  // in the executor's dtype
      o.logger.info({ adapter: msg.key, slot: msg.slot, bytes, maxRank: plan.maxRank, fromHost: plan.fromHost,
        readMs: Math.round(readMs), installMs: Math.round(installMs) }, 'adapter loaded');
      this.publish(adapterSubject(o.cluster, 'loaded'), { v: PROTOCOL_VERSION, type: 'adapter.loaded', key: msg.key, slot: msg.slot,
        rank: o.rank, bytes, maxRank: Math.max(1, plan.maxRank), fromHost: plan.fromHost, hostBytes: plan.hostBytes,
        dora: plan.parts.some((p) => p.mag !== undefined),
        readMs, installMs });
    } catch (e) {
      const reason = (e as Error).message;
      o.logger.warn({ adapter: msg.key, slot: msg.slot, err: reason }, 'adapter load failed');
      this.publish(adapterSubject(o.cluster, 'failed'), { v: PROTOCOL_VERSION, type: 'adapter.failed', key: msg.key, slot: msg.slot,
        rank: o.rank, reason });
    }
  }
}

/** The image wait of a shard: the option, else $WEFT_IMAGE_WAIT_MS (milliseconds), else the engine's default. */
function imageWait(ms: number | undefined): { imageWaitMs?: number } {
  const env = process.env.WEFT_IMAGE_WAIT_MS;
  const value = ms ?? (env !== undefined && env !== '' ? Number(env) : undefined);
  if (value === undefined) return {};
  if (!(Number.isFinite(value) && value >= 0)) throw new Error(`WEFT_IMAGE_WAIT_MS must be a number of milliseconds >= 0, got '${env}'`);
  return { imageWaitMs: value };
}

/** How long a rank loading a DoRA adapter waits for the other ranks' weight norms (they read the files too). */
const DORA_EXCHANGE_TIMEOUT_MS = 120_000;

/** The NCCL unique-id exchange failed: rank 0 never answered, or not every rank fetched the id in time. */
export class CollectiveGroupError extends Error {
  override readonly name = 'CollectiveGroupError';
}

export interface NcclGroupOptions<C> {
  nc: NatsConnection;
  cluster: string;
  /** One start of the group: requests and answers of any other group id are ignored. */
  groupId: string;
  rank: number;
  world: number;
  /** For the whole exchange: rank 0 waiting for every rank's request, a rank >= 1 waiting for rank 0's answer. */
  timeoutMs: number;
  /** Rank 0: makes the 128-byte id (ncclUniqueId). */
  makeUniqueId: () => Uint8Array;
  /** Builds this rank's collective from the id; it may block until every rank calls it (ncclCommInitRank). */
  createCollective: (uniqueId: Uint8Array) => C;
  logger?: Logger;
  /** Ranks >= 1: wait between requests while rank 0 is not answering yet (default 200 ms). */
  retryMs?: number;
}

/**
 * The NCCL unique-id exchange of one group over NATS request/reply, then the collective. Rank 0 makes the id and
 * answers `shard.collective.request`s of its group id on weft.<cluster>.shard.collective; ranks >= 1 ask until it
 * answers, so start order does not matter. Rank 0 builds its collective only after every rank has the id: building
 * blocks its event loop in ncclCommInitRank, where it could no longer answer.
 */
export async function joinNcclGroup<C>(o: NcclGroupOptions<C>): Promise<C> {
  if (o.rank !== 0) return o.createCollective(await requestUniqueId(o));
  const uniqueId = o.makeUniqueId();
  await serveUniqueId(o, uniqueId);
  return o.createCollective(uniqueId);
}

/** Rank 0: answers its group's requests until every rank 1..world-1 has the id. */
async function serveUniqueId(o: NcclGroupOptions<unknown>, uniqueId: Uint8Array): Promise<void> {
  const missing = new Set(Array.from({ length: o.world - 1 }, (_, i) => i + 1));
  if (missing.size === 0) return;
  const sub = o.nc.subscribe(collectiveSubject(o.cluster));
  const timer = setTimeout(() => sub.unsubscribe(), o.timeoutMs);
  const answer = encode({ v: PROTOCOL_VERSION, type: 'shard.collective', groupId: o.groupId, uniqueId });
  const strangers = new Set<string>();
  try {
    for await (const m of sub) {
      let req;
      try {
        req = decodeAs(m.data, 'shard.collective.request');
      } catch (e) {
        o.logger?.warn({ err: (e as Error).message }, 'ignoring an invalid nccl unique-id request');
        continue;
      }
      if (req.groupId !== o.groupId || req.rank >= o.world) {
        // A rank of an earlier start that is still alive, or a misconfigured one: say so once, never answer.
        const who = `${req.groupId}/${req.rank}`;
        if (!strangers.has(who)) o.logger?.warn({ groupId: req.groupId, rank: req.rank, world: o.world },
          'ignoring an nccl unique-id request of another group (or a rank outside this one)');
        strangers.add(who);
        continue;
      }
      m.respond(answer);
      missing.delete(req.rank);
      if (missing.size === 0) break;
    }
  } finally {
    clearTimeout(timer);
    sub.unsubscribe();
  }
  if (missing.size > 0) {
    throw new CollectiveGroupError(`rank 0: rank(s) ${[...missing].join(', ')} of group ${o.groupId} did not ask for ` +
      `the NCCL unique id within ${o.timeoutMs} ms (are they running with --collective nccl and --cluster ${o.cluster}?)`);
  }
  // The answers must leave before ncclCommInitRank blocks this thread.
  await o.nc.flush();
}

/** Ranks >= 1: asks rank 0 until it answers for this group, or the time is up. */
async function requestUniqueId(o: NcclGroupOptions<unknown>): Promise<Uint8Array> {
  const subject = collectiveSubject(o.cluster);
  const request = encode({ v: PROTOCOL_VERSION, type: 'shard.collective.request', groupId: o.groupId, rank: o.rank });
  const deadline = Date.now() + o.timeoutMs;
  let last = 'no answer';
  for (let left = o.timeoutMs; left > 0; left = deadline - Date.now()) {
    try {
      const reply = await o.nc.request(subject, request, { timeout: Math.min(2000, left) });
      const msg = decodeAs(reply.data, 'shard.collective');
      // Copy: decoded bytes are a view into the NATS message buffer.
      if (msg.groupId === o.groupId) return new Uint8Array(msg.uniqueId);
      last = `an answer for another group (${msg.groupId})`;
    } catch (e) {
      last = whyNoAnswer(e, subject);
    }
    await new Promise((r) => setTimeout(r, Math.max(0, Math.min(o.retryMs ?? 200, deadline - Date.now()))));
  }
  throw new CollectiveGroupError(`rank ${o.rank}: no NCCL unique id from rank 0 of group ${o.groupId} within ` +
    `${o.timeoutMs} ms (last: ${last}); is rank 0 running with --collective nccl and --cluster ${o.cluster}?`);
}

function whyNoAnswer(e: unknown, subject: string): string {
  if (e instanceof NatsError && e.code === ErrorCode.NoResponders) return `nobody listens on ${subject}`;
  if (e instanceof NatsError && e.code === ErrorCode.Timeout) return `nobody answered on ${subject} for this group`;
  return (e as Error).message;
}
