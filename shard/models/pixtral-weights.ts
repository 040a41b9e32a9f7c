// A Mistral 3 checkpoint's Pixtral vision tower and projector as a native PixtralVisionModel
// (kernels/src/model/pixtral_vision.h), whole on every tensor-parallel rank (every rank makes the same features, so
// the language model's embedding rows need no collective) and on the CPU in fp32.
import { createPixtralVisionModel, type NativePixtralVisionModel, type PixtralVisionPlanConfig } from '../../kernels/index.js';
import type { TensorSource } from '../formats/index.js';
import { UnsupportedModelError } from './errors.js';
import type { PixtralSpec } from './pixtral-spec.js';

/** transformers 5 keeps them under `model.`; the Hub's checkpoints (and save_pretrained) at the top. */
const LAYOUTS = [
  { tower: 'model.vision_tower.', projector: 'model.multi_modal_projector.' },
  { tower: 'vision_tower.', projector: 'multi_modal_projector.' },
];
/** A block's plan modules: [plan name, checkpoint name under transformer.layers.<l>.]. */
const BLOCK_LINEARS: [string, string][] = [
  ['q', 'attention.q_proj'], ['k', 'attention.k_proj'], ['v', 'attention.v_proj'], ['o', 'attention.o_proj'],
  ['gate', 'feed_forward.gate_proj'], ['up', 'feed_forward.up_proj'], ['down', 'feed_forward.down_proj'],
];
const PROJECTOR_LINEARS: [string, string][] = [['merge', 'patch_merger.merging_layer'], ['linear_1', 'linear_1'], ['linear_2', 'linear_2']];

export function pixtralPlan(v: PixtralSpec, textHidden: number): PixtralVisionPlanConfig {
  return {
    hidden: v.hidden, heads: v.heads, intermediate: v.intermediate, layers: v.layersRun, patchSize: v.patchSize,
    imageSize: v.imageSize, channels: v.channels, mergeSize: v.mergeSize, textHidden, act: v.act,
    projectorAct: v.projectorAct, projectorBias: v.projectorBias, ropeTheta: v.ropeTheta, normEps: v.normEps,
  };
}

export function loadPixtralModel(store: TensorSource, v: PixtralSpec, textHidden: number): NativePixtralVisionModel {
  const native = createPixtralVisionModel(pixtralPlan(v, textHidden));
  try {
    const layout = LAYOUTS.find((p) => store.has(`${p.tower}patch_conv.weight`));
    if (!layout) {
      throw new UnsupportedModelError(`the checkpoint has no Pixtral vision tower (looked for ${LAYOUTS.map((p) =>
        `${p.tower}patch_conv.weight`).join(', ')})`);
    }
    const { tower, projector } = layout;
    const set = (plan: string, name: string): void => {
      if (!store.has(name)) throw new UnsupportedModelError(`weight '${name}' is missing from the checkpoint (vision tower)`);
      native.setWeight(plan, store.readF32(name));
    };
    set('patch_conv', `${tower}patch_conv.weight`);  // [hidden, C, p, p]: the patch's (channel, y, x) order
    set('ln_pre.weight', `${tower}ln_pre.weight`);
    for (let l = 0; l < v.layersRun; l++) {
      const b = `${tower}transformer.layers.${l}.`;
      set(`layers.${l}.attention_norm.weight`, `${b}attention_norm.weight`);
      set(`layers.${l}.ffn_norm.weight`, `${b}ffn_norm.weight`);
      for (const [plan, hf] of BLOCK_LINEARS) set(`layers.${l}.${plan}.weight`, `${b}${hf}.weight`);
    }
    set('norm.weight', `${projector}norm.weight`);
    for (const [plan, hf] of PROJECTOR_LINEARS) {
      set(`${plan}.weight`, `${projector}${hf}.weight`);
      if (plan !== 'merge' && v.projectorBias) set(`${plan}.bias`, `${projector}${hf}.bias`);
    }
    native.finalize();
    return native;
  } catch (e) {
    native.dispose();
    throw e;
  }
}

/**
 * A PEFT module path on Mistral 3's vision tower or projector as a PixtralVisionModel LoRA target ("layers.<l>.q" …,
 * "merge", "linear_1", "linear_2"), 'skip' for a block after the selected hidden state (it never reaches a feature),
 * or null when it is no linear module weft runs (the patch convolution, say).
 */
export function pixtralLoraTarget(v: PixtralSpec, path: string): string | 'skip' | null {
  const proj = /^(?:model\.)?multi_modal_projector\.(.+)$/.exec(path);
  if (proj) return PROJECTOR_LINEARS.find(([, hf]) => hf === proj[1])?.[0] ?? null;
  const m = /^(?:model\.)?vision_tower\.transformer\.layers\.(\d+)\.(.+)$/.exec(path);
  if (!m) return null;
  const plan = BLOCK_LINEARS.find(([, hf]) => hf === m[2]);
  if (!plan || Number(m[1]) >= v.layers) return null;
  return Number(m[1]) >= v.layersRun ? 'skip' : `layers.${m[1]}.${plan[0]}`;
}

/** The linear modules an adapter may target on the tower, for refusals. */
export const PIXTRAL_LORA_MODULES = 'the tower blocks\' attention.q/k/v/o_proj, feed_forward.gate/up/down_proj; the ' +
  'projector\'s patch_merger.merging_layer, linear_1, linear_2';
