// DoRA's channel scale over a step's rows (kernels.h lora_dora_scale). One block per (row, slice): a handful of
// launches per layer that touch only the DoRA rows' outputs, once.
#include "cuda/kernels/common.cuh"

namespace weft::cuda {

namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void dora_scale_kernel(DoraScaleArgs a) {
  const int64_t row = blockIdx.x;
  const int s = static_cast<int>(blockIdx.y);
  const int32_t e = a.row_entry[row];
  if (e < 0) return;
  const float* mag = a.mag[static_cast<int64_t>(s) * a.num_entries + e];
  if (!mag) return;
  const int32_t off = a.out_offset[s], len = a.out_len[s];
  T* y = static_cast<T*>(a.y) + row * a.y_stride + off;
  const T* bias = a.bias ? static_cast<const T*>(a.bias) + off : nullptr;
  for (int32_t o = static_cast<int32_t>(threadIdx.x); o < len; o += kThreads) {
    const float b = bias ? detail::to_f(bias[o]) : 0.0f;
    y[o] = detail::from_f<T>(mag[o] * (detail::to_f(y[o]) - b) + b);
  }
}

}  // namespace

cudaError_t lora_dora_scale(const DoraScaleArgs& a, cudaStream_t stream) {
  if (a.rows < 0 || a.num_slices <= 0 || a.num_entries <= 0 || !a.y || !a.mag || !a.row_entry) return cudaErrorInvalidValue;
  if (a.rows == 0) return cudaSuccess;
  if (a.rows > 65535 || a.num_slices > 65535) return cudaErrorInvalidConfiguration;
  return detail::dispatch(a.dtype, [&](auto t) {
    using T = typename decltype(t)::type;
    dora_scale_kernel<T><<<dim3(static_cast<unsigned>(a.rows), static_cast<unsigned>(a.num_slices)), kThreads, 0, stream>>>(a);
    return cudaGetLastError();
  });
}

}  // namespace weft::cuda
