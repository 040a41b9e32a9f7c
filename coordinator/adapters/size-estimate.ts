// What an adapter will take in one shard's adapter memory, from its files before any shard has loaded it: the
// registry's byte budget (--adapter-memory-fraction) needs a size to make room for. Exact at one shard for a
// safetensors adapter (the LoRA tensors' element counts from the header × the engine's element size, a fused
// module's lora_A once per sub-block, DoRA's magnitudes in float32, pairs on a vision tower left out as the shards
// drop them); at TP > 1
// an upper bound (every matrix counted whole, where a shard holds a slice of one of each pair). An
// adapter_model.bin counts its file size as 2-byte elements (an upper bound for 16- and 32-bit files). Trainable
// tokens ([k, hidden] rows) are held as rank-k pairs, one-hot over the vocabulary (shard/adapters/trainable-tokens.ts):
// counted as on the embedding and a tied lm_head, 2·k·(vocab + hidden), an upper bound. A target_parameters pair on
// a MoE layer's stacked experts is gate_up_proj (its lora_A serves the gate and the up rows: counted twice) or
// down_proj, told apart by the other pair of its layer (gate_up's lora_B has twice as many rows as down's lora_A has
// columns) or by target_parameters naming only one; else counted as gate_up (an upper bound). The shards' report
// of a load replaces the estimate.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile, numel } from '../../shard/formats/index.js';
import type { LoadSpec } from './registry.js';
import { languageModelPath, partsOfModulePath } from '../../shard/models/layout.js';

/** Bytes one shard's slot will hold, estimated; `elementBytes` is the engine's (4 on the CPU backend). */
export function estimateAdapterBytes(load: LoadSpec, elementBytes: number, vocab = 0): number {
  if (load.merge) return load.merge.dirs.reduce((n, dir) => n + estimateAdapterBytes({ dir }, elementBytes, vocab), 0);
  const { factors, magnitudes, tokenRows } = elementsOf(load.dir);
  const tokens = tokenRows.reduce((n, [k, hidden]) => n + 2 * k * (vocab + hidden), 0);
  return (factors + tokens) * elementBytes + magnitudes * 4;  // DoRA's channel scales stay float32 in the slot
}

// A fused module's parts are its sub-blocks (q|k|v, gate|up), and each holds its own copy of the module's lora_A.
function fusedCopies(name: string): number {
  const m = /^(?:base_model\.model\.)?(.+)\.lora_A\b/.exec(name);
  return m ? partsOfModulePath(m[1]!) : 1;
}

type Shapes = (name: string) => number[];
/** lora_A names of stacked-experts pairs that are down_proj (one copy; gate_up_proj's lora_A is held twice). */
function stackedDownPairs(names: string[], shape: Shapes, targetParameters: string[]): Set<string> {
  const down = new Set<string>();
  const byLayer = new Map<string, string[]>();
  for (const n of names) {
    const m = /^(?:base_model\.model\.)?(.+\.experts)(?:\.base_layer)*\.lora_A\.weight$/.exec(n);
    if (m) byLayer.set(m[1]!, [...(byLayer.get(m[1]!) ?? []), n]);
  }
  const only = new Set(targetParameters.map((t) => t.slice(t.lastIndexOf('.') + 1)));
  for (const pairs of byLayer.values()) {
    if (pairs.length === 2) {
      const [x, y] = pairs as [string, string];
      const bRows = (a: string) => shape(a.replace('lora_A', 'lora_B'))[0]!, aCols = (a: string) => shape(a)[1]!;
      if (bRows(x) === 2 * aCols(y)) down.add(y);
      else if (bRows(y) === 2 * aCols(x)) down.add(x);
    } else if (pairs.length === 1 && only.size === 1 && only.has('down_proj')) {
      down.add(pairs[0]!);
    }
  }
  return down;
}

// A vision-language model's vision tower / projector: the shards drop those pairs (text requests never run them).
function onVisionTower(name: string): boolean {
  return languageModelPath({ visionLanguage: true }, name.replace(/^base_model\.model\./, '')) === null;
}

function targetParametersOf(dir: string): string[] {
  try {
    const tp = (JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as { target_parameters?: unknown }).target_parameters;
    return Array.isArray(tp) ? tp.filter((t): t is string => typeof t === 'string') : [];
  } catch {
    return [];  // the loader reports a bad config; the estimate does not need it
  }
}

function elementsOf(dir: string): { factors: number; magnitudes: number; tokenRows: [number, number][] } {
  const st = join(dir, 'adapter_model.safetensors');
  if (existsSync(st)) {
    const f = SafetensorsFile.open(st);
    try {
      const count = (re: RegExp, copies: (name: string) => number = () => 1) => f.names()
        .filter((n) => re.test(n) && !onVisionTower(n))
        .reduce((sum, n) => sum + numel(f.info(n).shape) * copies(n), 0);
      const down = stackedDownPairs(f.names(), (n) => f.info(n).shape, targetParametersOf(dir));
      const copiesOf = (n: string) => (down.has(n) ? 1 : fusedCopies(n));
      const tokenRows = f.names().filter((n) => /\.token_adapter\.trainable_tokens_delta\b/.test(n))
        .map((n) => f.info(n).shape as [number, number]);
      return { factors: count(/lora_(A|B|embedding_A|embedding_B)\b/, copiesOf), magnitudes: count(/lora_magnitude_vector\b/), tokenRows };
    } finally {
      f.close();
    }
  }
  const bin = join(dir, 'adapter_model.bin');
  return { factors: existsSync(bin) ? Math.ceil(statSync(bin).size / 2) : 0, magnitudes: 0, tokenRows: [] };
}
