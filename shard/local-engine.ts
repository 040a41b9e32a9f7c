// An engine in this process (TP=1, or one rank of a group when given a collective): the model, its
// adapter slots and a step runner. Used by the shard actor, `weft score` and the conformance tests.
import type { NativeCollective, StagedAdapter } from '../kernels/index.js';
import type { MergeRecipe, SeqOutput, Step } from '../protocol/index.js';
import { HostAdapterCache, cachedBytes, dirIdentity, type LoadedAdapter } from './adapters/index.js';
import { mergeAdapters, mergeSpecOf } from './adapters/merge.js';
import { AdapterParser } from './adapters/parse-pool.js';
import type { BaseModelRef } from './adapters/base-layer-copy.js';
import { readAdapterFor } from './adapters/read-adapter.js';
import { GREEDY, PROTOCOL_VERSION, bytesToFloat32 } from '../protocol/index.js';
import { finishDora, finishDoraSync, installAdapter, installStaged, loadModel, type SumOverRanks, loraStorageOf, planAdapter, readModelSpec, stageAdapter,
  type AdapterPlan, type LoadedModel } from './models/index.js';
import { StepRunner } from './engine/step-runner.js';
import { servedSpec } from './models/qwen-vl-spec.js';
import { pixtralServedSpec } from './models/pixtral-spec.js';
import { DraftModelDrafter } from './engine/draft-model.js';
import type { DraftModelHook } from './engine/draft-share.js';
import { AutomatonCache } from './constraints/token-constraint.js';
import { loadTokenVocab, type ImageData, type TokenVocab } from '../protocol/index.js';
import { ImageStore } from './engine/image-store.js';
import { VisionPrefill, type ImageEncoder } from './engine/vision-prefill.js';
import type { VisionLoraPart } from '../kernels/index.js';

export interface LocalEngineOptions {
  rank?: number;
  world?: number;
  numBlocks: number;
  blockSize?: number;
  adapterSlots: number;
  device?: 'cpu' | 'cuda';
  dtype?: 'float32' | 'bfloat16' | 'float16';
  maxLoraRank?: number;
  /** Host-RAM tier budget for parsed adapters (per shard). */
  hostCacheBytes?: number;
  /** CPU backend threads; 0/absent = one per hardware thread. */
  cpuThreads?: number;
  collective?: NativeCollective;
  /** Speculative decoding with this draft model (--speculative-model): loaded whole on rank 0 with as many KV
   * blocks as the target, its drafts shared with the other ranks through `collective`. */
  draftModelDir?: string;
  /** Told when the draft model fails in a step (that step runs without drafts). */
  onDraftError?: (e: Error) => void;
  /** Vision-language models: how long a step waits for an image whose image.data has not all come (default 30 s;
   * then only the sequences that refer to it fail). */
  imageWaitMs?: number;
  /** Vision-language models: bytes of recently used images kept once no prefilling sequence needs them (256 MiB). */
  imageCacheBytes?: number;
}

export class LocalEngine {
  readonly runner: StepRunner;
  private stepId = 0;

  private readonly hostCache: HostAdapterCache;
  /** Reads adapter files off the main thread (prepareAdapter); started on first use. */
  private parser?: AdapterParser;
  /**
   * Stages run one at a time: each holds a thread of the libuv pool (4 by default) while it copies or uploads,
   * and every step's native call needs one too — a burst of adapter loads must not take them all.
   */
  private staging: Promise<unknown> = Promise.resolve();
  /** Reads under way by host-cache key: a load that follows its prefetch waits for that read instead of another. */
  private readonly reading = new Map<string, Promise<Parsed>>();

  private vocab?: TokenVocab;
  /** Vision-language models: the images image.data brought, and each adapter slot's vision-tower LoRA. */
  private readonly images: ImageStore | null;
  private readonly visionLora = new Map<number, VisionLoraPart[]>();

