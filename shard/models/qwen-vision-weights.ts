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
    ...(v.qwen3 ? { qwen3: true, numPositionEmbeddings: v.qwen3.numPositionEmbeddings, deepstack: v.qwen3.deepstack } : {}),
  };
}

/** The plan's modules of a block: [plan name, checkpoint name]. */
function blockModules(v: QwenVisionSpec): [string, string][] {
  const mlp: [string, string][] = v.windowed
    ? [['gate', 'mlp.gate_proj'], ['up', 'mlp.up_proj'], ['down', 'mlp.down_proj']]
    : v.qwen3 ? [['fc1', 'mlp.linear_fc1'], ['fc2', 'mlp.linear_fc2']] : [['fc1', 'mlp.fc1'], ['fc2', 'mlp.fc2']];
  return [['qkv', 'attn.qkv'], ['proj', 'attn.proj'], ...mlp];
}

/** The mergers: [plan name, checkpoint names]. Qwen2(.5)-VL: merger.ln_q, merger.mlp.0 / .2; Qwen3-VL: merger.norm,
 * merger.linear_fc1 / linear_fc2 and deepstack_merger_list.<i>.* the same. */
function mergers(v: QwenVisionSpec): [string, { ln: string; fc1: string; fc2: string }][] {
  if (!v.qwen3) return [['merger', { ln: 'merger.ln_q', fc1: 'merger.mlp.0', fc2: 'merger.mlp.2' }]];
  const of = (m: string) => ({ ln: `${m}.norm`, fc1: `${m}.linear_fc1`, fc2: `${m}.linear_fc2` });
  return [['merger', of('merger')], ...v.qwen3.deepstack.map((_, i): [string, ReturnType<typeof of>] =>
    [`deepstack.${i}`, of(`deepstack_merger_list.${i}`)])];
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
    if (v.qwen3) {
      set('patch_embed.bias', `${prefix}patch_embed.proj.bias`);
      set('pos_embed', `${prefix}pos_embed.weight`);
    }
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
    for (const [plan, hf] of mergers(v)) {
      set(`${plan}.ln.weight`, `${prefix}${hf.ln}.weight`);
      if (!v.windowed) set(`${plan}.ln.bias`, `${prefix}${hf.ln}.bias`);
      for (const [sub, name] of [['fc1', hf.fc1], ['fc2', hf.fc2]] as const) {
        set(`${plan}.${sub}.weight`, `${prefix}${name}.weight`);
        set(`${plan}.${sub}.bias`, `${prefix}${name}.bias`);
      }
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
  const inMerger = /^(?:model\.)?visual\.(.+)$/.exec(path)?.[1];
  for (const [plan, hf] of inMerger !== undefined ? mergers(v) : []) {
    if (inMerger === hf.fc1) return `${plan}.fc1`;
    if (inMerger === hf.fc2) return `${plan}.fc2`;
  }
  const m = /^(?:model\.)?visual\.blocks\.(\d+)\.(.+)$/.exec(path);
  if (!m || Number(m[1]) >= v.depth) return null;
  const plan = blockModules(v).find(([, hf]) => hf === m[2]);
  return plan ? `blocks.${m[1]}.${plan[0]}` : null;
}
