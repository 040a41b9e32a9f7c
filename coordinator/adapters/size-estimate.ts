// What an adapter will take in one shard's adapter memory, from its files before any shard has loaded it: the
// registry's byte budget (--adapter-memory-fraction) needs a size to make room for. Exact at one shard for a
// safetensors adapter (the LoRA tensors' element counts from the header × the engine's element size); at TP > 1
// an upper bound (every matrix counted whole, where a shard holds a slice of one of each pair). An
// adapter_model.bin counts its file size as 2-byte elements (an upper bound for 16- and 32-bit files). The
// shards' report of a load replaces the estimate.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile, numel } from '../../shard/formats/index.js';
import type { LoadSpec } from './registry.js';

/** Bytes one shard's slot will hold, estimated; `elementBytes` is the engine's (4 on the CPU backend). */
export function estimateAdapterBytes(load: LoadSpec, elementBytes: number): number {
  if (load.merge) return load.merge.dirs.reduce((n, dir) => n + estimateAdapterBytes({ dir }, elementBytes), 0);
  return elementsOf(load.dir) * elementBytes;
}

function elementsOf(dir: string): number {
  const st = join(dir, 'adapter_model.safetensors');
  if (existsSync(st)) {
    const f = SafetensorsFile.open(st);
    try {
      return f.names().filter((n) => /lora_(A|B|embedding_A|embedding_B)\b/.test(n)).reduce((sum, n) => sum + numel(f.info(n).shape), 0);
    } finally {
      f.close();
    }
  }
  const bin = join(dir, 'adapter_model.bin');
  return existsSync(bin) ? Math.ceil(statSync(bin).size / 2) : 0;
}
