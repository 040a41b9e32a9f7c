// LoRA on the token embedding (kernels.h lora_embedding): one block per (row, 256 outputs). The row's "shrink" is
// its token's column of A (a one-hot input), read into shared memory; each thread then adds one output's B row ·
// that column. One small launch a step: rows without an adapter, or whose adapter has no embedding part, return.
#include "cuda/kernels/common.cuh"

namespace weft::cuda {

namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void embedding_kernel(LoraArgs a, const int32_t* tokens, int64_t vocab, float* h, int64_t hidden,
                                 float out_scale) {
  extern __shared__ float col[];  // A[:, token]
  const int64_t t = blockIdx.y;
  const int32_t e = a.token_entry[t];
  if (e < 0 || e >= a.num_entries || !a.a[e]) return;
  const int32_t rank = a.rank[e];
  const T* A = static_cast<const T*>(a.a[e]);
  const T* B = static_cast<const T*>(a.b[e]);
  const int64_t tok = tokens[t];
  for (int32_t k = static_cast<int32_t>(threadIdx.x); k < rank; k += kThreads) col[k] = detail::to_f(A[k * vocab + tok]);
  __syncthreads();
  const int64_t o = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (o >= hidden) return;
  float acc = 0.0f;
  for (int32_t k = 0; k < rank; ++k) acc += detail::to_f(B[o * rank + k]) * col[k];
  h[t * hidden + o] += a.scale[e] * out_scale * acc;
}

}  // namespace

cudaError_t lora_embedding(const LoraArgs& a, const int32_t* tokens, int64_t vocab, float* h, int64_t hidden,
                           cudaStream_t stream, float out_scale) {
  if (a.tokens < 0 || hidden <= 0 || vocab <= 0 || !tokens || !h || !a.token_entry) return cudaErrorInvalidValue;
  if (a.tokens == 0) return cudaSuccess;
  if (a.tokens > 65535 || a.max_rank > 1024) return cudaErrorInvalidConfiguration;
  const unsigned cols = static_cast<unsigned>((hidden + kThreads - 1) / kThreads);
  return detail::dispatch(a.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    embedding_kernel<T><<<dim3(cols, static_cast<unsigned>(a.tokens)), kThreads, sizeof(float) * static_cast<size_t>(a.max_rank),
                          stream>>>(a, tokens, vocab, h, hidden, out_scale);
    return cudaGetLastError();
  });
}

}  // namespace weft::cuda
