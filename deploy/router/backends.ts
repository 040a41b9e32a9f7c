// The replicas behind `weft router`: their health (GET /health every interval; a connection that fails while a
// request is forwarded marks one down at once), their base model (GET /info once up), the requests in flight on
// each. Which of them a request goes to is placement.ts's (rendezvous hashing bounded by load): each adapter has a
// first choice that stays put while replicas come and go (only the adapters of a replica that leaves move, spread
// over the rest), and next choices when that one is down, full or above the load bound.
import { placeLeastBusy, rendezvousOrder } from './placement.js';

export interface Backend {
  /** What the hash uses: `--backend NAME=URL`'s name, or the URL itself. */
  readonly name: string;
  readonly url: string;
  up: boolean;
  inFlight: number;
  baseModel: string | null;
  /** Every name the replica's base model answers to (/info served_model_names; its model_id alone before). */
  baseNames: string[];
}

/** `NAME=URL` or `URL` → a backend (URL without its trailing slashes). */
export function parseBackend(spec: string): Backend {
  const eq = spec.indexOf('=');
  const named = eq > 0 && !spec.slice(0, eq).includes('://');
  const url = (named ? spec.slice(eq + 1) : spec).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+/.test(url)) throw new Error(`--backend ${spec}: expected [NAME=]http(s)://host:port`);
  return { name: named ? spec.slice(0, eq) : url, url, up: false, inFlight: 0, baseModel: null, baseNames: [] };
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
    return new Set(this.backends.flatMap((b) => b.baseNames));
  }

  /** Every healthy replica, in `key`'s rendezvous order (its choices with no load). */
  orderFor(key: string): Backend[] {
    return rendezvousOrder(key, this.backends);
  }

  /** Healthy replicas, least busy first. */
  leastBusy(): Backend[] {
    return placeLeastBusy(this.backends).candidates;
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
          const info = await fetch(`${b.url}/info`, { signal: AbortSignal.timeout(5000) }).then((r) => r.json()) as
            { model_id?: unknown; served_model_names?: unknown };
          if (typeof info.model_id === 'string') {
            b.baseModel = info.model_id;
            const names = Array.isArray(info.served_model_names) ? info.served_model_names.filter((n): n is string => typeof n === 'string') : [];
            b.baseNames = [...new Set([info.model_id, ...names])];
          }
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
