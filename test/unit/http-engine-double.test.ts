// ScriptedEngine: a small, honest GenerationEngine for the HTTP tests (no model): it follows the engine
// contract (rejects before any event, then admitted → tokens → end | error; abort cancels) and echoes
// deterministic tokens. Also the helpers the http-* tests share. Its own checks run only when this
// file is the entry point, so importing it from another test file does not repeat them.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { context, trace, type Span } from '@opentelemetry/api';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import {
  EngineError,
  type AdapterAdmin,
  type AdapterRef,
  type AdapterSummaryJson,
  type ChatRender,
  type EngineInfo,
  type EngineStats,
  type GenerateRequest,
  type GenerationEngine,
  type GenerationEvent,
} from '../../coordinator/engine/types.js';
import { buildHttpServer, Metrics } from '../../coordinator/http/index.js';
import type { SamplingDefaults } from '../../coordinator/http/generation-defaults.js';

export const EOS_ID = 2;
export const PRIVATE_TOKEN = 'hf_SECRET_token_123';

export const INFO: EngineInfo = {
  modelId: 'scripted/echo', modelNames: ['scripted/echo'], task: 'generate', architecture: 'ScriptedForCausalLM', vocabSize: 1000, hiddenSize: 8, maxInputLength: 255,
  maxTotalTokens: 256, maxBatchPrefillTokens: 256, maxConcurrentRequests: 4, numShard: 1, blockSize: 16,
  kvBlocks: 32, adapterSlots: 8, eosTokenIds: [EOS_ID], version: '0.1.0-test', defaultAdapterSource: 'hub',
  device: 'cpu', dtype: 'float32', asyncScheduling: true, prefixCaching: true, speculate: 0, schedulingPolicy: 'fcfs', toolFormat: 'weft', structuredOutput: true, trustRequestChatTemplate: false, reasoning: null,
};

/** Preloaded adapter names (as `--preload name=source:id`): what adapterForModel maps them to. */
export const PRELOADED: Readonly<Record<string, AdapterRef>> = { support: { id: 'org/support-lora', source: 'local' } };

/** The double's chat template: `<|role|>\ncontent\n` per message, then the generation prompt. */
export function renderScriptedChat(messages: { role: string; content: string }[]): string {
  return messages.map((m) => `<|${m.role}|>\n${m.content}\n`).join('') + '<|assistant|>\n';
}

/**
 * Output token k (1-based) is id 100+k with text " w<k>". Behaviour is scripted by the adapter id:
 * 'missing' → adapter_not_found, 'private' needs PRIVATE_TOKEN, 'broken' → adapter_load error event
 * before admission, 'flaky' → generation error after 2 tokens; a prompt containing "eos" ends with
 * EOS after 2 tokens; a prompt containing "leak" echoes the adapter token in its error (scrub test).
 */
export class ScriptedEngine implements GenerationEngine {
  readonly info: EngineInfo = INFO;
  isHealthy = true;
  tokenDelayMs = 0;
  inFlight = 0;
  requests: GenerateRequest[] = [];
  aborted: string[] = [];
  /** The span that was active when generate() was called, per request id. */
  activeSpans = new Map<string, Span | undefined>();
  /** false: the model has no chat template (renderChat refuses). */
  hasChatTemplate = true;
  readonly adapters = new MemoryAdapterAdmin();

  /** How the last chat was asked to be rendered. */
  lastRender: ChatRender | undefined;

  renderChat(messages: { role: string; content: string }[], how?: ChatRender): string {
    this.lastRender = how;
    if (!this.hasChatTemplate) throw new EngineError('validation', 'the model has no chat template');
    return renderScriptedChat(messages);
  }

  /** No adapter of the scripted engine is a classifier (the real heads are tested against PEFT in integration/classify). */
  async classifierHead(ref: AdapterRef): Promise<never> {
    throw new EngineError('validation', `adapter '${ref.id}' is not a sequence classifier`);
  }

  adapterNames(): string[] {
    return Object.keys(PRELOADED);
  }

  adapterForModel(model: string | undefined, apiToken: string | undefined): AdapterRef | null {
    if (model === undefined || model === '' || model === this.info.modelId) return null;
    const ref: AdapterRef = { ...(PRELOADED[model] ?? { id: model, source: 'hub' }) };
    if (apiToken) ref.apiToken = apiToken;
    return ref;
  }

  healthy(): boolean {
    return this.isHealthy;
  }