  private constructor(readonly model: LoadedModel, readonly maxLoraRank: number, hostCacheBytes: number, private readonly modelDir: string,
    readonly draft: LoadedModel | null = null, draftHook?: DraftModelHook, opts?: LocalEngineOptions) {
    const constraints = new AutomatonCache(() => this.tokenVocab());
    const encoder: ImageEncoder | null = model.vision && model.spec.vision ? { kind: 'llava', model: model.vision, spec: model.spec.vision }
      : model.qwenVision && model.spec.qwenVision ? { kind: 'qwen', model: model.qwenVision, spec: model.spec.qwenVision }
      : model.pixtral && model.spec.pixtral ? { kind: 'pixtral', model: model.pixtral, spec: model.spec.pixtral } : null;
    this.images = encoder ? new ImageStore({ channels: encoder.spec.channels, ...(opts?.imageCacheBytes ? { maxBytes: opts.imageCacheBytes } : {}) }) : null;
    const prefill = encoder ? new VisionPrefill({ encoder, hidden: model.spec.hidden, images: this.images!,
      loraOf: (slot) => this.visionLora.get(slot), world: model.partition.world,
      ...(opts?.collective && model.partition.world > 1 ? { sumOverRanks: (flags: Float32Array) => opts.collective!.allReduceSum(flags) } : {}),
      ...(opts?.imageWaitMs !== undefined ? { waitMs: opts.imageWaitMs } : {}) }) : undefined;
    this.runner = new StepRunner(model, model.partition.rank, constraints, undefined, draftHook, prefill);
    this.hostCache = new HostAdapterCache(hostCacheBytes);
  }

  /**
   * Vision-language models: one image.data chunk (from the shard actor's subscription, or a test / `weft score`).
   * Synchronous and outside the step mailbox: a step waiting for the image must see it arrive. Throws for a model
   * that takes no images.
   */
  putImage(msg: Pick<ImageData, 'key' | 'height' | 'width' | 'chunk' | 'chunks' | 'data'>): void {
    if (!this.images) throw new Error(`${this.model.spec.architecture}: this model takes no images (not a vision-language model weft encodes)`);
    this.images.put(msg);
  }

  /** Empties an adapter slot (its vision-tower LoRA too). */
  clearAdapter(slot: number): void {
    this.model.native.clearAdapter(slot);
    this.visionLora.delete(slot);
  }

  /** A slot's vision-tower LoRA from its plan, checked against the vision plan (before the language model's install). */
  private installVision(slot: number, plan: AdapterPlan): void {
    const tower = this.model.vision ?? this.model.qwenVision ?? this.model.pixtral;
    if (plan.vision && !tower) throw new Error('the adapter has vision-tower LoRA, but this model has no vision tower');
    if (plan.vision) tower!.checkLora(plan.vision);
    if (plan.vision) this.visionLora.set(slot, plan.vision);
    else this.visionLora.delete(slot);
  }

  /** The vocabulary's token bytes for structured output: read on first use, or ahead by prepareConstraints. */
  private tokenVocab(): TokenVocab {
    return (this.vocab ??= loadTokenVocab(this.modelDir, this.model.spec.vocab));
  }

  /**
   * Reads and sorts the token bytes now (0.7-0.9 s for a 128k vocabulary) so that the first constrained
   * request does not stall its step for it. Returns why structured output cannot work here, or null.
   */
  prepareConstraints(): string | null {
    try {
      this.tokenVocab();
      return null;
    } catch (e) {
      return (e as Error).message;
    }
  }

