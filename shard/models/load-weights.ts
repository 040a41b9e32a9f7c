// Builds the native executor for one rank: reads only this rank's slice of every Hugging Face tensor,
// assembles fused modules (q|k|v, gate|up) and hands them to the C++ model plan.
import { cpuOps, createModel, type ModelPlanConfig, type NativeCollective, type NativeModel, type NativePixtralVisionModel, type NativeQwenVisionModel, type NativeVisionModel } from '../../kernels/index.js';
import { useBulkHalfDecoder, type TensorSource } from '../formats/index.js';
import { openModelWeights } from './model-weights.js';
import { UnsupportedModelError } from './errors.js';
import { expertRows, expertWidth, interleavedHeadRows, subBlocks, rowParallelInput } from './layout.js';
import { partitionFor, rangeLen, type Partition, type Range } from './partition.js';
import { layerIsMoe, type ModelSpec } from './spec.js';
import { loadEitherWayExperts, loadInOutExperts } from './in-out-experts.js';
import { concat, transpose } from './f32-matrix.js';
import { moeNames, type MoeNames } from './moe-names.js';
import { dbrxNames, loadDbrxExperts } from './dbrx-weights.js';
import { xieluParams } from './apertus-spec.js';
import { loadMambaLayer } from './mamba-weights.js';
import { loadVisionModel } from './vision-weights.js';
import { loadQwenVisionModel } from './qwen-vision-weights.js';
import { loadPixtralModel } from './pixtral-weights.js';
import { planConfig } from './plan-config.js';
import { cudaVlmImages } from './qwen-vl-spec.js';

export { planConfig, roundToDtype } from './plan-config.js';

export interface LoadOptions {
  rank: number;
  world: number;
  numBlocks: number;
  blockSize: number;
  adapterSlots: number;
  /** Executor backend and storage dtype (kernels/index.ts ModelPlanConfig); default cpu / float32. */
  device?: 'cpu' | 'cuda';
  dtype?: 'float32' | 'bfloat16' | 'float16';
  /** CPU backend threads (ModelPlanConfig.cpuThreads); 0/absent = one per hardware thread. */
  cpuThreads?: number;
  collective?: NativeCollective;
}

export interface LoadedModel {
  spec: ModelSpec;
  partition: Partition;
  native: NativeModel;
  plan: ModelPlanConfig;
  /** A vision-language model's image encoder (spec.vision), whole on every rank. */
  vision?: NativeVisionModel;
  /** Qwen2-VL / Qwen2.5-VL's vision tower (spec.qwenVision), whole on every rank. */
  qwenVision?: NativeQwenVisionModel;
  /** Mistral 3's Pixtral tower + projector (spec.pixtral), whole on every rank. */
  pixtral?: NativePixtralVisionModel;
}

/** The HF tensors of one executor module and the roles each provides; headInterleaved: GPT-NeoX's per-head q|k|v rows. */
interface HfModule { paths: string[]; roles: string[][]; headInterleaved?: boolean }

/** Names of the Hugging Face modules that feed one executor module, in sub-block order. */
export interface HfNames {
  layerPrefix(i: number): string;
  modules: Record<'qkv' | 'o' | 'up' | 'down', HfModule> & Partial<Record<'q_b' | 'kv_b', HfModule>>;
  attnNorm: string;
  mlpNorm: string;
  /** Post norms (spec.postNorms): the attention block's and the MLP block's output norms. */
  postAttnNorm: string;
  postMlpNorm: string;
  finalNorm: string;
  embed: string;
  posEmbed?: string;
  lmHead: string;
  conv1d: boolean;
  /** A MoE layer's router and expert e's gate / up / down (moe-names.ts). */
  moe?: MoeNames;
}

