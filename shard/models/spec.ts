// A Hugging Face config.json read into one normalized description of the network. Every field weft
// does not implement exactly is refused here, by name.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { withCheckpointLayout } from './checkpoint-layout.js';
import { UnsupportedModelError } from './errors.js';
import { computeRope, parseRopeParams, type Rope } from './rope.js';
import { attentionShape, NO_BASE_MODEL_LAYOUT, PLAIN_DECODER, refuseIf, checkQuantization, rotaryDecoderShape, type Json } from './config-fields.js';
import { gemma1Spec } from './gemma1-spec.js';
import { gemmaSpec } from './gemma-spec.js';
import { cohereSpec, gptjSpec, gptNeoxSpec, phiSpec } from './parallel-spec.js';
import { attentionWindows, smollm3RopeLayers } from './layer-kinds.js';
import { deepseekSpec } from './deepseek-spec.js';
import { moeSpec } from './moe-spec.js';
import { gptOssConfig, gptOssGluLimit } from './gpt-oss-spec.js';
import { llama4Spec } from './llama4-spec.js';
import { DERIVED_SPECS } from './derived-spec.js';
import { gpt2Spec, starcoder2Spec } from './layernorm-spec.js';
import { bambaSpec, graniteHybridSpec, type MambaSpec } from './hybrid-spec.js';
import { LLAMA_DEFAULTS, QWEN2_DEFAULTS, type VisionSpec } from './llava-spec.js';
import type { QwenVisionSpec } from './qwen-vl-spec.js';
import { visionLanguageSpec } from './vlm-spec.js';
import type { PixtralSpec } from './pixtral-spec.js';

export type Architecture = 'llama' | 'granite' | 'granitemoe' | 'smollm3' | 'olmo' | 'olmo2' | 'olmo3' | 'olmoe' | 'glm4' | 'glm4_moe' | 'mistral' | 'mixtral' | 'qwen2' | 'qwen2_moe' | 'qwen3' | 'qwen3_moe' |
  'cohere' | 'cohere2' | 'phi' | 'seed_oss' | 'dots1' | 'ernie4_5' | 'ernie4_5_moe' | 'exaone4' | 'arcee' |
  'gemma' | 'gemma2' | 'gemma3' | 'phi3' | 'starcoder2' | 'gpt2' | 'gptj' | 'gpt_neox' | 'deepseek_v2' | 'deepseek_v3' | 'gpt_oss' | 'llama4' |
  'nemotron' | 'helium' | 'cwm' | 'vaultgemma' | 'hunyuan_v1_dense' | 'jais2' | 'stablelm' | 'flex_olmo' | 'minimax_m2' | 'granitemoeshared' |
  'phimoe' | 'hunyuan_v1_moe' | 'apertus' | 'dbrx' | 'granitemoehybrid' | 'bamba';

/**
 * A mixture-of-experts MLP (Mixtral, Qwen3-MoE, GLM-4.5): a router picks `perToken` of `experts` SwiGLU experts per
 * token, each `intermediate` wide — softmax over all of them, the top ones renormalised to sum 1 when `renormalize`;
 * or (`sigmoid`, GLM-4.5) sigmoid scores ranked with the checkpoint's e_score_correction_bias within the `topkGroups`
 * best of `groups` groups, renormalised when asked, times `routedScale`. `sharedExpert`: one more expert of the same
 * width runs for every token (GLM-4.5's shared_experts), added with weight 1.
 */