  stats(): EngineStats {
    return { waiting: 1, running: this.inFlight, usedBlocks: 5, freeBlocks: 27, activeAdapters: 1, loadedAdapters: 2, adapterBytes: 0, adapterBudgetBytes: 0, adapterRefs: 0, cachedBlocks: 3, preemptions: 0, draftTokens: 0, acceptedDraftTokens: 0 };
  }

  /** The words tokenize() gave each id ("t<id>" for ids it never gave). */
  private readonly words = new Map<number, string>();

  detokenize(ids: readonly number[]): string {
    return ids.map((id) => this.words.get(id) ?? `t${id}`).join(' ');
  }

  /** The `templated` argument of the last tokenize() call (POST /tokenize). */
  lastTokenizeTemplated: boolean | undefined;

  async encodePair(first: string, second: string): Promise<number[]> {
    return (await this.tokenize(`${first} ${second}`)).map((t) => t.id);
  }

  async tokenize(text: string, templated?: boolean): Promise<{ id: number; text: string; start: number; stop: number }[]> {
    this.lastTokenizeTemplated = templated;
    for (const m of text.matchAll(/\S+/g)) this.words.set(10 + (m[0].length % 90), m[0]);
    return [...text.matchAll(/\S+/g)].map((m) => ({
      id: 10 + (m[0].length % 90),
      text: m[0],
      start: m.index,
      stop: m.index + m[0].length,
    }));
  }

  async generate(req: GenerateRequest, signal: AbortSignal): Promise<AsyncIterable<GenerationEvent>> {
    this.requests.push(req);
    this.activeSpans.set(req.requestId, trace.getSpan(context.active()));
    const promptTokens = req.inputIds ? req.inputIds.length : (await this.tokenize(req.inputs)).length;
    if (this.inFlight >= this.info.maxConcurrentRequests) throw new EngineError('overloaded', 'Model is overloaded');
    if (promptTokens + req.maxNewTokens > this.info.maxTotalTokens) {
      throw new EngineError('validation', `\`inputs\` tokens + \`max_new_tokens\` must be <= ${this.info.maxTotalTokens}`);
    }
    if (req.adapter && req.merge) throw new EngineError('validation', 'adapter and merge are mutually exclusive');
    const id = req.adapter?.id ?? req.merge?.adapters.find((a) => a.id === 'missing')?.id;
    if (id === 'missing') throw new EngineError('adapter_not_found', `adapter '${id}' not found`);
    if (id === 'private' && req.adapter?.apiToken !== PRIVATE_TOKEN) {
      const echo = req.inputs.includes('leak') ? ` (token ${req.adapter?.apiToken})` : '';
      throw new EngineError('adapter_forbidden', `access to adapter '${id}' denied${echo}`);
    }
    this.inFlight++;
    return this.events(req, promptTokens, signal);
  }

  private async *events(req: GenerateRequest, promptTokens: number, signal: AbortSignal): AsyncGenerator<GenerationEvent> {
    // The request is over for the engine when its last event is produced, whether or not it is read.
    let open = true;
    const finish = <E extends GenerationEvent>(ev: E): E => {
      if (open) this.inFlight--;
      open = false;
      return ev;
    };
    try {
      if (req.adapter?.id === 'broken') {
        yield finish({ type: 'error', error: new EngineError('adapter_load', 'adapter weights are corrupt') });
        return;
      }
      const words = req.inputs.split(/\s+/).filter(Boolean);
      const prefill = req.promptLogprobs
        ? words.map((w, i) => ({ id: 10 + (w.length % 90), text: w, logprob: i === 0 ? null : -1 - i / 10,
          ...(i > 0 && req.topN > 0 ? { top: [{ token: 7, logprob: -0.1, text: 'alt' }] } : {}) }))
        : null;
      // Pretends all but the last two prompt tokens came from the prefix cache (so the field is visible).
      yield { type: 'admitted', promptTokens, cachedTokens: Math.max(0, promptTokens - 2), prefill };
      let text = '';
      for (let k = 1; k <= req.maxNewTokens; k++) {
        if (this.tokenDelayMs > 0) await abortableDelay(this.tokenDelayMs, signal);
        if (signal.aborted) {
          this.aborted.push(req.requestId);
          return;
        }
        if (req.adapter?.id === 'flaky' && k === 3) {
          yield finish({ type: 'error', error: new EngineError('generation', 'CUDA error: device-side assert') });
          return;
        }
        const eos = req.inputs.includes('eos') && k === 3;
        const delta = eos ? '' : ` w${k}`;
        text += delta;
        const top = Array.from({ length: req.topN }, (_, j) => ({ token: j === 0 ? EOS_ID : 100 + k + j, logprob: -j - 0.25, text: `t${j}` }));
        yield {
          type: 'token',
          token: { id: eos ? EOS_ID : 100 + k, text: eos ? '</s>' : `▁w${k}`, logprob: -0.5, special: eos, top },
          textDelta: delta,
        };
        const stopped = req.stop.find((s) => text.includes(s));
        if (eos || stopped || k === req.maxNewTokens) {
          const finishReason = eos ? 'eos_token' : stopped ? 'stop_sequence' : 'length';
          const seed = req.sampling.doSample ? req.sampling.seed : null;
          yield finish({ type: 'end', finishReason, generatedText: text, generatedTokens: k, seed });
          return;
        }
      }
    } finally {
      if (open) this.inFlight--;
      open = false;
    }
  }
}

