// A LLaVA checkpoint's vision tower and projector as a native VisionModel (kernels/src/model/vision.h). They are
// replicated whole on every tensor-parallel rank — a few hundred MB next to a 7B language model's 13 GB, computed
// once per image — so every rank makes the same features and the language model's embedding rows need no collective.
import { createVisionModel, type NativeVisionModel, type VisionPlanConfig } from '../../kernels/index.js';
import type { TensorSource } from '../formats/index.js';
import { UnsupportedModelError } from './errors.js';
import type { VisionSpec } from './llava-spec.js';

/** Where a checkpoint keeps the tower: under `model.` (transformers 5 in memory) or not (as saved by
 * save_pretrained, and the Hub's llava-hf checkpoints), with CLIPVisionModel's `vision_model.` (transformers 4, the
 * Hub) or without it (transformers 5). */
const TOWER_PREFIXES = ['model.vision_tower.vision_model.', 'model.vision_tower.', 'vision_tower.vision_model.', 'vision_tower.'];

function prefixes(store: TensorSource, siglip: boolean, idefics3 = false): { tower: string; projector: string } {
  // Idefics3 / SmolVLM: model.vision_model.* and model.connector.* (transformers 5 and the Hub alike).
  if (idefics3) {
    if (!store.has('model.vision_model.embeddings.patch_embedding.weight')) {
      throw new UnsupportedModelError('the checkpoint has no Idefics3 vision tower (looked for model.vision_model.embeddings.patch_embedding.weight)');
    }
    return { tower: 'model.vision_model.', projector: 'model.connector.' };
  }
  // CLIP's tower is found by its class embedding; SigLIP's (Gemma 3) has none.
  const probe = siglip ? 'embeddings.patch_embedding.weight' : 'embeddings.class_embedding';
  const tower = TOWER_PREFIXES.find((p) => store.has(`${p}${probe}`));
  if (!tower) {
    throw new UnsupportedModelError(`the checkpoint has no ${siglip ? 'SigLIP' : 'CLIP'} vision tower (looked for ${TOWER_PREFIXES.map((p) =>
      `${p}${probe}`).join(', ')})`);
  }
  const projector = store.has(`model.multi_modal_projector.${siglip ? 'mm_input_projection_weight' : 'linear_1.weight'}`)
    ? 'model.multi_modal_projector.' : 'multi_modal_projector.';
  return { tower, projector };
}

export function visionPlan(vision: VisionSpec, textHidden: number): VisionPlanConfig {
  return {
    ...(vision.siglip ? { tower: 'siglip_gemma3' as const, poolTokens: vision.tokensPerImage } : {}),
    ...(vision.idefics3 ? { tower: 'siglip_idefics3' as const, scaleFactor: vision.idefics3.scaleFactor } : {}),
    hidden: vision.hidden, heads: vision.heads, intermediate: vision.intermediate, layers: vision.layersRun,
    imageSize: vision.imageSize, patchSize: vision.patchSize, channels: vision.channels, normEps: vision.normEps,
    act: vision.act, featureLayers: vision.featureLayers, dropCls: vision.dropCls, textHidden,
    projectorAct: vision.projectorAct, projectorBias: vision.projectorBias,
  };
}

