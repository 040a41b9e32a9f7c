// A hybrid model's Mamba-2 mixer (ModelConfig::layer_mamba; Granite 4.0 H), computed as its recurrence token by token
// on the CPU: in_proj → [z | x B C | dt]; a causal depthwise conv over x B C (kernel mamba_conv, with bias) and SiLU;
// dt = softplus(dt + dt_bias) clamped; per head h: state ← state·exp(dt·A) + dt·(x ⊗ B), y = state·C + D·x with
// A = −exp(A_log); then y·silu(z) RMS-normalised over the whole (all-rank) width, times its weight; out_proj.
// Each sequence's conv window and SSM state stay in its state slot between steps (chunked prefill, decode).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "cpu/ops.h"
#include "model/model.h"

namespace weft {

namespace {
float silu(float v) { return v / (1.0f + std::exp(-v)); }
float softplus(float v) { return v > 20.0f ? v : std::log1p(std::exp(v)); }  // torch's threshold 20
}  // namespace

void check_mamba_config(const ModelConfig& c) {
  if (!has_mamba(c)) {
    if (c.mamba_heads || c.mamba_heads_local || c.mamba_state || c.mamba_conv)
      throw std::invalid_argument("model config: Mamba sizes need layer_mamba");
    return;
  }
  if (static_cast<int64_t>(c.layer_mamba.size()) != c.layers)
    throw std::invalid_argument("model config: layer_mamba needs one entry per layer");
  if (c.mamba_heads <= 0 || c.mamba_heads_local <= 0 || c.mamba_head_dim <= 0 || c.mamba_state <= 0 ||
      c.mamba_groups <= 0 || c.mamba_conv < 1 || c.mamba_head_start < 0 ||
      c.mamba_head_start + c.mamba_heads_local > c.mamba_heads || c.mamba_heads % c.mamba_groups != 0)
    throw std::invalid_argument("model config: Mamba layers need positive heads, head_dim, state, groups (dividing "
                                "the heads) and conv kernel, and this rank's heads within them");
  if (c.norm != NormKind::kRms || is_mla(c) || c.parallel_block || !c.pre_norms || c.post_norms)
    throw std::invalid_argument("model config: Mamba layers are pre-norm RMS blocks (no latent attention, parallel "
                                "block or post norms)");
  if (!(c.mamba_dt_min >= 0.0f) || !(c.mamba_dt_max >= 0.0f))
    throw std::invalid_argument("model config: the Mamba dt limits must be >= 0 (max 0: none)");
}

int64_t mamba_weight_size(const ModelConfig& c, const std::string& p) {
  const int64_t nh = c.mamba_heads_local, inner = mamba_inner(c), conv = mamba_conv_dim(c);
  if (p == "in_proj.weight") return mamba_in_proj_out(c) * c.hidden;
  if (p == "in_proj.bias") return mamba_in_proj_out(c);
  if (p == "conv.weight") return conv * c.mamba_conv;
  if (p == "conv.bias") return conv;
  if (p == "dt_bias" || p == "A_log" || p == "D") return nh;
  if (p == "ssm_norm.weight") return inner;
  if (p == "out_proj.weight") return c.hidden * inner;
  if (p == "out_proj.bias") return c.hidden;
  if (p == "attn_norm.weight" || p == "mlp_norm.weight") return c.hidden;
  return -1;
}

std::vector<std::string> mamba_required(int64_t layer) {
  std::vector<std::string> r;
  for (const char* s : {"in_proj.weight", "conv.weight", "dt_bias", "A_log", "D", "ssm_norm.weight", "out_proj.weight"})
    r.push_back("layers." + std::to_string(layer) + "." + s);
  return r;
}

int64_t Model::mamba_state_floats() const {
  const int64_t per_layer = mamba_conv_dim(cfg_) * (cfg_.mamba_conv - 1) +
                            cfg_.mamba_heads_local * cfg_.mamba_head_dim * cfg_.mamba_state;
  int64_t layers = 0;
  for (int64_t l = 0; l < cfg_.layers; ++l) layers += layer_is_mamba(cfg_, l) ? 1 : 0;
  return per_layer * layers;
}

// Makes every sequence's state slot ready for this step: a sequence's first chunk starts from zeros; a later one
// needs the state its earlier chunks left.
void Model::prepare_states(const Batch& b) {
  const int64_t n = mamba_state_floats();
  for (const BatchSeq& s : b.seqs) {
    const size_t slot = static_cast<size_t>(s.state_slot);
    if (slot >= states_.size()) {
      states_.resize(slot + 1);
      state_live_.resize(slot + 1, 0);
    }
    if (s.context_len == s.num_tokens) {
      states_[slot].assign(static_cast<size_t>(n), 0.0f);
      state_live_[slot] = 1;
    } else if (!state_live_[slot]) {
      throw std::invalid_argument("batch: state slot " + std::to_string(s.state_slot) + " holds no state for a sequence "
                                  "continuing at position " + std::to_string(s.context_len - s.num_tokens) +
                                  " (a hybrid model's sequence must be computed from its first token)");
    }
  }
}

// x [T, hidden] (normalised) -> out [T, hidden]: this rank's partial out_proj (LoRA included), before the all-reduce.
void Model::mamba_mixer(int64_t layer, const float* x, int64_t T, const Batch& b, const std::vector<int32_t>& token_slots,
                        float* out) {
  const std::string p = "layers." + std::to_string(layer) + ".";
  const int64_t H = cfg_.hidden, P = mamba_in_proj_out(cfg_), inner = mamba_inner(cfg_), conv = mamba_conv_dim(cfg_);
  const int64_t nh = cfg_.mamba_heads_local, hd = cfg_.mamba_head_dim, N = cfg_.mamba_state, K = cfg_.mamba_conv;
  const int64_t GN = cfg_.mamba_groups * N, heads_per_group = cfg_.mamba_heads / cfg_.mamba_groups;
  std::vector<float> proj(static_cast<size_t>(T * P)), y(static_cast<size_t>(T * inner)), xbc(static_cast<size_t>(conv));
  cpu::gemm_xwt(x, T, H, w(p + "in_proj.weight"), P, w_opt(p + "in_proj.bias"), proj.data(), false);
  apply_lora(static_cast<int>(layer), kQkv, x, H, token_slots, proj.data(), P, w_opt(p + "in_proj.bias"));

  const float* cw = w(p + "conv.weight");
  const float* cb = w_opt(p + "conv.bias");
  const float* dt_bias = w(p + "dt_bias");
  const float* a_log = w(p + "A_log");
  const float* d_skip = w(p + "D");
  // This layer's place in a state slot: the Mamba layers before it, each conv window then SSM state.
  const int64_t conv_floats = conv * (K - 1), ssm_floats = nh * hd * N;
  int64_t offset = 0;
  for (int64_t l = 0; l < layer; ++l) offset += layer_is_mamba(cfg_, l) ? conv_floats + ssm_floats : 0;
  std::vector<float> neg_a(static_cast<size_t>(nh));
  for (int64_t h = 0; h < nh; ++h) neg_a[h] = -std::exp(a_log[h]);

  for (const BatchSeq& s : b.seqs) {
    float* window = states_[static_cast<size_t>(s.state_slot)].data() + offset;  // [conv, K-1], oldest first
    float* ssm = window + conv_floats;                                           // [nh, hd, N]
    for (int64_t t = s.token_start; t < s.token_start + s.num_tokens; ++t) {
      const float* row = proj.data() + t * P;
      const float* z = row;
      const float* xin = row + inner;
      const float* dt_raw = row + inner + conv;
      for (int64_t c = 0; c < conv; ++c) {  // causal depthwise conv over [window | this token], then SiLU
        float* wc = window + c * (K - 1);
        const float* kc = cw + c * K;
        float acc = cb ? cb[c] : 0.0f;
        for (int64_t k = 0; k < K - 1; ++k) acc += kc[k] * wc[k];
        acc += kc[K - 1] * xin[c];
        if (K > 1) {
          std::memmove(wc, wc + 1, sizeof(float) * (K - 2));
          wc[K - 2] = xin[c];
        }
        xbc[c] = silu(acc);
      }
      const float* xs = xbc.data();
      const float* B = xs + inner;
      const float* C = B + GN;
      float* yt = y.data() + t * inner;
      for (int64_t h = 0; h < nh; ++h) {
        float dt = softplus(dt_raw[h] + dt_bias[h]);
        // time_step_limit on every token, as transformers' chunked scan (a whole prompt) applies it — so a decode
        // step equals the whole-sequence forward. (transformers' own one-token cached update skips the clamp; the
        // published Granite 4.0 H configs keep the default (0, inf), where the two agree.)
        dt = std::max(dt, cfg_.mamba_dt_min);
        if (cfg_.mamba_dt_max > 0.0f) dt = std::min(dt, cfg_.mamba_dt_max);
        const float decay = std::exp(dt * neg_a[h]);
        const int64_t g = (cfg_.mamba_head_start + h) / heads_per_group;
        const float* Bg = B + g * N;
        const float* Cg = C + g * N;
        for (int64_t i = 0; i < hd; ++i) {
          const float xv = xs[h * hd + i];
          float* st = ssm + (h * hd + i) * N;
          float acc = 0.0f;
          for (int64_t n = 0; n < N; ++n) {
            st[n] = st[n] * decay + dt * Bg[n] * xv;
            acc += st[n] * Cg[n];
          }
          yt[h * hd + i] = acc + d_skip[h] * xv;
        }
      }
      for (int64_t i = 0; i < inner; ++i) yt[i] *= silu(z[i]);
    }
  }
  // The gated RMS norm over the whole width: each rank's sums of squares added over the ranks.
  std::vector<float> sums(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) {
    float sq = 0.0f;
    for (int64_t i = 0; i < inner; ++i) sq += y[t * inner + i] * y[t * inner + i];
    sums[t] = sq;
  }
  const int world = coll_->world();
  if (world > 1) coll_->all_reduce_sum(sums.data(), T);
  const float width = static_cast<float>(cfg_.mamba_heads * hd);
  const float* nw = w(p + "ssm_norm.weight");
  for (int64_t t = 0; t < T; ++t) {
    const float r = 1.0f / std::sqrt(sums[t] / width + cfg_.norm_eps);
    for (int64_t i = 0; i < inner; ++i) y[t * inner + i] = nw[i] * (y[t * inner + i] * r);
  }
  cpu::gemm_xwt(y.data(), T, inner, w(p + "out_proj.weight"), H, nullptr, out, false);
  apply_lora(static_cast<int>(layer), kO, y.data(), inner, token_slots, out, H);
}

}  // namespace weft
