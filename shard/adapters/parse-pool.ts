// Reads PEFT adapter directories (and merges them, for `merged_adapters`) on a worker thread, so that a shard's
// mailbox — its steps — never waits while an adapter's files are read and decoded. On a 2-core box that takes ~300 ms for a Llama-2-7B rank-16 adapter,
// and it used to run in the mailbox: a decode stall for every running sequence each time an adapter loaded (an
// H100 serve run with 32 and 128 adapters showed inter-token latency p99 of 260-290 ms against 84 ms with one).
// The shard installs the decoded tensors in its mailbox, in turn with steps (shard/actor.ts).
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { MergeRecipe } from '../../protocol/index.js';
import type { LoadedAdapter, LoraConfig } from './peft-config.js';

/** What the worker sends back (parse-worker.ts): plain data and transferred tensor buffers. */
export interface ParsedAdapterMessage {
  config: LoraConfig;
  tensors: { name: string; shape: number[]; data: Float32Array }[];
}

export class AdapterParser {
  // A few threads, so one slow read (a cold network file system) does not hold up the adapters behind it and a
  // burst of cold adapters decodes in parallel; started on the first load and stopped when idle, so engines that
  // never load one (tests, `weft score`) cost nothing.
  private readonly pool = new Piscina<string | MergeRecipe, ParsedAdapterMessage>({
    filename: fileURLToPath(new URL('./parse-worker.js', import.meta.url)),
    minThreads: 0,
    maxThreads: Math.max(2, Math.min(4, Math.floor(availableParallelism() / 4))),
    idleTimeout: 30_000,
  });

  /** loadAdapterDir(dir), off this thread; rejects with its error message. */
  async parse(dir: string): Promise<LoadedAdapter> {
    return received(await this.pool.run(dir));
  }

  /** The parts of a merge read and merged (mergeAdapters), off this thread; rejects with the error's message. */
  async merge(recipe: MergeRecipe): Promise<LoadedAdapter> {
    return received(await this.pool.run(recipe, { name: 'mergeAdapterDirs' }));
  }

  close(): Promise<void> {
    return this.pool.destroy();
  }
}

function received(m: ParsedAdapterMessage): LoadedAdapter {
  return { config: m.config, tensors: new Map(m.tensors.map((t) => [t.name, { shape: t.shape, data: t.data }])) };
}
