// The worker thread of AdapterParser (parse-pool.ts): reads and decodes one PEFT adapter directory, or reads
// and merges several, and hands the tensors back by transfer (their buffers move to the shard's main thread,
// no copy).
import { Piscina } from 'piscina';
import { cpuOps } from '../../kernels/index.js';
import { useBulkHalfDecoder } from '../formats/index.js';
import type { MergeRecipe } from '../../protocol/index.js';
import { mergeAdapters } from './merge.js';
import { loadAdapterDir, type LoadedAdapter } from './peft-config.js';
import type { ParsedAdapterMessage } from './parse-pool.js';

// fp16/bf16 weights convert in native code, as on the shard's main thread (load-weights.ts registers the same
// for the model): without it this thread decoded every adapter element in a JS loop.
useBulkHalfDecoder((src, bf16, out, offset) => cpuOps.decodeHalf(src, bf16, out, offset));

export default function parseAdapter(dir: string): unknown {
  return transferAdapter(loadAdapterDir(dir));
}

/**
 * A merge (`merged_adapters`): every part read here and merged here — TIES over two Llama-2-7B rank-16 adapters
 * takes ~5 s on a 2-core box, which on the shard's main thread stalled every running sequence.
 */
export function mergeAdapterDirs(recipe: MergeRecipe): unknown {
  const parts = recipe.dirs.map((dir) => loadAdapterDir(dir));
  return transferAdapter(mergeAdapters(parts, { weights: recipe.weights, strategy: recipe.strategy,
    density: recipe.density ?? null, majoritySignMethod: recipe.majoritySignMethod, seed: recipe.seed }));
}

function transferAdapter(adapter: LoadedAdapter): unknown {
  const message: ParsedAdapterMessage = {
    config: adapter.config,
    tensors: [...adapter.tensors].map(([name, t]) => ({ name, shape: t.shape, data: owned(t.data) })),
  };
  const buffers = [...new Set(message.tensors.map((t) => t.data.buffer as ArrayBuffer))];  // each once
  // Piscina's Transferable interface (its two symbols); its typings declare the symbols too loosely to name here.
  const transferable = { [Piscina.transferableSymbol]: buffers, [Piscina.valueSymbol]: message };
  return Piscina.move(transferable as unknown as Parameters<typeof Piscina.move>[0]);
}

// A tensor that is a view into a larger buffer (a reader's slab, Node's Buffer pool) is copied: transferring
// that buffer would take it away from whatever else lives in it.
function owned(data: Float32Array): Float32Array {
  return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice();
}
