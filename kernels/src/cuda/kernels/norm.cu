// RMSNorm and LayerNorm: one block per row, fp32 statistics (two-pass variance for LayerNorm, as accurate as
// the CPU's double version at fp32 tolerance). Mirrors cpu/norm.cc. The residual variant (add_norm) first adds
// a module's output into the fp32 residual stream in the same pass that reads it: one launch and one read of
// the row instead of add_inplace + norm, with bitwise the same h and output (same element-per-thread split,
// same fp32 add, same summation order).
#include "common.cuh"
#include "lora_dot.cuh"
#include "pdl.cuh"

namespace weft::cuda {
namespace {
using detail::from_f;
using detail::to_f;

// out row = norm(x row), after the row's residual add: fp32 statistics over the block.
template <class Tx, class Tw, class To, bool kRms>
__device__ __forceinline__ void norm_row(const Tx* xr, To* yr, int64_t hidden, const Tw* weight, const Tw* bias,
                                         float eps, float* red) {
  const float n = static_cast<float>(hidden);
  float mean = 0.0f;
  if constexpr (!kRms) {
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) s += to_f(xr[i]);
    mean = detail::block_sum(s, red) / n;
  }
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    const float d = to_f(xr[i]) - mean;
    ss += d * d;
  }
  // Every read of the row happened before block_sum's barrier, so out may alias x.
  const float inv = 1.0f / sqrtf(detail::block_sum(ss, red) / n + eps);
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    const float v = (to_f(xr[i]) - mean) * inv;
    if constexpr (kRms) {
      yr[i] = from_f<To>(to_f(weight[i]) * v);
    } else {
      yr[i] = from_f<To>(v * to_f(weight[i]) + (bias ? to_f(bias[i]) : 0.0f));
    }
  }
}

// The register path (WEFT_NORM_REGS=1, opt-in until measured on a GPU): a thread's `per` <= kMaxPer elements of
// the row (element threadIdx.x + k·blockDim.x in v[k], the strided loops' order) are loaded before anything is
// stored or reduced, and its weights before the first reduction. The strided loops wait for memory once per element
// (a store to x between the loads of one element and the next keeps the compiler from issuing them together): a
// decode step's ~8 elements per thread, twice per layer, ran as ~8 round trips in sequence. Same sums in the same
// order: the same bits.
constexpr int kMaxPer = 8;
template <class Tw, class To, bool kRms>
__device__ __forceinline__ void norm_row_regs(const float (&v)[kMaxPer], int per, To* yr, int64_t hidden,
                                              const Tw* weight, const Tw* bias, float eps, float* red) {
  float w[kMaxPer], b[kMaxPer];
#pragma unroll
  for (int k = 0; k < kMaxPer; ++k) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(k) * blockDim.x;
    w[k] = b[k] = 0.0f;
    if (k < per && i < hidden) {
      w[k] = to_f(weight[i]);
      if constexpr (!kRms) b[k] = bias ? to_f(bias[i]) : 0.0f;
    }
  }
  const float n = static_cast<float>(hidden);
  float mean = 0.0f;
  if constexpr (!kRms) {
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < kMaxPer; ++k)
      if (k < per && threadIdx.x + static_cast<int64_t>(k) * blockDim.x < hidden) s += v[k];
    mean = detail::block_sum(s, red) / n;
  }
  float ss = 0.0f;
#pragma unroll
  for (int k = 0; k < kMaxPer; ++k) {
    if (k < per && threadIdx.x + static_cast<int64_t>(k) * blockDim.x < hidden) {
      const float d = v[k] - mean;
      ss += d * d;
    }
  }
  const float inv = 1.0f / sqrtf(detail::block_sum(ss, red) / n + eps);
#pragma unroll
  for (int k = 0; k < kMaxPer; ++k) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(k) * blockDim.x;
    if (k >= per || i >= hidden) continue;
    const float val = (v[k] - mean) * inv;
    if constexpr (kRms) {
      yr[i] = from_f<To>(w[k] * val);
    } else {
      yr[i] = from_f<To>(val * w[k] + b[k]);
    }
  }
}

// The register path's new row values written back to x (each thread writes only its own elements).
template <class Tx>
__device__ __forceinline__ void store_row_regs(Tx* xr, const float (&v)[kMaxPer], int per, int64_t hidden) {
#pragma unroll
  for (int k = 0; k < kMaxPer; ++k) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(k) * blockDim.x;
    if (k < per && i < hidden) xr[i] = from_f<Tx>(v[k]);
  }
}

