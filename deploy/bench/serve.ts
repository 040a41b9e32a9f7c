// `weft bench --scenario serve`: an HTTP load generator against a running server (--url, loopback only)
// or one it starts itself. Poisson arrivals at --rate (0: a closed loop of max(--batch) clients),
// power-law adapter popularity over --adapters adapters, bounded in request count and in time.
import { planRequests, type PlannedRequest } from './load-gen.js';
import { formatTable, hostDevice, type Column, type Report } from './report.js';
import { streamOne, type RequestResult } from './serve-client.js';
import { summarize } from './stats.js';

export interface ServeOptions {
  url: URL;
  requests: number;
  rate: number;
  /** Closed loop (rate 0): clients sending back to back. */
  concurrency: number;
  /** Adapter ids in popularity order; empty: base model only. */
  adapterIds: readonly string[];
  adapterSource: string | null;
  /** Sent as `Authorization: Bearer` (a server started with --api-key). */
  apiKey?: string;
  alpha?: number;
  promptWords?: readonly [number, number];
  outputTokens?: readonly [number, number];
  sharedPrefixWords?: number;
  timeoutMs?: number;
  /** The whole run stops sending after this long; unsent requests are counted as 'not-sent'. */
  deadlineMs?: number;
  seed?: number;
}

export interface ServeRow {
  adapters: number;
  requests: number;
  completed: number;
  durationS: number;
  reqPerS: number;
  outputTokPerS: number;
  ttftMs: { p50: number; p99: number };
  itlMs: { p50: number; p99: number };
  e2eMs: { p50: number; p99: number };
  /** Failed requests by outcome (`http-<status>`, stream-error, network, timeout, not-sent). */
  errors: Record<string, number>;
  /** Share of the run's prompt tokens the server took from its prefix cache (from /metrics); null: not known. */
  prefixCacheHitRate?: number | null;
  /**
   * Adapters the server loaded during the run, how many of them from the shards' host RAM (null: the server does
   * not say), and their mean read (beside the steps) and install (between them: time no step ran) times, slowest
   * rank (from /metrics); null: not known.
   */
  adapterLoads?: { count: number; fromHost: number | null; readMsMean: number | null; installMsMean: number | null } | null;
  /** Speculative decoding (--speculate): share of the run's draft tokens accepted; null: none drafted, or not known. */
  draftAcceptRate?: number | null;
}

export const SERVE_DEFAULTS = { alpha: 1, promptWords: [16, 128] as const, outputTokens: [16, 64] as const,
  timeoutMs: 120_000, deadlineMs: 600_000, seed: 1 };

export async function runServeOnce(o: ServeOptions): Promise<ServeRow> {
  const plan = planRequests({ count: o.requests, rate: o.rate, adapters: o.adapterIds, alpha: o.alpha ?? SERVE_DEFAULTS.alpha,
    promptWords: o.promptWords ?? SERVE_DEFAULTS.promptWords, outputTokens: o.outputTokens ?? SERVE_DEFAULTS.outputTokens,
    sharedPrefixWords: o.sharedPrefixWords ?? 0, seed: o.seed ?? SERVE_DEFAULTS.seed });
  const timeoutMs = o.timeoutMs ?? SERVE_DEFAULTS.timeoutMs;
  const deadline = performance.now() + (o.deadlineMs ?? SERVE_DEFAULTS.deadlineMs);
  const send = (r: PlannedRequest) => streamOne(o.url, r, { timeoutMs: Math.min(timeoutMs, Math.max(1, deadline - performance.now())), adapterSource: o.adapterSource, apiKey: o.apiKey });
  const t0 = performance.now();
  const results = o.rate > 0 ? await openLoop(plan, send, t0, deadline) : await closedLoop(plan, send, o.concurrency, deadline);
  return summarizeRun(results, o.adapterIds.length, o.requests, (performance.now() - t0) / 1e3);
}

