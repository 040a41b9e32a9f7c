// Reads PEFT adapter directories (merges them, for `merged_adapters`, and plans them for the shard) on worker
// threads, so that a shard's mailbox — its steps — never waits for that work. Reading a Llama-2-7B rank-16
// adapter takes ~130 ms on a 2-core box, a TIES merge of two of them seconds; in the mailbox each was a decode
// stall for every running sequence (an H100 serve run with 32 and 128 adapters showed inter-token latency p99 of
// 260-290 ms against 84 ms with one). The shard installs the result in its mailbox, in turn with steps
// (shard/actor.ts).
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { MergeRecipe } from '../../protocol/index.js';
import type { AdapterPlan } from '../models/load-adapter.js';
import type { LoadedAdapter } from './peft-config.js';
import type { AdapterTask } from './parse-worker.js';

/** A read (or merge) and, when a layout was given, its plan: what the worker sends back, tensor buffers transferred. */
export interface PreparedOffThread {
  adapter: LoadedAdapter;
  /** Its parts may be views of the adapter's tensors. */
  plan?: AdapterPlan;
}

export class AdapterParser {
  // A few threads, so one slow read (a cold network file system) does not hold up the adapters behind it and a
  // burst of cold adapters decodes in parallel; started on the first load and stopped when idle, so engines that
  // never load one (tests, `weft score`) cost nothing.
  private readonly pool = new Piscina<AdapterTask, PreparedOffThread>({
    filename: fileURLToPath(new URL('./parse-worker.js', import.meta.url)),
    minThreads: 0,
    maxThreads: Math.max(2, Math.min(4, Math.floor(availableParallelism() / 4))),
    idleTimeout: 30_000,
  });

  /**
   * loadAdapterDir(dir), or a merge's parts read and merged (mergeAdapters), then planAdapter for `layout` when
   * given — off this thread; rejects with the error's message.
   */
  prepare(source: string | MergeRecipe, layout?: AdapterTask['layout'], base?: AdapterTask['base']): Promise<PreparedOffThread> {
    return this.pool.run({ source, ...(layout ? { layout } : {}), ...(base ? { base } : {}) });
  }

  close(): Promise<void> {
    return this.pool.destroy();
  }
}