/** Adapter admin over an in-memory table: 'missing' is not found, 'private' needs PRIVATE_TOKEN. */
export class MemoryAdapterAdmin implements AdapterAdmin {
  readonly table = new Map<string, AdapterSummaryJson>();

  list(): AdapterSummaryJson[] {
    return [...this.table.values()];
  }

  async load(ref: AdapterRef): Promise<AdapterSummaryJson> {
    if (ref.id === 'missing') throw new EngineError('adapter_not_found', `adapter '${ref.id}' not found`);
    if (ref.id === 'private' && ref.apiToken !== PRIVATE_TOKEN) {
      throw new EngineError(ref.apiToken ? 'adapter_forbidden' : 'adapter_unauthorized', `access to adapter '${ref.id}' denied`);
    }
    const known = this.table.get(ref.id);
    const names = Object.entries(PRELOADED).filter(([, r]) => r.id === ref.id).map(([name]) => name);
    const summary: AdapterSummaryJson = known
      ? { ...known, tier: 'device' }
      : { id: ref.id, names: [ref.id, ...names], source: ref.source, revision: null, tier: 'device', bytes: 4096,
          rank: 8, dora: false, lastUsed: null, pinned: false, inFlight: 0 };
    this.table.set(ref.id, summary);
    return summary;
  }

  async unload(ref: AdapterRef): Promise<AdapterSummaryJson> {
    const known = this.table.get(ref.id);
    if (!known) throw new EngineError('adapter_not_found', `adapter '${ref.id}' is not loaded`);
    if (known.inFlight > 0) throw new EngineError('validation', `adapter '${ref.id}' is in use by ${known.inFlight} requests`);
    const summary: AdapterSummaryJson = { ...known, tier: 'host', pinned: false };
    this.table.set(ref.id, summary);
    return summary;
  }

  readonly names = new Map<string, string>();

  async loadNamed(name: string, ref: AdapterRef, replace: boolean): Promise<AdapterSummaryJson> {
    if (this.names.has(name) && !replace) throw new EngineError('validation', `adapter name '${name}' is already loaded`);
    const summary = await this.load(ref);
    this.names.set(name, ref.id);
    return summary;
  }

  async unloadNamed(name: string): Promise<AdapterSummaryJson | null> {
    const id = this.names.get(name);
    if (id === undefined) throw new EngineError('adapter_not_found', `adapter name '${name}' is not loaded`);
    this.names.delete(name);
    return this.table.get(id) ?? null;
  }

  async pin(ref: AdapterRef, pinned: boolean): Promise<AdapterSummaryJson> {
    const loaded = pinned ? await this.load(ref) : this.table.get(ref.id);
    if (!loaded) throw new EngineError('adapter_not_found', `adapter '${ref.id}' is not loaded`);
    const summary: AdapterSummaryJson = { ...loaded, pinned };
    this.table.set(ref.id, summary);
    return summary;
  }
}

function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

// --- shared helpers -------------------------------------------------------------------------------

export interface TestServer {
  app: FastifyInstance;
  engine: ScriptedEngine;
  metrics: Metrics;
  logs: string[];
}

