// DBRX (DbrxForCausalLM: Databricks DBRX base / instruct), as transformers' modeling_dbrx.py computes it: LayerNorms
// without a bias (eps 1e-5), one fused Wqkv projection whose output is clamped to [-clip_qkv, clip_qkv], RoPE on whole
// heads, and every layer a mixture of SwiGLU experts (softmax over all experts, the top k, divided by their p-norm for
// moe_normalize_expert_weights = p). Its config nests the attention and MLP fields in attn_config / ffn_config; the
// checkpoint's names and fused expert tensors are read by dbrx-weights.ts.
import { attentionShape, checkQuantization, eosList, int, PLAIN_DECODER, refuseIf, type Json } from './config-fields.js';
import { wholeHeadRope } from './layernorm-spec.js';
import type { Rope } from './rope.js';
import type { ModelSpec } from './spec.js';

// DbrxConfig's, DbrxAttentionConfig's and DbrxFFNConfig's defaults.
const DBRX_DEFAULTS: Json = { d_model: 2048, n_heads: 16, n_layers: 24, max_seq_len: 2048, vocab_size: 32_000 };
const ATTN_DEFAULTS: Json = { clip_qkv: null, kv_n_heads: 1 };
const FFN_DEFAULTS: Json = { ffn_act_fn: { name: 'silu' }, ffn_hidden_size: 3584, moe_num_experts: 4, moe_top_k: 1,
  moe_normalize_expert_weights: 1 };

function nested(cfg: Json, key: string, defaults: Json, where: string): Json {
  const v = cfg[key] ?? {};
  refuseIf(typeof v !== 'object' || Array.isArray(v), where, `${key} must be an object`);
  return { ...defaults, ...(v as Json) };
}

export function dbrxSpec(raw: Json, where: string): ModelSpec {
  const cfg: Json = { ...DBRX_DEFAULTS, ...raw };
  const attn = nested(cfg, 'attn_config', ATTN_DEFAULTS, `${where} attn_config`);
  const ffn = nested(cfg, 'ffn_config', FFN_DEFAULTS, `${where} ffn_config`);
  checkQuantization(cfg, where);
  refuseIf(cfg.tie_word_embeddings === true, where, 'tie_word_embeddings=true is not supported for dbrx (transformers refuses it)');
  const shape = attentionShape({ hidden_size: int(cfg, 'd_model', where), num_attention_heads: int(cfg, 'n_heads', where),
    num_key_value_heads: int(attn, 'kv_n_heads', `${where} attn_config`) }, where);
  const act = ffn.ffn_act_fn as Json | null;
  refuseIf(!act || typeof act !== 'object' || act.name !== 'silu' || Object.keys(act).some((k) => k !== 'name'), where,
    `ffn_config.ffn_act_fn ${JSON.stringify(act)} is not supported for dbrx (only {"name": "silu"})`);
  refuseIf(ffn.uniform_expert_assignment === true, where, 'ffn_config.uniform_expert_assignment=true is not supported for dbrx');
  const experts = int(ffn, 'moe_num_experts', `${where} ffn_config`), perToken = int(ffn, 'moe_top_k', `${where} ffn_config`);
  refuseIf(perToken > experts, where, `ffn_config.moe_top_k ${perToken} is more than the ${experts} experts`);
  // The chosen softmax probabilities divided by their p-norm: p = 1 (the published configs) is their sum, as any MoE
  // renormalisation; null leaves them as they are. Other powers are refused rather than approximated.
  const p = ffn.moe_normalize_expert_weights;
  refuseIf(p !== null && p !== 1, where,
    `ffn_config.moe_normalize_expert_weights ${JSON.stringify(p)} is not supported for dbrx (only 1, the sum, or null)`);
  const clip = attn.clip_qkv;
  refuseIf(clip !== null && !(typeof clip === 'number' && clip > 0), where,
    `attn_config.clip_qkv must be null or a positive number, got ${JSON.stringify(clip)}`);
  const intermediate = int(ffn, 'ffn_hidden_size', `${where} ffn_config`);
  const rope = dbrxRope(cfg, attn, shape.headDim, where);
  return {
    ...PLAIN_DECODER,
    architecture: 'dbrx',
    ...shape,
    layers: int(cfg, 'n_layers', where),
    intermediate,
    vocab: int(cfg, 'vocab_size', where),
    maxPositions: Math.max(int(cfg, 'max_seq_len', where), rope.scaledContext ?? 0),
    learnedPositions: false,
    rope,
    bosTokenId: typeof cfg.bos_token_id === 'number' ? cfg.bos_token_id : null,
    eosTokenIds: eosList(cfg.eos_token_id),
    norm: 'layer', normEps: 1e-5, normBias: false,  // nn.LayerNorm(d_model, bias=False)
    mlp: 'gated_silu',
    slidingWindow: 0,
    attnScale: 1 / Math.sqrt(shape.headDim),
    tieEmbeddings: false,
    qkvBias: false, oBias: false, mlpBias: false, qkNorm: false,
    qkvClip: clip === null ? 0 : clip as number,
    moe: { experts, perToken, intermediate, renormalize: p === 1, layers: null, sigmoid: false, groups: 1, topkGroups: 1,
      routedScale: 1, sharedExpert: false },
  };
}

/**
 * DBRX's RoPE base is attn_config.rope_theta (DbrxAttention's, 500,000 in the published configs). transformers 5 builds
 * the rotary embedding from the top-level rope_parameters instead (rope_theta 10,000 when they are absent): where
 * both are given they must agree, else the config is refused rather than served with one of the two.
 */
function dbrxRope(cfg: Json, attn: Json, headDim: number, where: string): Rope {
  const rp = (cfg.rope_parameters ?? cfg.rope_scaling ?? null) as Json | null;
  const top = rp?.rope_theta ?? cfg.rope_theta;
  const own = attn.rope_theta;
  refuseIf(top !== undefined && own !== undefined && top !== own, where,
    `attn_config.rope_theta ${String(own)} differs from the top-level rope_theta ${String(top)} (transformers 5 uses ` +
    'the top-level one, DBRX defines the attn_config one); not supported');
  return wholeHeadRope({ rope_parameters: { ...(rp ?? {}), rope_theta: top ?? own ?? 10_000 } }, headDim, 'dbrx', where);
}
