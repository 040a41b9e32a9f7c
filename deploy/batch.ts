// `weft batch`: an OpenAI batch file through the HTTP API — offline evaluation of many adapters, say. Each input
// line is {custom_id, method: "POST", url, body}; each output line (in input order) is
// {id, custom_id, response: {status_code, request_id, body} | null, error: {code, message} | null}, the shape of
// OpenAI's batch output files (vLLM's run_batch writes the same). The requests go to a server started here with
// the launch flags, on a loopback port of its own, or to a running one (--url); they run --concurrency at a time
// and the server batches them. A line that is not a request gets an error line; a request the server refuses
// gets its HTTP status and error body; neither stops the rest. --resume continues an interrupted run: results are
// written in input order, so the output file holds results for a prefix of the input (a last line cut short by
// the interruption is dropped); those lines are checked against the input's custom_ids and skipped.
import { createReadStream, createWriteStream, existsSync, readFileSync, truncateSync } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { BatchConfig } from './config/index.js';
import { launch, type Launched } from './launch.js';

/** The routes a batch line may name. */
export const BATCH_URLS = ['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses'] as const;

export interface BatchSummary {
  lines: number;
  succeeded: number;
  /** Lines answered with a non-2xx status. */
  failed: number;
  /** Lines that were not a request (or never reached the server). */
  invalid: number;
  /** Lines whose results were already in the output (--resume). */
  resumed: number;
  seconds: number;
}

interface Request { customId: string; url: string; body: Record<string, unknown> }
type Parsed = { request: Request } | { customId: string | null; error: string };