/** A server over a fresh ScriptedEngine, logging (at debug) into `logs`. */
export async function testServer(
  opts: { bodyLimitBytes?: number; apiKeys?: readonly string[]; adminToken?: string; corsAllowOrigins?: readonly string[];
    samplingDefaults?: SamplingDefaults | null } = {},
): Promise<TestServer> {
  const engine = new ScriptedEngine();
  const metrics = new Metrics();
  const logs: string[] = [];
  const sink = new Writable({ write(chunk, _enc, cb) { logs.push(String(chunk)); cb(); } });
  const logger = pino({ level: 'debug' }, sink);
  const app = await buildHttpServer(engine, {
    logger, metrics, bodyLimitBytes: opts.bodyLimitBytes, apiKeys: opts.apiKeys, adminToken: opts.adminToken,
    corsAllowOrigins: opts.corsAllowOrigins, samplingDefaults: opts.samplingDefaults,
  });
  return { app, engine, metrics, logs };
}

/** The JSON payloads of a text/event-stream body, in order; an OpenAI stream's final [DONE] stays the string. */
export function sseEvents(body: string): unknown[] {
  assert.ok(body.endsWith('\n\n'), 'every event ends with a blank line');
  return body
    .split('\n\n')
    .filter((frame) => frame.length > 0)
    .map((frame) => {
      assert.ok(frame.startsWith('data: '), `frame is a data line: ${frame}`);
      const data = frame.slice('data: '.length);
      return data === '[DONE]' ? data : JSON.parse(data);
    });
}

export async function post(app: FastifyInstance, url: string, payload: unknown, headers: Record<string, string> = {}) {
  return app.inject({ method: 'POST', url, payload: payload as object, headers: { 'content-type': 'application/json', ...headers } });
}

// --- self-checks of the double (only when run directly) -------------------------------------------

const isEntry = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isEntry) {
  const base: GenerateRequest = {
    requestId: 'r', inputs: 'a b', adapter: null, maxNewTokens: 3, stop: [], promptLogprobs: false, topN: 0,
    sampling: { temperature: 1, topK: 0, topP: 1, typicalP: 1, repetitionPenalty: 1, doSample: false, seed: 0 },
  };
  const drain = async (it: AsyncIterable<GenerationEvent>) => {
    const out: GenerationEvent[] = [];
    for await (const ev of it) out.push(ev);
    return out;
  };

  test('ScriptedEngine: admitted, then tokens, then exactly one end', async () => {
    const events = await drain(await new ScriptedEngine().generate(base, new AbortController().signal));
    assert.deepEqual(events.map((e) => e.type), ['admitted', 'token', 'token', 'token', 'end']);
  });

  test('ScriptedEngine: rejects before any event and stops when aborted', async () => {
    const engine = new ScriptedEngine();
    await assert.rejects(engine.generate({ ...base, maxNewTokens: 256 }, new AbortController().signal), (e: unknown) =>
      e instanceof EngineError && e.kind === 'validation');
    const ctl = new AbortController();
    engine.tokenDelayMs = 5;
    const it = (await engine.generate(base, ctl.signal))[Symbol.asyncIterator]();
    assert.equal((await it.next()).value?.type, 'admitted');
    ctl.abort();
    assert.equal((await it.next()).done, true);
    assert.deepEqual(engine.aborted, ['r']);
    assert.equal(engine.inFlight, 0);
  });

  test('ScriptedEngine: model → adapter, chat template, adapter admin', async () => {
    const engine = new ScriptedEngine();
    assert.equal(engine.adapterForModel(undefined, 't'), null);
    assert.equal(engine.adapterForModel('', undefined), null);
    assert.equal(engine.adapterForModel(INFO.modelId, 't'), null);
    assert.deepEqual(engine.adapterForModel('support', 't'), { id: 'org/support-lora', source: 'local', apiToken: 't' });
    assert.deepEqual(engine.adapterForModel('org/x', undefined), { id: 'org/x', source: 'hub' });
    assert.equal(engine.renderChat([{ role: 'user', content: 'hi' }]), '<|user|>\nhi\n<|assistant|>\n');
    engine.hasChatTemplate = false;
    assert.throws(() => engine.renderChat([]), (e: unknown) => e instanceof EngineError && e.kind === 'validation');
    assert.equal((await engine.adapters.pin({ id: 'org/support-lora', source: 'local' }, true)).pinned, true);
    assert.deepEqual(engine.adapters.list().map((a) => [a.names, a.tier]), [[['org/support-lora', 'support'], 'device']]);
    assert.equal((await engine.adapters.unload({ id: 'org/support-lora', source: 'local' })).tier, 'host');
    await assert.rejects(engine.adapters.load({ id: 'private', source: 'hub' }), (e: unknown) =>
      e instanceof EngineError && e.kind === 'adapter_unauthorized');
  });
}