  static open(modelDir: string, opts: LocalEngineOptions): LocalEngine {
    const spec = pixtralServedSpec(servedSpec(readModelSpec(modelDir), opts.device ?? 'cpu'), opts.device ?? 'cpu');
    const model = loadModel(modelDir, spec, {
      rank: opts.rank ?? 0, world: opts.world ?? 1, numBlocks: opts.numBlocks, blockSize: opts.blockSize ?? 16,
      adapterSlots: opts.adapterSlots, device: opts.device, dtype: opts.dtype, collective: opts.collective,
      cpuThreads: opts.cpuThreads,
    });
    let draft: LoadedModel | null = null;
    try {
      draft = opts.draftModelDir && (opts.rank ?? 0) === 0 ? loadDraftModel(opts.draftModelDir, model, opts) : null;
    } catch (e) {
      model.native.dispose();
      throw e;
    }
    const hook: DraftModelHook | undefined = opts.draftModelDir ? {
      drafter: draft ? new DraftModelDrafter(draft, spec.vocab) : null,
      ...((opts.world ?? 1) > 1 ? { share: (buffer: Float32Array) => opts.collective!.allReduceSum(buffer) } : {}),
      ...(opts.onDraftError ? { onError: opts.onDraftError } : {}),
    } : undefined;
    return new LocalEngine(model, opts.maxLoraRank ?? 64, opts.hostCacheBytes ?? 2 ** 31, modelDir, draft, hook, opts);
  }

  /**
   * Loads an adapter (a PEFT directory, or a merge of several) into a device slot, all on this thread. Parsed
   * adapters come from the host-RAM cache when present. `fromHost` says whether the disk was skipped.
   */
  loadAdapter(slot: number, source: AdapterSource): InstalledAdapter {
    const read = (dir: string): Parsed => {
      const key = dirIdentity(dir);
      return this.fromHost(key) ?? this.remember(key, this.readDir(dir));
    };
    // A merge needs its parts' float32 tensors: an entry that kept only a 16-bit plan is read from disk again
    // (and left as it is).
    const tensors = (dir: string): Parsed & { adapter: LoadedAdapter } => {
      const p = read(dir);
      return p.adapter ? { ...p, adapter: p.adapter } : { key: p.key, adapter: this.readDir(dir), fromHost: false };
    };
    // A cached merge needs no parts at all.
    const parsed = typeof source === 'string' ? read(source)
      : this.fromHost(mergeKey(source.merge)) ?? this.merged(source.merge, source.merge.dirs.map(tensors));
    return this.install(slot, parsed, source);
  }

  /**
   * The part of loadAdapter that can run beside steps: the adapter's files read and decoded on a worker
   * thread (or found in the host-RAM cache), a merge read and merged there too (its parts are read from disk
   * even when cached here: a merge takes seconds, a read ~0.1 s), then staged by the executor on the libuv
   * pool (uploaded, on a GPU). installPrepared puts it in a slot; discardPrepared frees one that will not be.
   */
  async prepareAdapter(source: AdapterSource, sumOverRanks?: SumOverRanks): Promise<PreparedAdapter> {
    const parsed = await this.readOnce(source);
    // DoRA's channel scales need the base weights' norms (summed over the ranks for row-parallel modules): made
    // at each load, not cached, since they are cheap next to the read and tied to this model.
    const plan = await finishDora(this.model.native, this.planned(parsed, source), this.model.partition.world, sumOverRanks);
    const staged = this.staging.then(() => stageAdapter(this.model, plan));
    this.staging = staged.catch(() => undefined);
    return { source, ...parsed, plan, staged: await staged };
  }

  /**
   * Reads an adapter into the host-RAM tier ahead of its load (the coordinator's prefetch of an adapter waiting
   * for room), on a worker thread. True when it is there; a failure is left for the load to report.
   */
  async prefetchAdapter(source: AdapterSource): Promise<boolean> {
    try {
      await this.readOnce(source);
      return true;
    } catch {
      return false;
    }
  }

