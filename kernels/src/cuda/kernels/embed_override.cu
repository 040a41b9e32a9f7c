// Embedding-row overrides (kernels.h embed_override): a grid-stride scatter of the packed feature rows into the fp32
// residual stream, each value rounded through the model's dtype. The body is embed_override_body.h's, which the host
// check runs too. Bandwidth-bound and small (an image is a few hundred rows), once per prefill step with images.
#include "cuda/kernels/common.cuh"
#include "cuda/kernels/embed_override_body.h"

namespace weft::cuda {

namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void embed_override_kernel(const void* packed, int64_t n, int64_t hidden, float* h) {
  const auto round = [](float v) { return detail::to_f<T>(detail::from_f<T>(v)); };
  const int64_t total = n * hidden, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride)
    embed_rows::element(e, packed, n, hidden, h, round);
}

}  // namespace

cudaError_t embed_override(const void* packed, int64_t n, int64_t hidden, float* h, DType round_to,
                           cudaStream_t stream) {
  if (n < 0 || hidden <= 0 || (n > 0 && (!packed || !h))) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (!detail::aligned16(packed)) return cudaErrorInvalidValue;  // the feature rows start 16 bytes in
  const unsigned blocks = detail::grid_for(n * hidden, kThreads);
  return detail::dispatch(round_to, [&](auto tag) {
    using T = typename decltype(tag)::type;
    embed_override_kernel<T><<<blocks, kThreads, 0, stream>>>(packed, n, hidden, h);
    return cudaGetLastError();
  });
}

}  // namespace weft::cuda
