// Model::moe_mlp — a mixture-of-experts MLP on the CPU, as transformers computes Mixtral's and Qwen3-MoE's: the
// router's logits, a softmax over all experts, the top experts_per_token (renormalised to sum 1 when the model
// says so), then each chosen expert's gated MLP (with its LoRA parts for the rows' adapters) times its weight,
// added up in expert order. Every rank routes alike (the router is replicated and x is the same on every rank);
// each holds a slice of every expert's intermediate rows, so its sum is a partial one, all-reduced by the caller.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "cpu/ops.h"
#include "model/model.h"

namespace weft {

namespace {
// Per token: the chosen experts (descending probability; ties to the lower index) and their weights.
struct Routing {
  std::vector<int32_t> expert;  // [T, k]
  std::vector<float> weight;    // [T, k]
};

Routing route(const float* logits, int64_t T, int64_t E, int64_t k, bool renormalize) {
  Routing r{std::vector<int32_t>(static_cast<size_t>(T * k)), std::vector<float>(static_cast<size_t>(T * k))};
  std::vector<float> prob(static_cast<size_t>(E));
  std::vector<int32_t> order(static_cast<size_t>(E));
  for (int64_t t = 0; t < T; ++t) {
    const float* row = logits + t * E;
    const float mx = *std::max_element(row, row + E);
    float sum = 0.0f;
    for (int64_t e = 0; e < E; ++e) sum += (prob[e] = std::exp(row[e] - mx));
    for (int64_t e = 0; e < E; ++e) prob[e] /= sum;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int32_t a, int32_t b) { return prob[a] > prob[b] || (prob[a] == prob[b] && a < b); });
    float top = 0.0f;
    for (int64_t j = 0; j < k; ++j) top += prob[order[j]];
    for (int64_t j = 0; j < k; ++j) {
      r.expert[t * k + j] = order[j];
      r.weight[t * k + j] = renormalize ? prob[order[j]] / top : prob[order[j]];
    }
  }
  return r;
}
}  // namespace

void Model::moe_mlp(int64_t l, const float* x, int64_t T, const std::vector<int32_t>& token_slots, float* out) const {
  const int64_t H = cfg_.hidden, E = cfg_.num_experts, k = cfg_.experts_per_token, I = cfg_.expert_intermediate_local;
  const std::string p = "layers." + std::to_string(l) + ".";
  std::vector<float> logits(static_cast<size_t>(T * E));
  cpu::gemm_xwt(x, T, H, w(p + "router.weight"), E, nullptr, logits.data(), false);
  const Routing r = route(logits.data(), T, E, k, cfg_.moe_renormalize);

  std::fill(out, out + T * H, 0.0f);
  std::vector<int64_t> rows;
  std::vector<float> row_weight, xe, up, act, down;
  std::vector<int32_t> slots;
  for (int64_t e = 0; e < E; ++e) {
    rows.clear(), row_weight.clear(), slots.clear();
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < k; ++j)
        if (r.expert[t * k + j] == e) {
          rows.push_back(t), row_weight.push_back(r.weight[t * k + j]), slots.push_back(token_slots[t]);
          break;
        }
    const int64_t n = static_cast<int64_t>(rows.size());
    if (n == 0) continue;
    // The expert's rows keep the batch order, so a sequence's rows stay one run of its adapter slot (apply_lora).
    xe.resize(static_cast<size_t>(n * H)), up.resize(static_cast<size_t>(n * 2 * I));
    act.resize(static_cast<size_t>(n * I)), down.resize(static_cast<size_t>(n * H));
    for (int64_t i = 0; i < n; ++i) std::memcpy(xe.data() + i * H, x + rows[i] * H, sizeof(float) * H);
    const std::string ex = p + "experts." + std::to_string(e) + ".";
    const int ie = static_cast<int>(e), li = static_cast<int>(l);
    cpu::gemm_xwt(xe.data(), n, H, w(ex + "up.weight"), 2 * I, nullptr, up.data(), false);
    apply_lora(li, kUp, xe.data(), H, slots, up.data(), 2 * I, nullptr, ie);
    for (int64_t i = 0; i < n; ++i) cpu::silu_mul(up.data() + i * 2 * I, up.data() + i * 2 * I + I, act.data() + i * I, I);
    cpu::gemm_xwt(act.data(), n, I, w(ex + "down.weight"), H, nullptr, down.data(), false);
    apply_lora(li, kDown, act.data(), I, slots, down.data(), H, nullptr, ie);
    for (int64_t i = 0; i < n; ++i) {
      float* o = out + rows[i] * H;
      const float* d = down.data() + i * H;
      for (int64_t c = 0; c < H; ++c) o[c] += d[c] * row_weight[i];
    }
  }
}

}  // namespace weft
