// The worker thread of AdapterParser (parse-pool.ts): reads and decodes one PEFT adapter directory and hands
// the tensors back by transfer (their buffers move to the shard's main thread, no copy).
import { Piscina } from 'piscina';
import { loadAdapterDir } from './peft-config.js';
import type { ParsedAdapterMessage } from './parse-pool.js';

export default function parseAdapter(dir: string): unknown {
  const adapter = loadAdapterDir(dir);
  const message: ParsedAdapterMessage = {
    config: adapter.config,
    tensors: [...adapter.tensors].map(([name, t]) => ({ name, shape: t.shape, data: t.data })),
  };
  // Tensors may be views of one buffer: each buffer is transferred once.
  const buffers = [...new Set(message.tensors.map((t) => t.data.buffer as ArrayBuffer))];
  // Piscina's Transferable interface (its two symbols); its typings declare the symbols too loosely to name here.
  const transferable = { [Piscina.transferableSymbol]: buffers, [Piscina.valueSymbol]: message };
  return Piscina.move(transferable as unknown as Parameters<typeof Piscina.move>[0]);
}
