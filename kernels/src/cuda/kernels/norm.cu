// RMSNorm and LayerNorm: one block per row, fp32 statistics (two-pass variance for LayerNorm, as accurate as
// the CPU's double version at fp32 tolerance). Mirrors cpu/norm.cc.
#include "common.cuh"

namespace weft::cuda {
namespace {
using detail::from_f;
using detail::to_f;

template <class Tx, class Tw, class To, bool kRms>
__global__ void norm_kernel(const Tx* x, int64_t hidden, const Tw* weight, const Tw* bias, float eps, To* out) {
  __shared__ float red[32];
  const Tx* xr = x + blockIdx.x * hidden;
  To* yr = out + blockIdx.x * hidden;
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

template <bool kRms>
cudaError_t launch_norm(const void* x, DType xd, int64_t tokens, int64_t hidden, const void* w, const void* b,
                        DType wd, float eps, void* out, DType od, cudaStream_t stream) {
  if (tokens < 0 || hidden < 0 || !w || tokens > INT32_MAX) return cudaErrorInvalidValue;
  if (tokens == 0 || hidden == 0) return cudaSuccess;
  // ~8 elements per thread; a whole warp at least, 1024 at most.
  int threads = static_cast<int>((hidden / 8 + 31) / 32 * 32);
  threads = threads < 32 ? 32 : (threads > 1024 ? 1024 : threads);
  return detail::dispatch(xd, [&](auto tx) {
    return detail::dispatch(wd, [&](auto tw) {
      return detail::dispatch(od, [&](auto to) {
        using Tx = typename decltype(tx)::type;
        using Tw = typename decltype(tw)::type;
        using To = typename decltype(to)::type;
        norm_kernel<Tx, Tw, To, kRms><<<static_cast<unsigned>(tokens), threads, 0, stream>>>(
            static_cast<const Tx*>(x), hidden, static_cast<const Tw*>(w), static_cast<const Tw*>(b), eps,
            static_cast<To*>(out));
        return cudaGetLastError();
      });
    });
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

}  // namespace weft::cuda
