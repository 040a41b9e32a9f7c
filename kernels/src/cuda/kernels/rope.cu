// Rotate-half rotary embedding (GPT-NeoX / HF Llama layout), in place on q and k. Mirrors
// cpu::rope_rotate_half: angle = pos · inv_freq[i] rounded to fp32 (as transformers computes freqs), then
// cos/sin of that fp32 angle. They are evaluated in double and rounded, so the values match the CPU's
// correctly rounded cosf/sinf even under --use_fast_math (which would swap sincosf for a short-range
// intrinsic, wrong for positions in the thousands).
#include "common.cuh"

namespace weft::cuda {
namespace {
using detail::from_f;
using detail::to_f;

template <class T>
__global__ void rope_kernel(T* q, int64_t q_heads, int64_t q_stride, T* k, int64_t k_heads, int64_t k_stride,
                            int64_t head_dim, int64_t half, const int32_t* positions, const float* inv_freq,
                            float factor) {
  const int64_t t = blockIdx.x;
  const float pos = static_cast<float>(positions[t]);
  const int64_t total = (q_heads + k_heads) * half;
  // One element per thread, blockIdx.y picking the chunk: a loop over a token's (head, i) pairs in one block left
  // a decode step of 32 tokens with 32 blocks, each running 16 double-precision sincos in sequence (15 µs per
  // layer on an H100 for Llama-2-7B, where the work is a few hundred KB).
  for (int64_t e = blockIdx.y * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.y) * blockDim.x) {
    const int64_t h = e / half, i = e - h * half;
    T* v = h < q_heads ? q + t * q_stride + h * head_dim : k + t * k_stride + (h - q_heads) * head_dim;
    const float angle = pos * inv_freq[i];
    double sd, cd;
    sincos(static_cast<double>(angle), &sd, &cd);
    const float c = static_cast<float>(cd) * factor;
    const float s = static_cast<float>(sd) * factor;
    const float a = to_f(v[i]);
    const float b = to_f(v[i + half]);
    v[i] = from_f<T>(a * c - b * s);
    v[i + half] = from_f<T>(b * c + a * s);
  }
}

}  // namespace

cudaError_t rope_rotate_half(void* q, int64_t q_heads, int64_t q_stride, void* k, int64_t k_heads, int64_t k_stride,
                             DType dtype, int64_t tokens, int64_t head_dim, int64_t rotary_dim,
                             const int32_t* positions, const float* inv_freq, float attention_factor,
                             cudaStream_t stream) {
  if (!k) k_heads = 0;
  if (tokens < 0 || tokens > INT32_MAX || q_heads < 0 || k_heads < 0 || rotary_dim < 0 || rotary_dim % 2 != 0 ||
      rotary_dim > head_dim || (q_heads > 0 && !q))
    return cudaErrorInvalidValue;
  const int64_t half = rotary_dim / 2;
  if (tokens == 0 || half == 0 || q_heads + k_heads == 0) return cudaSuccess;
  const int64_t work = (q_heads + k_heads) * half;
  const int threads = work >= 256 ? 256 : static_cast<int>((work + 31) / 32 * 32);
  return detail::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const int64_t chunks = (work + threads - 1) / threads;
    const dim3 grid(static_cast<unsigned>(tokens), static_cast<unsigned>(chunks < 65535 ? chunks : 65535));
    rope_kernel<T><<<grid, threads, 0, stream>>>(
        static_cast<T*>(q), q_heads, q_stride, static_cast<T*>(k), k_heads, k_stride, head_dim, half, positions,
        inv_freq, attention_factor);
    return cudaGetLastError();
  });
}

}  // namespace weft::cuda