// x += delta (when delta is given: x is then the fp32 residual stream, written back), out = norm(x). per > 0: the
// register path (norm_row_regs), per elements a thread.
template <class Tx, class Tw, class To, bool kRms, class Td = float>
__global__ void norm_kernel(Tx* x, int64_t hidden, const Tw* weight, const Tw* bias, float eps, To* out,
                            const Td* delta, int per) {
  __shared__ float red[32];
  detail::wait_then_release();  // pdl.cuh: launched chained
  Tx* xr = x + blockIdx.x * hidden;
  To* yr = out + blockIdx.x * hidden;
  const Td* dr = delta ? delta + blockIdx.x * hidden : nullptr;
  if (per > 0) {
    float v[kMaxPer];
#pragma unroll
    for (int k = 0; k < kMaxPer; ++k) {  // every load first
      const int64_t i = threadIdx.x + static_cast<int64_t>(k) * blockDim.x;
      v[k] = 0.0f;
      if (k < per && i < hidden) v[k] = dr ? to_f(from_f<Tx>(to_f(xr[i]) + to_f(dr[i]))) : to_f(xr[i]);
    }
    if (dr) store_row_regs(xr, v, per, hidden);  // then the residual stream's new values
    norm_row_regs<Tw, To, kRms>(v, per, yr, hidden, weight, bias, eps, red);
    return;
  }
  if (dr) {  // each thread adds (and later re-reads) only its own elements: no barrier needed
    for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) xr[i] = from_f<Tx>(to_f(xr[i]) + to_f(dr[i]));
  }
  norm_row<Tx, Tw, To, kRms>(xr, yr, hidden, weight, bias, eps, red);
}

// add_norm with a decode row's LoRA expand folded in (add_norm_lora): rows from first_row on are BGMV rows; a
// row with an adapter adds delta + scale·h·Bᵀ, rounded to delta's type as the expand kernel would have written it
// back (lora_dot.cuh), instead of delta; results can differ from the two kernels in the last bit where the
// compiler contracts differently.
template <class Tw, class To, bool kRms, class Td>
__global__ void add_norm_lora_kernel(float* x, int64_t hidden, const Tw* weight, const Tw* bias, float eps, To* out,
                                     const Td* delta, LoraArgs lora, int64_t first_row, int per) {
  __shared__ float red[32];
  extern __shared__ float4 hs4[];
  float* hs = reinterpret_cast<float*>(hs4);  // the row's h [rank]
  detail::wait_then_release();  // pdl.cuh: launched chained
  const int64_t row = blockIdx.x;
  float* xr = x + row * hidden;
  To* yr = out + row * hidden;
  const Td* dr = delta + row * hidden;
  int rank = 0;
  const Td* B = nullptr;
  float scale = 0.0f;
  if (row >= first_row) {
    const int64_t t = row - first_row;
    const int e = lora.token_entry[t];
    if (e >= 0 && e < lora.num_entries && sgmv::live(lora, e)) {
      rank = lora.rank[e];
      B = static_cast<const Td*>(lora.b[e]);
      scale = lora.scale[e];
      for (int k = threadIdx.x; k < rank; k += blockDim.x) hs[k] = lora.h[t * lora.max_rank + k];
    }
  }
  __syncthreads();  // every thread reaches it: the branches above hold no barrier
  if (per > 0) {  // the register path (see norm_row_regs): every load, then the stores, then the norm
    float v[kMaxPer];
#pragma unroll
    for (int k = 0; k < kMaxPer; ++k) {
      const int64_t i = threadIdx.x + static_cast<int64_t>(k) * blockDim.x;
      v[k] = 0.0f;
      if (k >= per || i >= hidden) continue;
      float d = to_f(dr[i]);
      if (rank > 0) d = detail::lora_expand_one(d, B, rank, scale, hs, i);
      v[k] = xr[i] + d;
    }
    store_row_regs(xr, v, per, hidden);
    norm_row_regs<Tw, To, kRms>(v, per, yr, hidden, weight, bias, eps, red);
    return;
  }
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    float d = to_f(dr[i]);
    if (rank > 0) d = detail::lora_expand_one(d, B, rank, scale, hs, i);
    xr[i] = xr[i] + d;  // each thread adds (and later re-reads) only its own elements
  }
  norm_row<float, Tw, To, kRms>(xr, yr, hidden, weight, bias, eps, red);
}

