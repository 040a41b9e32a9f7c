// Reading an adapter directory for a model: the PEFT files (peft-config.ts), then what needs the base model's weights
// — base-layer copies checked and dropped (base-layer-copy.ts), trainable tokens turned into LoRA pairs
// (trainable-tokens.ts). Every place that reads an adapter to plan it goes through here.
import { dropBaseLayerCopies, type BaseModelRef } from './base-layer-copy.js';
import { loadAdapterDir, type LoadedAdapter } from './peft-config.js';
import { trainableTokensAsLora } from './trainable-tokens.js';

/** The adapter in `dir`, ready to plan for `base` (without a base: as read, refused if it needs one). */
export function readAdapterFor(dir: string, base: BaseModelRef | undefined): LoadedAdapter {
  const raw = loadAdapterDir(dir);
  return trainableTokensAsLora(base ? dropBaseLayerCopies(raw, base, dir) : raw, base, dir);
}
