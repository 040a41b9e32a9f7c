// Mixture-of-experts routing on the GPU (cuda_moe.cc drives them): the top-k choice per token from the router's
// logits, the gather of each expert's rows, and the weighted sum of the experts' outputs back per token. Mirrors
// the CPU executor's model/moe.cc: softmax in fp32 over all experts, the k largest (ties to the lower index),
// renormalised over the k when asked (or any other mode of model/moe_route.h's shared body: sigmoid, groups,
// Phi-3.5-MoE's sparsemixer — in fp32 from the dtype's logits, where transformers computes it in the dtype); a token's experts are added in ascending expert order, as transformers'
// per-expert index_add does. Llama 4 scales each expert's input rows by their weights instead (moe_scale_rows) and
// adds the outputs whole.
#include "common.cuh"
#include "model/moe_route.h"

namespace weft::cuda {
namespace {
using detail::from_f;
using detail::to_f;
constexpr int kThreads = 128;

template <class T>
__global__ void moe_route_kernel(const T* logits, const float* bias, int64_t tokens, moe::RouteParams p, int32_t* ids,
                                 float* weights) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= tokens) return;
  const T* row = logits + t * p.experts;
  const int out = p.k + (p.shared ? 1 : 0);
  moe::route_token([row](int e) { return to_f(row[e]); }, [bias](int e) { return bias ? bias[e] : 0.0f; }, p,
                   ids + t * out, weights + t * out);
}

// out[r, :] = x[rows[r], :] for r < n (rows of `words` 16-bit words).
__global__ void moe_gather_kernel(const uint16_t* x, int64_t words, const int32_t* rows, int64_t n, uint16_t* out) {
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    const uint16_t* src = x + static_cast<int64_t>(rows[r]) * words;
    for (int64_t i = threadIdx.x; i < words; i += blockDim.x) out[r * words + i] = src[i];
  }
}

// out[t, c] = Σ_j weights[src_w[t·k + j]] · y[src_row[t·k + j], c], in fp32, the j in the order given; null weights:
// each 1 (Llama 4: the weights scaled the experts' inputs).
template <class T>
__global__ void moe_combine_kernel(const T* y, const int32_t* src_row, const int32_t* src_w, const float* weights,
                                   int64_t tokens, int k, int64_t hidden, T* out) {
  for (int64_t t = blockIdx.x; t < tokens; t += gridDim.x) {
    for (int64_t c = threadIdx.x; c < hidden; c += blockDim.x) {
      float acc = 0.0f;
      for (int j = 0; j < k; ++j) {
        const float yv = to_f(y[static_cast<int64_t>(src_row[t * k + j]) * hidden + c]);
        acc += weights ? yv * weights[src_w[t * k + j]] : yv;
      }
      out[t * hidden + c] = from_f<T>(acc);
    }
  }
}

// Llama 4: x[src_row[i]] *= weights[src_w[i]] for each routed row i (one block per row), the weight rounded to the
// dtype first as transformers' router scores are, the product rounded once.
template <class T>
__global__ void moe_scale_rows_kernel(T* x, int64_t width, const int32_t* src_row, const int32_t* src_w,
                                      const float* weights, int64_t n) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    T* row = x + static_cast<int64_t>(src_row[i]) * width;
    const float w = to_f(from_f<T>(weights[src_w[i]]));
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) row[c] = from_f<T>(to_f(row[c]) * w);
  }
}
// weights[t·k + k − 1] = sigmoid(x[t] · g), the logit rounded to the dtype as nn.Linear's output is (Qwen2-MoE's
// shared_expert_gate). One block per token.
template <class T>
__global__ void moe_shared_gate_kernel(const T* x, const T* g, int64_t tokens, int64_t hidden, int k, float* weights) {
  __shared__ float part[32];
  for (int64_t t = blockIdx.x; t < tokens; t += gridDim.x) {
    float acc = 0.0f;
    for (int64_t c = threadIdx.x; c < hidden; c += blockDim.x) acc += to_f(x[t * hidden + c]) * to_f(g[c]);
    acc = detail::warp_sum(acc);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
      float s = 0.0f;
      for (unsigned w = 0; w < (blockDim.x + 31) / 32; ++w) s += part[w];
      weights[t * k + k - 1] = 1.0f / (1.0f + expf(-to_f(from_f<T>(s))));
    }
    __syncthreads();
  }
}
}  // namespace