async function openLoop(plan: PlannedRequest[], send: (r: PlannedRequest) => Promise<RequestResult>, t0: number, deadline: number): Promise<(RequestResult | null)[]> {
  const pending: Promise<RequestResult | null>[] = [];
  for (const r of plan) {
    const wait = t0 + r.atMs - performance.now();
    if (t0 + r.atMs > deadline) {
      pending.push(Promise.resolve(null));
      continue;
    }
    if (wait > 0) await new Promise((res) => setTimeout(res, wait));
    pending.push(send(r));
  }
  return Promise.all(pending);
}

async function closedLoop(plan: PlannedRequest[], send: (r: PlannedRequest) => Promise<RequestResult>, clients: number, deadline: number): Promise<(RequestResult | null)[]> {
  const results: (RequestResult | null)[] = new Array(plan.length).fill(null);
  let next = 0;
  const client = async (): Promise<void> => {
    while (next < plan.length && performance.now() < deadline) {
      const i = next++;
      results[i] = await send(plan[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(clients, plan.length)) }, client));
  return results;
}

/** Throughput and latency percentiles of one run; a null result is a request never sent (deadline). */
export function summarizeRun(results: readonly (RequestResult | null)[], adapters: number, requests: number, durationS: number): ServeRow {
  const ok = results.filter((r): r is RequestResult => r !== null && r.outcome === 'ok');
  const errors: Record<string, number> = {};
  for (const r of results) {
    if (r?.outcome === 'ok') continue;
    const key = r ? r.outcome : 'not-sent';
    errors[key] = (errors[key] ?? 0) + 1;
  }
  const pick = (v: number[]) => {
    const s = summarize(v);
    return { p50: s.p50, p99: s.p99 };
  };
  const tokens = results.reduce((n, r) => n + (r?.tokens ?? 0), 0);
  return {
    adapters, requests, completed: ok.length, durationS, reqPerS: ok.length / durationS, outputTokPerS: tokens / durationS,
    ttftMs: pick(ok.flatMap((r) => (r.ttftMs === null ? [] : [r.ttftMs]))),
    itlMs: pick(ok.flatMap((r) => r.itlMs)),
    e2eMs: pick(ok.map((r) => r.e2eMs)),
    errors,
  };
}

export function serveReport(rows: ServeRow[], setup: Record<string, unknown>): Report<ServeRow> {
  return {
    scenario: 'serve', date: new Date().toISOString(), device: hostDevice('http'), setup, rows,
    notes: [
      'TTFT: send → first token event of /generate_stream; ITL: gaps between token events (TGI streams hold each token until the next is known, so both include one step of that delay)',
      'output tok/s counts token events of every request (failed ones included); req/s counts completed requests',
    ],
  };
}

const fmtErrors = (e: Record<string, number>): string => Object.entries(e).map(([k, v]) => `${k}:${v}`).join(' ') || '0';
const fmtMs = (v: number | null): string => (v === null ? '-' : v.toFixed(1));
const fmtLoads = (l: ServeRow['adapterLoads']): string =>
  (l == null ? '-' : l.count === 0 ? '0'
    : `${l.count} (${l.fromHost ?? '-'}; ${fmtMs(l.readMsMean)} / ${fmtMs(l.installMsMean)})`);

export const SERVE_COLUMNS: Column<ServeRow>[] = [
  { header: 'adapters', value: (r) => r.adapters, digits: 0 },
  { header: 'done/sent', value: (r) => `${r.completed}/${r.requests}` },
  { header: 'req/s', value: (r) => r.reqPerS, digits: 2 },
  { header: 'out tok/s', value: (r) => r.outputTokPerS, digits: 1 },
  { header: 'TTFT p50 ms', value: (r) => r.ttftMs.p50, digits: 1 },
  { header: 'TTFT p99 ms', value: (r) => r.ttftMs.p99, digits: 1 },
  { header: 'ITL p50 ms', value: (r) => r.itlMs.p50, digits: 1 },
  { header: 'ITL p99 ms', value: (r) => r.itlMs.p99, digits: 1 },
  { header: 'cached prompt %', value: (r) => (r.prefixCacheHitRate == null ? '-' : (100 * r.prefixCacheHitRate).toFixed(1)) },
  { header: 'adapter loads (from host; read / install ms)', value: (r) => fmtLoads(r.adapterLoads) },
  { header: 'drafts accepted %', value: (r) => (r.draftAcceptRate == null ? '-' : (100 * r.draftAcceptRate).toFixed(1)) },
  { header: 'errors', value: (r) => fmtErrors(r.errors) },
];

