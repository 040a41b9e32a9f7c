// Opens a model directory's weights for a loader: the checkpoint as stored, or — when config.json has a
// quantization_config weft reads (quantized/quant-config.ts) — a view that dequantizes its linear layers.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WeightStore, type TensorSource } from '../formats/index.js';
import { UnsupportedModelError } from './errors.js';
import { DequantizingStore } from './quantized/dequantizing-store.js';
import { quantSchemeOf } from './quantized/quant-config.js';

export function openModelWeights(dir: string): TensorSource {
  const store = WeightStore.openDir(dir);
  const configPath = join(dir, 'config.json');
  const config = existsSync(configPath) ? JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown> : {};
  let scheme;
  try {
    scheme = quantSchemeOf(config, configPath);
  } catch (e) {
    store.close();
    throw e;
  }
  if (!scheme) return store;
  const view = new DequantizingStore(store, scheme);
  if (view.quantizedCount === 0) {
    view.close();
    throw new UnsupportedModelError(`${configPath}: quantization_config says '${scheme.method}' but no weight in ${dir} is stored that way`);
  }
  return view;
}
