// CudaModel's LoRA launches: per module, shrink (h = x·Aᵀ) and expand (y += scale·h·Bᵀ) over a step's rows —
// SGMV over the prefill rows (one segment per adapter, step_plan.h), BGMV over the decode rows, BGMV over the
// logit rows for the lm_head.
//
// Two orders (WEFT_LORA_OVERLAP):
// - beside (default): the shrink runs on a second stream while the base GEMM runs (both only read x), and the
//   step's stream waits for it before the expand. A decode step's LoRA is bound by launch latency, not bytes
//   (H100, 2026-11-23: batch 1 with one rank-16 adapter cost 1.1-1.3 ms per Llama-2-7B step for 0.08 GB of
//   adapter weights; splitting the shrink's loads across a block changed nothing), so the four shrinks of a layer
//   come off the step's critical path. In a decode graph the fork and join are graph edges. Measured there:
//   batch 1 x 1 adapter 8.37 vs 9.02 ms (-7.3 %), batch 32 x 32 adapters 12.21 vs 12.41 (-1.6 %).
// - after (=0): the base GEMM writes y, then the shrink and the expand run on the step's stream.
// The arithmetic is the same either way; beside, the expand follows the GEMM rather than its shrink, so it is
// launched without programmatic dependent launch (it reads y).
#include "cuda/kernels/kernels.h"
#include "cuda/model/cuda_model.h"
#include "cuda/model/row_ptr.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/env.h"

