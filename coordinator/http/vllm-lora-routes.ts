// vLLM's run-time LoRA API: POST /v1/load_lora_adapter {lora_name, lora_path, load_inplace?} and
// POST /v1/unload_lora_adapter {lora_name}. Tools built for vLLM (KServe, AIBrix, LiteLLM setups, CI scripts)
// add and drop adapters this way; in weft a name given here works exactly like a --preload-adapter name: as
// `adapter_id` on the TGI routes, as `model` on the OpenAI ones, listed by GET /v1/models.
//
// Choices (and why):
//  - These are admin routes: behind --admin-token like /v1/adapters (vLLM gates them with an environment
//    variable instead; a name changes what `model` means for every client).
//  - `lora_path`: an `s3://` URL is an S3 adapter, a path (`/…`, `./…`, `../…`) a local one — still only under
//    --adapter-root, as every local adapter a request names — anything else the server's default source (the Hub
//    unless --adapter-source says otherwise); weft's `adapter_source` overrides, `api_token` is the token the
//    adapter is fetched with and that requests by the name use when they bring none.
//  - The adapter is loaded before the name exists, so a failed load (404, 424, …) leaves no name behind.
//  - A name already taken is a 400 unless `load_inplace` (vLLM's flag): the name then points at the new adapter.
//  - Success is vLLM's plain-text sentence; errors are OpenAI error objects, as on the other vLLM routes.
import type { FastifyInstance } from 'fastify';
import type { AdapterRef, AdapterSource, GenerationEngine } from '../engine/types.js';
import { adminAuthHook } from './admin-auth.js';
import { HttpError, validationError } from './errors.js';
import type { Json } from './json.js';
import { spanOf } from './lifecycle.js';
import { openAiErrorHandler } from './openai-routes.js';
import { adapterSourceOf, knownFields } from './validate.js';

/** Longest adapter name taken (names travel in every request that uses them and in /v1/models). */
export const MAX_ADAPTER_NAME_LENGTH = 256;

export interface VllmLoraRouteOptions {
  adminToken?: string;
  bodyLimitBytes: number;
}

const LOAD_KEYS = ['lora_name', 'lora_path', 'load_inplace', 'adapter_source', 'api_token'];
// vLLM's unload also takes lora_int_id (its internal id); weft's names are the only handle, so it is accepted and ignored.
const UNLOAD_KEYS = ['lora_name', 'lora_int_id'];

export function registerVllmLoraRoutes(app: FastifyInstance, engine: GenerationEngine, opts: VllmLoraRouteOptions): void {
  const onRequest = adminAuthHook(opts.adminToken);
  const route = { errorHandler: openAiErrorHandler(opts.bodyLimitBytes), ...(onRequest ? { onRequest } : {}) };

  app.post('/v1/load_lora_adapter', route, async (request, reply) => {
    const b = knownFields(request.body, LOAD_KEYS);
    const name = loraName(b, engine);
    const path = b.lora_path;
    if (typeof path !== 'string' || path.length === 0) throw validationError('`lora_path` must be a non-empty string');
    const replace = b.load_inplace ?? false;
    if (typeof replace !== 'boolean') throw validationError('`load_inplace` must be a boolean');
    const ref: AdapterRef = { id: path, source: sourceOf(path, b.adapter_source, engine.info.defaultAdapterSource) };
    if (b.api_token !== undefined && b.api_token !== null) {
      if (typeof b.api_token !== 'string') throw validationError('`api_token` must be a string');
      if (b.api_token.length > 0) ref.apiToken = b.api_token;
    }
    if (!replace && engine.adapterNames().includes(name)) {
      throw new HttpError(400, 'validation', `The lora adapter '${name}' has already been loaded. If you want to load the adapter in place, set 'load_inplace' to True.`);
    }
    spanOf(request).setAttribute('weft.adapter_id', ref.id);
    request.log.info({ lora_name: name, adapter_id: ref.id, adapter_source: ref.source, load_inplace: replace }, 'adapter named');
    try {
      await engine.adapters.loadNamed(name, ref, replace);
    } catch (e) {
      // The name was taken by a load that finished first.
      if (e instanceof Error && /already loaded/.test(e.message)) throw new HttpError(400, 'validation', e.message);
      throw e;
    }
    return reply.type('text/plain; charset=utf-8').send(`Success: LoRA adapter '${name}' added successfully.`);
  });

  app.post('/v1/unload_lora_adapter', route, async (request, reply) => {
    const b = knownFields(request.body, UNLOAD_KEYS);
    const name = loraName(b, engine);
    request.log.info({ lora_name: name }, 'adapter name dropped');
    await engine.adapters.unloadNamed(name);
    return reply.type('text/plain; charset=utf-8').send(`Success: LoRA adapter '${name}' removed successfully.`);
  });
}

function loraName(b: Json, engine: GenerationEngine): string {
  const name = b.lora_name;
  if (typeof name !== 'string' || name.length === 0) throw validationError('`lora_name` must be a non-empty string');
  if (name.length > MAX_ADAPTER_NAME_LENGTH) throw validationError(`\`lora_name\` is longer than ${MAX_ADAPTER_NAME_LENGTH} characters`);
  if (engine.info.modelNames.includes(name)) throw new HttpError(400, 'validation', `'${name}' is the base model's name; pick another \`lora_name\``);
  return name;
}

/** Where `lora_path` lives: weft's explicit `adapter_source`, else read from its shape (see the header). */
export function sourceOf(path: string, explicit: unknown, fallback: AdapterSource): AdapterSource {
  if (explicit !== undefined && explicit !== null) return adapterSourceOf(explicit);
  if (path.startsWith('s3://')) return 's3';
  if (/^(?:\/|\.\.?\/)/.test(path)) return 'local';
  return fallback;
}