export interface MoeSpec {
  experts: number;
  perToken: number;
  intermediate: number;
  renormalize: boolean;
  sigmoid: boolean;
  groups: number;
  topkGroups: number;
  routedScale: number;
  sharedExpert: boolean;
  /** The shared expert's own width (Qwen2-MoE's shared_expert_intermediate_size, DeepSeek-V2's n × moe width); absent: `intermediate`. */
  sharedIntermediate?: number;
  /** Qwen2-MoE: the shared expert's output times sigmoid(shared_expert_gate(x)) instead of 1. */
  sharedGate?: boolean;
  /** DeepSeek-V2's group_limited_greedy: softmax routing within the `topkGroups` groups with the largest best probability. */
  groupMax?: boolean;
  /** ERNIE 4.5 MoE: the softmax choice adds e_score_correction_bias; weights renormalised by max(sum, renormMin). */
  choiceBias?: boolean;
  renormMin?: number;
  /** gpt-oss: the router's bias is added to its logits (a linear layer with a bias). */
  logitBias?: boolean;
  /** gpt-oss: each expert's gate_up and down projections have biases. */
  expertBias?: boolean;
  /** gpt-oss: the stacked gate_up_proj's outputs alternate gate, up (columns 2i, 2i+1) — in the weights, biases and lora_B. */
  gateUpInterleaved?: boolean;
  /** Llama 4: each routed expert's input is scaled by its routing weight (sigmoid of its logit), its output added whole. */
  scaleInput?: boolean;
  /** Phi-3.5-MoE's sparsemixer (moe_route.h): its mask threshold 2 · router_jitter_noise (float32); absent: not sparsemixer. */
  mixerThreshold?: number;
  /** Per layer, false = a dense MLP of spec.intermediate (Qwen3-MoE's mlp_only_layers, decoder_sparse_step); null: every layer is MoE. */
  layers: boolean[] | null;
}

/**
 * Multi-head latent attention (DeepSeek-V2/V3, Kimi K2): q from q_a_proj → q_a_layernorm → q_b_proj (qRank > 0) or
 * q_proj; the keys and values from kv_a_proj_with_mqa ([kvRank latent | ropeDim shared rotary key]) → kv_a_layernorm
 * → kv_b_proj (each head's [nopeDim key | vDim value]). headDim = nopeDim + ropeDim; o_proj reads heads·vDim.
 */
export interface MlaSpec {
  qRank: number;
  kvRank: number;
  nopeDim: number;
  ropeDim: number;
  vDim: number;
}

