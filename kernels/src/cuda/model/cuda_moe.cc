// CudaModel::moe_mlp — a mixture-of-experts layer's MLP (Mixtral, Qwen3-MoE, gpt-oss) on the GPU, the twin of the
// CPU executor's model/moe.cc:
//   router GEMM (x · Wrᵀ (+ gpt-oss's bias), [rows, experts]) → moe_route (top-k per token, fp32 softmax) → the
//   chosen experts read back to the host, which groups the routed rows by expert (each expert's rows in batch order,
//   so a sequence's rows stay one adapter run) → moe_gather → per expert with rows: the [gate | up] GEMM (+ up
//   bias), its LoRA → the gated activation (SiLU·mul, or gpt-oss's clamped SwiGLU) over all routed rows → per
//   expert: the down GEMM (+ down bias on rank 0), its LoRA → moe_combine adds each token's experts (ascending
//   expert order, fp32) into o, this rank's partial sum (each rank holds a slice of every expert).
// The read-back is one stream synchronisation per MoE layer: it sizes each expert's GEMM on the host (cuBLASLt
// takes its row count from the host), and is why MoE steps never run as CUDA graphs (use_graph). Expert LoRA runs
// BGMV over each expert's rows with that expert's table (lora_store.h), one row per routed token. A shared expert
// runs for every token as expert E (the last group): with a width of its own (Qwen2-MoE, DeepSeek-V2) its rows sit
// after the routed ones' in up/act at their own pitch; Qwen2-MoE's gate sets its weight (moe_shared_gate).
// Llama 4 (moe_scale_input): sigmoid routing without a choice bias; each gathered row is scaled by its routing weight
// (moe_scale_rows) before the up GEMM and its LoRA, which read the same scaled rows as on the CPU, and the experts'
// outputs are added whole (moe_combine without weights); the shared expert's weight is 1, its rows unchanged.
#include <algorithm>

#include "cuda/kernels/kernels.h"
#include "cuda/model/cuda_model.h"
#include "cuda/model/moe_plan.h"
#include "cuda/model/row_ptr.h"
#include "cuda/runtime/check.h"

