// `weft router`'s own /metrics: `weft_router_*` series about routing only. The replicas' own metrics (queues,
// adapter loads, tokens) are not merged in here: scrape each replica's /metrics separately (the k8s manifest's pod
// annotations ask Prometheus to).
import { Counter, Gauge, Registry } from 'prom-client';
import type { Backend } from './backends.js';
import { loadBound, PLACEMENT_REASONS } from './placement.js';

export interface RouterMetrics {
  readonly registry: Registry;
  /** Responses relayed, by replica and status. */
  readonly requests: Counter<'backend' | 'code'>;
  /** Requests sent to a next choice after an unreachable replica or a 429. */
  readonly retries: Counter;
  /** Every request sent to a replica (a retried one counts once per replica tried), by why that replica. */
  readonly placements: Counter<'backend' | 'reason'>;
  readonly up: Gauge<'backend'>;
}

/** The gauges of requests in flight and of the load bound read the replicas' state when scraped. */
export function routerMetrics(backends: readonly Backend[], loadFactor: number): RouterMetrics {
  const registry = new Registry();
  const requests = new Counter({ name: 'weft_router_requests_total', help: 'Requests forwarded, by replica and status', labelNames: ['backend', 'code'], registers: [registry] });
  const retries = new Counter({ name: 'weft_router_retries_total', help: 'Requests sent to a next choice: the first was unreachable, or full (429) for an adapter', registers: [registry] });
  const placements = new Counter({ name: 'weft_router_placements_total', labelNames: ['backend', 'reason'], registers: [registry],
    help: 'Requests sent to each replica, by reason: affinity (an adapter\'s first choice), spill (a later choice: the ones before were above the load bound), least_busy (no adapter), owner (a stored response\'s replica), retry (after a failure, 429 or 404)' });
  const up = new Gauge({ name: 'weft_router_backend_up', help: '1 while a replica answers /health', labelNames: ['backend'], registers: [registry] });
  new Gauge({ name: 'weft_router_backend_in_flight', help: 'Requests this router has in flight on each replica (until the response ends)', labelNames: ['backend'], registers: [registry],
    collect() { for (const b of backends) this.set({ backend: b.name }, b.inFlight); } });
  new Gauge({ name: 'weft_router_load_bound', help: 'Requests in flight above which a replica is skipped for an adapter\'s next choice: ceil(load factor × (in flight + 1) / healthy replicas)', registers: [registry],
    collect() { this.set(loadBound(backends, loadFactor)); } });
  // Every series from the start, so that rate() sees the first spill.
  for (const b of backends) for (const reason of PLACEMENT_REASONS) placements.inc({ backend: b.name, reason }, 0);
  return { registry, requests, retries, placements, up };
}
