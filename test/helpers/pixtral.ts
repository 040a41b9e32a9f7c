// Mistral 3's golden case with images (test/fixtures/vlm/mistral3, make_mistral3_vlm.py; layout:
// test/fixtures/vlm/README.md): Pixtral images of any size whose ranges hold rows of [IMG] tokens, each row ended by
// [IMG_BREAK] (the last by [IMG_END]).
import type { ImageRef } from '../../protocol/index.js';
import { VLM_ROOT, relayoutModel, vlmImageKey, type VlmCase, type VlmSequence } from './vlm.js';
import { SafetensorsFile } from '../../shard/formats/index.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Mistral3Sequence extends VlmSequence {
  /** The prompt after PixtralProcessor's expansion of each [IMG]. */
  expanded: string;
  /** Each image's first position (its first [IMG]); its range runs through its [IMG_END]. */
  image_starts: number[];
  decode: number[];
}

export interface Mistral3Image {
  height: number;
  width: number;
  /** Rows and columns of [IMG] tokens (merged patches). */
  rows: number;
  cols: number;
  /** Positions of its range: rows · (cols + 1). */
  tokens: number;
  /** [IMG] positions (feature rows): rows · cols. */
  features: number;
  expansion: string;
}

export interface Mistral3Case extends VlmCase<Mistral3Sequence> {
  breakTokenId: number;
  endTokenId: number;
  patchSize: number;
  mergeSize: number;
  images: Record<string, Mistral3Image>;
}

export function loadMistral3Case(name = 'mistral3'): Mistral3Case {
  const dir = join(VLM_ROOT, name);
  const json = JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8'));
  const file = SafetensorsFile.open(join(dir, 'golden.safetensors'));
  const c: Mistral3Case = {
    name, dir, modelDir: join(dir, json.model), sequences: json.sequences,
    adapters: json.adapters.map((a: { name: string; dir: string }) => ({ name: a.name, dir: join(dir, a.dir) })),
    imageTokenId: json.image_token_id, breakTokenId: json.image_break_token_id, endTokenId: json.image_end_token_id,
    vocab: file.info('base/seq0').shape[1]!, imageNames: Object.keys(json.images), patchSize: json.patch_size,
    mergeSize: json.merge_size, images: json.images,
    logits: (key) => file.readF32(key),
    pixels: (image) => {
      const b = readFileSync(join(dir, json.images[image].pixel_values));
      return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    },
    imageDims: (image) => ({ height: c.images[image]!.height, width: c.images[image]!.width }),
    imageRefs: (seq): ImageRef[] => seq.image_starts.map((start, i) => ({ key: vlmImageKey(c, seq.images[i]!), start,
      length: c.images[seq.images[i]!]!.tokens })),
  };
  return c;
}

/**
 * A copy of the case's model in transformers 5's in-memory layout (model.language_model.*, model.vision_tower.*,
 * model.multi_modal_projector.*, lm_head.*). The fixture itself has the Hub's published one (language_model.model.*,
 * language_model.lm_head.*, vision_tower.*, multi_modal_projector.*), as save_pretrained writes it.
 */
export function mistral3RelayoutV5(c: Mistral3Case): string {
  return relayoutModel(c, 'mistral3-v5', (n) => n.replace(/^language_model\.model\./, 'model.language_model.')
    .replace(/^language_model\.lm_head\./, 'lm_head.').replace(/^vision_tower\./, 'model.vision_tower.')
    .replace(/^multi_modal_projector\./, 'model.multi_modal_projector.'));
}
