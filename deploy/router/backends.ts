// The replicas behind `weft router`: their health (GET /health every interval; a connection that fails while a
// request is forwarded marks one down at once), their base model (GET /info once up), the requests in flight on
// each, and the order in which an adapter's requests try them — rendezvous (highest-random-weight) hashing of the
// adapter over the replicas' names: each adapter has a first choice that stays put while replicas come and go
// (only the adapters of a replica that leaves move, spread over the rest), and a next choice when that one is down
// or full.
import { createHash } from 'node:crypto';

export interface Backend {
  /** What the hash uses: `--backend NAME=URL`'s name, or the URL itself. */
  readonly name: string;
  readonly url: string;
  up: boolean;
  inFlight: number;
  baseModel: string | null;
}

/** `NAME=URL` or `URL` → a backend (URL without its trailing slashes). */
export function parseBackend(spec: string): Backend {
  const eq = spec.indexOf('=');
  const named = eq > 0 && !spec.slice(0, eq).includes('://');
  const url = (named ? spec.slice(eq + 1) : spec).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+/.test(url)) throw new Error(`--backend ${spec}: expected [NAME=]http(s)://host:port`);
  return { name: named ? spec.slice(0, eq) : url, url, up: false, inFlight: 0, baseModel: null };
}

export class BackendPool {
  private timer: NodeJS.Timeout | null = null;

  constructor(readonly backends: readonly Backend[], private readonly healthIntervalMs: number,
    private readonly onChange: (b: Backend) => void = () => {}) {
    const names = new Set(backends.map((b) => b.name));
    if (names.size !== backends.length) throw new Error('--backend names must be distinct');
  }

  /** Checks every replica now, then every interval. */
  async start(): Promise<void> {
    await this.checkAll();
    this.timer = setInterval(() => void this.checkAll(), this.healthIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  get healthy(): Backend[] {
    return this.backends.filter((b) => b.up);
  }

  /** The base models the replicas serve (a `model` naming one is not an adapter). */
  get baseModels(): Set<string> {
    return new Set(this.backends.map((b) => b.baseModel).filter((m): m is string => m !== null));
  }

  /** Every healthy replica, in `key`'s rendezvous order. */
  orderFor(key: string): Backend[] {
    return this.healthy.map((b) => ({ b, w: weight(key, b.name) })).sort((x, y) => (x.w < y.w ? 1 : x.w > y.w ? -1 : 0)).map((x) => x.b);
  }

  /** Healthy replicas, least busy first. */
  leastBusy(): Backend[] {
    return [...this.healthy].sort((a, b) => a.inFlight - b.inFlight);
  }

  byName(name: string): Backend | undefined {
    return this.backends.find((b) => b.name === name);
  }

  markDown(b: Backend): void {
    if (!b.up) return;
    b.up = false;
    this.onChange(b);
  }

  private async checkAll(): Promise<void> {
    await Promise.all(this.backends.map(async (b) => {
      let up = false;
      try {
        up = (await fetch(`${b.url}/health`, { signal: AbortSignal.timeout(Math.max(1000, this.healthIntervalMs)) })).ok;
        if (up && b.baseModel === null) {
          const info = await fetch(`${b.url}/info`, { signal: AbortSignal.timeout(5000) }).then((r) => r.json()) as { model_id?: unknown };
          if (typeof info.model_id === 'string') b.baseModel = info.model_id;
        }
      } catch {
        up = false;
      }
      if (up !== b.up) {
        b.up = up;
        this.onChange(b);
      }
    }));
  }
}

/** The rendezvous weight of (key, replica): the first 8 bytes of SHA-256 — the same on every router. */
function weight(key: string, name: string): bigint {
  return createHash('sha256').update(key).update('\0').update(name).digest().readBigUInt64BE(0);
}