/** One input line: a request, or why it is not one. */
export function parseBatchLine(line: string): Parsed {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return { customId: null, error: 'the line is not JSON' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { customId: null, error: 'the line is not a JSON object' };
  const o = v as Record<string, unknown>;
  const customId = typeof o.custom_id === 'string' && o.custom_id !== '' ? o.custom_id : null;
  if (customId === null) return { customId: null, error: '`custom_id` must be a non-empty string' };
  if (o.method !== undefined && o.method !== 'POST') return { customId, error: '`method` must be "POST"' };
  if (typeof o.url !== 'string' || !(BATCH_URLS as readonly string[]).includes(o.url)) {
    return { customId, error: `\`url\` must be one of ${BATCH_URLS.join(', ')}` };
  }
  if (typeof o.body !== 'object' || o.body === null || Array.isArray(o.body)) return { customId, error: '`body` must be a JSON object' };
  if ((o.body as Record<string, unknown>).stream === true) return { customId, error: '`body.stream` cannot be true in a batch' };
  return { request: { customId, url: o.url, body: o.body as Record<string, unknown> } };
}

/**
 * --resume: the custom_ids of the complete result lines already in `output`, in order, after cutting off a last
 * line the interruption left incomplete (the file is truncated to the complete ones).
 */
export function completedResults(output: string): string[] {
  if (!existsSync(output)) return [];
  const text = readFileSync(output, 'utf8');
  const ids: string[] = [];
  let keep = 0;
  for (let start = 0; start < text.length;) {
    const end = text.indexOf('\n', start);
    if (end < 0) break;  // no newline: cut short
    let id: unknown;
    try {
      id = (JSON.parse(text.slice(start, end)) as { custom_id?: unknown }).custom_id;
    } catch {
      break;
    }
    ids.push(typeof id === 'string' ? id : '');
    start = keep = end + 1;
  }
  if (keep < text.length) truncateSync(output, Buffer.byteLength(text.slice(0, keep)));
  return ids;
}

export async function runBatch(c: BatchConfig, log: (m: string) => void = (m) => process.stderr.write(`batch: ${m}\n`)): Promise<BatchSummary> {
  const started = performance.now();
  if (c.resume && c.output === null) throw new Error('--resume needs --output: the results to continue are read from it');
  const done0 = c.resume && c.output !== null ? completedResults(c.output) : [];
  let server: Launched | null = null;
  let base: string;
  if (c.url !== null) {
    base = c.url.replace(/\/+$/, '');
  } else {
    const { input: _i, output: _o, url: _u, concurrency: _c, ...launchFlags } = c;
    // Its own server, on loopback: plain HTTP (TLS flags are for a server others call).
    server = await launch({ ...launchFlags, command: 'launch', port: 0, hostname: '127.0.0.1', sslKeyfile: null, sslCertfile: null, sslCaCerts: null });
    base = server.url;
    log(`started a server at ${base}`);
  }
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (c.apiKeys[0] !== undefined) headers.authorization = `Bearer ${c.apiKeys[0]}`;
  const out = c.output === null ? process.stdout : createWriteStream(c.output, { flags: c.resume ? 'a' : 'w' });
  const summary: BatchSummary = { lines: 0, succeeded: 0, failed: 0, invalid: 0, resumed: 0, seconds: 0 };
  // Results wait here until every line before them is written: output in input order.
  const done = new Map<number, string>();
  let nextToWrite = 0;
  const flush = async () => {
    for (let line = done.get(nextToWrite); line !== undefined; line = done.get(nextToWrite)) {
      done.delete(nextToWrite++);
      if (!out.write(line + '\n')) await once(out, 'drain');
    }
  };
  const inFlight = new Set<Promise<void>>();
  try {
    const lines = createInterface({ input: createReadStream(c.input), crlfDelay: Infinity });
    let index = 0;
    for await (const raw of lines) {
      if (raw.trim() === '') continue;
      const n = index++;
      summary.lines++;
      const parsed = parseBatchLine(raw);
      if (n < done0.length) {
        const id = 'error' in parsed ? parsed.customId : parsed.request.customId;
        if ((id ?? '') !== done0[n]) {
          throw new Error(`--resume: result line ${n + 1} of ${c.output} is for custom_id '${done0[n]}' but input line ${n + 1} is '${id ?? ''}': that output is not from this input`);
        }
        summary.resumed++;
        nextToWrite = n + 1;
        continue;
      }
      if ('error' in parsed) summary.invalid++;
      const job = (async () => {
        done.set(n, 'error' in parsed ? resultLine(n, parsed.customId, null, { code: 'invalid_request', message: parsed.error })
          : await send(base, headers, n, parsed.request, summary));
        await flush();
      })();
      inFlight.add(job);
      void job.finally(() => inFlight.delete(job));
      if (inFlight.size >= c.concurrency) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    if (index < done0.length) throw new Error(`--resume: ${c.output} has ${done0.length} results but the input only ${index} lines: that output is not from this input`);
    await flush();
  } finally {
    if (out !== process.stdout) await new Promise<void>((resolve) => (out as ReturnType<typeof createWriteStream>).end(resolve));
    await server?.close();
  }
  summary.seconds = (performance.now() - started) / 1000;
  log(`${summary.lines} lines in ${summary.seconds.toFixed(1)} s: ${summary.succeeded} succeeded, ${summary.failed} refused by the server, ${summary.invalid} invalid` +
    (c.resume ? `, ${summary.resumed} kept from the earlier run` : ''));
  return summary;
}

async function send(base: string, headers: Record<string, string>, n: number, r: Request, summary: BatchSummary): Promise<string> {
  try {
    const res = await fetch(base + r.url, { method: 'POST', headers, body: JSON.stringify(r.body) });
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    if (res.ok) summary.succeeded++;
    else summary.failed++;
    return resultLine(n, r.customId, { status_code: res.status, request_id: res.headers.get('x-request-id') ?? `batch_req_${n}`, body }, null);
  } catch (e) {
    summary.invalid++;
    return resultLine(n, r.customId, null, { code: 'request_failed', message: (e as Error).message });
  }
}

function resultLine(n: number, customId: string | null, response: unknown, error: { code: string; message: string } | null): string {
  return JSON.stringify({ id: `batch_req_${n}`, custom_id: customId, response, error });
}