export interface ModelSpec {
  architecture: Architecture;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  vocab: number;
  maxPositions: number;
  norm: 'rms' | 'layer';
  normEps: number;
  mlp: 'gated_silu' | 'gated_gelu_tanh' | 'clamped_swiglu' | 'gelu_tanh' | 'gelu_erf' | 'relu2' | 'xielu';
  /** clamped_swiglu (gpt-oss): the clamp of the gate (above) and the up projection (both ways). */
  gluLimit?: number;
  /** gpt-oss: each attention head's learned sink logit (self_attn.sinks) joins its softmax. */
  attnSinks: boolean;
  learnedPositions: boolean;
  rope: Rope | null;
  slidingWindow: number;
  /**
   * Gemma 3 interleaves attention kinds: per layer, true = sliding window (slidingWindow, ropeLocal) and false = full
   * attention (no window, rope). null: every layer alike (slidingWindow, rope).
   */
  layerSliding: boolean[] | null;
  /** GLM-4: RoPE rotates dims (2i, 2i+1) together (GPT-J style) instead of (i, i + rotary_dim/2). */
  ropeInterleaved: boolean;
  /** SmolLM3: per layer, false = no rotary embedding (NoPE); null = every layer rotates. */
  layerRope: boolean[] | null;
  ropeLocal: Rope | null;
  attnScale: number;
  tieEmbeddings: boolean;
  /** q/k/v projections carry biases (Qwen2; Llama with attention_bias). */
  qkvBias: boolean;
  oBias: boolean;
  mlpBias: boolean;
  /** Qwen3: q and k RMS-normalised per head (self_attn.q_norm / k_norm, [headDim]) before RoPE. */
  qkNorm: boolean;
  /** Hunyuan: the qkNorm comes after RoPE (self_attn.query_layernorm / key_layernorm); absent: before. */
  qkNormPostRope?: boolean;
  /** OLMo 2: q and k RMS-normalised over all heads (q_norm [heads·headDim], k_norm [kvHeads·headDim]) before RoPE. */
  qkNormFull: boolean;
  /** Command R+: q and k LayerNorm-ed per head (no bias), each head its own weights (q_norm [heads, headDim]). */
  qkLayerNorm: boolean;
  /** false (OLMo 2): no norm before attention or the MLP; the block outputs are normalised instead (postNorms). */
  preNorms: boolean;
  /** Cohere, Phi-1/2: attention and the MLP read one normed input (input_layernorm) and both add to the residual. */
  parallelBlock: boolean;
  /** GPT-NeoX: in the parallel block the MLP reads its own norm of the block input (post_attention_layernorm). */
  parallelMlpNorm: boolean;
  /** false (Cohere): LayerNorms without a bias (the plan gets zeros). */
  normBias: boolean;
  /** false (OLMo 1): LayerNorms with neither weight nor bias (the plan gets ones and zeros). */
  normParams: boolean;
  /** OLMo, OLMoE clip_qkv: q, k, v clamped to [-qkvClip, qkvClip] after the projection (and q/k norms); 0: none. */
  qkvClip: number;
  /**
   * Ministral 3 (rope_parameters.llama_4_scaling_beta): after RoPE each query times 1 + beta·ln(1 + ⌊position / period⌋),
   * period the RoPE's original_max_position_embeddings; null: none.
   */
  queryScale: { beta: number; period: number; offset?: number; nopeOnly?: boolean } | null;
  /** Llama 4 (use_qk_norm): q and k RMS-normalised per head without weights after RoPE, in the layers with RoPE. */
  qkNormAfterRope: boolean;
  /** Llama 4: chunked attention — per layer, true = a query sees only the keys of its own attentionChunk-position chunk. */
  attentionChunk: number;
  layerChunked: boolean[] | null;
  /** Phi-1/2: the lm_head has a bias. */
  lmHeadBias: boolean;
  /** A base-model checkpoint (Gemma3TextModel, LlamaModel): no lm_head (the embedding's copy is computed, never read)
   * and weights without the `model.` prefix. It only embeds. */
  baseModel?: boolean;
  /** Gemma 3's use_bidirectional_attention (EmbeddingGemma): attention is not causal, and slidingWindow is two-sided
   * (key j seen from i when |i - j| < slidingWindow). It only embeds, each prompt computed whole. */
  bidirectional?: boolean;
  /** Gemma: the token embedding times this (√hidden); 1 elsewhere. */
  embedScale: number;
  /** Gemma: RMSNorm weights are stored as w and applied as (1 + w) (folded into the weights when loading). */
  normPlusOne: boolean;
  /** Gemma 3: each block's output is RMS-normalised before the residual add (post_attention / post_feedforward). */
  postNorms: boolean;
  /**
   * The checkpoint is a vision-language model (Gemma3ForConditionalGeneration) whose language model weft serves for
   * text requests: its weights sit under `language_model.model.` (or `model.language_model.`), and adapter pairs
   * on the vision tower / projector have no effect on text and are dropped at load.
   */
  visionLanguage: boolean;
  /** Gemma 2: tanh caps (0 = none) on the attention scores and on the final logits. */
  attnSoftcap: number;
  finalSoftcap: number;
  /** Granite: each block's output times this before the residual add (residual_multiplier); 1 elsewhere. */
  residualScale: number;
  /** Granite: the logits divided by this (logits_scaling); 1 elsewhere. */
  logitsDivisor: number;
  /** A mixture-of-experts MLP (Mixtral, Qwen3-MoE); null: dense. */
  moe: MoeSpec | null;
  /** Multi-head latent attention (DeepSeek-V3); null: q/k/v projections. */
  mla: MlaSpec | null;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** Hybrid Mamba-2 / attention (Granite 4.0 H): the Mamba mixers (hybrid-spec.ts); absent: attention everywhere. */
  mamba?: MambaSpec;
  /** A vision-language model whose images weft encodes (LLaVA: llava-spec.ts); absent: text only. */
  vision?: VisionSpec;
  /** Qwen2-VL / Qwen2.5-VL: the dynamic-resolution vision tower (qwen-vl-spec.ts); absent: none. */
  qwenVision?: QwenVisionSpec;
  /** Mistral 3: the Pixtral vision tower + projector (pixtral-spec.ts); an image's range holds row breaks. Absent: none. */
  pixtral?: PixtralSpec;
  /** Multimodal RoPE (Qwen2-VL): rotary frequencies per (temporal, height, width) section; an image's tokens get
   * 3-D positions (mrope.ts). Absent: one position per token. */
  mropeSection?: [number, number, number];
  /** Qwen3-VL: mropeSection's frequencies interleaved (t h w t h w …) rather than in runs. */
  mropeInterleaved?: boolean;
}

