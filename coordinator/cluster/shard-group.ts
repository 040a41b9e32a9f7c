// The coordinator's handle on its shards over NATS: publishes steps and adapter commands, gathers
// every rank's reply, watches heartbeats. A lost rank fails the pending steps with ShardLostError.
// Several steps may be in flight (async scheduling sends the next before the last one's result is back);
// shards run them in publish order.
import type { NatsConnection } from 'nats';
import type { AdapterLoaded } from '../adapters/index.js';
import type { PreparedImage } from '../vision/index.js';
import {
  MessageBus, PROTOCOL_VERSION, adapterSubject, imageDataSubject, shardWildcard, stepResultSubject, stepSubject, controlSubject,
  type MergeRecipe, type MessageHeaders, type ShardReady, type Step, type StepResult,
} from '../../protocol/index.js';

/** Bytes of pixel values per image.data message: NATS's default max payload is 1 MiB, and the rest of the message
 * (key, sizes, msgpack framing, trace headers) must fit beside them. A multiple of 4 (whole float32 values). */
export const IMAGE_CHUNK_BYTES = 512 * 1024;

export class ShardLostError extends Error {
  override name = 'ShardLostError';
}
export class StepTimeoutError extends Error {
  override name = 'StepTimeoutError';
}
export class AdapterShardError extends Error {
  override name = 'AdapterShardError';
}

export interface ShardGroupOptions {
  cluster: string;
  worldSize: number;
  stepTimeoutMs: number;
  shardTimeoutMs: number;
  onInvalid: (subject: string, err: Error) => void;
}

interface PendingStep {
  stepId: number;
  results: Map<number, StepResult>;
  resolve: (r: StepResult) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}
interface PendingAdapter {
  ranks: Set<number>;
  bytes: number;
  rankBytes: number;
  /** Every rank so far took it from its host-RAM tier. */
  fromHost: boolean;
  maxRank: number;
  dora: boolean;
  hostBytes: number;
  readMs: number;
  installMs: number;
  resolve: (r: AdapterLoaded) => void;
  reject: (e: Error) => void;
}

export class NatsShardGroup {
  private readonly bus: MessageBus;
  private readonly ready = new Map<number, ShardReady>();
  private readonly lastBeat = new Map<number, number>();
  private readyWaiters: (() => void)[] = [];
  /** Steps published and not yet answered by every rank, by step id. */
  private readonly pending = new Map<number, PendingStep>();
  private readonly adapters = new Map<string, PendingAdapter>();
  private watchdog?: NodeJS.Timeout;
  private lostHandlers: ((reason: string) => void)[] = [];
  private readyHandlers: (() => void)[] = [];

  constructor(nc: NatsConnection, private readonly o: ShardGroupOptions) {
    this.bus = new MessageBus(nc, { onInvalid: o.onInvalid });
    this.bus.subscribe(shardWildcard(o.cluster, 'ready'), 'shard.ready', (m) => {
      this.ready.set(m.rank, m);
      this.lastBeat.set(m.rank, Date.now());
      if (this.isReady()) {
        for (const w of this.readyWaiters.splice(0)) w();
        for (const h of this.readyHandlers) h();
      }
    });
    this.bus.subscribe(shardWildcard(o.cluster, 'heartbeat'), 'shard.heartbeat', (m) => {
      this.lastBeat.set(m.rank, Date.now());
    });
    this.bus.subscribe(stepResultSubject(o.cluster), 'step.result', (m) => this.onResult(m));
    this.bus.subscribe(adapterSubject(o.cluster, 'loaded'), 'adapter.loaded', (m) => {
      const p = this.adapters.get(`${m.key}#${m.slot}`);
      if (!p) return;
      p.ranks.add(m.rank);
      p.bytes += m.bytes;
      p.rankBytes = Math.max(p.rankBytes, m.bytes);
      p.fromHost &&= m.fromHost === true;
      p.maxRank = Math.max(p.maxRank, m.maxRank);
      p.dora ||= m.dora === true;
      p.hostBytes = Math.max(p.hostBytes, m.hostBytes ?? 0);
      p.readMs = Math.max(p.readMs, m.readMs ?? 0);
      p.installMs = Math.max(p.installMs, m.installMs ?? 0);
      if (p.ranks.size === o.worldSize) {
        this.adapters.delete(`${m.key}#${m.slot}`);
        p.resolve({ bytes: p.bytes, rankBytes: p.rankBytes, fromHost: p.fromHost, maxRank: p.maxRank, dora: p.dora,
          hostBytes: p.hostBytes, readMs: p.readMs, installMs: p.installMs });
      }
    });
    this.bus.subscribe(adapterSubject(o.cluster, 'failed'), 'adapter.failed', (m) => {
      const p = this.adapters.get(`${m.key}#${m.slot}`);
      if (!p) return;
      this.adapters.delete(`${m.key}#${m.slot}`);
      p.reject(new AdapterShardError(m.reason));
    });
  }

  get worldSize(): number {
    return this.o.worldSize;
  }

  isReady(): boolean {
    return this.ready.size === this.o.worldSize;
  }

  /** Rank 0's announcement (model facts, cache size); only valid once ready. */
  info(): ShardReady {
    const r = this.ready.get(0);
    if (!r) throw new Error('shard group is not ready');
    return r;
  }

  waitReady(timeoutMs: number): Promise<void> {
    if (this.isReady()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new ShardLostError(`shards not ready after ${timeoutMs} ms ` +
        `(${this.ready.size}/${this.o.worldSize} ready)`)), timeoutMs);
      this.readyWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** Called every time the whole group becomes ready (first start and after each restart). */
  onReady(handler: () => void): void {
    this.readyHandlers.push(handler);
  }

