// `weft bench`: each scenario prints a table and writes a JSON report (--output, else stdout).
// decode / prefill / lora-kernels measure this build's engine next to the bound of DESIGN.md §9;
// baseline runs PyTorch + PEFT on the same shape; serve loads an HTTP server; constraints times token masks.
import type { BenchConfig } from '../config/index.js';
import { formatBaseline, runBaseline } from './baseline.js';
import { formatConstraints, runConstraints } from './constraints.js';
import { formatDecode, runDecode } from './decode.js';
import { formatLoraKernels, runLoraKernels } from './lora-kernels.js';
import { resolveBackend, resolveModel, resolveShape } from './model-source.js';
import { formatPrefill, prefillLengths, runPrefill } from './prefill.js';
import { emitReport, type Report } from './report.js';
import { PRESETS } from './shapes.js';
import { loopbackUrl } from './serve-client.js';
import { authHeaders } from './serve-client.js';
import { SERVE_DEFAULTS, adapterLoadsBetween, draftAcceptRate, formatServe, hitRate, runServeOnce, serveReport, serverCounters, type ServeRow } from './serve.js';
import { startBenchServer } from './serve-server.js';

export { runDecode, decodeCases, type DecodeRow, type DecodeOptions } from './decode.js';
export { runPrefill, prefillLengths, type PrefillRow } from './prefill.js';
export { runLoraKernels, loraKernelBytes, loraKernelCases, type LoraKernelRow } from './lora-kernels.js';
export { runBaseline, baselineArgs, pythonStackMissing, type BaselineRow } from './baseline.js';
export { runServeOnce, summarizeRun, type ServeRow, type ServeOptions } from './serve.js';
export * from './bounds.js';
export * from './load-gen.js';
export * from './stats.js';
export { PRESETS, presetOf, shapeFromModelDir, type ModelShape, type PresetName } from './shapes.js';
export { resolveBackend, resolveModel } from './model-source.js';
export { formatTable, type Report } from './report.js';

export interface BenchIo {
  /** Tables and the JSON report when there is no --output. */
  out: (text: string) => void;
  /** Progress lines. */
  err: (text: string) => void;
}

const stdio: BenchIo = { out: (t) => process.stdout.write(t + '\n'), err: (t) => process.stderr.write(t + '\n') };

export async function runBench(c: BenchConfig, io: BenchIo = stdio): Promise<Report<unknown>> {
  const log = (m: string) => io.err(`bench: ${m}`);
  const { report, table } = await run(c, log);
  io.out(table);
  emitReport(report, c.output, c.output ? log : io.out);
  return report;
}

async function run(c: BenchConfig, log: (m: string) => void): Promise<{ report: Report<unknown>; table: string }> {
  switch (c.scenario) {
    case 'decode': {
      const backend = resolveBackend(c.device);
      const model = await resolveModel(c.model, log);
      const report = await runDecode({ model, backend, batch: c.batch, adapters: c.adapters, rank: c.rank, context: c.context,
        opProfileSteps: c.opProfile ? 3 : 0, dora: c.dora, log });
      return { report, table: formatDecode(report) };
    }
    case 'prefill': {
      const backend = resolveBackend(c.device);
      const model = await resolveModel(c.model, log);
      const tokens = prefillLengths(c.context);
      const adapters = c.adapters.some((a) => a > 0) ? [0, 1] as const : [0] as const;
      const report = await runPrefill({ model, backend, tokens, adapters: [...adapters], rank: c.rank[0]!, opProfile: c.opProfile,
        dora: c.dora, log });
      return { report, table: formatPrefill(report) };
    }
    case 'lora-kernels': {
      const backend = resolveBackend(c.device);
      // The kernels need only the shape: Llama-2-7B's unless --model names another.
      const { label, shape } = c.model === null ? { label: 'preset:llama2-7b', shape: PRESETS['llama2-7b'] } : await resolveShape(c.model);
      const report = await runLoraKernels(shape, label, backend, { tokens: c.batch, adapters: c.adapters, rank: c.rank }, log);
      return { report, table: formatLoraKernels(report) };
    }
    case 'baseline': {
      const m = await resolveShape(c.model);
      const report = await runBaseline({ shape: m.shape, modelDir: m.dir, modelLabel: m.label, device: c.device,
        batch: c.batch, adapters: c.adapters, rank: c.rank, context: c.context, log });
      return { report, table: formatBaseline(report) };
    }
    case 'serve':
      return serve(c, log);
    case 'constraints': {
      const report = runConstraints(c.model, log);
      return { report, table: formatConstraints(report) };
    }
    default: {
      const unhandled: never = c.scenario;
      throw new Error(`unknown bench scenario ${String(unhandled)}`);
    }
  }
}