/** Whether layer `l`'s MLP is a mixture of experts. */
export function layerIsMoe(spec: Pick<ModelSpec, 'moe'>, l: number): boolean {
  return spec.moe !== null && (spec.moe.layers === null || spec.moe.layers[l] === true);
}


const ARCHITECTURES: Record<string, Architecture> = {
  LlamaForCausalLM: 'llama',
  GraniteForCausalLM: 'granite',
  GraniteMoeForCausalLM: 'granitemoe',
  GraniteMoeSharedForCausalLM: 'granitemoeshared',
  GraniteMoeHybridForCausalLM: 'granitemoehybrid',
  BambaForCausalLM: 'bamba',
  SmolLM3ForCausalLM: 'smollm3',
  OlmoForCausalLM: 'olmo',
  Olmo2ForCausalLM: 'olmo2',
  Olmo3ForCausalLM: 'olmo3',
  OlmoeForCausalLM: 'olmoe',
  FlexOlmoForCausalLM: 'flex_olmo',
  CohereForCausalLM: 'cohere',
  Cohere2ForCausalLM: 'cohere2',
  PhiForCausalLM: 'phi',
  SeedOssForCausalLM: 'seed_oss',
  Ernie4_5ForCausalLM: 'ernie4_5',
  Ernie4_5_MoeForCausalLM: 'ernie4_5_moe',
  Exaone4ForCausalLM: 'exaone4',
  ArceeForCausalLM: 'arcee',
  Glm4ForCausalLM: 'glm4',
  MistralForCausalLM: 'mistral',
  MixtralForCausalLM: 'mixtral',
  Qwen3MoeForCausalLM: 'qwen3_moe',
  Qwen2MoeForCausalLM: 'qwen2_moe',
  Glm4MoeForCausalLM: 'glm4_moe',
  Dots1ForCausalLM: 'dots1',
  Mistral3ForConditionalGeneration: 'mistral',
  Ministral3ForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
  Qwen3ForCausalLM: 'qwen3',
  Qwen2VLForConditionalGeneration: 'qwen2',
  Qwen2_5_VLForConditionalGeneration: 'qwen2',
  Qwen3VLForConditionalGeneration: 'qwen3',
  Qwen3VLMoeForConditionalGeneration: 'qwen3_moe',
  GemmaForCausalLM: 'gemma',
  Gemma2ForCausalLM: 'gemma2',
  Gemma3ForCausalLM: 'gemma3',
  Gemma3ForConditionalGeneration: 'gemma3',
  Phi3ForCausalLM: 'phi3',
  Starcoder2ForCausalLM: 'starcoder2',
  GPT2LMHeadModel: 'gpt2',
  GPTNeoXForCausalLM: 'gpt_neox',
  GPTJForCausalLM: 'gptj',
  DeepseekV2ForCausalLM: 'deepseek_v2',
  DeepseekV3ForCausalLM: 'deepseek_v3',
  GptOssForCausalLM: 'gpt_oss',
  Llama4ForCausalLM: 'llama4',
  Llama4ForConditionalGeneration: 'llama4',
  LlavaForConditionalGeneration: 'llama',  // or mistral / qwen2: its text_config's (llava-spec.ts)
  Idefics3ForConditionalGeneration: 'llama', SmolVLMForConditionalGeneration: 'llama',  // idefics3-spec.ts
  NemotronForCausalLM: 'nemotron', HeliumForCausalLM: 'helium', CwmForCausalLM: 'cwm', VaultGemmaForCausalLM: 'vaultgemma',
  HunYuanDenseV1ForCausalLM: 'hunyuan_v1_dense', Jais2ForCausalLM: 'jais2', StableLmForCausalLM: 'stablelm', MiniMaxM2ForCausalLM: 'minimax_m2',
  ApertusForCausalLM: 'apertus', DbrxForCausalLM: 'dbrx',
  PhimoeForCausalLM: 'phimoe', PhiMoEForCausalLM: 'phimoe', HunYuanMoEV1ForCausalLM: 'hunyuan_v1_moe',  // PhiMoE…: as published
};