  /** Starts heartbeat supervision; `onLost` fires once per loss. */
  watch(onLost: (reason: string) => void): void {
    this.lostHandlers.push(onLost);
    clearInterval(this.watchdog);
    this.watchdog = setInterval(() => {
      if (!this.isReady()) return;
      const now = Date.now();
      for (const [rank, t] of this.lastBeat) {
        if (now - t > this.o.shardTimeoutMs) this.markLost(`shard ${rank} missed heartbeats for ${now - t} ms`);
      }
    }, Math.max(100, Math.floor(this.o.shardTimeoutMs / 4)));
  }

  /** Called by the supervisor when a shard process exits, or by the watchdog. */
  markLost(reason: string): void {
    if (!this.isReady() && this.pending.size === 0) return;
    this.ready.clear();
    this.lastBeat.clear();
    const err = new ShardLostError(reason);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    for (const [k, p] of this.adapters) {
      this.adapters.delete(k);
      p.reject(err);
    }
    for (const h of this.lostHandlers) h(reason);
  }

  step(step: Step, headers?: MessageHeaders): Promise<StepResult> {
    if (this.pending.has(step.stepId)) return Promise.reject(new Error(`step ${step.stepId} is already in flight`));
    if (!this.isReady()) return Promise.reject(new ShardLostError('shards are not ready (restarting?)'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(step.stepId);
        const p = this.pending.size;
        const why = `step ${step.stepId} got no reply from every shard within ${this.o.stepTimeoutMs} ms`;
        reject(new StepTimeoutError(why));
        // A rank that answers heartbeats but not a step lost a message or is stuck: its state no longer matches the
        // engine's, so the group is given up (what else is in flight fails too) and restarted, as for a dead rank.
        this.markLost(p > 0 ? `${why} (${p} later step(s) failed with it)` : why);
      }, this.o.stepTimeoutMs);
      this.pending.set(step.stepId, { stepId: step.stepId, results: new Map(), resolve, reject, timer });
      this.bus.publish(stepSubject(this.o.cluster), step, headers);
    });
  }

  /** Publishes an image's pixel values for every rank, in IMAGE_CHUNK_BYTES chunks; before the step that refers to
   * it (one connection publishes in order, and a rank waits a while for a key it has not got). */
  publishImage(image: PreparedImage): void {
    const bytes = new Uint8Array(image.data.buffer, image.data.byteOffset, image.data.byteLength);
    const chunks = Math.max(1, Math.ceil(bytes.byteLength / IMAGE_CHUNK_BYTES));
    for (let chunk = 0; chunk < chunks; chunk++) {
      this.bus.publish(imageDataSubject(this.o.cluster), { v: PROTOCOL_VERSION, type: 'image.data', key: image.key,
        height: image.height, width: image.width, chunk, chunks,
        data: bytes.subarray(chunk * IMAGE_CHUNK_BYTES, (chunk + 1) * IMAGE_CHUNK_BYTES) });
    }
  }

  private onResult(m: StepResult): void {
    const p = this.pending.get(m.stepId);
    if (!p) return; // a late reply for a step already failed
    if (m.error && m.fatal) {
      // That rank is exiting (its forward pass failed; its peers may be stuck in a collective it never joins):
      // fail everything in flight now rather than after --step-timeout-ms; the group is restarted.
      this.markLost(`shard ${m.rank} failed step ${m.stepId} and is restarting: ${m.error}`);
      return;
    }
    p.results.set(m.rank, m);
    if (p.results.size < this.o.worldSize) return;
    clearTimeout(p.timer);
    this.pending.delete(m.stepId);
    const failed = [...p.results.values()].filter((r) => r.error);
    const rank0 = p.results.get(0)!;
    if (failed.length > 0) p.resolve({ ...rank0, outputs: [], error: failed.map((r) => r.error).join('; ') });
    else p.resolve(rank0);
  }

  /** Loads a directory (or a merge recipe) into `slot` on every rank; resolves when all ranks have it. */
  loadAdapter(key: string, slot: number, load: { dir?: string; merge?: MergeRecipe }): Promise<AdapterLoaded> {
    if (!this.isReady()) return Promise.reject(new ShardLostError('shards are not ready (restarting?)'));
    return new Promise((resolve, reject) => {
      this.adapters.set(`${key}#${slot}`, { ranks: new Set(), bytes: 0, rankBytes: 0, fromHost: true, maxRank: 0, dora: false, hostBytes: 0, readMs: 0, installMs: 0,
        resolve, reject });
      this.bus.publish(adapterSubject(this.o.cluster, 'load'), { v: PROTOCOL_VERSION, type: 'adapter.load', key, slot,
        dir: load.dir ?? '', ...(load.merge ? { merge: load.merge } : {}) });
    });
  }

  /** Asks every rank to read an adapter into its host-RAM tier ahead of its load (fire and forget). */
  prefetchAdapter(key: string, load: { dir?: string; merge?: MergeRecipe }): void {
    if (this.isReady()) this.bus.publish(adapterSubject(this.o.cluster, 'prefetch'), { v: PROTOCOL_VERSION, type: 'adapter.prefetch',
      key, dir: load.dir ?? '', ...(load.merge ? { merge: load.merge } : {}) });
  }

  evictAdapter(key: string, slot: number): void {
    if (this.isReady()) this.bus.publish(adapterSubject(this.o.cluster, 'evict'), { v: PROTOCOL_VERSION, type: 'adapter.evict', key, slot });
  }

  shutdown(reason: string): void {
    this.bus.publish(controlSubject(this.o.cluster, 'shutdown'), { v: PROTOCOL_VERSION, type: 'shutdown', reason });
  }

  close(): void {
    clearInterval(this.watchdog);
  }
}
