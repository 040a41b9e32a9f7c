// DeepSeek-V2 (DeepseekV2ForCausalLM: DeepSeek-V2, V2-Lite, V2.5, Coder-V2) and DeepSeek-V3 (DeepseekV3ForCausalLM:
// DeepSeek-V3 / V3.1 / R1, Kimi K2, Moonlight) read into a ModelSpec, as transformers' modeling_deepseek_v2.py /
// modeling_deepseek_v3.py compute them: multi-head latent attention (spec.mla), its decoupled rotary key rotated in
// interleaved pairs (V2 always, as its complex product; V3 by rope_interleave, default true), the softmax scale
// 1/√(qk_head_dim) times YaRN's mscale(factor, mscale_all_dim)² when the RoPE is scaled; V3 routes as GLM-4.5
// (sigmoid) with DeepSeek's defaults, V2 by softmax (greedy, or group_limited_greedy), both with n_shared_experts
// shared experts run as one MLP n times as wide.
import { eosList, int, PLAIN_DECODER, refuseIf, checkQuantization, type Json } from './config-fields.js';
import { computeRope, parseRopeParams, yarnMscale } from './rope.js';
import { sigmoidMoeRouting } from './moe-spec.js';
import type { MlaSpec, ModelSpec } from './spec.js';

// DeepseekV3Config's / DeepseekV2Config's defaults for the fields a published config may leave out.
const DEEPSEEK_V3_ROUTING = { n_shared_experts: 1, n_group: 8, topk_group: 4, first_k_dense_replace: 3, routed_scaling_factor: 2.5 };
const DEEPSEEK_V2_ROUTING = { n_shared_experts: 2, n_group: 1, topk_group: 1, first_k_dense_replace: 0, routed_scaling_factor: 1 };

export function deepseekSpec(arch: 'deepseek_v2' | 'deepseek_v3', cfg: Json, where: string): ModelSpec {
  const v2 = arch === 'deepseek_v2';
  // Every head has its own key and value once kv_b_proj expands them (num_key_value_heads plays no part).
  const hidden = int(cfg, 'hidden_size', where), heads = int(cfg, 'num_attention_heads', where);
  checkQuantization(cfg, where);
  const act = String(cfg.hidden_act ?? 'silu');
  refuseIf(act !== 'silu', where, `hidden_act '${act}' is not supported for ${arch} (only silu)`);
  refuseIf(cfg.attention_bias === true, where, `attention_bias=true is not supported for ${arch}`);
  // null: q_proj (V2-Lite); absent: the configs' default 1536
  const qRank = cfg.q_lora_rank === null ? 0 : cfg.q_lora_rank === undefined ? 1536 : int(cfg, 'q_lora_rank', where);
  const mla: MlaSpec = {
    qRank, kvRank: int(cfg, 'kv_lora_rank', where), nopeDim: int(cfg, 'qk_nope_head_dim', where),
    ropeDim: int(cfg, 'qk_rope_head_dim', where), vDim: int(cfg, 'v_head_dim', where),
  };
  const headDim = mla.nopeDim + mla.ropeDim;
  refuseIf(mla.vDim > headDim, where, `v_head_dim ${mla.vDim} is wider than qk_nope_head_dim + qk_rope_head_dim ${headDim}`);
  const ropeParams = parseRopeParams(cfg);
  refuseIf(ropeParams.partialRotaryFactor !== 1, where, `partial_rotary_factor is not supported for ${arch} (qk_rope_head_dim is the rotary part)`);
  const rope = computeRope(ropeParams, mla.ropeDim);
  const layers = int(cfg, 'num_hidden_layers', where);
  const experts = int(cfg, cfg.n_routed_experts !== undefined ? 'n_routed_experts' : 'num_local_experts', where);
  const perToken = int(cfg, 'num_experts_per_tok', where);
  refuseIf(perToken > experts, where, `num_experts_per_tok ${perToken} is more than the ${experts} experts`);
  const moe = sigmoidMoeRouting(cfg, where, experts, perToken, layers, v2 ? DEEPSEEK_V2_ROUTING : DEEPSEEK_V3_ROUTING, v2);
  return {
    ...PLAIN_DECODER,
    architecture: arch,
    hidden, layers, heads, kvHeads: heads, headDim,
    intermediate: int(cfg, 'intermediate_size', where),
    vocab: int(cfg, 'vocab_size', where),
    maxPositions: Math.max(int(cfg, 'max_position_embeddings', where), rope.scaledContext ?? 0),
    learnedPositions: false,
    rope,
    norm: 'rms',
    normEps: Number(cfg.rms_norm_eps ?? 1e-6),
    mlp: 'gated_silu',
    slidingWindow: 0,
    ropeInterleaved: v2 || cfg.rope_interleave !== false,
    attnScale: mscaleAllDim(cfg) / Math.sqrt(headDim),
    tieEmbeddings: cfg.tie_word_embeddings === true,
    qkvBias: false, oBias: false, mlpBias: false, qkNorm: false,
    moe, mla,
    bosTokenId: typeof cfg.bos_token_id === 'number' ? cfg.bos_token_id : null,
    eosTokenIds: eosList(cfg.eos_token_id),
  };
}

// yarn_apply_mscale: a scaled RoPE with mscale_all_dim multiplies the softmax scale by (0.1·m·ln(factor) + 1)².
function mscaleAllDim(cfg: Json): number {
  const rp = (cfg.rope_parameters ?? cfg.rope_scaling ?? null) as Json | null;
  if (!rp || (rp.rope_type ?? rp.type ?? 'default') === 'default') return 1;
  const m = Number(rp.mscale_all_dim ?? 0), factor = Number(rp.factor);
  if (!m || !(factor > 0)) return 1;
  const s = yarnMscale(factor, m);
  return s * s;
}
