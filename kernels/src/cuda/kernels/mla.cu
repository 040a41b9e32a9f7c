// Multi-head latent attention's layout step on the GPU (cuda_mla.cc drives it), as the CPU executor's model/mla.cc:
// from the projections' outputs it writes the attention's [q | k | v] rows, each head of head_dim = nope + rope, with
// the CPU executor's own layout body (model/mla_layout.h) — so RoPE, the KV cache write and paged attention run on
// them as on any model's q|k|v. A pure copy: elements move as bits (zero is all-zero bits in every
// dtype), so one kernel per element width serves fp32, fp16 and bf16.
#include "common.cuh"
#include "model/mla_layout.h"

namespace weft::cuda {
namespace {

template <class W>
__global__ void mla_assemble_kernel(const W* q, int64_t q_stride, const W* kv, const W* k_rope, int64_t rope_stride,
                                    int64_t tokens, int heads, int nope, int rope, int v_dim, W* out) {
  const int hd = nope + rope, qd = heads * hd;
  for (int64_t t = blockIdx.x; t < tokens; t += gridDim.x) {
    const W* qs = q + t * q_stride;
    const W* kvs = kv + t * static_cast<int64_t>(heads) * (nope + v_dim);
    const W* kr = k_rope + t * rope_stride;
    W* o = out + t * 3 * static_cast<int64_t>(qd);
    for (int i = threadIdx.x; i < qd; i += blockDim.x)
      mla::assemble_element(i, nope, rope, v_dim, qs, kvs, kr, o, o + qd, o + 2 * qd);
  }
}

template <class W>
cudaError_t launch(const void* q, int64_t q_stride, const void* kv, const void* k_rope, int64_t rope_stride,
                   int64_t tokens, int heads, int nope, int rope, int v_dim, void* out, cudaStream_t stream) {
  mla_assemble_kernel<W><<<static_cast<unsigned>(tokens < 65536 ? tokens : 65536), 256, 0, stream>>>(
      static_cast<const W*>(q), q_stride, static_cast<const W*>(kv), static_cast<const W*>(k_rope), rope_stride, tokens,
      heads, nope, rope, v_dim, static_cast<W*>(out));
  return cudaGetLastError();
}
}  // namespace

cudaError_t mla_assemble(const void* q, int64_t q_stride, const void* kv, const void* k_rope, int64_t rope_stride,
                         DType dtype, int64_t tokens, int64_t heads, int64_t nope, int64_t rope, int64_t v_dim, void* out,
                         cudaStream_t stream) {
  const int64_t hd = nope + rope;
  if (!q || !kv || !k_rope || !out || tokens < 0 || heads <= 0 || nope < 0 || rope <= 0 || v_dim <= 0 || v_dim > hd ||
      heads * hd > INT32_MAX || q_stride < heads * hd || rope_stride < rope)
    return cudaErrorInvalidValue;
  if (tokens == 0) return cudaSuccess;
  const int h = static_cast<int>(heads), n = static_cast<int>(nope), r = static_cast<int>(rope), v = static_cast<int>(v_dim);
  if (detail::dtype_size(dtype) == 2) return launch<uint16_t>(q, q_stride, kv, k_rope, rope_stride, tokens, h, n, r, v, out, stream);
  return launch<uint32_t>(q, q_stride, kv, k_rope, rope_stride, tokens, h, n, r, v, out, stream);
}

}  // namespace weft::cuda