/** One load run per --adapters value, against --url or a server started here for the run. */
async function serve(c: BenchConfig, log: (m: string) => void): Promise<{ report: Report<ServeRow>; table: string }> {
  const concurrency = Math.max(...c.batch);
  const rows: ServeRow[] = [];
  const rank = c.rank[0]!;
  const model = c.url ? null : await resolveModel(c.model, log);
  const server = model ? await startBenchServer(model, Math.max(...c.adapters), rank, concurrency, c.device, c.prefixCaching, c.speculate, c.speculativeModel) : null;
  const url = server ? server.url : loopbackUrl(c.url!);
  if (server) log(`started a server at ${url.href} (model ${model!.label})`);
  const apiKey = c.apiKeys[0];
  const info = await serverInfo(url, apiKey);
  if (info) log(`serve: server ${JSON.stringify(info)}`);
  try {
    for (const n of c.adapters) {
      const adapterIds = Array.from({ length: n }, (_, i) => `bench-${i}`);
      log(`serve: ${c.requests} requests, ${n} adapters, ${c.rate > 0 ? `${c.rate} req/s Poisson` : `closed loop of ${concurrency} clients`}`);
      const before = await serverCounters(url);
      const row = await runServeOnce({ url, requests: c.requests, rate: c.rate, concurrency, adapterIds,
        adapterSource: server && n > 0 ? 'local' : null, sharedPrefixWords: c.sharedPrefixWords, apiKey });
      const after = await serverCounters(url);
      rows.push({ ...row, prefixCacheHitRate: hitRate(before, after), adapterLoads: adapterLoadsBetween(before, after),
        draftAcceptRate: draftAcceptRate(before, after) });
    }
  } finally {
    await server?.close();
  }
  const report = serveReport(rows, { url: url.href, startedServer: server !== null, model: model?.label ?? null,
    rate: c.rate, closedLoopClients: c.rate > 0 ? null : concurrency, requestsPerRun: c.requests, adapterRank: server ? rank : null,
    popularity: `P(bench-i) ∝ (i+1)^-${SERVE_DEFAULTS.alpha}`, promptWords: SERVE_DEFAULTS.promptWords,
    sharedPrefixWords: c.sharedPrefixWords,
    outputTokens: SERVE_DEFAULTS.outputTokens, requestTimeoutMs: SERVE_DEFAULTS.timeoutMs, runDeadlineMs: SERVE_DEFAULTS.deadlineMs,
    server: info });
  return { report, table: formatServe(report) };
}

/** The settings of the server under load that shape the numbers (GET /info), or null if it does not say. */
async function serverInfo(url: URL, apiKey: string | undefined): Promise<Record<string, unknown> | null> {
  try {
    const res = await fetch(new URL('/info', url), { headers: authHeaders(apiKey), signal: AbortSignal.timeout(5_000) });
    if (!res.ok) return null;
    const i = (await res.json()) as Record<string, unknown>;
    const keys = ['model_id', 'model_dtype', 'model_device_type', 'num_shard', 'max_batch_prefill_tokens',
      'max_concurrent_requests', 'async_scheduling', 'prefix_caching', 'block_size', 'version'];
    return Object.fromEntries(keys.filter((k) => k in i).map((k) => [k, i[k]]));
  } catch {
    return null;
  }
}