/** Counters a serve run reads from the server's GET /metrics before and after, to report the run's share. */
export interface ServerCounters {
  hit: number;
  prompt: number;
  /** weft_adapter_load_seconds count and sum per phase, and weft_adapter_loads_from_host_total (NaN: absent). */
  loads: { read: { count: number; sum: number }; install: { count: number; sum: number }; fromHost: number } | null;
  /** weft_spec_draft_tokens_total and weft_spec_accepted_tokens_total (NaN: absent). */
  drafted: number;
  accepted: number;
}

/** The server's counters (GET /metrics), or null if it does not export the prompt ones. */
export async function serverCounters(url: URL): Promise<ServerCounters | null> {
  try {
    const res = await fetch(new URL('/metrics', url), { signal: AbortSignal.timeout(5_000) });
    return res.ok ? parseServerCounters(await res.text()) : null;
  } catch {
    return null;
  }
}

export function parseServerCounters(text: string): ServerCounters | null {
  const value = (series: string): number => {
    const escaped = series.replace(/[{}"=.+]/g, (ch) => `\\${ch}`);
    return Number(new RegExp(`^${escaped} ([0-9.e+-]+)$`, 'm').exec(text)?.[1]);
  };
  const phase = (p: string) => ({ count: value(`weft_adapter_load_seconds_count{phase="${p}"}`),
    sum: value(`weft_adapter_load_seconds_sum{phase="${p}"}`) });
  const hit = value('weft_prefix_cache_hit_tokens_total'), prompt = value('weft_prompt_tokens_total');
  if (!Number.isFinite(hit) || !Number.isFinite(prompt)) return null;
  const read = phase('read'), install = phase('install');
  // A server that has loaded nothing yet exports the histogram's TYPE line only: zero loads.
  const known = /^# TYPE weft_adapter_load_seconds histogram$/m.test(text);
  const zero = { count: 0, sum: 0 };
  const pick = (c: { count: number; sum: number }) => (Number.isFinite(c.count) && Number.isFinite(c.sum) ? c : zero);
  const fromHost = value('weft_adapter_loads_from_host_total');
  return { hit, prompt, loads: known ? { read: pick(read), install: pick(install), fromHost } : null,
    drafted: value('weft_spec_draft_tokens_total'), accepted: value('weft_spec_accepted_tokens_total') };
}

/** Share of the draft tokens verified between two readings that were accepted; null when none were drafted. */
export function draftAcceptRate(before: ServerCounters | null, after: ServerCounters | null): number | null {
  if (!before || !after) return null;
  const drafted = after.drafted - before.drafted;
  return Number.isFinite(drafted) && drafted > 0 ? (after.accepted - before.accepted) / drafted : null;
}

/** Hit rate between two serverCounters readings. */
export function hitRate(before: ServerCounters | null, after: ServerCounters | null): number | null {
  if (!before || !after || after.prompt <= before.prompt) return null;
  return (after.hit - before.hit) / (after.prompt - before.prompt);
}

/** Adapter loads between two serverCounters readings: how many, mean read and install ms. */
export function adapterLoadsBetween(before: ServerCounters | null, after: ServerCounters | null): ServeRow['adapterLoads'] {
  if (!before?.loads || !after?.loads) return null;
  const mean = (p: 'read' | 'install'): number | null => {
    const n = after.loads![p].count - before.loads![p].count;
    return n > 0 ? (1000 * (after.loads![p].sum - before.loads![p].sum)) / n : null;
  };
  const fromHost = after.loads.fromHost - before.loads.fromHost;
  return { count: after.loads.read.count - before.loads.read.count, fromHost: Number.isFinite(fromHost) ? fromHost : null,
    readMsMean: mean('read'), installMsMean: mean('install') };
}

export function formatServe(report: Report<ServeRow>): string {
  return formatTable(report.rows, SERVE_COLUMNS);
}
