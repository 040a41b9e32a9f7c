// Where `weft router` sends a request: which adapter it uses (requests for one adapter go to the same replica, so
// each replica keeps its own share of the adapters resident instead of every replica loading every adapter), the
// replica that stored a Responses API response, every replica (admin routes that change adapters or names), or
// any (base-model requests, tokenization, …: the least busy).

export type RouteTarget =
  | { kind: 'adapter'; key: string }
  | { kind: 'owner'; responseId: string }
  | { kind: 'all' }
  | { kind: 'any' };

/** Admin routes whose effect must hold on every replica (names, loads, pins), and the listing of all of them. */
const BROADCAST_POST = new Set(['/v1/load_lora_adapter', '/v1/unload_lora_adapter', '/v1/adapters/load', '/v1/adapters/unload', '/v1/adapters/pin']);
const RESPONSE_PATH = /^\/v1\/responses\/([^/]+)(?:\/input_items)?$/;

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `baseModels`: the replicas' base model ids (a `model` naming one is a base-model request). */
export function routeOf(method: string, url: string, body: unknown, baseModels: ReadonlySet<string>): RouteTarget {
  const path = url.split('?')[0]!;
  if (method === 'POST' && BROADCAST_POST.has(path)) return { kind: 'all' };
  if (method === 'GET' && path === '/v1/adapters') return { kind: 'all' };
  const stored = RESPONSE_PATH.exec(path);
  if (stored && (method === 'GET' || method === 'DELETE')) return { kind: 'owner', responseId: decodeURIComponent(stored[1]!) };
  if (method !== 'POST' || !isObject(body)) return { kind: 'any' };
  if (path === '/v1/responses' && typeof body.previous_response_id === 'string') {
    return { kind: 'owner', responseId: body.previous_response_id };
  }
  const key = adapterOf(body);
  return key === null || baseModels.has(key) ? { kind: 'any' } : { kind: 'adapter', key };
}

/** The adapter a request body names, as the replicas read it: OpenAI-style `model`, TGI/LoRAX `parameters.adapter_id`
 * or `merged_adapters`, TEI-style `adapter_id`; null: the base model. */
export function adapterOf(body: Json): string | null {
  const params = isObject(body.parameters) ? body.parameters : {};
  const merged = params.merged_adapters ?? body.merged_adapters;
  if (isObject(merged) && Array.isArray(merged.ids)) return `merge:${JSON.stringify(merged.ids)}`;
  for (const v of [params.adapter_id, body.adapter_id, body.model]) {
    if (typeof v === 'string' && v !== '') return v;
  }
  return null;
}
