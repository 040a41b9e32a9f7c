// PEFT saves a copy of a targeted lm_head's or token embedding's own weight beside its LoRA pair by default
// (`save_embedding_layers="auto"`: `…lm_head.base_layer.weight`, `…embed_tokens.base_layer.weight`), because a
// resized vocabulary would need it. weft serves the adapter on the base model's weights, so the copy must be that
// weight: it is compared with the checkpoint's (to bf16 rounding: the copy is saved in the dtype the adapter was
// trained in) and dropped; a copy that differs — a resized or retrained layer — is refused by name. Runs where the
// adapter is read (the parse worker).
import { openModelWeights } from '../models/model-weights.js';
import { hfNames, lmHeadWeightName } from '../models/load-weights.js';
import type { ModelSpec } from '../models/spec.js';
import { AdapterConfigError, parseLoraTensorKey, type LoadedAdapter } from './peft-config.js';

/** Relative difference allowed between the copy and the checkpoint: one bf16 rounding (2⁻⁸, twice its half-ulp). */
const COPY_REL_TOL = 2 ** -8;

/** Where a model's base weights are, for the check. */
export interface BaseModelRef {
  dir: string;
  spec: ModelSpec;
}

/** Checks every base-layer copy in `adapter` against the model's weight and removes it; throws when one differs. */
export function dropBaseLayerCopies(adapter: LoadedAdapter, model: BaseModelRef, where: string): LoadedAdapter {
  const copies = [...adapter.tensors.keys()].filter((k) => parseLoraTensorKey(k).kind === 'BASE');
  if (copies.length === 0) return adapter;
  const store = openModelWeights(model.dir);
  try {
    const weights = new Map<string, { base: Float32Array; shape: number[] }>();
    const weightOf = (name: string) => {
      let w = weights.get(name);
      if (!w) weights.set(name, w = { base: store.readF32(name), shape: store.info(name).shape });
      return w;
    };
    for (const key of copies) {
      const isHead = /(^|\.)lm_head$/.test(parseLoraTensorKey(key).modulePath);
      const layer = isHead ? 'lm_head' : 'token embedding';
      const { base, shape } = weightOf(isHead ? lmHeadWeightName(model.spec, store) : hfNames(model.spec, store).embed);
      const t = adapter.tensors.get(key)!;
      if (t.shape.length !== 2 || t.shape[0] !== shape[0] || t.shape[1] !== shape[1]) {
        throw new AdapterConfigError(`${where}: '${key}' is [${t.shape.join(', ')}] but the base model's ${layer} is ` +
          `[${shape.join(', ')}]: the adapter was trained with a resized vocabulary, which weft does not serve`, key);
      }
      for (let i = 0; i < base.length; i++) {
        const d = Math.abs(t.data[i]! - base[i]!);
        if (!(d <= COPY_REL_TOL * Math.abs(base[i]!) + 1e-7)) {
          throw new AdapterConfigError(`${where}: '${key}' differs from the base model's ${layer} (row ${Math.floor(i / shape[1]!)}: ` +
            `${t.data[i]} vs ${base[i]}): the adapter carries a retrained ${layer}, which weft does not serve; save it ` +
            `with save_embedding_layers=False if the ${layer} was not trained, or use the base model it was trained on`, key);
        }
      }
      adapter.tensors.delete(key);
    }
  } finally {
    store.close();
  }
  return adapter;
}