// One block per (row, head): head_rms_norm (one weight vector for every head) and head_layer_norm (each head's own:
// w_head_stride = head_dim). In place (norm_row reads the head before its reduction's barrier).
template <class T, class Tw, bool kRms>
__global__ void head_norm_kernel(T* x, int64_t stride, int q_heads, int64_t head_dim, const Tw* q_weight,
                                 const Tw* k_weight, float eps, int64_t w_head_stride) {
  __shared__ float red[32];
  detail::wait_then_release();  // pdl.cuh: launched chained
  const int head = static_cast<int>(blockIdx.y);
  T* xr = x + blockIdx.x * stride + head * head_dim;
  const Tw* w = head < q_heads ? q_weight + head * w_head_stride : k_weight + (head - q_heads) * w_head_stride;
  norm_row<T, Tw, T, kRms>(xr, xr, head_dim, w, nullptr, eps, red);
}

// OLMo 2's full-width q/k norm, first half: per row the sums of squares of q (q_dim values) and of k (kv_dim values
// after it), fp32 [row][q, k]; one block per row.
template <class T>
__global__ void qk_sum_squares_kernel(const T* x, int64_t stride, int64_t q_dim, int64_t kv_dim, float* sums) {
  __shared__ float red[32];
  const T* xr = x + blockIdx.x * stride;
  float sq = 0.0f, sk = 0.0f;
  for (int64_t i = threadIdx.x; i < q_dim; i += blockDim.x) sq += to_f(xr[i]) * to_f(xr[i]);
  for (int64_t i = threadIdx.x; i < kv_dim; i += blockDim.x) sk += to_f(xr[q_dim + i]) * to_f(xr[q_dim + i]);
  sq = detail::block_sum(sq, red);
  sk = detail::block_sum(sk, red);
  if (threadIdx.x == 0) sums[2 * blockIdx.x] = sq, sums[2 * blockIdx.x + 1] = sk;
}

// Second half: q *= q_w / sqrt(sum_q / q_width + eps), k likewise, in place.
template <class T, class Tw>
__global__ void qk_norm_apply_kernel(T* x, int64_t stride, int64_t q_dim, int64_t kv_dim, const float* sums,
                                     const Tw* q_w, const Tw* k_w, float q_width, float k_width, float eps) {
  T* xr = x + blockIdx.x * stride;
  const float rq = rsqrtf(sums[2 * blockIdx.x] / q_width + eps), rk = rsqrtf(sums[2 * blockIdx.x + 1] / k_width + eps);
  for (int64_t i = threadIdx.x; i < q_dim; i += blockDim.x) xr[i] = from_f<T>(to_f(q_w[i]) * (to_f(xr[i]) * rq));
  for (int64_t i = threadIdx.x; i < kv_dim; i += blockDim.x)
    xr[q_dim + i] = from_f<T>(to_f(k_w[i]) * (to_f(xr[q_dim + i]) * rk));
}

bool norm_args_valid(int64_t tokens, int64_t hidden, const void* w) {
  return tokens >= 0 && hidden >= 0 && w && tokens <= INT32_MAX;
}
// ~8 elements per thread; a whole warp at least, 1024 at most.
int norm_threads(int64_t hidden) {
  const int threads = static_cast<int>((hidden / 8 + 31) / 32 * 32);
  return threads < 32 ? 32 : (threads > 1024 ? 1024 : threads);
}
// Elements per thread for the register path, or 0 for the strided loops (off, or a row too long for it).
int norm_per(int64_t hidden) {
  static const bool on = detail::env_equals("WEFT_NORM_REGS", "1");
  const int64_t per = (hidden + norm_threads(hidden) - 1) / norm_threads(hidden);
  return on && per <= kMaxPer ? static_cast<int>(per) : 0;
}