namespace weft::cuda {

void CudaModel::expert_lora(int layer, int module, int expert, const void* x, int64_t in, void* y, int64_t y_stride,
                            int64_t rows, const int32_t* row_entry) {
  LoraArgs a;  // h: lora_h, sized for 3 slices x every step row (ensure_buffers); rows <= the step's
  if (!table_args(lora_->table(layer, module, expert), in, y_stride, &a)) return;
  a.tokens = rows;
  a.x = x;
  a.y = y;
  a.token_entry = row_entry;
  WEFT_CUDA_CHECK(lora_bgmv(a, stream_));
}

void CudaModel::moe_mlp(int64_t l, const StepPlan& p) {
  // R routed experts (router outputs); E experts held (the shared one last); k experts run per token.
  const int64_t T = p.rows, H = cfg_.hidden, R = cfg_.num_experts, E = experts_held(cfg_), k = experts_run(cfg_);
  const int64_t I = cfg_.expert_intermediate_local, N = T * k;  // N: routed rows (token, expert) pairs
  // A shared expert of its own width (Qwen2-MoE, DeepSeek-V2) has its T rows (every token's, grouped last) in a region
  // of up / act after the routed rows' (N_r of them), at its own pitch.
  const int64_t Is = expert_width(cfg_, R), N_r = cfg_.moe_shared_expert ? N - T : N;
  const bool own_width = cfg_.moe_shared_expert && Is != I;
  const DType dt = opts_.dtype;
  const MoeWeights& w = moe_w_[static_cast<size_t>(l)];
  const int layer = static_cast<int>(l);

  // Grow-only scratch (a reallocation frees with cudaFree, which waits for the device: only while a larger step
  // first arrives).
  moe_.logits.ensure(static_cast<size_t>(T * R) * ds_);
  moe_.ids.ensure(static_cast<size_t>(N) * sizeof(int32_t));
  moe_.weights.ensure(static_cast<size_t>(N) * sizeof(float));
  moe_.map.ensure(static_cast<size_t>(4 * N) * sizeof(int32_t));
  moe_.xg.ensure(static_cast<size_t>(N * H) * ds_);
  moe_.up.ensure(static_cast<size_t>(N_r * 2 * I + (N - N_r) * 2 * Is) * ds_);
  moe_.act.ensure(static_cast<size_t>(N_r * I + (N - N_r) * Is) * ds_);
  moe_.y.ensure(static_cast<size_t>(N * H) * ds_);
  moe_.host_ids.ensure(static_cast<size_t>(N) * sizeof(int32_t));
  moe_.host_map.ensure(static_cast<size_t>(4 * N) * sizeof(int32_t));

  ops_.mark("moe router", stream_);
  // The logits are rounded to the dtype (as transformers' Mixtral and Qwen3-MoE compute them; GLM-4.5's router
  // computes them in fp32 from the same bf16 weights — a difference that can move a near tie). gpt-oss's router is
  // F.linear(x, W, b) in the dtype: its bias joins in the GEMM's epilogue, before the one rounding.
  gemm(buf_.x.get(), w.router, moe_.logits.get(), T, R, H, w.router_logit_bias);
  WEFT_CUDA_CHECK(moe_route(moe_.logits.get(), dt, w.router_bias, T, route_params(cfg_), moe_.ids.as<int32_t>(),
                            moe_.weights.as<float>(), stream_));
  if (w.shared_gate) WEFT_CUDA_CHECK(moe_shared_gate(buf_.x.get(), w.shared_gate, dt, T, H, k, moe_.weights.as<float>(), stream_));
  WEFT_CUDA_CHECK(cudaMemcpyAsync(moe_.host_ids.as<void>(), moe_.ids.get(), static_cast<size_t>(N) * sizeof(int32_t),
                                  cudaMemcpyDeviceToHost, stream_));
  WEFT_CUDA_CHECK(cudaStreamSynchronize(stream_));

  // Group the routed rows by expert (moe_plan.h); map = [rows | entries | src_row | src_w], N each. The step's host
  // plan (packed_) has every row's adapter entry.
  const int32_t* ids = moe_.host_ids.as<int32_t>();
  int32_t* rows = moe_.host_map.as<int32_t>();
  int32_t* entries = rows + N;
  int32_t* src_row = entries + N;
  int32_t* src_w = src_row + N;
  const std::vector<int64_t> offset = plan_moe_rows(ids, T, k, E, packed_.data() + p.row_entry, rows, entries,
                                                    src_row, src_w);
  WEFT_CUDA_CHECK(cudaMemcpyAsync(moe_.map.get(), rows, static_cast<size_t>(4 * N) * sizeof(int32_t),
                                  cudaMemcpyHostToDevice, stream_));
  const int32_t* rows_dev = moe_.map.as<int32_t>();
  const int32_t* entries_dev = rows_dev + N;

  ops_.mark("moe gather", stream_);
  WEFT_CUDA_CHECK(moe_gather(buf_.x.get(), dt, H, rows_dev, N, moe_.xg.get(), stream_));
  if (cfg_.moe_scale_input)  // Llama 4: each routed row times its weight (src_row / src_w pair them as for combine)
    WEFT_CUDA_CHECK(moe_scale_rows(moe_.xg.get(), dt, H, rows_dev + 2 * N, rows_dev + 3 * N, moe_.weights.as<float>(),
                                   T, k, stream_));
  // Expert e's rows in up (2·width wide) and act (width wide), from its first routed row `row`.
  auto width = [&](int64_t e) { return e == R ? Is : I; };
  auto up_at = [&](int64_t e, int64_t row) -> void* {
    if (e < R || !own_width) return row_ptr(moe_.up.get(), row, 2 * I, ds_);
    return row_ptr(moe_.up.as<char>() + N_r * 2 * I * ds_, row - N_r, 2 * Is, ds_);
  };
  auto act_at = [&](int64_t e, int64_t row) -> void* {
    if (e < R || !own_width) return row_ptr(moe_.act.get(), row, I, ds_);
    return row_ptr(moe_.act.as<char>() + N_r * I * ds_, row - N_r, Is, ds_);
  };
  auto any_adapter = [&](int64_t e) {
    return p.lora && std::any_of(entries + offset[e], entries + offset[e + 1], [](int32_t x) { return x >= 0; });
  };
  ops_.mark("moe gemm up", stream_);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t n = offset[e + 1] - offset[e];
    if (n == 0) continue;
    const int64_t We = width(e);
    void* up = up_at(e, offset[e]);
    const void* xe = row_ptr(moe_.xg.get(), offset[e], H, ds_);
    gemm(xe, w.up[e], up, n, 2 * We, H, w.up_bias[e]);  // gpt-oss's up bias: this rank's own rows, on every rank
    if (any_adapter(e)) expert_lora(layer, kUp, static_cast<int>(e), xe, H, up, 2 * We, n, entries_dev + offset[e]);
  }
  ops_.mark("moe activation", stream_);
  gated_mlp_activation(moe_.up.get(), 2 * I, moe_.act.get(), I, own_width ? N_r : N, I);
  if (own_width) gated_mlp_activation(up_at(R, N_r), 2 * Is, act_at(R, N_r), Is, N - N_r, Is);
  ops_.mark("moe gemm down", stream_);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t n = offset[e + 1] - offset[e];
    if (n == 0) continue;
    const int64_t We = width(e);
    const void* act = act_at(e, offset[e]);
    void* y = row_ptr(moe_.y.get(), offset[e], H, ds_);
    // gpt-oss's down bias once over the ranks (their outputs are partial sums), before the routing weight.
    gemm(act, w.down[e], y, n, H, We, coll_->rank() == 0 ? w.down_bias[e] : nullptr);
    if (any_adapter(e)) expert_lora(layer, kDown, static_cast<int>(e), act, We, y, H, n, entries_dev + offset[e]);
  }
  ops_.mark("moe combine", stream_);
  const float* combine_weights = cfg_.moe_scale_input ? nullptr : moe_.weights.as<float>();  // Llama 4: outputs whole
  WEFT_CUDA_CHECK(moe_combine(moe_.y.get(), dt, rows_dev + 2 * N, rows_dev + 3 * N, combine_weights, T, k, H,
                              buf_.o.get(), stream_));
}

}  // namespace weft::cuda