export function readModelSpec(modelDir: string): ModelSpec {
  const path = join(modelDir, 'config.json');
  if (!existsSync(path)) throw new UnsupportedModelError(`${modelDir} has no config.json; point --model-id at a Hugging Face model directory`);
  let cfg: Json;
  try {
    cfg = JSON.parse(readFileSync(path, 'utf8')) as Json;
  } catch (e) {
    throw new UnsupportedModelError(`${path} is not valid JSON: ${(e as Error).message}`);
  }
  return withCheckpointLayout(parseModelSpec(cfg, path), modelDir);
}

/**
 * A *ForSequenceClassification checkpoint (a reward model, a classifier) is its decoder plus a `score` head in place
 * of the lm_head: the shards run it as the causal LM of the same family (the missing lm_head falls back to the
 * embedding, is computed and never read: such a model does not generate) and the coordinator applies the head to the final
 * hidden state (coordinator/adapters/classifier-head.ts). Returns that causal LM's architecture name, or null.
 */
export function sequenceClassifierBase(archName: string): string | null {
  const m = /^(\w+)ForSequenceClassification$/.exec(archName);
  if (!m) return null;
  const causal = m[1] === 'GPT2' ? 'GPT2LMHeadModel' : `${m[1]}ForCausalLM`;
  return causal in ARCHITECTURES ? causal : null;
}


/**
 * A base-model checkpoint — Gemma3TextModel (EmbeddingGemma), LlamaModel, Qwen2Model, …: how sentence-transformers
 * saves a decoder embedder — is the decoder without an lm_head, its weights without the `model.` prefix. The shards
 * run it as the causal LM of the same family (the lm_head falls back to the embedding, computed and never read: it
 * only embeds). Returns that causal LM's architecture name, or null.
 */
export function baseModelCausal(archName: string): string | null {
  const m = /^(\w+?)(?:Text)?Model$/.exec(archName);
  if (!m || archName in ARCHITECTURES) return null;
  const causal = `${m[1]}ForCausalLM`;
  const arch = ARCHITECTURES[causal];
  return arch !== undefined && !NO_BASE_MODEL_LAYOUT.has(arch) ? causal : null;
}

