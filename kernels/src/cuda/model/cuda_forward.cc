// CudaModel's step: the op sequence of Model::forward (model/forward.cc) with the kernels of kernels.h and
// cuBLASLt GEMMs, on rows ordered by step_plan.h. enqueue_step only enqueues work on stream_ (it is what a
// decode graph captures); the host-staged collectives in all_reduce are the exception, and only run when
// the world has several ranks, where graphs are off.
#include <algorithm>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <type_traits>

#include "cuda/model/cuda_model.h"
#include "cuda/model/row_ptr.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/env.h"
#include "cuda/runtime/gemm.h"
#include "cuda/runtime/nccl.h"

namespace weft::cuda {

namespace {

GemmType gemm_type(DType dt) {
  switch (dt) {
    case DType::kF32: return GemmType::kF32;
    case DType::kF16: return GemmType::kF16;
    case DType::kBF16: return GemmType::kBF16;
  }
  return GemmType::kF32;
}

}  // namespace

// GEMMs of up to 32 rows (decode) may run on the tensor-core skinny kernel instead of cuBLASLt
// (WEFT_SKINNY_GEMM=1, opt-in until measured on a GPU: skinny_gemm_body.h says why); other shapes, and shapes it
// does not take, stay on cuBLASLt.
void CudaModel::gemm(const void* x, const void* w, void* y, int64_t m, int64_t n, int64_t k, const void* bias) {
  static const bool skinny_on = detail::env_equals("WEFT_SKINNY_GEMM", "1");
  if (skinny_on && m <= 32) {
    const SkinnyGemmArgs a{opts_.dtype, m, n, k, x, w, bias, y, n};
    if (skinny_gemm_supported(a)) {
      WEFT_CUDA_CHECK(skinny_gemm(a, stream_));
      return;
    }
  }
  gemm_->run(gemm_type(opts_.dtype), stream_, x, w, y, m, n, k, bias);
}

void CudaModel::norm(const void* x, DType x_dtype, int64_t rows, const void* w, const void* b, void* out) {
  if (!w) {  // no norm there (OLMo 2's blocks): the input as it is, in the activations' dtype
    WEFT_CUDA_CHECK(convert(x, x_dtype, out, opts_.dtype, rows * cfg_.hidden, stream_));
    return;
  }
  if (cfg_.norm == NormKind::kRms)
    WEFT_CUDA_CHECK(rms_norm(x, x_dtype, rows, cfg_.hidden, w, opts_.dtype, cfg_.norm_eps, out, opts_.dtype, stream_));
  else
    WEFT_CUDA_CHECK(
        layer_norm(x, x_dtype, rows, cfg_.hidden, w, b, opts_.dtype, cfg_.norm_eps, out, opts_.dtype, stream_));
}

void CudaModel::attention(int64_t layer, const StepPlan& p) {
  const int64_t q_dim = cfg_.heads_local * cfg_.head_dim, qkv_out = qkv_stride();
  PagedAttention a{};
  a.dtype = opts_.dtype;
  a.q_stride = qkv_out;
  a.out_stride = q_dim;
  a.k_cache = kv(layer, 0);
  a.v_cache = kv(layer, 1);
  a.block_table_stride = p.table_stride;
  a.heads = static_cast<int32_t>(cfg_.heads_local);
  a.kv_heads = static_cast<int32_t>(cfg_.kv_heads_local);
  a.head_dim = static_cast<int32_t>(cfg_.head_dim);
  a.block_size = static_cast<int32_t>(cfg_.block_size);
  a.scale = cfg_.attn_scale;
  a.sliding_window = static_cast<int32_t>(layer_window(cfg_, layer));
  // Llama 4's chunked layers. Fixed per layer, like the window: a decode graph captures it with the launch. A chunk
  // past every int32 position is no chunk at all (each position's chunk starts at 0).
  a.chunk = static_cast<int32_t>(std::min<int64_t>(layer_chunk(cfg_, layer), INT32_MAX));
  a.softcap = cfg_.attn_softcap;
  a.sinks = layer_w_[layer].sinks;  // a weight: its address is fixed, so decode graphs capture it like the others
  if (p.prefill_seqs > 0) {
    a.bidirectional = cfg_.bidirectional;  // whole prompts only (ModelConfig::bidirectional); decode stays causal
    a.q = buf_.qkv.get();
    a.out = buf_.attn.get();
    a.num_seqs = p.prefill_seqs;
    a.num_tokens = static_cast<int32_t>(p.prefill_rows);
    a.cu_seqlens_q = ints(p.cu_p);
    a.context_lens = ints(p.ctx_p);
    a.block_tables = ints(p.bt_p);
    a.max_query_len = p.max_query_len;
    a.max_context_len = p.prefill_max_context;
    if (p.num_spans > 0) {  // Gemma 3's images: bidirectional within each (prefill rows only; step_plan.h)
      a.image_spans = ints(p.spans);
      a.span_offsets = ints(p.span_off);
    }
    ops_.mark("attention prefill", stream_);
    WEFT_CUDA_CHECK(paged_attention_prefill(a, stream_));
  }
  if (p.decode_seqs > 0) {
    a.q = row_ptr(buf_.qkv.get(), p.prefill_rows, qkv_out, ds_);
    a.out = row_ptr(buf_.attn.get(), p.prefill_rows, q_dim, ds_);
    a.bidirectional = false;  // one-row sequences: a bidirectional model's are whole one-token prompts, the same
    a.image_spans = a.span_offsets = nullptr;  // a one-row query is never inside an image it does not end (causal)
    a.num_seqs = p.decode_seqs;
    a.num_tokens = static_cast<int32_t>(p.rows - p.prefill_rows);
    a.cu_seqlens_q = ints(p.cu_d);
    a.context_lens = ints(p.ctx_d);
    a.block_tables = ints(p.bt_d);
    a.max_query_len = 1;
    a.max_context_len = p.decode_max_context;
    ops_.mark("attention decode", stream_);
    WEFT_CUDA_CHECK(paged_attention_decode(a, buf_.attn_ws.get(), buf_.attn_ws.bytes(), stream_));
  }
}

void CudaModel::all_reduce(float* data, int64_t n) {
  if (nccl_) {  // device buffers: order the collective's stream after ours, and ours after it
    WEFT_CUDA_CHECK(cudaEventRecord(fork_, stream_));
    WEFT_CUDA_CHECK(cudaStreamWaitEvent(nccl_->stream(), fork_, 0));
    nccl_->all_reduce_sum(data, n);
    WEFT_CUDA_CHECK(cudaEventRecord(join_, nccl_->stream()));
    WEFT_CUDA_CHECK(cudaStreamWaitEvent(stream_, join_, 0));
    return;
  }
  // Host collective (shm): stage the partial sums through pinned memory.
  float* stage = buf_.stage.as<float>();
  const size_t bytes = static_cast<size_t>(n) * sizeof(float);
  WEFT_CUDA_CHECK(cudaMemcpyAsync(stage, data, bytes, cudaMemcpyDeviceToHost, stream_));
  WEFT_CUDA_CHECK(cudaStreamSynchronize(stream_));
  coll_->all_reduce_sum(stage, n);
  WEFT_CUDA_CHECK(cudaMemcpyAsync(data, stage, bytes, cudaMemcpyHostToDevice, stream_));
}

// h += out (+ bias), where out is a row-parallel module's output of this rank. World of one: the bias was
// added by the GEMM epilogue. Several ranks: out (+ this rank's LoRA term) is a partial sum; it is summed in
// fp32 across ranks, then the bias is added once (DESIGN.md §3).
void CudaModel::residual(void* out, const void* bias, int64_t rows, const void* post_w) {
  const int64_t n = rows * cfg_.hidden;
  float* h = buf_.h.as<float>();
  if (coll_->world() == 1) {
    finish_block_output(out, opts_.dtype, rows, post_w);
    WEFT_CUDA_CHECK(add_inplace(h, DType::kF32, out, opts_.dtype, n, stream_));
    return;
  }
  float* sum = opts_.dtype == DType::kF32 ? static_cast<float*>(out) : buf_.o32.as<float>();
  if (opts_.dtype != DType::kF32) WEFT_CUDA_CHECK(convert(out, opts_.dtype, sum, DType::kF32, n, stream_));
  all_reduce(sum, n);
  if (bias) WEFT_CUDA_CHECK(bias_add(sum, DType::kF32, rows, cfg_.hidden, cfg_.hidden, bias, opts_.dtype, stream_));
  finish_block_output(sum, DType::kF32, rows, post_w);
  WEFT_CUDA_CHECK(add_inplace(h, DType::kF32, sum, DType::kF32, n, stream_));
}

// A block's output (reduced over the ranks, bias added) in place before the residual add: Gemma's post norm (weights
// post_w; in the output's own dtype, as transformers normalises the bf16 projection output), then Granite's
// residual multiplier.
void CudaModel::finish_block_output(void* out, DType dtype, int64_t rows, const void* post_w) {
  if (post_w)
    WEFT_CUDA_CHECK(rms_norm(out, dtype, rows, cfg_.hidden, post_w, opts_.dtype, cfg_.norm_eps, out, dtype, stream_));
  if (cfg_.residual_scale != 1.0f)
    WEFT_CUDA_CHECK(scale_inplace(out, dtype, rows * cfg_.hidden, cfg_.residual_scale, stream_));
}

// Multimodal RoPE's positions (Qwen2-VL) in the step's packed buffer, or none. The buffer is uploaded every step at an
// offset fixed by the step's shape, so a decode graph captured with this pointer reads each replay's own positions
// (decode rows: index + the sequence's rope delta, as the shard packs them).
MRope CudaModel::mrope(const StepPlan& p) const {
  MRope m;
  if (p.mrope < 0) return m;
  m.pos3 = ints(p.mrope);
  m.stride = p.rows;
  m.end0 = static_cast<int32_t>(cfg_.mrope_section[0]);
  m.end1 = static_cast<int32_t>(cfg_.mrope_section[0] + cfg_.mrope_section[1]);
  return m;
}

const float* CudaModel::layer_inv_freq_dev(int64_t layer) const {
  // The same choice as layer_inv_freq (model.cc), as device pointers.
  return &layer_inv_freq(cfg_, layer) == &cfg_.inv_freq_local ? inv_freq_local_.as<float>() : inv_freq_.as<float>();
}

// Small steps run as one kernel where the result is bitwise the same: RoPE + the KV cache write
// (rope_kv_cache_write), and on one rank the residual add + the next norm (add_norm: several ranks sum partials
// across ranks in between, so they keep the two steps). Each saves a launch and a pass over its data, two or three
// times per layer. WEFT_FUSED_SMALL_OPS=0 runs the separate kernels (A/B timing).
bool CudaModel::fused_small_ops() const {
  static const bool off = detail::env_equals("WEFT_FUSED_SMALL_OPS", "0");
  return !off;
}
bool CudaModel::fused_residual_norm() const { return fused_small_ops() && coll_->world() == 1; }

// The step's RoPE angles computed once (rope_cos_sin_table) instead of by every layer's rotation for every head:
// the same values, read from a small table. Opt-in until measured on a GPU.
bool CudaModel::rope_table() const {
  static const bool on = detail::env_equals("WEFT_ROPE_TABLE", "1");
  return on && cfg_.inv_freq_local.empty();  // one table per step: one set of frequencies
}

void CudaModel::residual_norm(void* out, const void* bias, int64_t rows, const void* w, const void* b,
                              const void* post_w) {
  // The module's decode-row LoRA expand, folded in (cuda_lora.cc: expand_into_next, never with post norms or a
  // residual multiplier).
  if (has_deferred_expand_) {
    has_deferred_expand_ = false;
    WEFT_CUDA_CHECK(add_norm_lora(buf_.h.as<float>(), out, opts_.dtype, rows, cfg_.hidden,
                                  cfg_.norm == NormKind::kRms, w, b, opts_.dtype, cfg_.norm_eps, buf_.x.get(),
                                  opts_.dtype, deferred_expand_, stream_));
    return;
  }
  if (!fused_residual_norm() || !w) {  // !w: no norm to fuse (OLMo 2)
    residual(out, bias, rows, post_w);
    norm(buf_.h.get(), DType::kF32, rows, w, b, buf_.x.get());
    return;
  }
  finish_block_output(out, opts_.dtype, rows, post_w);
  WEFT_CUDA_CHECK(add_norm(buf_.h.as<float>(), out, opts_.dtype, rows, cfg_.hidden, cfg_.norm == NormKind::kRms, w, b,
                           opts_.dtype, cfg_.norm_eps, buf_.x.get(), opts_.dtype, stream_));
}

// RoPE on q and k (in the layers that have it) and k, v into the cache, from buf_.qkv's q|k|v rows. Llama 4's
// weightless per-head RMS norm of q and k after RoPE (qk_norm_after_rope) must see the rotated k before the cache
// does, so its layers rotate in place, normalise, then write; the fused kernels write a k they rotate on the way.
void CudaModel::rope_kv_write(int64_t l, const StepPlan& p) {
  const int64_t T = p.rows, hd = cfg_.head_dim, nq = cfg_.heads_local, nkv = cfg_.kv_heads_local;
  const int64_t q_dim = nq * hd, kv_dim = nkv * hd, qkv_out = qkv_stride();
  const DType dt = opts_.dtype;
  char* qkv = buf_.qkv.as<char>();
  // Hunyuan's per-head norm after RoPE (qk_norm_post_rope, with its weights) takes the same path, in every layer.
  const bool rope = layer_has_rope(cfg_, l), post_rope_norm = cfg_.qk_norm_post_rope;
  const bool norm_after_rope = (rope && cfg_.qk_norm_after_rope) || post_rope_norm;
  ops_.mark("rope + kv write", stream_);
  const float* cos_sin = rope_table() ? buf_.rope_cs.as<float>() : nullptr;  // enqueue_step filled it
  if (has_deferred_expand_) {  // qkv's decode-row LoRA expand folded in (cuda_lora.cc: expand_into_next)
    has_deferred_expand_ = false;
    WEFT_CUDA_CHECK(rope_kv_cache_write_lora(qkv, nq, qkv + q_dim * ds_, qkv + (q_dim + kv_dim) * ds_, nkv, qkv_out, dt,
                                             T, hd, cfg_.rotary_dim, ints(p.positions), layer_inv_freq_dev(l),
                                             layer_rope_attention_factor(cfg_, l), ints(p.kv_slots), kv(l, 0), kv(l, 1),
                                             deferred_expand_, stream_, cos_sin, ints_opt(p.rope_long),
                                             cfg_.rope_interleaved, mrope(p)));
    return;
  }
  if (rope && !norm_after_rope && fused_small_ops()) {  // RoPE and the cache write in one launch
    WEFT_CUDA_CHECK(rope_kv_cache_write(qkv, nq, qkv + q_dim * ds_, qkv + (q_dim + kv_dim) * ds_, nkv, qkv_out, dt, T,
                                        hd, cfg_.rotary_dim, ints(p.positions), layer_inv_freq_dev(l),
                                        layer_rope_attention_factor(cfg_, l), ints(p.kv_slots), kv(l, 0), kv(l, 1), stream_,
                                        cos_sin, ints_opt(p.rope_long), cfg_.rope_interleaved, mrope(p)));
    return;
  }
  if (rope)
    WEFT_CUDA_CHECK(rope_rotate_half(qkv, nq, qkv_out, qkv + q_dim * ds_, nkv, qkv_out, dt, T, hd, cfg_.rotary_dim,
                                     ints(p.positions), layer_inv_freq_dev(l), layer_rope_attention_factor(cfg_, l), stream_,
                                     cos_sin, ints_opt(p.rope_long), cfg_.rope_interleaved, mrope(p)));
  if (post_rope_norm)  // Hunyuan: q_norm / k_norm's weights
    WEFT_CUDA_CHECK(head_rms_norm(qkv, dt, T, qkv_out, nq, nkv, hd, layer_w_[l].q_norm_w, layer_w_[l].k_norm_w, dt,
                                  cfg_.norm_eps, stream_));
  else if (norm_after_rope)  // one weight of ones (head_ones_) for q and k: x / sqrt(mean(x²) + eps), the CPU's rms_norm
    WEFT_CUDA_CHECK(head_rms_norm(qkv, dt, T, qkv_out, nq, nkv, hd, head_ones_.get(), head_ones_.get(), dt,
                                  cfg_.norm_eps, stream_));
  WEFT_CUDA_CHECK(kv_cache_write(qkv + q_dim * ds_, qkv + (q_dim + kv_dim) * ds_, qkv_out, T, kv_dim, ints(p.kv_slots),
                                 kv(l, 0), kv(l, 1), dt, stream_));
}

void CudaModel::enqueue_layer(int64_t l, const StepPlan& p) {
  const LayerWeights& w = layer_w_[l];
  const int layer = static_cast<int>(l);
  const int64_t T = p.rows, H = cfg_.hidden, hd = cfg_.head_dim;
  const int64_t nq = cfg_.heads_local, nkv = cfg_.kv_heads_local, q_dim = nq * hd, kv_dim = nkv * hd;
  const int64_t qkv_out = qkv_stride();
  const DType dt = opts_.dtype;
  const bool solo = coll_->world() == 1;
  char* qkv = buf_.qkv.as<char>();

  // Attention block. With the fused residual + norm, the previous layer's last residual step already wrote x.
  if (l == 0 || !fused_residual_norm()) {
    ops_.mark("norm", stream_);
    norm(buf_.h.get(), DType::kF32, T, w.attn_norm_w, w.attn_norm_b, buf_.x.get());
  }
  if (cfg_.parallel_mlp_norm) norm(buf_.h.get(), DType::kF32, T, w.mlp_norm_w, w.mlp_norm_b, buf_.xm.get());  // GPT-NeoX
  if (is_mla(cfg_)) mla_qkv(l, p);  // latent attention's projections, laid out as q | k | v heads
  else project("gemm qkv", layer, kQkv, buf_.x.get(), H, w.qkv_w, qkv, qkv_out, w.qkv_b, p);
  if (cfg_.qk_norm && !cfg_.qk_norm_post_rope) {  // expand_into_next keeps qkv's expand out of RoPE in such models: the norm comes first
    ops_.mark("q/k norm", stream_);
    WEFT_CUDA_CHECK(head_rms_norm(qkv, dt, T, qkv_out, nq, nkv, hd, w.q_norm_w, w.k_norm_w, dt, cfg_.norm_eps, stream_));
  } else if (cfg_.qk_layer_norm) {  // Command R+: per-head LayerNorms, each head's own weights
    ops_.mark("q/k norm", stream_);
    WEFT_CUDA_CHECK(head_layer_norm(qkv, dt, T, qkv_out, nq, nkv, hd, w.q_norm_w, w.k_norm_w, dt, cfg_.norm_eps, stream_));
  } else if (cfg_.qk_norm_full) {  // OLMo 2: over all heads, the sums added over the ranks (model.cc's qk_norm_full)
    ops_.mark("q/k norm", stream_);
    float* sums = buf_.qk_sums.as<float>();
    WEFT_CUDA_CHECK(qk_sum_squares(qkv, dt, T, qkv_out, q_dim, kv_dim, sums, stream_));
    const int64_t world = coll_->world();
    if (world > 1) all_reduce(sums, 2 * T);
    WEFT_CUDA_CHECK(qk_norm_apply(qkv, dt, T, qkv_out, q_dim, kv_dim, sums, w.q_norm_w, w.k_norm_w, dt,
                                  static_cast<float>(q_dim * world), static_cast<float>(kv_dim * world), cfg_.norm_eps,
                                  stream_));
  }
  if (cfg_.qkv_clip > 0.0f) {  // OLMo's clip_qkv on the whole q|k|v rows (expand_into_next keeps qkv's expand out)
    ops_.mark("qkv clamp", stream_);
    WEFT_CUDA_CHECK(clamp_inplace(qkv, T * qkv_out, cfg_.qkv_clip, dt, stream_));
  }
  rope_kv_write(l, p);
  // Ministral 3, Llama 4's NoPE layers: q scaled by position after RoPE (the cached keys are not). Ministral 3's scale
  // is rounded to the dtype first; Llama 4 (q_scale_nope_only) multiplies by the fp32 scale, as transformers does.
  if (layer_query_scaled(cfg_, l))
    WEFT_CUDA_CHECK(query_position_scale(qkv, qkv_out, q_dim, dt, T, ints(p.positions), cfg_.q_scale_beta,
                                         cfg_.q_scale_period, stream_, static_cast<int32_t>(cfg_.q_scale_offset),
                                         !cfg_.q_scale_nope_only));
  attention(l, p);
  if (is_mla(cfg_)) {  // o reads each head's value width
    project("gemm o", layer, kO, mla_values(T), nq * cfg_.mla_v_dim, w.o_w, buf_.o.get(), H, solo ? w.o_b : nullptr, p);
  } else {
    project("gemm o", layer, kO, buf_.attn.get(), q_dim, w.o_w, buf_.o.get(), H, solo ? w.o_b : nullptr, p);
  }
  // MLP block.
  ops_.mark("residual + norm", stream_);
  if (cfg_.parallel_block) {
    residual(buf_.o.get(), solo ? nullptr : w.o_b, T, w.post_attn_norm_w);  // x stays the attention's input
    if (cfg_.parallel_mlp_norm)  // GPT-NeoX: the MLP reads its own norm of the block input
      WEFT_CUDA_CHECK(cudaMemcpyAsync(buf_.x.get(), buf_.xm.get(), static_cast<size_t>(T * cfg_.hidden) * ds_,
                                      cudaMemcpyDeviceToDevice, stream_));
  } else {
    residual_norm(buf_.o.get(), solo ? nullptr : w.o_b, T, w.mlp_norm_w, w.mlp_norm_b, w.post_attn_norm_w);
  }
  if (layer_is_moe(cfg_, l)) {
    moe_mlp(l, p);
  } else {
    dense_mlp(l, p);
  }
  ops_.mark("residual + norm", stream_);
  if (l + 1 < cfg_.layers) {
    const LayerWeights& next = layer_w_[l + 1];
    residual_norm(buf_.o.get(), solo ? nullptr : w.down_b, T, next.attn_norm_w, next.attn_norm_b, w.post_mlp_norm_w);
  } else {
    residual(buf_.o.get(), solo ? nullptr : w.down_b, T, w.post_mlp_norm_w);  // final norm: on the logit rows only
  }
}

// A dense MLP from x into o: up (gate | up), the activation, down, each projection with its LoRA.
void CudaModel::dense_mlp(int64_t l, const StepPlan& p) {
  const LayerWeights& w = layer_w_[l];
  const int layer = static_cast<int>(l);
  const int64_t T = p.rows, H = cfg_.hidden, up_out = module_out(cfg_, kUp), I = cfg_.intermediate_local;
  const DType dt = opts_.dtype;
  const bool solo = coll_->world() == 1;
  project("gemm up", layer, kUp, buf_.x.get(), H, w.up_w, buf_.up.get(), up_out, w.up_b, p);
  ops_.mark("activation", stream_);
  void* act = buf_.up.get();
  if (cfg_.mlp == MlpKind::kGatedSilu && has_deferred_expand_) {  // gate/up's decode-row LoRA expand folded in
    has_deferred_expand_ = false;
    act = buf_.act.get();
    WEFT_CUDA_CHECK(silu_mul_lora(buf_.up.get(), up_out, act, I, T, I, dt, deferred_expand_, stream_));
  } else if (gated_mlp(cfg_)) {
    act = buf_.act.get();
    gated_mlp_activation(buf_.up.get(), up_out, act, I, T, I);
  } else if (cfg_.mlp == MlpKind::kGeluTanh) {
    WEFT_CUDA_CHECK(gelu_tanh(act, T * I, dt, stream_));
  } else if (cfg_.mlp == MlpKind::kReluSquared) {
    WEFT_CUDA_CHECK(relu_squared(act, T * I, dt, stream_));
  } else if (cfg_.mlp == MlpKind::kXielu) {
    WEFT_CUDA_CHECK(xielu(act, T * I, w.xielu, dt, stream_));
  } else {
    WEFT_CUDA_CHECK(gelu_erf(act, T * I, dt, stream_));
  }
  project("gemm down", layer, kDown, act, I, w.down_w, buf_.o.get(), H, solo ? w.down_b : nullptr, p);
}

void CudaModel::gated_mlp_activation(const void* gate_up, int64_t in_stride, void* out, int64_t out_stride, int64_t rows,
                                     int64_t inter) {
  const DType dt = opts_.dtype;
  if (cfg_.mlp == MlpKind::kGatedSilu)
    WEFT_CUDA_CHECK(silu_mul(gate_up, in_stride, out, out_stride, rows, inter, dt, stream_));
  else if (cfg_.mlp == MlpKind::kGatedGeluTanh)
    WEFT_CUDA_CHECK(gelu_tanh_mul(gate_up, in_stride, out, out_stride, rows, inter, dt, stream_));
  else if (cfg_.mlp == MlpKind::kClampedSwiglu)
    WEFT_CUDA_CHECK(clamped_swiglu(gate_up, in_stride, out, out_stride, rows, inter, cfg_.glu_alpha, cfg_.glu_limit, dt,
                                   stream_));
  else
    throw std::logic_error("gated_mlp_activation: the MLP is not gated");
}

void CudaModel::enqueue_step(const StepPlan& p) {
  const int64_t T = p.rows, H = cfg_.hidden, R = p.logit_rows, VL = cfg_.vocab_local;
  const DType dt = opts_.dtype;
  const void* pos_table = cfg_.learned_positions ? weight("pos_embed") : nullptr;
  has_deferred_expand_ = false;  // nothing left over from a step that failed half-way
  ops_.mark("embed", stream_);
  WEFT_CUDA_CHECK(embedding_gather(weight("embed"), dt, cfg_.vocab, H, ints(p.tokens), T, buf_.h.get(), DType::kF32,
                                   pos_table, cfg_.max_positions, ints(p.positions), stream_, cfg_.embed_scale));
  // LoRA on the token embedding, in steps with rows of such adapters (their own graph key; other rows return at once).
  LoraArgs emb;
  if (p.embed_lora && lora_args(-1, kEmbed, cfg_.vocab, H, &emb)) {
    emb.tokens = T;
    emb.token_entry = ints(p.row_entry);
    ops_.mark("lora embed", stream_);
    WEFT_CUDA_CHECK(lora_embedding(emb, ints(p.tokens), cfg_.vocab, buf_.h.as<float>(), H, stream_, cfg_.embed_scale));
  }
  // Image features over their placeholder rows, last (after the scale and embedding LoRA), as Model::forward does.
  if (p.embed_overrides > 0) apply_overrides(p);
  if (cfg_.rotary_dim > 0 && rope_table()) {
    ops_.mark("rope table", stream_);
    WEFT_CUDA_CHECK(rope_cos_sin_table(ints(p.positions), T, inv_freq_.as<float>(), cfg_.rotary_dim,
                                       cfg_.rope_attention_factor, buf_.rope_cs.as<float>(), stream_,
                                       ints_opt(p.rope_long), mrope(p)));
  }
  for (int64_t l = 0; l < cfg_.layers; ++l) enqueue_layer(l, p);
  if (R == 0) return;
  // Final norm and lm_head only for the rows whose logits are wanted, gathered in the batch's order.
  ops_.mark("final norm", stream_);
  WEFT_CUDA_CHECK(embedding_gather(buf_.h.get(), DType::kF32, T, H, ints(p.logit_index), R, buf_.hr.get(),
                                   DType::kF32, nullptr, 0, nullptr, stream_));
  norm(buf_.hr.get(), DType::kF32, R, weight("final_norm.weight"), weight_opt("final_norm.bias"), buf_.xr.get());
  ops_.mark("gemm lm_head", stream_);
  gemm(buf_.xr.get(), weight("lm_head"), buf_.lg.get(), R, VL, H, weight_opt("lm_head.bias"));
  if (p.lora) lora(-1, kLmHead, buf_.xr.get(), H, buf_.lg.get(), VL, p);
  ops_.mark("logits", stream_);
  if (cfg_.logits_divisor != 1.0f)
    WEFT_CUDA_CHECK(scale_inplace(buf_.lg.get(), dt, R * VL, 1.0f / cfg_.logits_divisor, stream_));
  if (cfg_.final_softcap > 0.0f) WEFT_CUDA_CHECK(softcap_inplace(buf_.lg.get(), dt, R * VL, cfg_.final_softcap, stream_));
  if (dt != DType::kF32) WEFT_CUDA_CHECK(convert(buf_.lg.get(), dt, buf_.lg32.get(), DType::kF32, R * VL, stream_));
}

// Logits [wanted rows, vocab] on the host: this rank's [rows, vocab_local] padded to vocab_chunk columns,
// all-gathered (on the host for a host collective, on the device for NCCL), then assembled like the CPU's.
std::vector<float> CudaModel::collect_logits(const StepPlan& p) {
  const int64_t R = p.wanted_logits, VL = cfg_.vocab_local, chunk = cfg_.vocab_chunk;
  const int world = coll_->world();
  const float* local = logits_f32();
  if (R == 0) {
    WEFT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return {};
  }
  if (world == 1 && VL == cfg_.vocab) {
    std::vector<float> out(static_cast<size_t>(R * cfg_.vocab));
    WEFT_CUDA_CHECK(cudaMemcpyAsync(out.data(), local, out.size() * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    WEFT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return out;
  }
  float* stage = buf_.stage.as<float>();
  const size_t row_bytes = static_cast<size_t>(VL) * sizeof(float), pitch = static_cast<size_t>(chunk) * sizeof(float);
  if (nccl_) {
    float* padded = buf_.lgc.as<float>();
    if (VL < chunk) WEFT_CUDA_CHECK(cudaMemsetAsync(padded, 0, static_cast<size_t>(R) * pitch, stream_));
    WEFT_CUDA_CHECK(cudaMemcpy2DAsync(padded, pitch, local, row_bytes, row_bytes, static_cast<size_t>(R),
                                      cudaMemcpyDeviceToDevice, stream_));
    WEFT_CUDA_CHECK(cudaEventRecord(fork_, stream_));
    WEFT_CUDA_CHECK(cudaStreamWaitEvent(nccl_->stream(), fork_, 0));
    nccl_->all_gather(padded, R * chunk, buf_.gathered.as<float>());
    WEFT_CUDA_CHECK(cudaEventRecord(join_, nccl_->stream()));
    WEFT_CUDA_CHECK(cudaStreamWaitEvent(stream_, join_, 0));
    WEFT_CUDA_CHECK(cudaMemcpyAsync(stage, buf_.gathered.get(), static_cast<size_t>(world * R) * pitch,
                                    cudaMemcpyDeviceToHost, stream_));
    WEFT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return assemble_logits(cfg_, stage, world, R);
  }
  float* gathered = stage + R * chunk;
  WEFT_CUDA_CHECK(cudaMemcpy2DAsync(stage, pitch, local, row_bytes, row_bytes, static_cast<size_t>(R),
                                    cudaMemcpyDeviceToHost, stream_));
  WEFT_CUDA_CHECK(cudaStreamSynchronize(stream_));
  // Zero the padding columns only now: the last layer's all-reduce may still have been copying `stage` to the
  // device (an async copy from pinned memory) until the synchronisation above.
  if (VL < chunk)
    for (int64_t r = 0; r < R; ++r)
      std::memset(stage + r * chunk + VL, 0, static_cast<size_t>(chunk - VL) * sizeof(float));
  coll_->all_gather(stage, R * chunk, gathered);
  return assemble_logits(cfg_, gathered, world, R);
}

}  // namespace weft::cuda
