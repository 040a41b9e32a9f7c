// DBRX's checkpoint as transformers saves it (no conversion on load): transformer.wte, transformer.blocks.<i>.
// norm_attn_norm.{norm_1, attn.Wqkv, attn.out_proj, norm_2}, ffn.router.layer and the experts fused in three tensors
// ffn.experts.mlp.w1 / v1 / w2, each [experts · ffn_hidden_size, d_model]: expert e's gate (w1), up (v1) rows and
// its down projection transposed (w2: DbrxExpertGLU computes act(x·w1ᵀ)·(x·v1ᵀ) · w2), rows e·I … (e + 1)·I.
import type { TensorSource } from '../formats/index.js';
import { UnsupportedModelError } from './errors.js';
import { concat, transpose } from './f32-matrix.js';
import type { HfNames } from './load-weights.js';
import { rangeLen, type Partition } from './partition.js';
import type { ModelSpec } from './spec.js';

const EXPERTS = { gate: 'ffn.experts.mlp.w1', up: 'ffn.experts.mlp.v1', down: 'ffn.experts.mlp.w2' };

export function dbrxNames(): HfNames {
  return {
    layerPrefix: (i) => `transformer.blocks.${i}.`,
    modules: {
      qkv: { paths: ['norm_attn_norm.attn.Wqkv'], roles: [['q', 'k', 'v']] },
      o: { paths: ['norm_attn_norm.attn.out_proj'], roles: [[]] },
      up: { paths: [EXPERTS.gate, EXPERTS.up], roles: [['gate'], ['up']] },  // every layer's MLP is its experts
      down: { paths: [EXPERTS.down], roles: [[]] },
    },
    attnNorm: 'norm_attn_norm.norm_1', mlpNorm: 'norm_attn_norm.norm_2', postAttnNorm: '', postMlpNorm: '',
    finalNorm: 'transformer.norm_f', embed: 'transformer.wte.weight', lmHead: 'lm_head.weight', conv1d: false,
    moe: { router: 'ffn.router.layer', expert: () => ({ gate: '', up: '', down: '' }),
      stacked: { gateUp: EXPERTS.gate, down: EXPERTS.down } },
  };
}

/** This rank's rows of every expert of layer `prefix` (transformer.blocks.<i>.) as plan weights experts.<e>.up / down. */
export function loadDbrxExperts(store: TensorSource, spec: ModelSpec, part: Partition, prefix: string, layer: number,
  set: (name: string, data: Float32Array) => void): void {
  const H = spec.hidden, I = spec.moe!.intermediate, E = spec.moe!.experts, rows = part.expertIntermediate, w = rangeLen(rows);
  for (const name of Object.values(EXPERTS)) {
    const full = prefix + name;
    if (!store.has(full)) throw new UnsupportedModelError(`weight '${full}' is missing from the checkpoint`);
    const shape = store.info(full).shape;
    if (shape.length !== 2 || shape[0] !== E * I || shape[1] !== H) {
      throw new UnsupportedModelError(`'${full}' has shape [${shape.join(', ')}], expected [${E * I}, ${H}] ` +
        `(moe_num_experts × ffn_hidden_size, d_model)`);
    }
  }
  for (let e = 0; e < E; e++) {
    const mine = { dim: 0, start: e * I + rows.start, end: e * I + rows.end };
    const gate = store.readF32(prefix + EXPERTS.gate, mine), up = store.readF32(prefix + EXPERTS.up, mine);
    set(`layers.${layer}.experts.${e}.up.weight`, concat([gate, up]));
    set(`layers.${layer}.experts.${e}.down.weight`, transpose(store.readF32(prefix + EXPERTS.down, mine), w, H));
  }
}