template <bool kRms>
cudaError_t launch_norm(const void* x, DType xd, int64_t tokens, int64_t hidden, const void* w, const void* b,
                        DType wd, float eps, void* out, DType od, cudaStream_t stream) {
  if (!norm_args_valid(tokens, hidden, w)) return cudaErrorInvalidValue;
  if (tokens == 0 || hidden == 0) return cudaSuccess;
  return detail::dispatch3(xd, wd, od, [&](auto tx, auto tw, auto to) {
    using Tx = typename decltype(tx)::type;
    using Tw = typename decltype(tw)::type;
    using To = typename decltype(to)::type;
    // The kernel writes x only when given a delta; this launch gives none.
    return detail::launch_chained(norm_kernel<Tx, Tw, To, kRms, float>, dim3(static_cast<unsigned>(tokens)),
                                  dim3(norm_threads(hidden)), 0, stream, const_cast<Tx*>(static_cast<const Tx*>(x)),
                                  hidden, static_cast<const Tw*>(w), static_cast<const Tw*>(b), eps,
                                  static_cast<To*>(out), static_cast<const float*>(nullptr), norm_per(hidden));
  });
}

}  // namespace

namespace {
template <bool kRms>
cudaError_t head_norm(void* x, DType dtype, int64_t tokens, int64_t stride, int64_t q_heads, int64_t k_heads,
                      int64_t head_dim, const void* q_weight, const void* k_weight, DType w_dtype, float eps,
                      int64_t w_head_stride, cudaStream_t stream) {
  if (!x || !q_weight || !k_weight || tokens < 0 || tokens > INT32_MAX || q_heads < 0 || k_heads < 0 ||
      q_heads + k_heads > 65535 || head_dim <= 0 || stride < (q_heads + k_heads) * head_dim)
    return cudaErrorInvalidValue;
  if (tokens == 0 || q_heads + k_heads == 0) return cudaSuccess;
  return detail::dispatch2(dtype, w_dtype, [&](auto tx, auto tw) {
    using T = typename decltype(tx)::type;
    using Tw = typename decltype(tw)::type;
    return detail::launch_chained(head_norm_kernel<T, Tw, kRms>,
                                  dim3(static_cast<unsigned>(tokens), static_cast<unsigned>(q_heads + k_heads)),
                                  dim3(norm_threads(head_dim)), 0, stream, static_cast<T*>(x), stride,
                                  static_cast<int>(q_heads), head_dim, static_cast<const Tw*>(q_weight),
                                  static_cast<const Tw*>(k_weight), eps, w_head_stride);
  });
}
}  // namespace

cudaError_t head_rms_norm(void* x, DType dtype, int64_t tokens, int64_t stride, int64_t q_heads, int64_t k_heads,
                          int64_t head_dim, const void* q_weight, const void* k_weight, DType w_dtype, float eps,
                          cudaStream_t stream) {
  return head_norm<true>(x, dtype, tokens, stride, q_heads, k_heads, head_dim, q_weight, k_weight, w_dtype, eps, 0, stream);
}

cudaError_t head_layer_norm(void* x, DType dtype, int64_t tokens, int64_t stride, int64_t q_heads, int64_t k_heads,
                            int64_t head_dim, const void* q_weight, const void* k_weight, DType w_dtype, float eps,
                            cudaStream_t stream) {
  return head_norm<false>(x, dtype, tokens, stride, q_heads, k_heads, head_dim, q_weight, k_weight, w_dtype, eps,
                          head_dim, stream);
}

cudaError_t qk_sum_squares(const void* x, DType dtype, int64_t tokens, int64_t stride, int64_t q_dim, int64_t kv_dim,
                           float* sums, cudaStream_t stream) {
  if (!x || !sums || tokens < 0 || tokens > INT32_MAX || q_dim < 0 || kv_dim < 0 || stride < q_dim + kv_dim)
    return cudaErrorInvalidValue;
  if (tokens == 0) return cudaSuccess;
  return detail::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    qk_sum_squares_kernel<T><<<static_cast<unsigned>(tokens), norm_threads(q_dim), 0, stream>>>(
        static_cast<const T*>(x), stride, q_dim, kv_dim, sums);
    return cudaGetLastError();
  });
}