cudaError_t moe_shared_gate(const void* x, const void* gate, DType dtype, int64_t tokens, int64_t hidden, int64_t k,
                            float* weights, cudaStream_t stream) {
  if (!x || !gate || !weights || tokens < 0 || hidden <= 0 || k <= 0) return cudaErrorInvalidValue;
  if (tokens == 0) return cudaSuccess;
  return detail::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    moe_shared_gate_kernel<T><<<static_cast<unsigned>(tokens < 65536 ? tokens : 65536), 256, 0, stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(gate), tokens, hidden, static_cast<int>(k), weights);
    return cudaGetLastError();
  });
}

cudaError_t moe_route(const void* logits, DType dtype, const float* bias, int64_t tokens, const moe::RouteParams& p,
                      int32_t* ids, float* weights, cudaStream_t stream) {
  // Sigmoid routing may come without a choice bias (Llama 4's router: bias(e) = 0); ERNIE's softmax always has one.
  if (tokens < 0 || p.experts <= 0 || p.experts > moe::kMaxExperts || p.k <= 0 || p.k > moe::kMaxTopK || p.k > p.experts ||
      (p.choice_bias && !bias))
    return cudaErrorInvalidValue;
  if (tokens == 0) return cudaSuccess;
  return detail::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    moe_route_kernel<T><<<static_cast<unsigned>((tokens + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
        static_cast<const T*>(logits), bias, tokens, p, ids, weights);
    return cudaGetLastError();
  });
}

cudaError_t moe_gather(const void* x, DType dtype, int64_t width, const int32_t* rows, int64_t n, void* out,
                       cudaStream_t stream) {
  if (width <= 0 || n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  const int64_t words = width * static_cast<int64_t>(detail::dtype_size(dtype)) / 2;
  moe_gather_kernel<<<static_cast<unsigned>(n < 65536 ? n : 65536), 256, 0, stream>>>(
      static_cast<const uint16_t*>(x), words, rows, n, static_cast<uint16_t*>(out));
  return cudaGetLastError();
}

cudaError_t moe_combine(const void* y, DType dtype, const int32_t* src_row, const int32_t* src_w, const float* weights,
                        int64_t tokens, int64_t k, int64_t hidden, void* out, cudaStream_t stream) {
  if (tokens < 0 || k <= 0 || hidden <= 0) return cudaErrorInvalidValue;
  if (tokens == 0) return cudaSuccess;
  return detail::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    moe_combine_kernel<T><<<static_cast<unsigned>(tokens < 65536 ? tokens : 65536), 256, 0, stream>>>(
        static_cast<const T*>(y), src_row, src_w, weights, tokens, static_cast<int>(k), hidden, static_cast<T*>(out));
    return cudaGetLastError();
  });
}

cudaError_t moe_scale_rows(void* x, DType dtype, int64_t width, const int32_t* src_row, const int32_t* src_w,
                           const float* weights, int64_t tokens, int64_t k, cudaStream_t stream) {
  if (!x || !src_row || !src_w || !weights || width <= 0 || tokens < 0 || k <= 0) return cudaErrorInvalidValue;
  const int64_t n = tokens * k;
  if (n == 0) return cudaSuccess;
  return detail::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    moe_scale_rows_kernel<T><<<static_cast<unsigned>(n < 65536 ? n : 65536), 256, 0, stream>>>(
        static_cast<T*>(x), width, src_row, src_w, weights, n);
    return cudaGetLastError();
  });
}

}  // namespace weft::cuda