  /** The adapter from the host-RAM cache, or read and planned on a worker — once per key at a time. */
  private readOnce(source: AdapterSource): Promise<Parsed> {
    const key = typeof source === 'string' ? dirIdentity(source) : mergeKey(source.merge);
    const hit = this.fromHost(key);  // with its plan, once one load has made it
    if (hit) return Promise.resolve(hit);
    let reading = this.reading.get(key);
    if (!reading) {
      const layout = { model: { spec: this.model.spec, partition: this.model.partition, loraStorage: loraStorageOf(this.model) },
        maxLoraRank: this.maxLoraRank, where: describe(source) };
      reading = (this.parser ??= new AdapterParser()).prepare(typeof source === 'string' ? source : source.merge, layout, this.baseModel())
        .then(({ adapter, plan }) => this.remember(key, adapter, plan))
        .finally(() => this.reading.delete(key));
      this.reading.set(key, reading);
    }
    return reading;
  }

  /** The base model, for the check of base-layer copies that PEFT saves with lm_head adapters. */
  private baseModel(): BaseModelRef {
    return { dir: this.modelDir, spec: this.model.spec };
  }

  /** An adapter directory read on this thread, its base-layer copies checked and dropped. */
  private readDir(dir: string): LoadedAdapter {
    return readAdapterFor(dir, this.baseModel());
  }

  /** Installs a prepared adapter into a slot: quick (its parts are staged already). */
  installPrepared(slot: number, prepared: PreparedAdapter): InstalledAdapter {
    try {
      this.installVision(slot, prepared.plan);
    } catch (e) {
      prepared.staged.release();
      this.clearAdapter(slot);
      throw e;
    }
    installStaged(this.model, slot, prepared.staged);
    return { ...prepared.plan, fromHost: prepared.fromHost, hostBytes: cachedBytes(prepared.adapter, prepared.plan) };
  }

  /** Frees what prepareAdapter staged for an adapter that will not be installed. */
  discardPrepared(prepared: PreparedAdapter): void {
    prepared.staged.release();
  }

  private install(slot: number, parsed: Parsed, source: AdapterSource): InstalledAdapter {
    const plan = finishDoraSync(this.model.native, this.planned(parsed, source), this.model.partition.world);
    try {
      this.installVision(slot, plan);
    } catch (e) {
      this.clearAdapter(slot);
      throw e;
    }
    installAdapter(this.model, slot, plan);
    return { ...plan, fromHost: parsed.fromHost, hostBytes: cachedBytes(parsed.adapter, plan) };
  }

  /** The adapter's plan for this shard (tensor-parallel slices, scales, rank checks): its worker's, or made here. */
  private planned(parsed: Parsed, source: AdapterSource): AdapterPlan {
    if (parsed.plan) return parsed.plan;
    // A cache entry without tensors has a plan (host-cache.ts), so an unplanned one has its adapter.
    const adapter = parsed.adapter!;
    const plan = planAdapter({ ...this.model, loraStorage: loraStorageOf(this.model) }, adapter, describe(source),
      this.maxLoraRank);
    // Kept with the cached adapter (instead of it, when 16-bit): its next load from host RAM skips planning (at
    // TP > 1 the slices are copies).
    if (this.hostCache.get(parsed.key)?.adapter === adapter) this.hostCache.put(parsed.key, adapter, plan);
    return plan;
  }

  /** The host-RAM cache's entry under `key` (a directory's identity — its files' sizes and mtimes — or a merge's). */
  private fromHost(key: string): Parsed | undefined {
    const hit = this.hostCache.get(key);
    return hit ? { key, ...(hit.adapter ? { adapter: hit.adapter } : {}), ...(hit.plan ? { plan: hit.plan } : {}), fromHost: true }
      : undefined;
  }

  private remember(key: string, adapter: LoadedAdapter, plan?: AdapterPlan): Parsed {
    this.hostCache.put(key, adapter, plan);
    return { key, adapter, ...(plan ? { plan } : {}), fromHost: false };
  }

  private merged(m: MergeRecipe, parts: (Parsed & { adapter: LoadedAdapter })[]): Parsed {
    const key = mergeKey(m);
    const hit = this.fromHost(key);
    if (hit) return hit;
    const adapter = mergeAdapters(parts.map((p) => p.adapter), mergeSpecOf(m));
    return { ...this.remember(key, adapter), fromHost: parts.every((p) => p.fromHost) };
  }