namespace weft::cuda {

namespace {

// Op-profile labels of the LoRA launches: [module][SGMV shrink, SGMV expand, BGMV].
constexpr const char* kLoraOps[kNumLayerModules + 1][3] = {
    {"lora qkv sgmv shrink", "lora qkv sgmv expand", "lora qkv bgmv"},
    {"lora o sgmv shrink", "lora o sgmv expand", "lora o bgmv"},
    {"lora up sgmv shrink", "lora up sgmv expand", "lora up bgmv"},
    {"lora down sgmv shrink", "lora down sgmv expand", "lora down bgmv"},
    {"lora q_b sgmv shrink", "lora q_b sgmv expand", "lora q_b bgmv"},
    {"lora kv_b sgmv shrink", "lora kv_b sgmv expand", "lora kv_b bgmv"},
    {"lora lm_head sgmv shrink", "lora lm_head sgmv expand", "lora lm_head bgmv"},
};

}  // namespace

bool CudaModel::lora_overlap() const {
  static const bool on = !detail::env_equals("WEFT_LORA_OVERLAP", "0");
  return on;
}

// The arguments shared by a module's launches; rows, x, y and the row → adapter map are set per launch.
bool CudaModel::lora_args(int layer, int module, int64_t in, int64_t y_stride, LoraArgs* a) const {
  return table_args(lora_->table(layer, module), in, y_stride, a);
}

// lora_args for a given table (a MoE expert's too: cuda_moe.cc).
bool CudaModel::table_args(const LoraTable& t, int64_t in, int64_t y_stride, LoraArgs* a) const {
  if (t.num_entries == 0) return false;
  *a = LoraArgs{};
  a->dtype = opts_.dtype;
  a->in = in;
  a->x_stride = in;
  a->h = buf_.lora_h.as<float>();
  a->y_stride = y_stride;
  a->num_slices = t.num_slices;
  a->out_offset = t.out_offset;
  a->out_len = t.out_len;
  a->max_out_len = t.max_out_len;
  a->num_entries = t.num_entries;
  a->a = t.a;
  a->b = t.b;
  a->rank = t.rank;
  a->scale = t.scale;
  a->max_rank = lora_->rank_cap();
  return true;
}

// The step's prefill rows (SGMV; false when no prefill row has an adapter).
bool CudaModel::lora_prefill_rows(const StepPlan& p, const void* x, void* y, LoraArgs* a) const {
  if (p.num_segments == 0) return false;  // base rows belong to no segment
  a->tokens = p.prefill_rows;
  a->x = x;
  a->y = y;
  a->seg_starts = ints(p.seg);
  a->seg_entries = ints(p.seg_entry);
  a->num_segments = p.num_segments;
  a->token_entry = nullptr;
  return true;
}

// The step's decode rows (BGMV; false when there are none). Their h follows the prefill rows' h in lora_h
// (ensure_buffers sizes it for 3 slices × every row), so both shrinks can run before either expand.
bool CudaModel::lora_decode_rows(const StepPlan& p, int64_t in, const void* x, void* y, int64_t y_stride,
                                 LoraArgs* a) const {
  if (p.rows <= p.prefill_rows) return false;
  a->tokens = p.rows - p.prefill_rows;
  a->x = row_ptr(x, p.prefill_rows, in, ds_);
  a->y = row_ptr(y, p.prefill_rows, y_stride, ds_);
  a->h = buf_.lora_h.as<float>() + 3 * p.prefill_rows * lora_->rank_cap();
  a->seg_starts = nullptr;
  a->seg_entries = nullptr;
  a->token_entry = ints(p.row_entry) + p.prefill_rows;
  return true;
}

// Adds every row's adapter delta for one module after the base GEMM wrote y; the lm_head (layer -1) runs BGMV
// over the logit rows.
void CudaModel::lora(int layer, int module, const void* x, int64_t in, void* y, int64_t y_stride, const StepPlan& p) {
  LoraArgs a;
  if (!lora_args(layer, module, in, y_stride, &a)) return;
  if (module == kLmHead) {
    a.tokens = p.logit_rows;
    a.x = x;
    a.y = y;
    a.token_entry = ints(p.logit_entry);
    ops_.mark(kLoraOps[module][2], stream_);
    WEFT_CUDA_CHECK(lora_bgmv(a, stream_));
    return;
  }
  if (lora_prefill_rows(p, x, y, &a)) {
    ops_.mark(kLoraOps[module][0], stream_);
    WEFT_CUDA_CHECK(lora_sgmv_shrink(a, stream_));
    ops_.mark(kLoraOps[module][1], stream_);
    WEFT_CUDA_CHECK(lora_sgmv_expand(a, stream_));
  }
  if (lora_decode_rows(p, in, x, y, y_stride, &a)) {
    ops_.mark(kLoraOps[module][2], stream_);
    WEFT_CUDA_CHECK(lora_bgmv(a, stream_));
  }
}

// One projection of a layer: y = x·Wᵀ (+ bias) by the GEMM, plus the module's LoRA when the step has adapters —
// its shrinks beside the GEMM and its expands after it, or with WEFT_LORA_OVERLAP=0 all after (top of this file).
void CudaModel::project(const char* op, int layer, int module, const void* x, int64_t in, const void* w, void* y,
                        int64_t out, const void* bias, const StepPlan& p) {
  LoraArgs a;
  const bool beside = p.lora && lora_overlap() && lora_args(layer, module, in, out, &a);
  if (!beside) {
    ops_.mark(op, stream_);
    gemm(x, w, y, p.rows, out, in, bias);
    if (p.lora) lora(layer, module, x, in, y, out, p);
    dora_scale(layer, module, y, out, bias, p);
    return;
  }
  LoraArgs prefill = a, decode = a;
  const bool has_prefill = lora_prefill_rows(p, x, y, &prefill);
  const bool has_decode = lora_decode_rows(p, in, x, y, out, &decode);
  // Fork: the side stream waits for x (everything enqueued so far), shrinks, and the step's stream joins it
  // before the first expand.
  WEFT_CUDA_CHECK(cudaEventRecord(lora_fork_, stream_));
  WEFT_CUDA_CHECK(cudaStreamWaitEvent(lora_stream_, lora_fork_, 0));
  if (has_prefill) WEFT_CUDA_CHECK(lora_sgmv_shrink(prefill, lora_stream_));
  if (has_decode) WEFT_CUDA_CHECK(lora_bgmv_shrink(decode, lora_stream_));
  WEFT_CUDA_CHECK(cudaEventRecord(lora_join_, lora_stream_));
  ops_.mark(op, stream_);
  gemm(x, w, y, p.rows, out, in, bias);
  WEFT_CUDA_CHECK(cudaStreamWaitEvent(stream_, lora_join_, 0));
  if (has_prefill) {
    ops_.mark(kLoraOps[module][1], stream_);
    WEFT_CUDA_CHECK(lora_sgmv_expand(prefill, stream_));
  }
  if (has_decode && !p.dora && expand_into_next(layer, module, decode)) {  // DoRA scales y after the expand
    deferred_expand_ = decode;  // the next op adds it (RoPE + KV write, residual_norm, the activation)
    has_deferred_expand_ = true;
  } else if (has_decode) {
    ops_.mark(kLoraOps[module][2], stream_);
    WEFT_CUDA_CHECK(lora_bgmv_expand_no_pdl(decode, stream_));
  }
  dora_scale(layer, module, y, out, bias, p);
}

// In a step with DoRA rows, after every module's expands (prefill and decode rows alike; base rows and plain-LoRA
// rows return at once). Decode graphs of such steps have their own key (GraphKey::dora); the tables are read at
// replay, so another DoRA adapter in the same slots is scaled too. y holds `bias` (the GEMM added it): the scale
// applies to the product only.
void CudaModel::dora_scale(int layer, int module, void* y, int64_t y_stride, const void* bias, const StepPlan& p) {
  if (!p.dora) return;
  const LoraTable t = lora_->table(layer, module);
  DoraScaleArgs d{};
  d.dtype = opts_.dtype;
  d.rows = p.rows;
  d.y = y;
  d.y_stride = y_stride;
  d.bias = bias;
  d.num_slices = t.num_slices;
  d.num_entries = t.num_entries;
  d.out_offset = t.out_offset;
  d.out_len = t.out_len;
  d.mag = t.mag;
  d.row_entry = ints(p.row_entry);
  ops_.mark("lora dora scale", stream_);
  WEFT_CUDA_CHECK(lora_dora_scale(d, stream_));
}

// WEFT_LORA_EXPAND_INTO_NEXT=1 (opt-in, not yet measured on a GPU): the decode rows' expand of every layer
// projection is folded into the op that follows it — RoPE + KV write (rope_kv_cache_write_lora) for qkv, add + norm
// (add_norm_lora) for o and down, SiLU·mul (silu_mul_lora) for gate/up: four launches fewer per layer. Only where
// that op is one kernel which follows this module: rotary embeddings with the fused small ops and no q/k norm for
// qkv (not in SmolLM3's NoPE layers, nor with Llama 4's norm after RoPE), one rank with the fused small ops for
// add + norm (not after the last layer's down projection, whose residual add has no norm after it), a gated-SiLU MLP
// for gate/up.
bool CudaModel::expand_into_next(int layer, int module, const LoraArgs& decode) const {
  static const bool on = detail::env_equals("WEFT_LORA_EXPAND_INTO_NEXT", "1");
  if (!on) return false;
  if (module == kQkv) {  // latent attention's qkv is its first projection, not the rows RoPE reads
    // Llama 4's norm after RoPE (qk_norm_after_rope) needs the rotated k before the cache: no fused RoPE there.
    const bool qk_untouched = !cfg_.qk_norm && !cfg_.qk_norm_full && !cfg_.qk_layer_norm && cfg_.qkv_clip == 0.0f &&
                              !cfg_.qk_norm_after_rope;
    return !is_mla(cfg_) && qk_untouched && layer_has_rope(cfg_, layer) && fused_small_ops() && decode.num_slices == 3;
  }
  if (module == kUp) return cfg_.mlp == MlpKind::kGatedSilu && decode.num_slices == 2;  // silu_mul_lora: SwiGLU only
  // A parallel block's o projection is followed by a plain residual add (the MLP reads the attention's input).
  const bool followed_by_norm = (module == kO && !cfg_.parallel_block) || (module == kDown && layer + 1 < cfg_.layers);
  return followed_by_norm && !cfg_.post_norms && cfg_.residual_scale == 1.0f && fused_residual_norm() &&
         decode.num_slices == 1;
}

}  // namespace weft::cuda
