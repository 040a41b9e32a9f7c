// Admin requests `weft router` sends to every replica: adapter loads, unloads and pins, and vLLM's run-time adapter
// names — so a name works whichever replica a request lands on. A name given through the router is remembered and
// given again to a replica that comes back up (a restarted replica starts with its --preload-adapter names only).
// GET /v1/adapters lists every replica's adapters, each with its `backend`.
import type { Backend } from './backends.js';

export interface Forwarded {
  status: number;
  contentType: string;
  text: string;
}

export type Send = (b: Backend, method: string, url: string, headers: Record<string, string>, body: Buffer | undefined) => Promise<Forwarded>;

/** vLLM's run-time names given through the router: lora_name → the load request (and its credentials). */
export class NamedAdapterLog {
  private readonly loads = new Map<string, { body: Record<string, unknown>; headers: Record<string, string> }>();

  /** After a broadcast succeeded everywhere: remember a load, forget an unload. */
  record(path: string, body: unknown, headers: Record<string, string>): void {
    if (typeof body !== 'object' || body === null) return;
    const name = (body as { lora_name?: unknown }).lora_name;
    if (typeof name !== 'string') return;
    if (path === '/v1/load_lora_adapter') this.loads.set(name, { body: body as Record<string, unknown>, headers });
    else if (path === '/v1/unload_lora_adapter') this.loads.delete(name);
  }

  /** Gives a replica that came back every name it is missing (in place: it may still hold an older one). */
  async replay(b: Backend, send: Send): Promise<void> {
    for (const { body, headers } of this.loads.values()) {
      await send(b, 'POST', '/v1/load_lora_adapter', headers, Buffer.from(JSON.stringify({ ...body, load_inplace: true }))).catch(() => {});
    }
  }
}

/** Every replica's answer to one request; the first failure answers for all (the others may have applied it). */
export async function broadcast(backends: readonly Backend[], send: Send, method: string, url: string,
  headers: Record<string, string>, body: Buffer | undefined): Promise<Forwarded & { ok: boolean }> {
  const results = await Promise.all(backends.map(async (b) => ({ b, r: await send(b, method, url, headers, body) })));
  const failed = results.find(({ r }) => r.status >= 400);
  if (failed) {
    return { ...failed.r, ok: false, text: annotate(failed.r, failed.b.name) };
  }
  if (method === 'GET' && url.split('?')[0] === '/v1/adapters') {
    const adapters = results.flatMap(({ b, r }) => ((JSON.parse(r.text) as { adapters?: unknown[] }).adapters ?? [])
      .map((a) => ({ ...(a as object), backend: b.name })));
    return { status: 200, contentType: 'application/json; charset=utf-8', text: JSON.stringify({ adapters }), ok: true };
  }
  return { ...results[0]!.r, ok: true };
}

/** A JSON error body gains the replica that gave it. */
function annotate(r: Forwarded, name: string): string {
  try {
    const body = JSON.parse(r.text) as Record<string, unknown>;
    return JSON.stringify({ ...body, backend: name });
  } catch {
    return r.text;
  }
}
