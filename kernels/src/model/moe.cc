// Model::moe_mlp — a mixture-of-experts MLP on the CPU, as transformers computes Mixtral's, Qwen3-MoE's,
// GLM-4.5's and gpt-oss's (router and expert biases, the clamped SwiGLU): the router's logits, each token's experts and weights (model/moe_route.h: softmax, sigmoid or sparsemixer routing,
// plus a shared expert), then each chosen expert's gated MLP (with its LoRA parts for the rows' adapters) times its
// weight, added up in expert order (the shared expert last, as transformers adds it). Every rank routes alike (the router is replicated and x is the same on every rank);
// each holds a slice of every expert's intermediate rows, so its sum is a partial one, all-reduced by the caller.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/ops.h"
#include "model/model.h"
#include "model/moe_route.h"

namespace weft {

moe::RouteParams route_params(const ModelConfig& c) {
  moe::RouteParams p;
  p.experts = static_cast<int>(c.num_experts);
  p.k = static_cast<int>(c.experts_per_token);
  p.renormalize = c.moe_renormalize;
  p.sigmoid = c.moe_sigmoid;
  p.shared = c.moe_shared_expert;
  p.groups = static_cast<int>(c.moe_groups);
  p.topk_groups = static_cast<int>(c.moe_topk_groups);
  p.routed_scale = c.moe_routed_scale;
  p.group_max = c.moe_group_max;
  p.choice_bias = c.moe_choice_bias;
  p.renorm_min = c.moe_renorm_min;
  p.sparsemixer = c.moe_sparsemixer;
  p.mixer_threshold = c.moe_mixer_threshold;
  return p;
}

void Model::moe_mlp(int64_t l, const float* x, int64_t T, const std::vector<int32_t>& token_slots, float* out) const {
  const int64_t H = cfg_.hidden, R = cfg_.num_experts, E = experts_held(cfg_), k = experts_run(cfg_);
  const std::string p = "layers." + std::to_string(l) + ".";
  std::vector<float> logits(static_cast<size_t>(T * R));
  cpu::gemm_xwt(x, T, H, w(p + "router.weight"), R, cfg_.moe_logit_bias ? w(p + "router.bias") : nullptr, logits.data(), false);
  const float* bias = router_has_bias(cfg_) && !cfg_.moe_logit_bias ? w(p + "router.bias") : nullptr;  // the choice bias
  const moe::RouteParams rp = route_params(cfg_);
  struct { std::vector<int32_t> expert; std::vector<float> weight; } r{std::vector<int32_t>(static_cast<size_t>(T * k)),
                                                                       std::vector<float>(static_cast<size_t>(T * k))};
  for (int64_t t = 0; t < T; ++t) {
    const float* row = logits.data() + t * R;
    moe::route_token([row](int e) { return row[e]; }, [bias](int e) { return bias ? bias[e] : 0.0f; }, rp,
                     r.expert.data() + t * k, r.weight.data() + t * k);
  }
  if (cfg_.moe_shared_gate) {  // Qwen2-MoE: the shared expert (the last choice) weighs sigmoid(x · g)
    std::vector<float> gate(static_cast<size_t>(T));
    cpu::gemm_xwt(x, T, H, w(p + "shared_gate.weight"), 1, nullptr, gate.data(), false);
    for (int64_t t = 0; t < T; ++t) r.weight[t * k + k - 1] = 1.0f / (1.0f + std::exp(-gate[t]));
  }

  // Each expert's rows in one pass over the choices (tokens in batch order; a token chooses an expert once).
  std::vector<std::vector<int64_t>> rows_of(static_cast<size_t>(E));
  std::vector<std::vector<float>> weight_of(static_cast<size_t>(E));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < k; ++j) {
      const auto e = static_cast<size_t>(r.expert[t * k + j]);
      rows_of[e].push_back(t), weight_of[e].push_back(r.weight[t * k + j]);
    }
  std::fill(out, out + T * H, 0.0f);
  std::vector<float> xe, up, act, down;
  std::vector<int32_t> slots;
  for (int64_t e = 0; e < E; ++e) {
    const std::vector<int64_t>& rows = rows_of[static_cast<size_t>(e)];
    const std::vector<float>& row_weight = weight_of[static_cast<size_t>(e)];
    const int64_t n = static_cast<int64_t>(rows.size()), I = expert_width(cfg_, e);
    slots.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) slots[i] = token_slots[rows[i]];
    if (n == 0) continue;
    // The expert's rows keep the batch order, so a sequence's rows stay one run of its adapter slot (apply_lora).
    xe.resize(static_cast<size_t>(n * H)), up.resize(static_cast<size_t>(n * 2 * I));
    act.resize(static_cast<size_t>(n * I)), down.resize(static_cast<size_t>(n * H));
    for (int64_t i = 0; i < n; ++i) std::memcpy(xe.data() + i * H, x + rows[i] * H, sizeof(float) * H);
    // Llama 4: a routed expert reads its rows scaled by their weights, and its output counts whole.
    const bool scale_in = cfg_.moe_scale_input && e < cfg_.num_experts;
    if (scale_in)
      for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < H; ++c) xe[i * H + c] *= row_weight[i];
    const std::string ex = p + "experts." + std::to_string(e) + ".";
    const int ie = static_cast<int>(e), li = static_cast<int>(l);
    // gpt-oss's expert biases: up's on every rank (its own rows), down's once over the ranks (partial sums).
    const float* up_bias = cfg_.moe_expert_bias ? w(ex + "up.bias") : nullptr;
    const float* down_bias = cfg_.moe_expert_bias && coll_->rank() == 0 ? w(ex + "down.bias") : nullptr;
    cpu::gemm_xwt(xe.data(), n, H, w(ex + "up.weight"), 2 * I, up_bias, up.data(), false);
    apply_lora(li, kUp, xe.data(), H, slots, up.data(), 2 * I, nullptr, ie);
    for (int64_t i = 0; i < n; ++i) gated_activation(cfg_, up.data() + i * 2 * I, up.data() + i * 2 * I + I, act.data() + i * I, I);
    cpu::gemm_xwt(act.data(), n, I, w(ex + "down.weight"), H, down_bias, down.data(), false);
    apply_lora(li, kDown, act.data(), I, slots, down.data(), H, nullptr, ie);
    for (int64_t i = 0; i < n; ++i) {
      float* o = out + rows[i] * H;
      const float* d = down.data() + i * H;
      const float wgt = scale_in ? 1.0f : row_weight[i];
      for (int64_t c = 0; c < H; ++c) o[c] += d[c] * wgt;
    }
  }
}

}  // namespace weft