export function parseModelSpec(cfg: Json, where = 'config.json'): ModelSpec {
  const archName = Array.isArray(cfg.architectures) ? String(cfg.architectures[0]) : '';
  const causal = sequenceClassifierBase(archName);
  // The decoder only: the lm_head the shards need reads the embedding (the checkpoint has none).
  if (causal !== null) return { ...parseModelSpec({ ...cfg, architectures: [causal] }, where), tieEmbeddings: true, lmHeadBias: false };
  const base = baseModelCausal(archName);
  if (base !== null) {
    return { ...parseModelSpec({ ...cfg, architectures: [base] }, where), tieEmbeddings: true, lmHeadBias: false, baseModel: true };
  }
  const arch = ARCHITECTURES[archName];
  if (!arch) {
    throw new UnsupportedModelError(`${where}: architecture '${archName || String(cfg.model_type)}' is not supported ` +
      `(supported: ${Object.keys(ARCHITECTURES).join(', ')})`);
  }
  if (arch === 'gpt2') return gpt2Spec(cfg, where);
  if (arch === 'starcoder2') return starcoder2Spec(cfg, where);
  if (arch === 'gemma') return gemma1Spec(cfg, where);
  if (arch === 'gemma2' || arch === 'gemma3') return gemmaSpec(archName, cfg, where);
  if (arch === 'cohere' || arch === 'cohere2') return cohereSpec(arch, cfg, where);
  if (arch === 'phi') return phiSpec(cfg, where);
  if (arch === 'gpt_neox') return gptNeoxSpec(cfg, where);
  if (arch === 'gptj') return gptjSpec(cfg, where);
  if (arch === 'deepseek_v2' || arch === 'deepseek_v3') return deepseekSpec(arch, cfg, where);
  if (arch === 'llama4') return llama4Spec(archName, cfg, where);
  if (arch === 'granitemoehybrid') return graniteHybridSpec(cfg, where, (c) => llamaFamilySpec('granitemoeshared', c, where));
  if (arch === 'bamba') return bambaSpec(cfg, where, (c) => llamaFamilySpec('llama', c, where));
  const derived = DERIVED_SPECS[arch];  // Nemotron, Jais 2, StableLM, Helium, CWM, Hunyuan, VaultGemma, MiniMax-M2, PhiMoE
  if (derived) return derived(cfg, where);
  if (arch === 'gpt_oss') {
    const oss = gptOssConfig(cfg, where);
    return { ...llamaFamilySpec(arch, oss, where), mlp: 'clamped_swiglu', gluLimit: gptOssGluLimit(oss, where), attnSinks: true };
  }
  const vlm = visionLanguageSpec(archName, cfg, where, (a, text) => llamaFamilySpec(a, text, where),
    { llama: LLAMA_DEFAULTS, mistral: MISTRAL_DEFAULTS, qwen2: QWEN2_DEFAULTS });
  if (vlm) return vlm;
  return llamaFamilySpec(arch, cfg, where);
}

// MistralConfig's defaults: a Mistral3ForConditionalGeneration text_config sets only what differs from them.
const MISTRAL_DEFAULTS: Json = {
  vocab_size: 32000, hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32,
  num_key_value_heads: 8, hidden_act: 'silu', max_position_embeddings: 131_072, rms_norm_eps: 1e-6, sliding_window: 4096,
  tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
};