cudaError_t qk_norm_apply(void* x, DType dtype, int64_t tokens, int64_t stride, int64_t q_dim, int64_t kv_dim,
                          const float* sums, const void* q_weight, const void* k_weight, DType w_dtype, float q_width,
                          float k_width, float eps, cudaStream_t stream) {
  if (!x || !sums || !q_weight || !k_weight || tokens < 0 || tokens > INT32_MAX || stride < q_dim + kv_dim ||
      !(q_width > 0.0f) || !(k_width > 0.0f))
    return cudaErrorInvalidValue;
  if (tokens == 0) return cudaSuccess;
  return detail::dispatch2(dtype, w_dtype, [&](auto tx, auto tw) {
    using T = typename decltype(tx)::type;
    using Tw = typename decltype(tw)::type;
    qk_norm_apply_kernel<T, Tw><<<static_cast<unsigned>(tokens), norm_threads(q_dim), 0, stream>>>(
        static_cast<T*>(x), stride, q_dim, kv_dim, sums, static_cast<const Tw*>(q_weight),
        static_cast<const Tw*>(k_weight), q_width, k_width, eps);
    return cudaGetLastError();
  });
}

cudaError_t rms_norm(const void* x, DType x_dtype, int64_t tokens, int64_t hidden, const void* weight, DType w_dtype,
                     float eps, void* out, DType out_dtype, cudaStream_t stream) {
  return launch_norm<true>(x, x_dtype, tokens, hidden, weight, nullptr, w_dtype, eps, out, out_dtype, stream);
}

cudaError_t layer_norm(const void* x, DType x_dtype, int64_t tokens, int64_t hidden, const void* weight,
                       const void* bias, DType w_dtype, float eps, void* out, DType out_dtype, cudaStream_t stream) {
  return launch_norm<false>(x, x_dtype, tokens, hidden, weight, bias, w_dtype, eps, out, out_dtype, stream);
}

cudaError_t add_norm(float* h, const void* delta, DType delta_dtype, int64_t tokens, int64_t hidden, bool rms,
                     const void* weight, const void* bias, DType w_dtype, float eps, void* out, DType out_dtype,
                     cudaStream_t stream) {
  if (!norm_args_valid(tokens, hidden, weight) || !h || !delta) return cudaErrorInvalidValue;
  if (tokens == 0 || hidden == 0) return cudaSuccess;
  return detail::dispatch3(delta_dtype, w_dtype, out_dtype, [&](auto td, auto tw, auto to) {
    using Td = typename decltype(td)::type;
    using Tw = typename decltype(tw)::type;
    using To = typename decltype(to)::type;
    const dim3 grid(static_cast<unsigned>(tokens));
    const int threads = norm_threads(hidden);
    const auto* w = static_cast<const Tw*>(weight);
    const auto* b = static_cast<const Tw*>(bias);
    const auto* d = static_cast<const Td*>(delta);
    auto* o = static_cast<To*>(out);
    const auto kernel = rms ? norm_kernel<float, Tw, To, true, Td> : norm_kernel<float, Tw, To, false, Td>;
    return detail::launch_chained(kernel, grid, dim3(threads), 0, stream, h, hidden, w, b, eps, o, d, norm_per(hidden));
  });
}

cudaError_t add_norm_lora(float* h, const void* delta, DType delta_dtype, int64_t tokens, int64_t hidden, bool rms,
                          const void* weight, const void* bias, DType w_dtype, float eps, void* out, DType out_dtype,
                          const LoraArgs& lora, cudaStream_t stream) {
  if (!norm_args_valid(tokens, hidden, weight) || !h || !delta || lora.dtype != delta_dtype || lora.num_slices != 1 ||
      !lora.token_entry || !lora.h || lora.tokens < 0 || lora.tokens > tokens || lora.max_rank <= 0 ||
      lora.max_rank > 1024 || !lora.a || !lora.b || !lora.rank || !lora.scale)
    return cudaErrorInvalidValue;
  if (tokens == 0 || hidden == 0) return cudaSuccess;
  return detail::dispatch3(delta_dtype, w_dtype, out_dtype, [&](auto td, auto tw, auto to) {
    using Td = typename decltype(td)::type;
    using Tw = typename decltype(tw)::type;
    using To = typename decltype(to)::type;
    const auto kernel = rms ? add_norm_lora_kernel<Tw, To, true, Td> : add_norm_lora_kernel<Tw, To, false, Td>;
    return detail::launch_chained(kernel, dim3(static_cast<unsigned>(tokens)), dim3(norm_threads(hidden)),
                                  sizeof(float) * static_cast<size_t>(lora.max_rank), stream, h, hidden,
                                  static_cast<const Tw*>(weight), static_cast<const Tw*>(bias), eps,
                                  static_cast<To*>(out), static_cast<const Td*>(delta), lora, tokens - lora.tokens,
                                  norm_per(hidden));
  });
}

}  // namespace weft::cuda