  step(step: Step): Promise<SeqOutput[]> {
    return this.runner.run(step);
  }

  /**
   * Full-sequence logits for several sequences in ONE heterogeneous batch (adapterSlot -1 = base).
   * Blocks are laid out consecutively from block 0; sequences are freed afterwards.
   */
  async scoreBatch(items: { tokens: number[]; adapterSlot: number }[]): Promise<Float32Array[]> {
    const bs = this.model.plan.blockSize;
    let next = 0;
    const id = ++this.stepId;
    const newSeqs = items.map((it, i) => {
      const n = Math.ceil(it.tokens.length / bs);
      const blockTable = Array.from({ length: n }, (_, k) => next + k);
      next += n;
      return { seqId: `score-${id}-${i}`, adapterSlot: it.adapterSlot, tokens: it.tokens, blockTable,
        sampling: GREEDY, generated: [], logits: 'all' as const, promptLogprobs: false, topN: 0 };
    });
    if (next > this.model.plan.numBlocks) throw new Error(`scoring needs ${next} KV blocks; the engine has ${this.model.plan.numBlocks}`);
    const outputs = await this.runner.run({ v: PROTOCOL_VERSION, type: 'step', stepId: id, newSeqs, running: [], finished: [] });
    await this.runner.run({ v: PROTOCOL_VERSION, type: 'step', stepId: ++this.stepId, newSeqs: [], running: [],
      finished: newSeqs.map((s) => s.seqId) });
    if (outputs.length === 0) return [];
    return outputs.map((o) => bytesToFloat32(o.logits!));
  }

  dispose(): void {
    this.model.native.dispose();
    this.model.vision?.dispose();
    this.model.qwenVision?.dispose();
    this.model.pixtral?.dispose();
    this.draft?.native.dispose();
    void this.parser?.close();
  }
}

/** The draft model for speculative decoding: whole (world 1), no adapters, the target's KV block count and size. */
function loadDraftModel(dir: string, target: LoadedModel, opts: LocalEngineOptions): LoadedModel {
  const spec = readModelSpec(dir);
  if (spec.vocab > target.spec.vocab) {
    throw new Error(`--speculative-model ${dir}: its vocabulary (${spec.vocab}) is larger than the model's (${target.spec.vocab}); ` +
      'a draft model must use the served model\'s tokenizer');
  }
  return loadModel(dir, spec, { rank: 0, world: 1, numBlocks: opts.numBlocks, blockSize: opts.blockSize ?? 16, adapterSlots: 1,
    device: opts.device, dtype: opts.dtype, cpuThreads: opts.cpuThreads });
}

/** An adapter source as error messages name it. */
function describe(source: AdapterSource): string {
  return typeof source === 'string' ? source : `merge of ${source.merge.dirs.join(', ')}`;
}

/** A merge's host-RAM cache key: its recipe with each part named by its files' identity. */
function mergeKey(m: MergeRecipe): string {
  return `merge:${JSON.stringify({ ...m, dirs: m.dirs.map(dirIdentity) })}`;
}

/** A PEFT directory, or a merge of several. */
export type AdapterSource = string | { merge: MergeRecipe };
interface Parsed {
  /** Its host-RAM cache key. */
  key: string;
  /** Its float32 tensors; absent only for a host-cache hit that kept just a 16-bit plan (then `plan` is set). */
  adapter?: LoadedAdapter;
  /** Whether the disk was skipped (the host-RAM cache had it). */
  fromHost: boolean;
  /** Planned for this shard already (by the worker that read it). */
  plan?: AdapterPlan;
}
/** prepareAdapter's result, for installPrepared (or discardPrepared). */
export interface PreparedAdapter extends Parsed {
  source: AdapterSource;
  plan: AdapterPlan;
  staged: StagedAdapter;
}
export type InstalledAdapter = AdapterPlan & { fromHost: boolean; hostBytes: number };

export { GREEDY };
