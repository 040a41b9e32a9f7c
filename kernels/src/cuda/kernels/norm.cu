// RMSNorm and LayerNorm: one block per row, fp32 statistics (two-pass variance for LayerNorm, as accurate as
// the CPU's double version at fp32 tolerance). Mirrors cpu/norm.cc. The residual variant (add_norm) first adds
// a module's output into the fp32 residual stream in the same pass that reads it: one launch and one read of
// the row instead of add_inplace + norm, with bitwise the same h and output (same element-per-thread split,
// same fp32 add, same summation order).
#include "common.cuh"
#include "pdl.cuh"

namespace weft::cuda {
namespace {
using detail::from_f;
using detail::to_f;

// x += delta (when delta is given: x is then the fp32 residual stream, written back), out = norm(x).
template <class Tx, class Tw, class To, bool kRms, class Td = float>
__global__ void norm_kernel(Tx* x, int64_t hidden, const Tw* weight, const Tw* bias, float eps, To* out,
                            const Td* delta) {
  __shared__ float red[32];
  detail::wait_then_release();  // pdl.cuh: launched chained
  Tx* xr = x + blockIdx.x * hidden;
  To* yr = out + blockIdx.x * hidden;
  const float n = static_cast<float>(hidden);
  if (delta) {  // each thread adds (and later re-reads) only its own elements: no barrier needed
    const Td* dr = delta + blockIdx.x * hidden;
    for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) xr[i] = from_f<Tx>(to_f(xr[i]) + to_f(dr[i]));
  }
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

bool norm_args_valid(int64_t tokens, int64_t hidden, const void* w) {
  return tokens >= 0 && hidden >= 0 && w && tokens <= INT32_MAX;
}
// ~8 elements per thread; a whole warp at least, 1024 at most.
int norm_threads(int64_t hidden) {
  const int threads = static_cast<int>((hidden / 8 + 31) / 32 * 32);
  return threads < 32 ? 32 : (threads > 1024 ? 1024 : threads);
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
                                  static_cast<To*>(out), static_cast<const float*>(nullptr));
  });
}

}  // namespace

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
    return detail::launch_chained(kernel, grid, dim3(threads), 0, stream, h, hidden, w, b, eps, o, d);
  });
}

}  // namespace weft::cuda
