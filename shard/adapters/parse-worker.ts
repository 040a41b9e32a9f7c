// The worker thread of AdapterParser (parse-pool.ts): reads and decodes one PEFT adapter directory, or reads
// and merges several, plans it for the shard's slot (tensor-parallel slices), and hands the tensors and the plan
// back by transfer (their buffers move to the shard's main thread, no copy).
import { Piscina } from 'piscina';
import { cpuOps } from '../../kernels/index.js';
import { useBulkHalfDecoder } from '../formats/index.js';
import type { MergeRecipe } from '../../protocol/index.js';
import { planAdapter, type AdapterLayout } from '../models/load-adapter.js';
import { mergeAdapters, mergeSpecOf } from './merge.js';
import type { BaseModelRef } from './base-layer-copy.js';
import { readAdapterFor } from './read-adapter.js';
import type { PreparedOffThread } from './parse-pool.js';

// fp16/bf16 weights convert in native code, as on the shard's main thread (load-weights.ts registers the same
// for the model): without it this thread decoded every adapter element in a JS loop.
useBulkHalfDecoder((src, bf16, out, offset) => cpuOps.decodeHalf(src, bf16, out, offset));

/** One task: an adapter directory, or a merge of several; planned for `layout` when given. */
export interface AdapterTask {
  source: string | MergeRecipe;
  /** The shard's model shape and tensor-parallel share: the adapter is planned here too (slices cut here). */
  layout?: { model: AdapterLayout; maxLoraRank: number; where: string };
  /** The base model, to check base-layer copies in the adapter against (base-layer-copy.ts). */
  base?: BaseModelRef;
}

/**
 * Reads (or reads and merges) and plans an adapter. A merge (`merged_adapters`) runs here: TIES over two
 * Llama-2-7B rank-16 adapters takes ~5 s on a 2-core box, which on the shard's main thread stalled every running
 * sequence; so does planning, whose tensor-parallel slices copied ~40 MB per such adapter there.
 */
export default function prepareAdapter(task: AdapterTask): unknown {
  const { source, layout, base } = task;
  const read = (dir: string) => readAdapterFor(dir, base);
  const adapter = typeof source === 'string' ? read(source) : mergeAdapters(source.dirs.map(read), mergeSpecOf(source));
  // Tensors that are views into a larger buffer (a reader's slab) are copied first: transferring that buffer
  // would take it away from whatever else lives in it; the plan then refers to the copies.
  for (const t of adapter.tensors.values()) t.data = owned(t.data);
  const plan = layout ? planAdapter(layout.model, adapter, layout.where, layout.maxLoraRank) : undefined;
  const message: PreparedOffThread = { adapter, ...(plan ? { plan } : {}) };  // a Map and typed arrays clone as they are
  const arrays = [...[...adapter.tensors.values()].map((t) => t.data), ...(plan?.parts.flatMap((p) => [p.a, p.b]) ?? [])];
  const buffers = [...new Set(arrays.map((d) => d.buffer as ArrayBuffer))];  // each once
  // Piscina's Transferable interface (its two symbols); its typings declare the symbols too loosely to name here.
  const transferable = { [Piscina.transferableSymbol]: buffers, [Piscina.valueSymbol]: message };
  return Piscina.move(transferable as unknown as Parameters<typeof Piscina.move>[0]);
}

function owned(data: Float32Array): Float32Array {
  return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice();
}
