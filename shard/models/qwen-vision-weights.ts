// A Qwen2-VL / Qwen2.5-VL checkpoint's vision tower and merger as a native QwenVisionModel
// (kernels/src/model/qwen_vision.h), whole on every tensor-parallel rank (every rank makes the same features, so
// the language model's embedding rows need no collective) and on the CPU in fp32.
import { createQwenVisionModel, type NativeQwenVisionModel, type QwenVisionPlanConfig } from '../../kernels/index.js';
import type { TensorSource } from '../formats/index.js';
import { UnsupportedModelError } from './errors.js';
import type { QwenVisionSpec } from './qwen-vl-spec.js';

/** transformers 5 keeps the tower under `model.visual.`; the Hub's checkpoints (and save_pretrained) under `visual.`. */
const PREFIXES = ['model.visual.', 'visual.'];

export function qwenVisionPlan(v: QwenVisionSpec, textHidden: number): QwenVisionPlanConfig {
  if (v.outHidden !== textHidden) {
    throw new UnsupportedModelError(`the vision merger's output (${v.outHidden}) is not the language model's hidden size ` +
      `(${textHidden}): vision_config.${v.windowed ? 'out_hidden_size' : 'hidden_size'} must equal it`);
  }
  return {
    windowed: v.windowed, hidden: v.hidden, heads: v.heads, intermediate: v.intermediate, depth: v.depth,
    patchSize: v.patchSize, mergeSize: v.mergeSize, temporalPatchSize: v.temporalPatchSize, channels: v.channels,
    outHidden: v.outHidden, act: v.act, windowSize: v.windowSize, fullBlocks: v.fullBlocks,
  };
}

/** The plan's modules of a block: [plan name, checkpoint name]. */
function blockModules(v: QwenVisionSpec): [string, string][] {
  const mlp: [string, string][] = v.windowed
    ? [['gate', 'mlp.gate_proj'], ['up', 'mlp.up_proj'], ['down', 'mlp.down_proj']]
    : [['fc1', 'mlp.fc1'], ['fc2', 'mlp.fc2']];
  return [['qkv', 'attn.qkv'], ['proj', 'attn.proj'], ...mlp];
}

export function loadQwenVisionModel(store: TensorSource, v: QwenVisionSpec, textHidden: number): NativeQwenVisionModel {
  const native = createQwenVisionModel(qwenVisionPlan(v, textHidden));
  try {
    const prefix = PREFIXES.find((p) => store.has(`${p}patch_embed.proj.weight`));
    if (!prefix) {
      throw new UnsupportedModelError(`the checkpoint has no Qwen vision tower (looked for ${PREFIXES.map((p) =>
        `${p}patch_embed.proj.weight`).join(', ')})`);
    }
    const set = (plan: string, name: string): void => {
      if (!store.has(name)) throw new UnsupportedModelError(`weight '${name}' is missing from the checkpoint (vision tower)`);
      native.setWeight(plan, store.readF32(name));
    };
    set('patch_embed', `${prefix}patch_embed.proj.weight`);  // [hidden, C, T, p, p]: the flattened patch's order
    for (let l = 0; l < v.depth; l++) {
      const b = `${prefix}blocks.${l}.`;
      for (const n of ['norm1', 'norm2']) {
        set(`blocks.${l}.${n}.weight`, `${b}${n}.weight`);
        if (!v.windowed) set(`blocks.${l}.${n}.bias`, `${b}${n}.bias`);  // LayerNorm; Qwen2.5-VL's are RMSNorms
      }
      for (const [plan, hf] of blockModules(v)) {
        set(`blocks.${l}.${plan}.weight`, `${b}${hf}.weight`);
        set(`blocks.${l}.${plan}.bias`, `${b}${hf}.bias`);
      }
    }
    set('merger.ln.weight', `${prefix}merger.ln_q.weight`);
    if (!v.windowed) set('merger.ln.bias', `${prefix}merger.ln_q.bias`);
    for (const [plan, hf] of [['fc1', 'mlp.0'], ['fc2', 'mlp.2']] as const) {
      set(`merger.${plan}.weight`, `${prefix}merger.${hf}.weight`);
      set(`merger.${plan}.bias`, `${prefix}merger.${hf}.bias`);
    }
    native.finalize();
    return native;
  } catch (e) {
    native.dispose();
    throw e;
  }
}

/**
 * A PEFT module path on a Qwen2-VL / Qwen2.5-VL vision tower as a QwenVisionModel LoRA target ("blocks.<l>.qkv" …,
 * "merger.fc1" / "merger.fc2"), or null when it is no linear module weft runs (the patch convolution, say).
 */
export function qwenVisionLoraTarget(v: QwenVisionSpec, path: string): string | null {
  const merger = /^(?:model\.)?visual\.merger\.mlp\.([02])$/.exec(path);
  if (merger) return merger[1] === '0' ? 'merger.fc1' : 'merger.fc2';
  const m = /^(?:model\.)?visual\.blocks\.(\d+)\.(.+)$/.exec(path);
  if (!m || Number(m[1]) >= v.depth) return null;
  const plan = blockModules(v).find(([, hf]) => hf === m[2]);
  return plan ? `blocks.${m[1]}.${plan[0]}` : null;
}