function llamaFamilySpec(arch: Architecture, cfg: Json, where: string): ModelSpec {
  const { hidden, heads, kvHeads, headDim } = attentionShape(cfg, where);
  // Arcee (AFM): a non-gated up → relu² → down MLP; every other one here is SwiGLU.
  const act = String(cfg.hidden_act ?? (arch === 'arcee' ? 'relu2' : 'silu'));
  const wantAct = arch === 'arcee' ? 'relu2' : 'silu';
  refuseIf(act !== wantAct, where, `hidden_act '${act}' is not supported for ${arch} (only ${wantAct})`);
  refuseIf(typeof cfg.pretraining_tp === 'number' && cfg.pretraining_tp > 1, where, 'pretraining_tp > 1 is not supported');
  checkQuantization(cfg, where);
  // Qwen2 always has q/k/v biases (and none on o); Llama and Qwen3 put attention_bias on all four projections, gpt-oss
  // too (by default); GLM-4.5 on q/k/v only; Mistral and Mixtral have none.
  const attnBias = arch === 'qwen2' ? true : arch === 'gpt_oss' ? cfg.attention_bias !== false
    : arch === 'qwen2_moe' ? cfg.qkv_bias !== false : arch !== 'mistral' && arch !== 'mixtral' && cfg.attention_bias === true;
  const qwen3 = arch === 'qwen3' || arch === 'qwen3_moe';
  const ropes = arch === 'olmo3' ? olmo3Ropes(cfg, headDim) : { rope: computeRope(parseRopeParams(cfg), headDim), local: null };
  const rope = ropes.rope;
  const granite = arch.startsWith('granite') ? graniteMultipliers(cfg, where) : null;  // Granite, Granite MoE (shared)
  const windows = attentionWindows(arch, cfg, where);
  return {
    architecture: arch,
    ...rotaryDecoderShape(cfg, where, { hidden, heads, kvHeads, headDim }, rope),
    norm: 'rms',
    normEps: Number(cfg.rms_norm_eps ?? 1e-6),
    mlp: arch === 'arcee' ? 'relu2' : 'gated_silu',
    slidingWindow: windows.window,
    attnScale: granite ? granite.attnScale : 1 / Math.sqrt(headDim),
    tieEmbeddings: cfg.tie_word_embeddings === true,
    qkvBias: attnBias,
    oBias: (arch === 'llama' || arch.startsWith('granite') || arch === 'smollm3' || arch === 'dots1' || arch.includes('olmo') || qwen3 ||
      arch === 'gpt_oss') &&
      cfg.attention_bias === true,
    mlpBias: (arch === 'llama' || arch === 'granite' || arch === 'smollm3' || arch === 'arcee') && cfg.mlp_bias === true,
    qkNorm: qwen3 || arch === 'dots1' || (arch === 'glm4_moe' && cfg.use_qk_norm === true),
    ...PLAIN_DECODER,
    moe: moeSpec(arch, cfg, where),
    ...(arch === 'glm4' ? { postNorms: true, ropeInterleaved: true } : {}),
    // OLMo 2 (modeling_olmo2.py): h + post_attention_layernorm(attn(h)), then h + post_feedforward_layernorm(mlp(h));
    // FlexOLMo: that block with OLMoE's experts as its MLP
    ...(arch === 'olmo2' || arch === 'olmo3' || arch === 'flex_olmo' ? { postNorms: true, preNorms: false, qkNormFull: true } : {}),
    ...(arch === 'olmoe' ? { qkNormFull: true, qkvClip: clipQkv(cfg, where) } : {}),  // OLMoE: Llama's pre-norms, OLMo 2's q/k norms
    // OLMo 1: LayerNorms without parameters (eps 1e-5, as OlmoLayerNorm fixes it), attention_bias on all four
    ...(arch === 'olmo' ? { norm: 'layer' as const, normEps: 1e-5, normParams: false, normBias: false, qkvClip: clipQkv(cfg, where) } : {}),
    // EXAONE 4: OLMo 2's block-output norms with Qwen3's per-head q/k norms; RoPE only in its sliding layers when it
    // has a window (the global ones have none)
    ...(arch === 'exaone4' ? { postNorms: true, preNorms: false, qkNorm: true,
      ...(windows.layerSliding ? { layerRope: windows.layerSliding } : {}) } : {}),
    ...(arch === 'seed_oss' ? seedOssBiases(cfg) : {}),
    // ERNIE 4.5: use_bias on every projection, RoPE on interleaved pairs (its rotate_half takes dims 2i, 2i+1), tied
    ...(arch === 'ernie4_5' || arch === 'ernie4_5_moe' ? { qkvBias: cfg.use_bias === true, oBias: cfg.use_bias === true, mlpBias: cfg.use_bias === true,
      ropeInterleaved: true, tieEmbeddings: cfg.tie_word_embeddings !== false } : {}),
    layerSliding: windows.layerSliding,
    ...(ropes.local && windows.layerSliding ? { ropeLocal: ropes.local } : {}),
    ...(arch === 'smollm3' ? { layerRope: smollm3RopeLayers(cfg, where) } : {}),
    queryScale: llama4QueryScale(cfg, where),
    ...(granite ? { embedScale: granite.embedScale, residualScale: granite.residualScale, logitsDivisor: granite.logitsDivisor } : {}),
  };
}

