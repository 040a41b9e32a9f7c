// An engine in this process (TP=1, or one rank of a group when given a collective): the model, its
// adapter slots and a step runner. Used by the shard actor, `weft score` and the conformance tests.
import type { NativeCollective } from '../kernels/index.js';
import type { MergeRecipe, SamplingParams, SeqOutput, Step } from '../protocol/index.js';
import { HostAdapterCache, adapterBytes, dirIdentity, loadAdapterDir, type LoadedAdapter } from './adapters/index.js';
import { mergeAdapters } from './adapters/merge.js';
import { PROTOCOL_VERSION, bytesToFloat32 } from '../protocol/index.js';
import { installAdapter, loadModel, planAdapter, readModelSpec, type AdapterPlan, type LoadedModel } from './models/index.js';
import { StepRunner } from './engine/step-runner.js';
import { AutomatonCache } from './constraints/token-constraint.js';
import { loadTokenVocab, type TokenVocab } from '../protocol/index.js';

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
}

export class LocalEngine {
  readonly runner: StepRunner;
  private stepId = 0;

  private readonly hostCache: HostAdapterCache;

  private vocab?: TokenVocab;

  private constructor(readonly model: LoadedModel, readonly maxLoraRank: number, hostCacheBytes: number, private readonly modelDir: string) {
    const constraints = new AutomatonCache(() => this.tokenVocab());
    this.runner = new StepRunner(model, model.partition.rank, constraints);
    this.hostCache = new HostAdapterCache(hostCacheBytes);
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
    const spec = readModelSpec(modelDir);
    const model = loadModel(modelDir, spec, {
      rank: opts.rank ?? 0, world: opts.world ?? 1, numBlocks: opts.numBlocks, blockSize: opts.blockSize ?? 16,
      adapterSlots: opts.adapterSlots, device: opts.device, dtype: opts.dtype, collective: opts.collective,
      cpuThreads: opts.cpuThreads,
    });
    return new LocalEngine(model, opts.maxLoraRank ?? 64, opts.hostCacheBytes ?? 2 ** 31, modelDir);
  }

  /**
   * Loads an adapter (a PEFT directory, or a merge of several) into a device slot. Parsed adapters come
   * from the host-RAM cache when present. `fromHost` says whether the disk was skipped.
   */
  loadAdapter(slot: number, source: string | { merge: MergeRecipe }): AdapterPlan & { fromHost: boolean; hostBytes: number } {
    const { adapter, fromHost, where } = typeof source === 'string'
      ? { ...this.parsed(source), where: source }
      : { ...this.merged(source.merge), where: `merge of ${source.merge.dirs.join(', ')}` };
    const plan = planAdapter(this.model, adapter, where, this.maxLoraRank);
    installAdapter(this.model, slot, plan);
    return { ...plan, fromHost, hostBytes: adapterBytes(adapter) };
  }

  private parsed(dir: string): { adapter: LoadedAdapter; fromHost: boolean } {
    const key = dirIdentity(dir);
    const hit = this.hostCache.get(key);
    if (hit) return { adapter: hit, fromHost: true };
    const adapter = loadAdapterDir(dir);
    this.hostCache.put(key, adapter);
    return { adapter, fromHost: false };
  }

  private merged(m: MergeRecipe): { adapter: LoadedAdapter; fromHost: boolean } {
    const parts = m.dirs.map((d) => this.parsed(d));
    const key = `merge:${JSON.stringify({ ...m, dirs: m.dirs.map(dirIdentity) })}`;
    const hit = this.hostCache.get(key);
    if (hit) return { adapter: hit, fromHost: true };
    const adapter = mergeAdapters(parts.map((p) => p.adapter), { weights: m.weights, strategy: m.strategy,
      density: m.density ?? null, majoritySignMethod: m.majoritySignMethod, seed: m.seed });
    this.hostCache.put(key, adapter);
    return { adapter, fromHost: parts.every((p) => p.fromHost) };
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
  }
}

export const GREEDY: SamplingParams = {
  temperature: 1, topK: 0, topP: 1, typicalP: 1, repetitionPenalty: 1, doSample: false, seed: 0,
};
