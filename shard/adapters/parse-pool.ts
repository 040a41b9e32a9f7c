// Reads PEFT adapter directories (and merges them, for `merged_adapters`) on a worker thread, so that a shard's
// mailbox — its steps — never waits while an adapter's files are read and decoded. On a 2-core box that takes ~300 ms for a Llama-2-7B rank-16 adapter,
// and it used to run in the mailbox: a decode stall for every running sequence each time an adapter loaded (an
// H100 serve run with 32 and 128 adapters showed inter-token latency p99 of 260-290 ms against 84 ms with one).
// The shard installs the decoded tensors in its mailbox, in turn with steps (shard/actor.ts).
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { MergeRecipe } from '../../protocol/index.js';
import type { AdapterPlan } from '../models/load-adapter.js';
import type { LoadedAdapter, LoraConfig } from './peft-config.js';
import type { AdapterTask } from './parse-worker.js';

/** What the worker sends back (parse-worker.ts): plain data and transferred tensor buffers. */
export interface ParsedAdapterMessage {
  config: LoraConfig;
  tensors: { name: string; shape: number[]; data: Float32Array }[];
  /** The adapter planned for the layout the task gave (its parts may share the tensors' buffers). */
  plan?: AdapterPlan;
}

/** A read (or merge) and, when a layout was given, its plan. */
export interface PreparedOffThread {
  adapter: LoadedAdapter;
  plan?: AdapterPlan;
}

export class AdapterParser {
  // A few threads, so one slow read (a cold network file system) does not hold up the adapters behind it and a
  // burst of cold adapters decodes in parallel; started on the first load and stopped when idle, so engines that
  // never load one (tests, `weft score`) cost nothing.
  private readonly pool = new Piscina<AdapterTask, ParsedAdapterMessage>({
    filename: fileURLToPath(new URL('./parse-worker.js', import.meta.url)),
    minThreads: 0,
    maxThreads: Math.max(2, Math.min(4, Math.floor(availableParallelism() / 4))),
    idleTimeout: 30_000,
  });

  /**
   * loadAdapterDir(dir), or a merge's parts read and merged (mergeAdapters), then planAdapter for `layout` when
   * given — off this thread; rejects with the error's message.
   */
  async prepare(source: string | MergeRecipe, layout?: AdapterTask['layout']): Promise<PreparedOffThread> {
    const m = await this.pool.run({ source, ...(layout ? { layout } : {}) });
    const adapter = { config: m.config, tensors: new Map(m.tensors.map((t) => [t.name, { shape: t.shape, data: t.data }])) };
    return m.plan ? { adapter, plan: m.plan } : { adapter };
  }

  close(): Promise<void> {
    return this.pool.destroy();
  }
}
