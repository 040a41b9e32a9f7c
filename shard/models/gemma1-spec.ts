// Gemma 1 (GemmaForCausalLM: gemma-2b, gemma-7b, gemma-1.1, CodeGemma) config.json → ModelSpec, as transformers'
// modeling_gemma.py computes it: Llama's layout (pre-norms only, no sliding window, no caps) with a GeGLU MLP,
// (1 + w) RMSNorms, the embedding scaled by √hidden, head_dim 256 by default (gemma-7b's 16 heads are 4,096 wide
// over a hidden size of 3,072) and tied embeddings.
//
// The activation: Gemma is defined with the tanh approximation of GELU. The published configs say `hidden_act:
// "gelu"` (and, since gemma-1.1, `hidden_activation: "gelu_pytorch_tanh"`); transformers 4.x and vLLM read both as
// the tanh approximation, as weft does; transformers 5 takes `hidden_act` literally (exact GELU), which differs by
// ~1e-3 relative — so a checkpoint's `hidden_activation` wins when present, and "gelu" means tanh.
import { computeRope, parseRopeParams } from './rope.js';
import { attentionShape, checkQuantization, eosList, int, PLAIN_DECODER, refuseIf, type Json } from './config-fields.js';
import type { ModelSpec } from './spec.js';

// GemmaConfig's defaults (gemma-7b's shape).
const GEMMA_DEFAULTS: Json = {
  vocab_size: 256_000, hidden_size: 3072, intermediate_size: 24_576, num_hidden_layers: 28, num_attention_heads: 16,
  num_key_value_heads: 16, head_dim: 256, max_position_embeddings: 8192, rms_norm_eps: 1e-6, rope_theta: 10_000,
  tie_word_embeddings: true, bos_token_id: 2, eos_token_id: 1,
};

const TANH_GELU = ['gelu', 'gelu_pytorch_tanh', 'gelu_new', 'gelu_fast', 'gelu_tanh'];

export function gemma1Spec(raw: Json, where: string): ModelSpec {
  const cfg = { ...GEMMA_DEFAULTS, ...raw };
  const { hidden, heads, kvHeads, headDim } = attentionShape(cfg, where, 256);
  const act = String(cfg.hidden_activation ?? cfg.hidden_act ?? 'gelu_pytorch_tanh');
  refuseIf(!TANH_GELU.includes(act), where, `hidden_activation '${act}' is not supported for gemma (${TANH_GELU.join(', ')}: the tanh GELU)`);
  refuseIf(cfg.use_bidirectional_attention === true, where, 'use_bidirectional_attention=true is not supported for gemma (causal LM only)');
  checkQuantization(cfg, where);
  const bias = cfg.attention_bias === true;
  return {
    ...PLAIN_DECODER,
    architecture: 'gemma',
    hidden, layers: int(cfg, 'num_hidden_layers', where), heads, kvHeads, headDim,
    intermediate: int(cfg, 'intermediate_size', where),
    vocab: int(cfg, 'vocab_size', where),
    maxPositions: int(cfg, 'max_position_embeddings', where),
    norm: 'rms',
    normEps: Number(cfg.rms_norm_eps ?? 1e-6),
    mlp: 'gated_gelu_tanh',
    learnedPositions: false,
    rope: computeRope(parseRopeParams(cfg), headDim),
    slidingWindow: 0,
    attnScale: Math.pow(headDim, -0.5),
    tieEmbeddings: cfg.tie_word_embeddings !== false,
    qkvBias: bias, oBias: bias, mlpBias: false,
    qkNorm: false,
    embedScale: Math.sqrt(hidden),
    normPlusOne: true,
    bosTokenId: typeof cfg.bos_token_id === 'number' ? cfg.bos_token_id : null,
    eosTokenIds: eosList(cfg.eos_token_id),
  };
}