/** The checkpoint tensor the lm_head reads: its own weight, or the token embedding when tied (or absent). */
export function lmHeadWeightName(spec: ModelSpec, store: TensorSource, names: HfNames = hfNames(spec, store)): string {
  // A vision-language checkpoint's top-level tie_word_embeddings (Mistral3Config's default is true) does not tie a
  // stored lm_head that differs from the embedding (transformers keeps both then): a stored lm_head is used.
  if (spec.visionLanguage && store.has(names.lmHead)) return names.lmHead;
  return spec.tieEmbeddings || !store.has(names.lmHead) ? names.embed : names.lmHead;
}

export function hfNames(spec: ModelSpec, store: TensorSource): HfNames {
  if (spec.architecture === 'dbrx') return dbrxNames();  // transformer.blocks.<i>.norm_attn_norm.*, ffn.*
  if (spec.architecture === 'gpt2') {
    const root = store.has('transformer.wte.weight') ? 'transformer.' : '';
    return {
      layerPrefix: (i) => `${root}h.${i}.`,
      modules: {
        qkv: { paths: ['attn.c_attn'], roles: [['q', 'k', 'v']] },
        o: { paths: ['attn.c_proj'], roles: [[]] },
        up: { paths: ['mlp.c_fc'], roles: [['fc']] },
        down: { paths: ['mlp.c_proj'], roles: [[]] },
      },
      attnNorm: 'ln_1', mlpNorm: 'ln_2', postAttnNorm: '', postMlpNorm: '', finalNorm: `${root}ln_f`,
      embed: `${root}wte.weight`, posEmbed: `${root}wpe.weight`, lmHead: 'lm_head.weight', conv1d: true,
    };
  }
  if (spec.architecture === 'gptj') {  // one ln_1 for both halves of the parallel block; lm_head with a bias
    return {
      layerPrefix: (i) => `transformer.h.${i}.`,
      modules: {
        qkv: { paths: ['attn.q_proj', 'attn.k_proj', 'attn.v_proj'], roles: [['q'], ['k'], ['v']] },
        o: { paths: ['attn.out_proj'], roles: [[]] },
        up: { paths: ['mlp.fc_in'], roles: [['fc']] },
        down: { paths: ['mlp.fc_out'], roles: [[]] },
      },
      attnNorm: 'ln_1', mlpNorm: '', postAttnNorm: '', postMlpNorm: '', finalNorm: 'transformer.ln_f',
      embed: 'transformer.wte.weight', lmHead: 'lm_head.weight', conv1d: false,
    };
  }
  if (spec.architecture === 'gpt_neox') {  // one query_key_value laid out per head; embed_out
    return {
      layerPrefix: (i) => `gpt_neox.layers.${i}.`,
      modules: {
        qkv: { paths: ['attention.query_key_value'], roles: [['q', 'k', 'v']], headInterleaved: true },
        o: { paths: ['attention.dense'], roles: [[]] },
        up: { paths: ['mlp.dense_h_to_4h'], roles: [['fc']] },
        down: { paths: ['mlp.dense_4h_to_h'], roles: [[]] },
      },
      attnNorm: 'input_layernorm', mlpNorm: 'post_attention_layernorm', postAttnNorm: '', postMlpNorm: '',
      finalNorm: 'gpt_neox.final_layer_norm', embed: 'gpt_neox.embed_in.weight', lmHead: 'embed_out.weight', conv1d: false,
    };
  }
  if (spec.architecture === 'phi') {  // Phi-1/1.5/2: dense, fc1, fc2; final_layernorm
    return {
      layerPrefix: (i) => `model.layers.${i}.`,
      modules: {
        qkv: { paths: ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'], roles: [['q'], ['k'], ['v']] },
        o: { paths: ['self_attn.dense'], roles: [[]] },
        up: { paths: ['mlp.fc1'], roles: [['fc']] },
        down: { paths: ['mlp.fc2'], roles: [[]] },
      },
      attnNorm: 'input_layernorm', mlpNorm: '', postAttnNorm: '', postMlpNorm: '', finalNorm: 'model.final_layernorm',
      embed: 'model.embed_tokens.weight', lmHead: 'lm_head.weight', conv1d: false,
    };
  }
  const fused = spec.architecture === 'phi3';
  const fusedUp = fused || spec.architecture === 'glm4';  // GLM-4: separate q/k/v, one gate_up_proj
  const glm4 = spec.architecture === 'glm4';
  const ffn = spec.architecture === 'llama4' || spec.architecture === 'bamba' ? 'feed_forward' : 'mlp';  // Llama 4's, Bamba's MLP module
  // A vision-language checkpoint keeps its language model under language_model.model. (as saved by transformers
  // 4.50+ and 5) or model.language_model., or (Qwen2-VL / Qwen2.5-VL, however saved) under model. beside visual.*.
  // A base-model checkpoint (Gemma3TextModel, LlamaModel: spec.baseModel; Qwen3-Embedding under its causal-LM name:
  // checkpoint-layout.ts) has no `model.` prefix.
  const root = store.has('embed_tokens.weight') && !store.has('model.embed_tokens.weight') ? ''
    : !spec.visionLanguage || store.has('model.embed_tokens.weight') ? 'model.'
    : store.has('model.language_model.embed_tokens.weight') ? 'model.language_model.'
    : store.has('model.text_model.embed_tokens.weight') ? 'model.text_model.' : 'language_model.model.';  // Idefics3 / SmolVLM
  const lmHead = root === 'language_model.model.' ? 'language_model.lm_head.weight' : 'lm_head.weight';
  // Latent attention (DeepSeek-V3): the first projection from q_a_proj (or q_proj) and kv_a_proj_with_mqa.
  const mla = spec.mla ? {
    qkv: { paths: [spec.mla.qRank > 0 ? 'self_attn.q_a_proj' : 'self_attn.q_proj', 'self_attn.kv_a_proj_with_mqa'],
      roles: [[spec.mla.qRank > 0 ? 'q_a' : 'q'], ['kv_a', 'k_rope']] },
    q_b: { paths: ['self_attn.q_b_proj'], roles: [['q']] },
    kv_b: { paths: ['self_attn.kv_b_proj'], roles: [['kv']] },
  } : {};
  return {
    layerPrefix: (i) => `${root}layers.${i}.`,
    modules: {
      qkv: fused
        ? { paths: ['self_attn.qkv_proj'], roles: [['q', 'k', 'v']] }
        : { paths: ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'], roles: [['q'], ['k'], ['v']] },
      o: { paths: ['self_attn.o_proj'], roles: [[]] },
      up: fusedUp
        ? { paths: ['mlp.gate_up_proj'], roles: [['gate', 'up']] }
        : spec.architecture === 'starcoder2' ? { paths: ['mlp.c_fc'], roles: [['fc']] }
          : spec.mlp === 'relu2' || spec.mlp === 'xielu' ? { paths: ['mlp.up_proj'], roles: [['fc']] }  // Arcee, Nemotron, Jais 2, Apertus
          : { paths: [`${ffn}.gate_proj`, `${ffn}.up_proj`], roles: [['gate'], ['up']] },
      down: { paths: [spec.architecture === 'starcoder2' ? 'mlp.c_proj' : `${ffn}.down_proj`], roles: [[]] },
      ...mla,
    },
    // Gemma 3's post_attention_layernorm normalises the attention output (a post norm); its MLP's pre-norm is
    // pre_feedforward_layernorm. GLM-4 keeps post_attention_layernorm as the MLP's pre-norm and names its post norms
    // post_self_attn_layernorm / post_mlp_layernorm. Apertus: attention_layernorm and feedforward_layernorm.
    attnNorm: spec.architecture === 'apertus' ? 'attention_layernorm' : 'input_layernorm',
    mlpNorm: spec.architecture === 'apertus' ? 'feedforward_layernorm' : spec.architecture === 'bamba' ? 'pre_ff_layernorm'
      : (spec.postNorms && !glm4) || spec.architecture === 'vaultgemma' ? 'pre_feedforward_layernorm' : 'post_attention_layernorm',
    postAttnNorm: glm4 ? 'post_self_attn_layernorm' : 'post_attention_layernorm',
    postMlpNorm: glm4 ? 'post_mlp_layernorm' : 'post_feedforward_layernorm',
    finalNorm: spec.architecture === 'bamba' ? `${root}final_layernorm` : `${root}norm`,
    embed: `${root}embed_tokens.weight`, lmHead, conv1d: false,
    ...(spec.moe ? { moe: moeNames(spec) } : {}),
    ...(spec.architecture === 'granitemoehybrid' && !spec.moe ? { modules: {  // Granite 4.0 H Micro: the shared MLP alone
      qkv: { paths: ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'], roles: [['q'], ['k'], ['v']] },
      o: { paths: ['self_attn.o_proj'], roles: [[]] }, up: { paths: ['shared_mlp.input_linear'], roles: [['gate', 'up']] },
      down: { paths: ['shared_mlp.output_linear'], roles: [[]] } } } : {}),
  };
}

/** A MoE layer's router (replicated) and this rank's slice of each expert, as plan weights. */
function loadMoeLayer(store: TensorSource, spec: ModelSpec, part: Partition, names: HfNames, layer: number,
  set: (name: string, data: Float32Array) => void): void {
  const p = names.layerPrefix(layer), moe = names.moe!;
  // transformers 5 saved with save_original_format=False: the routed experts stacked in mlp.experts.gate_up_proj /
  // down_proj, and Mixtral's block_sparse_moe renamed mlp (its router mlp.gate).
  const v5 = store.has(`${p}mlp.experts.gate_up_proj`);
  const stacked = moe.stacked ?? (v5 ? { gateUp: 'mlp.experts.gate_up_proj', down: 'mlp.experts.down_proj' } : null);
  const router = v5 && !store.has(`${p}${moe.router}.weight`) ? moe.v5Router ?? 'mlp.gate' : moe.router;
  set(`layers.${layer}.router.weight`, store.readF32(need(store, `${p}${router}.weight`)));
  const bias = moe.routerBias && v5 && !store.has(`${p}${moe.routerBias}`) ? moe.routerBias.replace('block_sparse_moe.', 'mlp.') : moe.routerBias;
  if (bias) set(`layers.${layer}.router.bias`, store.readF32(need(store, `${p}${bias}`)));
  if (moe.sharedGate) set(`layers.${layer}.shared_gate.weight`, store.readF32(need(store, `${p}${moe.sharedGate}.weight`)));
  if (spec.architecture === 'gpt_oss' || spec.architecture === 'llama4') {  // stored (in, out) per expert
    loadInOutExperts(store, spec, part, `${p}${stacked!.gateUp.replace(/gate_up_proj$/, '')}`, layer, set);
  }
  else if (spec.architecture === 'dbrx') loadDbrxExperts(store, spec, part, p, layer, set);  // w1 / v1 / w2, [E·I, hidden]
  else if (stacked && spec.architecture === 'qwen3_moe' && spec.visionLanguage) {  // Qwen3-VL-MoE: (in, out) as published
    loadEitherWayExperts(store, spec, part, `${p}mlp.experts.`, layer, set);
  }
  else if (stacked) loadStackedExperts(store, spec, part, `${p}${stacked.gateUp}`, `${p}${stacked.down}`, layer, set);
  // Per expert module: every expert as published, or only the shared one after stacked routed experts.
  for (let e = stacked ? spec.moe!.experts : 0; e < spec.moe!.experts + (spec.moe!.sharedExpert ? 1 : 0); e++) {
    const n = moe.expert(e), rows = expertRows(spec, part, e), at = n.gate === n.up ? expertWidth(spec, e) : 0;  // one [gate | up]
    const gate = store.readF32(need(store, `${p}${n.gate}.weight`), { dim: 0, start: rows.start, end: rows.end });
    const up = store.readF32(need(store, `${p}${n.up}.weight`), { dim: 0, start: at + rows.start, end: at + rows.end });
    set(`layers.${layer}.experts.${e}.up.weight`, concat([gate, up]));
    set(`layers.${layer}.experts.${e}.down.weight`, store.readF32(need(store, `${p}${n.down}.weight`), { dim: 1, start: rows.start, end: rows.end }));
  }
}

/**
 * The routed experts stacked in two tensors (Granite MoE as published; any MoE model transformers 5 saved with
 * save_original_format=False): expert e's [gate | up] rows and down columns this rank holds.
 */
function loadStackedExperts(store: TensorSource, spec: ModelSpec, part: Partition, gateUpName: string, downName: string,
  layer: number, set: (name: string, data: Float32Array) => void): void {
  const H = spec.hidden, I = spec.moe!.intermediate, E = spec.moe!.experts, rows = part.expertIntermediate;
  const [gE, gRows, gCols] = store.info(need(store, gateUpName)).shape, [dE, dRows, dCols] = store.info(need(store, downName)).shape;
  if (gE !== E || gRows !== 2 * I || gCols !== H || dE !== E || dRows !== H || dCols !== I) {
    throw new UnsupportedModelError(`'${gateUpName}' / '${downName}' have shapes [${gE}, ${gRows}, ${gCols}] / ` +
      `[${dE}, ${dRows}, ${dCols}], expected [${E}, ${2 * I}, ${H}] / [${E}, ${H}, ${I}]`);
  }
  const w = rangeLen(rows);
  for (let e = 0; e < E; e++) {
    const gateUp = store.readF32(gateUpName, { dim: 0, start: e, end: e + 1 });  // [2I, H]
    set(`layers.${layer}.experts.${e}.up.weight`, concat([
      gateUp.subarray(rows.start * H, rows.end * H), gateUp.subarray((I + rows.start) * H, (I + rows.end) * H)]));
    const down = store.readF32(downName, { dim: 0, start: e, end: e + 1 });  // [H, I]
    const mine = new Float32Array(H * w);
    for (let r = 0; r < H; r++) mine.set(down.subarray(r * I + rows.start, r * I + rows.end), r * w);
    set(`layers.${layer}.experts.${e}.down.weight`, mine);
  }
}

function need(store: TensorSource, name: string): string {
  if (!store.has(name)) throw new UnsupportedModelError(`weight '${name}' is missing from the checkpoint`);
  return name;
}

/** Rows [r.start, r.end) of a 2-D weight's output dimension, as [rows, in]. Conv1D stores [in, out]. */
export function readOutRows(store: TensorSource, name: string, r: Range, conv1d: boolean): Float32Array {
  const info = store.info(name);
  if (!conv1d) return store.readF32(name, { dim: 0, start: r.start, end: r.end });
  const [inDim] = info.shape;
  return transpose(store.readF32(name, { dim: 1, start: r.start, end: r.end }), inDim, rangeLen(r));
}

/** Columns [r.start, r.end) of a 2-D weight's input dimension, as [out, cols]. */
export function readInCols(store: TensorSource, name: string, r: Range, conv1d: boolean): Float32Array {
  const info = store.info(name);
  if (!conv1d) return store.readF32(name, { dim: 1, start: r.start, end: r.end });
  const out = info.shape[1];
  return transpose(store.readF32(name, { dim: 0, start: r.start, end: r.end }), rangeLen(r), out);
}


/** The executor modules whose output rows are sub-blocks from one or more HF tensors (layout.ts subBlocks). */
type ColumnModule = 'qkv' | 'up' | 'q_b' | 'kv_b';

/** Offset of each role's rows inside the HF tensor that provides it. */
function roleOffsets(roles: string[], spec: ModelSpec, part: Partition, module: ColumnModule): Map<string, number> {
  const blocks = subBlocks(spec, part, module);
  const m = new Map<string, number>();
  let off = 0;
  for (const role of roles) {
    m.set(role, off);
    off += blocks.find((b) => b.role === role)!.fullLen;
  }
  return m;
}

/** A column-parallel fused module: each sub-block's local rows, from whichever HF tensor holds that role. */
function assembleColumnParallel(store: TensorSource, spec: ModelSpec, part: Partition, names: HfNames, layer: number,
  module: ColumnModule, suffix: 'weight' | 'bias'): Float32Array | null {
  const { paths, roles, headInterleaved } = names.modules[module]!;
  if (headInterleaved) return assembleInterleavedQkv(store, spec, part, `${names.layerPrefix(layer)}${paths[0]}.${suffix}`, suffix);
  const pieces: Float32Array[] = [];
  for (const block of subBlocks(spec, part, module)) {
    const idx = roles.findIndex((rs) => rs.includes(block.role));
    const name = `${names.layerPrefix(layer)}${paths[idx]}.${suffix}`;
    if (!store.has(name)) {
      if (suffix === 'bias') return null;
      need(store, name);
    }
    const off = roleOffsets(roles[idx], spec, part, module).get(block.role)!;
    const rows = { start: off + block.local.start, end: off + block.local.end };
    pieces.push(suffix === 'bias'
      ? store.readF32(name, { dim: 0, start: rows.start, end: rows.end })
      : readOutRows(store, name, rows, names.conv1d));
  }
  return concat(pieces);
}

/** GPT-NeoX's query_key_value: this rank's heads' rows (contiguous in the tensor, per head q|k|v) as [q | k | v]. */
function assembleInterleavedQkv(store: TensorSource, spec: ModelSpec, part: Partition, name: string,
  suffix: 'weight' | 'bias'): Float32Array | null {
  if (!store.has(name)) {
    if (suffix === 'bias') return null;
    need(store, name);
  }
  const hd = spec.headDim, heads = rangeLen(part.heads);
  const rows = { start: part.heads.start * 3 * hd, end: part.heads.end * 3 * hd };
  const slab = store.readF32(name, { dim: 0, start: rows.start, end: rows.end });
  const cols = suffix === 'bias' ? 1 : spec.hidden;
  return concat([0, 1, 2].map((role) => interleavedHeadRows(slab, cols, role, heads, hd)));
}

// Half-precision checkpoints (most of them) convert on the native pool's threads, sized by createModel below.
useBulkHalfDecoder((src, bf16, out, offset) => cpuOps.decodeHalf(src, bf16, out, offset));

export function loadModel(modelDir: string, spec: ModelSpec, opts: LoadOptions): LoadedModel {
  const store = openModelWeights(modelDir);
  try {
    const part = partitionFor(spec, opts.rank, opts.world);
    if (spec.mamba && (opts.device ?? 'cpu') !== 'cpu') {
      throw new UnsupportedModelError(`${spec.architecture}: hybrid Mamba-2 models run on --device cpu only for now ` +
        `(the CUDA backend has no Mamba kernels yet)`);
    }
    // LocalEngine serves such a model text-only on cuda unless WEFT_CUDA_VLM_IMAGES=1 (qwen-vl-spec.ts's cudaVlmImages:
    // the CUDA kernels' M-RoPE is not verified on a GPU yet).
    if (spec.mropeSection && (opts.device ?? 'cpu') !== 'cpu' && !cudaVlmImages()) {
      throw new UnsupportedModelError(`${spec.architecture}: multimodal RoPE (Qwen2-VL / Qwen2.5-VL images) runs on ` +
        `--device cpu only for now (on cuda it is opt-in until verified on a GPU: WEFT_CUDA_VLM_IMAGES=1); serve with ` +
        `--device cpu`);
    }
    const plan = planConfig(spec, part, opts);
    const native = createModel(plan, opts.collective);
    const names = hfNames(spec, store);
    const set = (name: string, data: Float32Array): void => native.setWeight(name, data);
    // Gemma stores RMSNorm weights as w and applies (1 + w), in fp32 as here.
    const normWeight = (name: string): Float32Array => {
      const w = store.readF32(need(store, name));
      if (spec.normPlusOne) for (let i = 0; i < w.length; i++) w[i] = Math.fround(1 + w[i]!);
      return w;
    };
    const setNorm = (dst: string, src: string): void => {
      if (!spec.normParams) {  // OLMo 1's LayerNorm has no parameters: weight 1, bias 0
        set(`${dst}.weight`, new Float32Array(spec.hidden).fill(1));
        set(`${dst}.bias`, new Float32Array(spec.hidden));
        return;
      }
      const w = normWeight(`${src}.weight`);
      set(`${dst}.weight`, w);
      // A LayerNorm without a bias (Cohere's) is one with a zero bias.
      if (spec.norm === 'layer') set(`${dst}.bias`, spec.normBias ? store.readF32(need(store, `${src}.bias`)) : new Float32Array(w.length));
    };

    set('embed', store.readF32(need(store, names.embed)));
    if (names.posEmbed) set('pos_embed', store.readF32(need(store, names.posEmbed)));
    for (let i = 0; i < spec.layers; i++) {
      const p = names.layerPrefix(i);
      if (spec.preNorms) setNorm(`layers.${i}.attn_norm`, p + names.attnNorm);
      if (spec.preNorms && (!spec.parallelBlock || spec.parallelMlpNorm)) setNorm(`layers.${i}.mlp_norm`, p + names.mlpNorm);
      if (spec.qkNorm) {  // [headDim], the same on every rank (Hunyuan: query_layernorm / key_layernorm)
        const [qn, kn] = spec.architecture.startsWith('hunyuan') ? ['query_layernorm', 'key_layernorm'] : ['q_norm', 'k_norm'];
        set(`layers.${i}.q_norm.weight`, normWeight(`${p}self_attn.${qn}.weight`));
        set(`layers.${i}.k_norm.weight`, normWeight(`${p}self_attn.${kn}.weight`));
      }
      if (spec.mlp === 'xielu') set(`layers.${i}.xielu`, xieluParams((n) => store.readF32(need(store, p + n))));  // Apertus
      if (spec.attnSinks) {  // gpt-oss: [heads], this rank's heads
        set(`layers.${i}.attn_sinks`, store.readF32(need(store, `${p}self_attn.sinks`), { dim: 0, start: part.heads.start, end: part.heads.end }));
      }
      if (spec.qkLayerNorm && spec.architecture === 'stablelm') {  // one LayerNorm module per head: this rank's heads'
        const heads = (name: string, r: Range): Float32Array => concat(Array.from({ length: rangeLen(r) },
          (_, h) => store.readF32(need(store, `${p}self_attn.${name}.norms.${r.start + h}.weight`))));
        set(`layers.${i}.q_norm.weight`, heads('q_layernorm', part.heads));
        set(`layers.${i}.k_norm.weight`, heads('k_layernorm', part.kvHeads));
      } else if (spec.qkLayerNorm) {  // Command R+: [heads, head_dim] / [kv_heads, head_dim], this rank's heads' rows
        set(`layers.${i}.q_norm.weight`, store.readF32(need(store, `${p}self_attn.q_norm.weight`), { dim: 0, start: part.heads.start, end: part.heads.end }));
        set(`layers.${i}.k_norm.weight`, store.readF32(need(store, `${p}self_attn.k_norm.weight`), { dim: 0, start: part.kvHeads.start, end: part.kvHeads.end }));
      }
      if (spec.qkNormFull) {  // OLMo 2: over all heads; each rank holds its heads' slice
        const hd = spec.headDim;
        set(`layers.${i}.q_norm.weight`, store.readF32(need(store, `${p}self_attn.q_norm.weight`),
          { dim: 0, start: part.heads.start * hd, end: part.heads.end * hd }));
        set(`layers.${i}.k_norm.weight`, store.readF32(need(store, `${p}self_attn.k_norm.weight`),
          { dim: 0, start: part.kvHeads.start * hd, end: part.kvHeads.end * hd }));
      }
      if (spec.postNorms) {
        set(`layers.${i}.post_attn_norm.weight`, normWeight(`${p}${names.postAttnNorm}.weight`));
        set(`layers.${i}.post_mlp_norm.weight`, normWeight(`${p}${names.postMlpNorm}.weight`));
      }
      const moe = layerIsMoe(spec, i);
      if (moe) loadMoeLayer(store, spec, part, names, i, set);
      if (spec.mla) {  // the latents' RMS norms (replicated) beside the projections below
        if (spec.mla.qRank > 0) set(`layers.${i}.q_a_norm.weight`, store.readF32(need(store, `${p}self_attn.q_a_layernorm.weight`)));
        set(`layers.${i}.kv_a_norm.weight`, store.readF32(need(store, `${p}self_attn.kv_a_layernorm.weight`)));
      }
      const mixer = spec.mamba?.layers[i] === true;  // a Mamba layer: its mixer in place of q/k/v and o
      if (mixer) loadMambaLayer(store, spec.mamba!, part, p, i, set);
      const columns: ColumnModule[] = [
        ...(mixer ? [] : ['qkv'] as const), ...(moe ? [] : ['up'] as const), ...(spec.mla ? ['kv_b'] as const : []),
        ...(spec.mla && spec.mla.qRank > 0 ? ['q_b'] as const : []),
      ];
      for (const module of columns) {
        set(`layers.${i}.${module}.weight`, assembleColumnParallel(store, spec, part, names, i, module, 'weight')!);
        const bias = assembleColumnParallel(store, spec, part, names, i, module, 'bias');
        if (bias) set(`layers.${i}.${module}.bias`, bias);
      }
      for (const module of [...(mixer ? [] : ['o'] as const), ...(moe ? [] : ['down'] as const)]) {
        const base = `${p}${names.modules[module].paths[0]}`;
        set(`layers.${i}.${module}.weight`, readInCols(store, need(store, `${base}.weight`), rowParallelInput(spec, part, module), names.conv1d));
        // Row-parallel bias is added once, after the all-reduce (C++ side), so every rank holds it whole.
        if (store.has(`${base}.bias`)) set(`layers.${i}.${module}.bias`, store.readF32(`${base}.bias`));
      }
    }
    setNorm('final_norm', names.finalNorm);
    const lmHeadName = lmHeadWeightName(spec, store, names);
    if (!spec.tieEmbeddings && !store.has(names.lmHead)) need(store, names.lmHead);
    set('lm_head', store.readF32(lmHeadName, { dim: 0, start: part.vocab.start, end: part.vocab.end }));
    if (spec.lmHeadBias) {  // Phi-1/2: this rank's vocabulary rows of it
      set('lm_head.bias', store.readF32(need(store, names.lmHead.replace(/weight$/, 'bias')), { dim: 0, start: part.vocab.start, end: part.vocab.end }));
    }
    native.finalize();
    let vision: NativeVisionModel | undefined;
    let qwenVision: NativeQwenVisionModel | undefined;
    let pixtral: NativePixtralVisionModel | undefined;
    try {
      qwenVision = spec.qwenVision ? loadQwenVisionModel(store, spec.qwenVision, spec.hidden) : undefined;
      pixtral = spec.pixtral ? loadPixtralModel(store, spec.pixtral, spec.hidden) : undefined;
      // The vision tower and projector run on the CPU in fp32 (kernels/src/model/vision.cc) whatever --device is: with
      // --device cuda only the language model is on the GPU, and the features reach it as embedding-row overrides
      // (cuda_embed_override.cc). Why that is enough for now: the tower is small next to the language model (CLIP
      // ViT-L/14-336 is ~0.3 B parameters against 7 B), an image costs about 2·params·tokens FLOPs once (~0.35 TFLOP
      // for 577 tokens: a fraction of a second to a few seconds on the shard's cores), and it keeps vision-tower LoRA,
      // tensor parallelism (every rank encodes the same image) and the golden fixtures on one tested code path.
      vision = spec.vision ? loadVisionModel(store, spec.vision, spec.hidden) : undefined;
    } catch (e) {
      native.dispose();
      qwenVision?.dispose();
      pixtral?.dispose();
      throw e;
    }
    return { spec, partition: part, native, plan, ...(vision ? { vision } : {}), ...(qwenVision ? { qwenVision } : {}),
      ...(pixtral ? { pixtral } : {}) };
  } finally {
    store.close();
  }
}
