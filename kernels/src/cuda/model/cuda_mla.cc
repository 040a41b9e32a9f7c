// CudaModel::mla_qkv — multi-head latent attention's projections on the GPU (ModelConfig::mla_kv_rank > 0), as the
// CPU executor's model/mla.cc: the replicated first projection [q_a | kv_a | k_rope] (or [q | kv_a | k_rope]) with its
// LoRA, the latents copied out and RMS-normalised, q_b / kv_b with their LoRA, then mla_assemble lays out the usual
// [q | k | v] rows (qkv_stride() wide) that RoPE, the KV cache write and paged attention read. mla_values packs the
// attention output's value part of each head for the o projection.
#include "cuda/kernels/kernels.h"
#include "cuda/model/cuda_model.h"
#include "cuda/runtime/check.h"

namespace weft::cuda {

int64_t CudaModel::qkv_stride() const {
  return is_mla(cfg_) ? 3 * cfg_.heads_local * cfg_.head_dim : module_out(cfg_, kQkv);
}

void CudaModel::mla_qkv(int64_t l, const StepPlan& p) {
  const LayerWeights& w = layer_w_[l];
  const int layer = static_cast<int>(l);
  const int64_t T = p.rows, H = cfg_.hidden, nh = cfg_.heads_local, hd = cfg_.head_dim, rope = cfg_.rotary_dim;
  const int64_t qr = cfg_.mla_q_rank, kvr = cfg_.mla_kv_rank, nope = cfg_.mla_nope_dim, vd = cfg_.mla_v_dim;
  const int64_t first_out = module_out(cfg_, kQkv), q_first = qr > 0 ? qr : nh * hd;
  const DType dt = opts_.dtype;
  char* first = buf_.mla_first.as<char>();
  project("gemm qkv", layer, kQkv, buf_.x.get(), H, w.qkv_w, first, first_out, w.qkv_b, p);
  // A latent's columns of `first` as contiguous rows, then its RMS norm in place (one "head" as wide as the latent).
  auto latent = [&](int64_t at, int64_t width, DeviceBuffer& dst, const void* norm_w) {
    WEFT_CUDA_CHECK(cudaMemcpy2DAsync(dst.get(), width * ds_, first + at * ds_, first_out * ds_, width * ds_,
                                      static_cast<size_t>(T), cudaMemcpyDeviceToDevice, stream_));
    WEFT_CUDA_CHECK(head_rms_norm(dst.get(), dt, T, width, 1, 0, width, norm_w, norm_w, dt, cfg_.mla_norm_eps, stream_));
  };
  ops_.mark("mla latents", stream_);
  const void* q = first;
  int64_t q_stride = first_out;
  if (qr > 0) {
    latent(0, qr, buf_.mla_qa, w.q_a_norm_w);
    project("gemm q_b", layer, kQb, buf_.mla_qa.get(), qr, w.q_b_w, buf_.mla_q.get(), nh * hd, nullptr, p);
    q = buf_.mla_q.get(), q_stride = nh * hd;
  }
  latent(q_first, kvr, buf_.mla_kva, w.kv_a_norm_w);
  project("gemm kv_b", layer, kKvb, buf_.mla_kva.get(), kvr, w.kv_b_w, buf_.mla_kv.get(), nh * (nope + vd), nullptr, p);
  ops_.mark("mla layout", stream_);
  WEFT_CUDA_CHECK(mla_assemble(q, q_stride, buf_.mla_kv.get(), first + (q_first + kvr) * ds_, first_out, dt, T, nh, nope,
                               rope, vd, buf_.qkv.get(), stream_));
}

const void* CudaModel::mla_values(int64_t rows) {
  const int64_t nh = cfg_.heads_local, hd = cfg_.head_dim, vd = cfg_.mla_v_dim;
  WEFT_CUDA_CHECK(cudaMemcpy2DAsync(buf_.attn_v.get(), vd * ds_, buf_.attn.get(), hd * ds_, vd * ds_,
                                    static_cast<size_t>(rows * nh), cudaMemcpyDeviceToDevice, stream_));
  return buf_.attn_v.get();
}

}  // namespace weft::cuda