/** Loads the tower's layers up to the deepest selected hidden state, and the projector. */
export function loadVisionModel(store: TensorSource, vision: VisionSpec, textHidden: number): NativeVisionModel {
  const native = createVisionModel(visionPlan(vision, textHidden));
  try {
    const { tower, projector } = prefixes(store, vision.siglip === true, vision.idefics3 !== undefined);
    const read = (name: string): Float32Array => {
      if (!store.has(name)) throw new UnsupportedModelError(`weight '${name}' is missing from the checkpoint (vision tower)`);
      return store.readF32(name);
    };
    const set = (plan: string, name: string): void => native.setWeight(plan, read(name));
    set('patch_embed', `${tower}embeddings.patch_embedding.weight`);  // [hidden, channels, p, p]: im2col order
    if (vision.idefics3) {
      // Each patch's position row: a full tile's patch i is at position i (idefics3-spec.ts).
      set('pos_embed', `${tower}embeddings.position_embedding.weight`);
      set('patch_bias', `${tower}embeddings.patch_embedding.bias`);
      set('post_norm.weight', `${tower}post_layernorm.weight`);
      set('post_norm.bias', `${tower}post_layernorm.bias`);
      set('proj1.weight', `${projector}modality_projection.proj.weight`);  // [text hidden, hidden · scale²], no bias
    } else set('pos_embed', `${tower}embeddings.position_embedding.weight`);
    if (vision.siglip) {
      set('patch_bias', `${tower}embeddings.patch_embedding.bias`);
      set('post_norm.weight', `${tower}post_layernorm.weight`);
      set('post_norm.bias', `${tower}post_layernorm.bias`);
      // Gemma3MultiModalProjector: mm_soft_emb_norm applies (1 + w); the projection is x @ W with W [hidden, text]
      native.setWeight('mm_norm.weight', read(`${projector}mm_soft_emb_norm.weight`).map((x) => 1 + x));
      native.setWeight('mm_proj.weight', transpose(read(`${projector}mm_input_projection_weight`), vision.hidden, textHidden));
    } else if (!vision.idefics3) {
      set('class_embed', `${tower}embeddings.class_embedding`);
      set('pre_norm.weight', `${tower}pre_layrnorm.weight`);
      set('pre_norm.bias', `${tower}pre_layrnorm.bias`);
    }
    const modules: [string, string][] = [['ln1', 'layer_norm1'], ['ln2', 'layer_norm2'], ['q', 'self_attn.q_proj'],
      ['k', 'self_attn.k_proj'], ['v', 'self_attn.v_proj'], ['o', 'self_attn.out_proj'], ['fc1', 'mlp.fc1'], ['fc2', 'mlp.fc2']];
    for (let l = 0; l < vision.layersRun; l++) {
      for (const [plan, hf] of modules) {
        set(`layers.${l}.${plan}.weight`, `${tower}encoder.layers.${l}.${hf}.weight`);
        set(`layers.${l}.${plan}.bias`, `${tower}encoder.layers.${l}.${hf}.bias`);
      }
    }
    for (const [plan, hf] of vision.siglip || vision.idefics3 ? [] : [['proj1', 'linear_1'], ['proj2', 'linear_2']] as const) {
      set(`${plan}.weight`, `${projector}${hf}.weight`);
      if (vision.projectorBias) set(`${plan}.bias`, `${projector}${hf}.bias`);
    }
    native.finalize();
    return native;
  } catch (e) {
    native.dispose();
    throw e;
  }
}

/** m [rows, cols] (row-major) as [cols, rows]. */
function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  if (m.length !== rows * cols) {
    throw new UnsupportedModelError(`multi_modal_projector.mm_input_projection_weight has ${m.length} values, expected ${rows} × ${cols}`);
  }
  const t = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c]!;
  return t;
}

/**
 * A PEFT module path on the vision side of a LLaVA model as a VisionModel LoRA target: "layers.<l>.q" … or
 * "proj1" / "proj2"; `skip` for a module of a layer after the deepest selected hidden state (it never reaches a
 * feature: dropping its pair is exact); null when it is no linear module weft runs (the patch convolution, say).
 */
export function visionLoraTarget(vision: VisionSpec, path: string): string | 'skip' | null {
  if (vision.idefics3) return idefics3LoraTarget(vision, path);
  const proj = /^(?:model\.)?multi_modal_projector\.linear_([12])$/.exec(path);
  if (proj) return vision.siglip ? null : `proj${proj[1]}`;  // Gemma 3's projector has no linear module
  const m = /^(?:model\.)?vision_tower\.(?:vision_model\.)?encoder\.layers\.(\d+)\.(self_attn\.(?:q|k|v|out)_proj|mlp\.fc[12])$/.exec(path);
  if (!m) return null;
  const layer = Number(m[1]);
  if (layer >= vision.layers) return null;
  if (layer >= vision.layersRun) return 'skip';
  const module = m[2]!.replace(/^self_attn\./, '').replace(/_proj$/, '').replace(/^out$/, 'o').replace(/^mlp\./, '');
  return `layers.${layer}.${module}`;
}

/** Idefics3 / SmolVLM: model.vision_model.encoder.layers.<l>.{self_attn.*_proj, mlp.fc*} or the connector's
 * modality_projection.proj ("proj1"); null for any other module. */
function idefics3LoraTarget(vision: VisionSpec, path: string): string | null {
  if (/^model\.connector\.modality_projection\.proj$/.test(path)) return 'proj1';
  const m = /^model\.vision_model\.encoder\.layers\.(\d+)\.(self_attn\.(?:q|k|v|out)_proj|mlp\.fc[12])$/.exec(path);
  if (!m || Number(m[1]) >= vision.layers) return null;
  const module = m[2]!.replace(/^self_attn\./, '').replace(/_proj$/, '').replace(/^out$/, 'o').replace(/^mlp\./, '');
  return `layers.${m[1]}.${module}`;
}
