// DoRA's weight norms across a tensor-parallel group. A row-parallel module (o, down) splits every weight row over
// the ranks, so each rank computes only its share of a row's squared norm; the ranks send their shares to each
// other over NATS (`adapter.norms`) while the adapter loads and each adds them up in rank order — the same sums,
// bit for bit, on every rank. Loads run beside steps and are not in lock-step across ranks, which is why this is
// a message exchange and not a collective (the collective belongs to the steps).
import type { Subscription } from 'nats';
import { PROTOCOL_VERSION, adapterSubject, bytesToFloat32, type AdapterNorms, type Message } from '../protocol/index.js';
import type { MessageBus } from '../protocol/bus.js';

/** Floats per message: 512 KiB of data, well under NATS's default 1 MiB payload limit. */
const CHUNK_FLOATS = 128 * 1024;

export class DoraExchangeError extends Error {
  override readonly name = 'DoraExchangeError';
}

interface Load {
  /** Per rank: its chunks as they arrive. */
  chunks: Map<number, Uint8Array[]>;
  expected: Map<number, number>;
  errors: Map<number, string>;
  done?: (err?: Error) => void;
}

export interface DoraExchangeOptions {
  bus: MessageBus;
  cluster: string;
  rank: number;
  world: number;
  /** How long a rank waits for the others' shares. */
  timeoutMs: number;
  publish: (subject: string, msg: Message) => void;
}

export class DoraNormExchange {
  private readonly loads = new Map<string, Load>();
  private sub?: Subscription;

  constructor(private readonly o: DoraExchangeOptions) {}

  start(): void {
    this.sub = this.o.bus.subscribe(adapterSubject(this.o.cluster, 'norms'), 'adapter.norms', (m) => this.onShare(m));
  }

  stop(): void {
    this.sub?.unsubscribe();
    for (const load of this.loads.values()) load.done?.(new DoraExchangeError('the shard is stopping'));
    this.loads.clear();
  }

  /**
   * Sends this rank's shares (one array per row-parallel DoRA part, in part order) for the load numbered `ticket` of
   * `slot`, waits for every other rank's, and returns the sums, added in rank order.
   */
  async sum(key: string, slot: number, ticket: number, shares: Float32Array[]): Promise<Float32Array[]> {
    const total = shares.reduce((n, s) => n + s.length, 0);
    const flat = new Float32Array(total);
    let at = 0;
    for (const s of shares) { flat.set(s, at); at += s.length; }
    const chunks = Math.max(1, Math.ceil(total / CHUNK_FLOATS));
    for (let c = 0; c < chunks; c++) {
      const part = flat.subarray(c * CHUNK_FLOATS, Math.min(total, (c + 1) * CHUNK_FLOATS));
      this.send({ key, slot, ticket, chunk: c, chunks, data: new Uint8Array(part.buffer, part.byteOffset, part.byteLength) });
    }
    const load = this.entry(slot, ticket);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => finish(new DoraExchangeError(`DoRA: ranks ${this.missing(load).join(', ')} sent no ` +
        `weight norms within ${this.o.timeoutMs / 1000} s`)), this.o.timeoutMs);
      const finish = (err?: Error): void => {
        clearTimeout(timer);
        load.done = undefined;
        this.loads.delete(`${slot}:${ticket}`);
        if (err) reject(err);
        else resolve();
      };
      load.done = finish;
      this.check(load);
    });
    const sums = new Float32Array(total);
    for (let r = 0; r < this.o.world; r++) {
      const values = r === this.o.rank ? flat : concat(load.chunks.get(r)!);
      if (values.length !== total) {
        throw new DoraExchangeError(`DoRA: rank ${r} sent ${values.length} weight-norm values, this rank has ${total} ` +
          '(the ranks planned the adapter differently)');
      }
      for (let i = 0; i < total; i++) sums[i] = sums[i]! + values[i]!;
    }
    at = 0;
    return shares.map((s) => { const out = sums.slice(at, at + s.length); at += s.length; return out; });
  }

  /** Tells the other ranks this one has no shares for the load (its read or plan failed): they stop waiting. */
  fail(key: string, slot: number, ticket: number, reason: string): void {
    if (this.o.world > 1) this.send({ key, slot, ticket, chunk: 0, chunks: 1, data: new Uint8Array(0), error: reason });
  }

  private send(m: Omit<AdapterNorms, 'v' | 'type' | 'rank'>): void {
    this.o.publish(adapterSubject(this.o.cluster, 'norms'), { v: PROTOCOL_VERSION, type: 'adapter.norms', rank: this.o.rank, ...m });
  }

  private onShare(m: AdapterNorms): void {
    if (m.rank === this.o.rank || m.rank >= this.o.world) return;
    const load = this.entry(m.slot, m.ticket);
    if (m.error !== undefined) load.errors.set(m.rank, m.error);
    else {
      const got = load.chunks.get(m.rank) ?? [];
      got[m.chunk] = m.data;
      load.chunks.set(m.rank, got);
      load.expected.set(m.rank, m.chunks);
    }
    this.check(load);
  }

  /** The load's entry; entries of earlier loads of the slot (superseded, or failed here before the exchange) go. */
  private entry(slot: number, ticket: number): Load {
    const id = `${slot}:${ticket}`;
    let load = this.loads.get(id);
    if (!load) {
      for (const [k, old] of this.loads) {
        const [s, t] = k.split(':').map(Number);
        if (s === slot && t! < ticket && !old.done) this.loads.delete(k);
      }
      load = { chunks: new Map(), expected: new Map(), errors: new Map() };
      this.loads.set(id, load);
    }
    return load;
  }

  private missing(load: Load): number[] {
    const out: number[] = [];
    for (let r = 0; r < this.o.world; r++) {
      if (r === this.o.rank) continue;
      const n = load.expected.get(r), got = load.chunks.get(r);
      if (n === undefined || !got || got.filter(Boolean).length < n) out.push(r);
    }
    return out;
  }

  private check(load: Load): void {
    if (!load.done) return;
    const [rank, error] = [...load.errors][0] ?? [];
    if (rank !== undefined) load.done(new DoraExchangeError(`DoRA: rank ${rank} could not load the adapter: ${error}`));
    else if (this.missing(load).length === 0) load.done();
  }
}

function concat(parts: Uint8Array[]): Float32Array {
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) { bytes.set(p, at); at += p.byteLength; }
  return bytesToFloat32(bytes);
}