/**
 * OLMo 3's two RoPE settings (Olmo3Config): transformers 5 keeps them in rope_parameters.{full_attention,
 * sliding_attention}; published (transformers 4) configs have one rope_theta (default 500000) and rope_scaling for the
 * full-attention layers only — YaRN there, with its attention factor, while the sliding layers rotate plainly.
 */
function olmo3Ropes(cfg: Json, headDim: number): { rope: Rope; local: Rope } {
  const rp = cfg.rope_parameters as Json | null | undefined;
  if (rp && typeof rp === 'object' && ('full_attention' in rp || 'sliding_attention' in rp)) {
    const theta = (p: unknown) => ({ rope_theta: 500_000, ...((p ?? {}) as Json) });
    return { rope: computeRope(parseRopeParams({ rope_parameters: theta(rp.full_attention) }), headDim),
      local: computeRope(parseRopeParams({ rope_parameters: theta(rp.sliding_attention) }), headDim) };
  }
  const theta = Number(cfg.rope_theta ?? 500_000);
  const scaling = (cfg.rope_scaling ?? null) as Json | null;
  return { rope: computeRope(parseRopeParams({ rope_parameters: { ...(scaling ?? {}), rope_theta: theta } }), headDim),
    local: computeRope(parseRopeParams({ rope_parameters: { rope_theta: theta } }), headDim) };
}

// Ministral 3's position-dependent query scale (transformers' get_llama_4_attn_scale), read from the RoPE parameters.
function llama4QueryScale(cfg: Json, where: string): { beta: number; period: number } | null {
  const rp = (cfg.rope_parameters ?? cfg.rope_scaling ?? null) as Json | null;
  const beta = rp?.llama_4_scaling_beta;
  if (beta === undefined || beta === null || beta === 0) return null;
  refuseIf(typeof beta !== 'number' || !Number.isFinite(beta), where, `llama_4_scaling_beta must be a number, got ${JSON.stringify(beta)}`);
  const period = rp!.original_max_position_embeddings;
  refuseIf(!(typeof period === 'number' && Number.isInteger(period) && period > 0), where,
    'llama_4_scaling_beta needs original_max_position_embeddings in the RoPE parameters (the period of its query scale)');
  return { beta: beta as number, period: period as number };
}

// OLMo / OLMoE's clip_qkv: null (none) or a positive bound.
function clipQkv(cfg: Json, where: string): number {
  const c = cfg.clip_qkv;
  if (c === null || c === undefined) return 0;
  refuseIf(!(typeof c === 'number' && c > 0), where, `clip_qkv must be null or a positive number, got ${JSON.stringify(c)}`);
  return c as number;
}

// Seed-OSS (SeedOssConfig): q/k/v biases by attention_bias (default true), the output projection's by
// attention_out_bias, the MLP's by mlp_bias.
function seedOssBiases(cfg: Json) {
  return { qkvBias: cfg.attention_bias !== false, oBias: cfg.attention_out_bias === true, mlpBias: cfg.mlp_bias === true };
}

// Granite 3.x (GraniteForCausalLM): Llama with four multipliers, as transformers' modeling_granite.py applies them —
// the embedding times embedding_multiplier, attention scores times attention_multiplier (instead of 1/√head_dim),
// each block's output times residual_multiplier before the residual add, the logits divided by logits_scaling.
function graniteMultipliers(cfg: Json, where: string) {
  const positive = (key: string): number => {
    const v = cfg[key] ?? 1;
    refuseIf(!(typeof v === 'number' && v > 0), where, `${key} must be a positive number, got ${JSON.stringify(v)}`);
    return v as number;
  };
  return {
    embedScale: positive('embedding_multiplier'), attnScale: positive('attention_multiplier'),
    residualScale: positive('residual_multiplier'), logitsDivisor: positive('logits_scaling'),
  };
}
