// Apertus (ApertusForCausalLM: Swiss AI Apertus 8B / 70B), as transformers' modular_apertus.py computes it: Llama's
// attention with Qwen3's per-head q/k RMS norms before RoPE, the block norms named attention_layernorm /
// feedforward_layernorm, and a non-gated up_proj → xIELU → down_proj MLP whose activation has trainable parameters
// in every layer (mlp.act_fn.alpha_p / alpha_n / beta / eps; xieluParams below).
import type { Rope } from './rope.js';
import { UnsupportedModelError } from './errors.js';
import { attentionShape, checkQuantization, PLAIN_DECODER, refuseIf, rotaryDecoderShape, type Json } from './config-fields.js';
import { wholeHeadRope } from './layernorm-spec.js';
import type { ModelSpec } from './spec.js';

// ApertusConfig's defaults for the fields a config may leave out.
const APERTUS_DEFAULTS: Json = {
  hidden_act: 'xielu', max_position_embeddings: 65_536, rms_norm_eps: 1e-5, bos_token_id: 1, eos_token_id: 2,
  tie_word_embeddings: false, attention_bias: false,
};
// ApertusConfig's rope_parameters when the config has neither rope_parameters nor rope_scaling.
const APERTUS_ROPE = {
  rope_type: 'llama3', rope_theta: 12_000_000, factor: 8, original_max_position_embeddings: 8192, low_freq_factor: 1,
  high_freq_factor: 4,
};

export function apertusSpec(raw: Json, where: string): ModelSpec {
  const cfg: Json = { ...APERTUS_DEFAULTS, ...raw };
  const shape = attentionShape(cfg, where);
  const act = String(cfg.hidden_act);
  refuseIf(act !== 'xielu', where, `hidden_act '${act}' is not supported for apertus (only xielu)`);
  // Fields of the original Apertus code that transformers' ApertusForCausalLM does not read: it always normalises q
  // and k, never adds post-norms and builds its MLP without biases. Other values would be computed differently there.
  refuseIf(cfg.qk_norm === false, where, 'qk_norm=false is not supported for apertus (transformers always normalises q and k)');
  refuseIf(cfg.post_norm === true, where, 'post_norm=true is not supported for apertus (transformers has no post-norms)');
  refuseIf(cfg.mlp_bias === true, where, 'mlp_bias=true is not supported for apertus (transformers\' MLP has no biases)');
  checkQuantization(cfg, where);
  const bias = cfg.attention_bias === true;
  return {
    ...PLAIN_DECODER,
    architecture: 'apertus',
    ...rotaryDecoderShape(cfg, where, shape, apertusRope(cfg, shape.headDim, where)),
    norm: 'rms',
    normEps: Number(cfg.rms_norm_eps),
    mlp: 'xielu',
    slidingWindow: 0,
    attnScale: 1 / Math.sqrt(shape.headDim),
    tieEmbeddings: cfg.tie_word_embeddings === true,
    qkvBias: bias, oBias: bias, mlpBias: false,
    qkNorm: true,
  };
}

/**
 * ApertusConfig starts from its own llama3 RoPE (rope_theta 1.2e7, ×8 over 8,192 positions) when the config has no
 * rope_parameters / rope_scaling, and then keeps that theta whatever a top-level rope_theta says — such a config is
 * refused rather than served with a theta it names but transformers does not use. A RoPE dict without rope_theta
 * takes the top-level one, else 1.2e7 (ApertusConfig.default_theta).
 */
function apertusRope(cfg: Json, headDim: number, where: string): Rope {
  if (!cfg.rope_parameters && !cfg.rope_scaling) {
    refuseIf(cfg.rope_theta !== undefined && cfg.rope_theta !== APERTUS_ROPE.rope_theta, where,
      `rope_theta ${String(cfg.rope_theta)} without rope_parameters / rope_scaling is not supported for apertus ` +
      `(transformers ignores it and uses its default llama3 RoPE with theta ${APERTUS_ROPE.rope_theta})`);
    return wholeHeadRope({ rope_parameters: APERTUS_ROPE }, headDim, 'apertus', where);
  }
  return wholeHeadRope({ rope_theta: APERTUS_ROPE.rope_theta, ...cfg }, headDim, 'apertus', where);
}

/** torch.nn.functional.softplus (beta 1, threshold 20) in float32. */
function softplus(x: number): number {
  return x > 20 ? x : Math.fround(Math.log1p(Math.fround(Math.exp(x))));
}

/**
 * One layer's xIELU parameters as the executor takes them (cpu::xielu): [alpha_p, alpha_n, beta, eps], the effective
 * values XIELUActivation computes from what it stores — alpha_p = softplus(alpha_p), alpha_n = beta + softplus(alpha_n)
 * — with beta and eps as stored (buffers saved with the checkpoint). `read(name)` reads mlp.act_fn.<name> of the layer.
 */
export function xieluParams(read: (name: string) => Float32Array): Float32Array {
  const one = (name: string): number => {
    const t = read(`mlp.act_fn.${name}`);
    if (t.length !== 1) throw new UnsupportedModelError(`mlp.act_fn.${name} has ${t.length} values, expected 1`);
    return t[0]!;
  };
  const beta = one('beta');
  return Float32Array.of(softplus(one('alpha_p')), Math.fround(beta + softplus(one('alpha_n'))), beta, one('eps'));
}
